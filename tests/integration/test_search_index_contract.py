"""The search index contract, the same tests for every adapter: tantivy always, OpenSearch when a
server is reachable through OPENSEARCH_URL (skipped with the reason otherwise).

External versioning, access control in the query, typo tolerance and ranking, filters with
inclusive ranges, facets over every visible match, sorts, cursor pagination, highlights, and
a rebuild that keeps searches working and loses no change made meanwhile.
"""

from __future__ import annotations

import os
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.core.search.model import (
    Change,
    Delete,
    InvalidCursor,
    Range,
    SearchQuery,
    SearchResult,
    TrackDocument,
    Upsert,
    normalize_keyword,
)
from services.core.search.port import SearchIndex
from tests.support.search_corpus import (
    ALICE,
    BOB,
    BPM_RANGE,
    CAROL,
    DURATION_RANGE,
    NOBODY,
    SLUG,
    TRACKS,
    YEAR_RANGE,
    track,
    upserts,
    visible_to,
)

pytestmark = pytest.mark.integration

# Opens another handle on the same index (as another process would): (index, handle maker).
Factory = Callable[[], tuple[SearchIndex, Callable[[], SearchIndex]]]


def _tantivy(tmp_path: Path) -> Iterator[Factory]:
    from services.core.search.tantivy_index import TantivyIndex

    opened: list[TantivyIndex] = []

    def make() -> tuple[SearchIndex, Callable[[], SearchIndex]]:
        path = tmp_path / f"index-{len(opened)}"

        def handle() -> SearchIndex:
            index = TantivyIndex(path)
            opened.append(index)
            return index

        return handle(), handle

    yield make
    for index in opened:
        index.close()


def _opensearch() -> Iterator[Factory]:
    url = os.environ.get("OPENSEARCH_URL")
    if not url:
        pytest.skip(
            "OPENSEARCH_URL not set: the OpenSearch adapter runs this contract only against a "
            "reachable server (its request bodies are checked in "
            "tests/unit/test_search_opensearch_requests.py)"
        )
    from opensearchpy import OpenSearch

    from services.core.search.opensearch_index import OpenSearchIndex

    client = OpenSearch(url, timeout=30)
    try:
        client.info()
    except Exception as exc:
        pytest.skip(f"OPENSEARCH_URL={url} is not reachable: {exc}")
    aliases: list[str] = []

    def make() -> tuple[SearchIndex, Callable[[], SearchIndex]]:
        alias = f"msync-test-{uuid.uuid4().hex[:10]}"
        aliases.append(alias)

        def handle() -> SearchIndex:
            return OpenSearchIndex(client, alias, replicas=0)

        return handle(), handle

    yield make
    for alias in aliases:
        client.indices.delete(index=f"{alias}-gen-*", ignore_unavailable=True)
    client.close()


@pytest.fixture(params=["tantivy", "opensearch"])
def factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Factory]:
    if request.param == "tantivy":
        yield from _tantivy(tmp_path)
    else:
        yield from _opensearch()


@pytest.fixture
def index(factory: Factory) -> SearchIndex:
    return factory()[0]


@pytest.fixture
def corpus(factory: Factory) -> SearchIndex:
    index = factory()[0]
    assert index.write(upserts()) == len(TRACKS)
    return index


def slugs(result: SearchResult) -> list[str]:
    return [SLUG[h.document.id] for h in result.hits]


def search(index: SearchIndex, viewer: uuid.UUID = ALICE, **fields: object) -> SearchResult:
    fields.setdefault("limit", 100)
    return index.search(SearchQuery(viewer=viewer, **fields))  # type: ignore[arg-type]


def every_page(index: SearchIndex, query: SearchQuery) -> list[list[str]]:
    pages: list[list[str]] = []
    while True:
        result = index.search(query)
        pages.append(slugs(result))
        assert len(pages) < 100, "the cursor never ends"
        if result.next_cursor is None:
            return pages
        query = replace(query, cursor=result.next_cursor)


# -- external versioning -------------------------------------------------------------------------
def test_a_duplicate_change_is_skipped(index: SearchIndex) -> None:
    doc = track("yesterday")
    assert index.write([Upsert(doc, 3)]) == 1
    assert index.write([Upsert(doc, 3)]) == 0
    assert index.version(doc.id) == 3
    assert slugs(search(index, text="yesterday")) == ["yesterday"]


def test_a_stale_upsert_after_a_newer_one_is_skipped(index: SearchIndex) -> None:
    doc = track("yesterday")
    assert index.write([Upsert(replace(doc, title="Yesterday (Remastered)"), 5)]) == 1
    assert index.write([Upsert(doc, 4)]) == 0
    hit = search(index, text="yesterday").hits[0]
    assert hit.document.title == "Yesterday (Remastered)"
    assert index.version(doc.id) == 5


def test_a_stale_upsert_after_a_delete_does_not_bring_the_track_back(index: SearchIndex) -> None:
    doc = track("yesterday")
    assert index.write([Upsert(doc, 1), Delete(doc.id, 2)]) == 2
    assert search(index, text="yesterday").total == 0
    assert index.version(doc.id) == 2
    assert index.write([Upsert(doc, 2)]) == 0
    assert index.write([Upsert(doc, 1)]) == 0
    assert search(index).total == 0


def test_a_newer_upsert_after_a_delete_brings_it_back(index: SearchIndex) -> None:
    doc = track("yesterday")
    assert index.write([Delete(doc.id, 4)]) == 1
    assert index.version(doc.id) == 4
    assert index.write([Upsert(doc, 5)]) == 1
    assert slugs(search(index)) == ["yesterday"]


def test_changes_in_one_write_apply_in_order(index: SearchIndex) -> None:
    a, b = track("yesterday"), track("hey-jude")
    changes: list[Change] = [
        Upsert(a, 1),
        Upsert(replace(a, title="Yesterday v2"), 2),
        Upsert(a, 1),  # stale within the batch
        Upsert(b, 7),
        Delete(b.id, 6),  # older than the upsert before it
    ]
    assert index.write(changes) == 3
    assert {h.document.title for h in search(index).hits} == {"Yesterday v2", "Hey Jude"}
    assert (index.version(a.id), index.version(b.id)) == (2, 7)


def test_an_unknown_track_has_no_version(index: SearchIndex) -> None:
    assert index.version(uuid.uuid4()) is None
    assert index.write([]) == 0


def test_a_write_is_visible_to_another_handle_when_it_returns(factory: Factory) -> None:
    writer, handle = factory()
    reader = handle()
    assert search(reader).total == 0
    writer.write([Upsert(track("jolene"), 1)])
    assert slugs(search(reader, text="jolene")) == ["jolene"]
    writer.write([Delete(track("jolene").id, 2)])
    assert search(reader, text="jolene").total == 0


# -- access control ------------------------------------------------------------------------------
@pytest.mark.parametrize("viewer", [ALICE, BOB, CAROL, NOBODY])
def test_a_viewer_finds_only_the_tracks_that_list_them(
    corpus: SearchIndex, viewer: uuid.UUID
) -> None:
    result = search(corpus, viewer)
    expected = {SLUG[d.id] for d in visible_to(viewer)}
    assert set(slugs(result)) == expected
    assert result.total == len(expected)


def test_text_queries_never_reach_tracks_the_viewer_may_not_see(corpus: SearchIndex) -> None:
    assert "carol-yesterday" not in slugs(search(corpus, ALICE, text="secret yesterday"))
    assert search(corpus, ALICE, text="secret").total == 0
    assert slugs(search(corpus, CAROL, text="beatls yesterdy")) == ["carol-yesterday"]
    assert search(corpus, NOBODY, text="yesterday").total == 0


def test_facets_count_only_what_the_viewer_may_see(corpus: SearchIndex) -> None:
    for viewer in (ALICE, BOB, CAROL):
        facets = search(corpus, viewer, limit=1).facets
        visible = visible_to(viewer)
        for name, attribute in (("genre", "genre"), ("mood", "mood"), ("key", "key")):
            expected = Counter(
                normalize_keyword(v) for d in visible if (v := getattr(d, attribute)) is not None
            )
            assert facets[name] == dict(expected), (viewer, name)


def test_facets_count_every_match_not_just_the_page(corpus: SearchIndex) -> None:
    page = search(corpus, text="yesterday", limit=1)
    every = search(corpus, text="yesterday", limit=100)
    assert len(page.hits) == 1 and page.total == every.total == len(every.hits) > 3
    for name in ("genre", "mood", "key"):
        expected = Counter(
            normalize_keyword(v) for h in every.hits if (v := getattr(h.document, name))
        )
        assert page.facets[name] == dict(expected)
        counts = list(page.facets[name].values())
        assert counts == sorted(counts, reverse=True)


# -- text: typos, prefixes, ranking --------------------------------------------------------------
def test_typos_find_yesterday_by_the_beatles_first(corpus: SearchIndex) -> None:
    result = search(corpus, text="beatls yesterdy")
    assert slugs(result)[0] == "yesterday"
    assert "yesterday-tribute" in slugs(result)  # found, but below the real one
    assert result.hits[0].score > result.hits[1].score


def test_the_prefix_of_the_last_word_finds_yesterday(corpus: SearchIndex) -> None:
    found = slugs(search(corpus, text="yester"))
    assert "yesterday" in found
    assert {"yesterday-tribute", "yesterdays-news", "yesterdays", "yesterday-once-more"} <= set(
        found
    )
    assert "yesterday" in slugs(search(corpus, text="the beatles yest"))
    assert slugs(search(corpus, text="bohemian rhap"))[0] == "bohemian-rhapsody"


def test_only_the_last_word_is_a_prefix(corpus: SearchIndex) -> None:
    assert search(corpus, text="yest beatles").total == 0
    assert "yesterday" in slugs(search(corpus, text="beatles yest"))


def test_typos_within_the_distance_match_and_beyond_it_do_not(corpus: SearchIndex) -> None:
    assert slugs(search(corpus, text="bohemain rapsody"))[0] == "bohemian-rhapsody"
    assert slugs(search(corpus, text="jolnee"))[0] == "jolene"  # transposition: one edit
    assert search(corpus, text="jzlxne").total == 0  # two edits in six letters (one allowed)
    assert search(corpus, text="jom").total == 0  # below four letters: exact or prefix only


def test_every_word_must_match_somewhere(corpus: SearchIndex) -> None:
    assert search(corpus, text="beatles jolene").total == 0
    found = slugs(search(corpus, text="daft punk dance"))
    assert set(found) == {"get-lucky", "around-the-world", "one-more-time"}


def test_words_match_across_fields_with_the_title_weighing_most(corpus: SearchIndex) -> None:
    found = slugs(search(corpus, text="yesterday"))
    assert found.index("yesterday") < found.index("album-yesterday")
    assert found.index("album-yesterday") < found.index("tagged-yesterday")
    assert (
        "miles"
        in " ".join(search(corpus, text="kind of blue miles").hits[0].document.artists).lower()
    )


def test_case_and_accents_do_not_matter(corpus: SearchIndex) -> None:
    assert slugs(search(corpus, text="CAFE DEL MAR"))[0] == "cafe-del-mar"
    assert slugs(search(corpus, text="café"))[0] == "cafe-del-mar"


# -- filters -------------------------------------------------------------------------------------
def test_a_bpm_range_includes_both_bounds(corpus: SearchIndex) -> None:
    low, high = BPM_RANGE
    found = set(slugs(search(corpus, bpm=Range(low, high))))
    assert {"bpm-low-edge", "bpm-high-edge"} <= found
    assert not {"bpm-below", "bpm-above", "no-bpm"} & found
    expected = {SLUG[d.id] for d in visible_to(ALICE) if d.bpm is not None and low <= d.bpm <= high}
    assert found == expected


def test_duration_and_year_ranges_include_their_bounds(corpus: SearchIndex) -> None:
    low, high = DURATION_RANGE
    found = set(slugs(search(corpus, duration_ms=Range(low, high))))
    assert {"bpm-low-edge", "bpm-high-edge"} <= found
    assert not {"bpm-below", "bpm-above"} & found
    assert found == {SLUG[d.id] for d in visible_to(ALICE) if low <= d.duration_ms <= high}
    first, last = YEAR_RANGE
    found = set(slugs(search(corpus, year=Range(first, last))))
    assert found == {
        SLUG[d.id] for d in visible_to(ALICE) if d.year is not None and first <= d.year <= last
    }
    assert {"yesterday", "bpm-low-edge", "bpm-high-edge"} <= found


def test_open_ended_ranges(corpus: SearchIndex) -> None:
    assert set(slugs(search(corpus, bpm=Range(low=170)))) == {
        SLUG[d.id] for d in visible_to(ALICE) if d.bpm is not None and d.bpm >= 170
    }
    assert set(slugs(search(corpus, year=Range(high=1960)))) == {
        "so-what",
        "take-five",
        "blue-in-green",
    }


def test_filters_or_within_and_across(corpus: SearchIndex) -> None:
    found = set(slugs(search(corpus, genres=("Jazz", "reggae"))))
    assert found == {
        SLUG[d.id] for d in visible_to(ALICE) if d.genre and d.genre.lower() in {"jazz", "reggae"}
    }
    found = set(slugs(search(corpus, genres=("jazz",), moods=("cool",), keys=("D MINOR",))))
    assert found == {"so-what"}
    found = set(slugs(search(corpus, tags=("piano",), instrumental=True)))
    assert found == {"yesterdays", "clair-de-lune", "blue-in-green"}
    found = set(slugs(search(corpus, tags=("piano",), instrumental=False)))
    assert found == {"let-it-be-tribute", "hey-jude"}


def test_text_with_two_filters_and_a_range(corpus: SearchIndex) -> None:
    result = search(corpus, text="daft", genres=("funk", "electronic"), moods=("happy",),
                    bpm=Range(110, 122))  # fmt: skip
    assert slugs(result) == ["get-lucky"]
    assert result.facets["genre"] == {"funk": 1}


# -- sorts and pagination ------------------------------------------------------------------------
def _expected_order(sort: str, viewer: uuid.UUID = ALICE) -> list[str]:
    docs = visible_to(viewer)
    never = datetime(1, 1, 1, tzinfo=UTC)
    keys: dict[str, Callable[[TrackDocument], tuple[object, ...]]] = {
        "relevance": lambda d: (str(d.id),),
        "newest": lambda d: (
            d.created_at is None,
            -(d.created_at or never).timestamp(),
            str(d.id),
        ),
        "title": lambda d: (normalize_keyword(d.title), str(d.id)),
        "duration": lambda d: (d.duration_ms, str(d.id)),
    }
    return [SLUG[d.id] for d in sorted(docs, key=keys[sort])]


@pytest.mark.parametrize("sort", ["relevance", "newest", "title", "duration"])
def test_each_sort_orders_by_its_value_then_the_id(corpus: SearchIndex, sort: str) -> None:
    assert slugs(search(corpus, sort=sort)) == _expected_order(sort)


@pytest.mark.parametrize("sort", ["relevance", "newest", "title", "duration"])
@pytest.mark.parametrize("text", ["", "yester", "rock"])
def test_the_cursor_visits_every_hit_once(corpus: SearchIndex, sort: str, text: str) -> None:
    whole = search(corpus, text=text, sort=sort)
    pages = every_page(corpus, SearchQuery(viewer=ALICE, text=text, sort=sort, limit=4))  # type: ignore[arg-type]
    visited = [slug for page in pages for slug in page]
    assert visited == slugs(whole)
    assert len(visited) == len(set(visited)) == whole.total
    assert all(len(page) == 4 for page in pages[:-1])


def test_the_cursor_survives_writes_between_pages(corpus: SearchIndex) -> None:
    query = SearchQuery(viewer=ALICE, sort="title", limit=5)
    first = corpus.search(query)
    # Between pages: a track sorting before the cursor and one after it appear, and one
    # already seen and one not yet seen go away.
    early = replace(track("jolene"), id=uuid.uuid4(), title="AAA first")
    late = replace(track("jolene"), id=uuid.uuid4(), title="zzz last")
    order = [h.document.id for h in search(corpus, sort="title").hits]
    unseen = order[-3]
    corpus.write(
        [Upsert(early, 1), Upsert(late, 1), Delete(first.hits[0].document.id, 9), Delete(unseen, 9)]
    )
    rest: list[uuid.UUID] = []
    page_query = replace(query, cursor=first.next_cursor)
    while page_query.cursor is not None:
        result = corpus.search(page_query)
        rest.extend(h.document.id for h in result.hits)
        page_query = replace(page_query, cursor=result.next_cursor)
    now = [h.document.id for h in search(corpus, sort="title").hits]
    assert rest == now[now.index(first.hits[-1].document.id) + 1 :]
    assert rest[-1] == late.id and early.id not in rest and unseen not in rest


def test_a_cursor_of_another_query_is_refused(corpus: SearchIndex) -> None:
    first = corpus.search(SearchQuery(viewer=ALICE, text="rock", limit=2))
    assert first.next_cursor is not None
    for other in (
        SearchQuery(viewer=ALICE, text="pop", limit=2),
        SearchQuery(viewer=BOB, text="rock", limit=2),
        SearchQuery(viewer=ALICE, text="rock", sort="title", limit=2),
        SearchQuery(viewer=ALICE, text="rock", genres=("rock",), limit=2),
    ):
        with pytest.raises(InvalidCursor):
            corpus.search(replace(other, cursor=first.next_cursor))
    with pytest.raises(ValueError):
        corpus.search(SearchQuery(viewer=ALICE, text="rock", cursor="not-a-cursor"))
    # The page size may change between pages.
    second = corpus.search(
        SearchQuery(viewer=ALICE, text="rock", limit=5, cursor=first.next_cursor)
    )
    assert not set(slugs(second)) & set(slugs(first))


# -- highlights ----------------------------------------------------------------------------------
def test_highlights_mark_the_matched_words_html_escaped(corpus: SearchIndex) -> None:
    hit = search(corpus, text="rock roll live").hits[0]
    assert SLUG[hit.document.id] == "rock-and-roll-live"
    assert hit.highlights["title"] == [
        "<mark>Rock</mark> &amp; <mark>Roll</mark> &lt;<mark>Live</mark>&gt;"
    ]
    hit = search(corpus, text="beatls yesterdy").hits[0]
    assert hit.highlights == {
        "title": ["<mark>Yesterday</mark>"],
        "artists": ["The <mark>Beatles</mark>"],
    }
    hit = search(corpus, text="claude debus").hits[0]
    assert hit.highlights["artists"] == ["<mark>Claude</mark> <mark>Debussy</mark>"]
    assert "album" not in hit.highlights
    assert search(corpus, text="", limit=1).hits[0].highlights == {}


# -- reindex -------------------------------------------------------------------------------------
def test_a_rebuild_swaps_in_a_new_generation_and_loses_no_change(factory: Factory) -> None:
    index, handle = factory()
    index.write(upserts(version=1))
    reader = handle()  # another process's handle, opened before the rebuild
    jolene = track("jolene")
    index.write([Delete(jolene.id, 3)])  # a deletion the snapshot will not hold

    with index.begin_rebuild() as rebuild:
        # The database snapshot, read after begin_rebuild: one title changed at version 2.
        snapshot = [
            Upsert(replace(d, title="Yesterday (2009 Remaster)"), 2)
            if SLUG[d.id] == "yesterday"
            else Upsert(d, 1)
            for d in TRACKS
            if d.id != jolene.id
        ]
        assert rebuild.add(snapshot[:20]) == 20
        # Meanwhile the indexer writes to the live index.
        newcomer = replace(track("strobe"), id=uuid.uuid4(), title="Brand New Song")
        index.write(
            [
                Upsert(newcomer, 1),
                Upsert(replace(track("hey-jude"), title="Hey Jude (Live)"), 5),
                Delete(track("strobe").id, 9),
            ]
        )
        # Searches keep working on the live generation during the rebuild.
        assert [h.document.id for h in search(reader, text="brand new").hits] == [newcomer.id]
        assert search(reader, text="remaster").total == 0
        assert rebuild.add(snapshot[20:]) == len(snapshot) - 20
        assert rebuild.add([Upsert(track("hey-jude"), 1)]) == 0  # older than the meanwhile one
        rebuild.commit_swap()

    for handle_ in (index, reader, handle()):
        titles = {h.document.title for h in search(handle_).hits}
        assert "Yesterday (2009 Remaster)" in titles
        assert "Hey Jude (Live)" in titles and "Hey Jude" not in titles
        assert "Brand New Song" in titles
        assert "Strobe" not in titles and "Jolene" not in titles
        assert search(handle_).total == len(visible_to(ALICE)) - 2 + 1
    # Deletions are remembered across the swap: stale upserts stay out.
    assert index.write([Upsert(jolene, 2), Upsert(track("strobe"), 8)]) == 0
    assert index.version(jolene.id) == 3
    # The index goes on taking writes after the swap.
    assert index.write([Upsert(replace(jolene, title="Jolene (Reprise)"), 4)]) == 1
    assert slugs(search(reader, text="jolene reprise")) == ["jolene"]


def test_an_aborted_rebuild_leaves_the_live_generation(factory: Factory) -> None:
    index, handle = factory()
    index.write(upserts())
    with pytest.raises(RuntimeError, match="boom"), index.begin_rebuild() as rebuild:
        rebuild.add([Upsert(replace(track("yesterday"), title="Never Seen"), 9)])
        raise RuntimeError("boom")
    assert search(handle(), text="never seen").total == 0
    assert search(index).total == len(visible_to(ALICE))
    with index.begin_rebuild() as rebuild:  # a new rebuild may start
        rebuild.add(upserts(version=2))
        rebuild.commit_swap()
    assert search(index).total == len(visible_to(ALICE))
    assert index.version(track("yesterday").id) == 2
