"""What both index adapters share: words and typo distances, documents as JSON, changes applied in
order against versions, cursors bound to their query, highlight fragments."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from services.core.search.common import (
    apply_in_order,
    change_from_json,
    change_json,
    decode_cursor,
    document_from_source,
    document_source,
    edit_distance,
    encode_cursor,
    epoch_micros,
    merge_fragments,
    parse_marks,
    query_fingerprint,
    render_marks,
)
from services.core.search.model import (
    Change,
    Delete,
    InvalidCursor,
    Range,
    SearchQuery,
    Upsert,
    fuzzy_distance,
    normalize_keyword,
    query_words,
)
from tests.support.search_corpus import ALICE, BOB, TRACKS, track

pytestmark = pytest.mark.unit


def test_query_words_and_their_typo_distances() -> None:
    assert query_words("  Beatls, YESTERDY's  rock&roll_2 ") == [
        "beatls", "yesterdy", "s", "rock", "roll", "2",
    ]  # fmt: skip
    assert query_words("Cafe\u0301 del Mar") == ["café", "del", "mar"]  # NFC
    assert [fuzzy_distance(w) for w in ("abc", "abcd", "abcdefg", "abcdefgh")] == [0, 1, 1, 2]
    assert normalize_keyword("  Hip-Hop ") == "hip-hop"


@pytest.mark.parametrize(
    ("a", "b", "prefix", "distance"),
    [
        ("yesterdy", "yesterday", False, 1),
        ("jolnee", "jolene", False, 1),  # a transposition is one edit
        ("beatls", "beatles", False, 1),
        ("bohemain", "bohemian", False, 1),
        ("rapsody", "rhapsody", False, 1),
        ("yest", "yesterday", True, 0),
        ("yezt", "yesterday", True, 1),
        ("jzlxne", "jolene", False, 2),
        ("", "abc", False, 3),
    ],
)
def test_edit_distance(a: str, b: str, prefix: bool, distance: int) -> None:
    assert edit_distance(a, b, prefix=prefix) == distance


def test_documents_and_changes_round_trip_through_json() -> None:
    for doc in TRACKS:
        assert document_from_source(document_source(doc)) == doc
    change = Upsert(track("clair-de-lune"), 7)
    assert change_from_json(change_json(change)) == change
    assert change_from_json(change_json(Delete(TRACKS[0].id, 3))) == Delete(TRACKS[0].id, 3)


def test_epoch_micros_treats_naive_times_as_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    assert epoch_micros(datetime(1970, 1, 1, 0, 0, 1, 5)) == 1_000_005
    assert epoch_micros(datetime(1970, 1, 1, 2, 0, 1, tzinfo=plus_two)) == 1_000_000


def test_changes_apply_in_order_against_the_held_versions() -> None:
    a, b, c = (t.id for t in TRACKS[:3])
    changes: list[Change] = [
        Upsert(TRACKS[0], 2),  # held 3: stale
        Upsert(TRACKS[0], 4),
        Delete(a, 4),  # same version: skipped
        Upsert(TRACKS[1], 1),
        Delete(b, 2),
        Upsert(TRACKS[1], 1),  # older than the delete
        Delete(c, 1),  # never seen: a tombstone
    ]
    applied, latest = apply_in_order(changes, {a: 3})
    assert applied.count == 4
    assert applied.final == {a: changes[1], b: changes[4], c: changes[6]}
    assert latest == {a: 4, b: 2, c: 1}


def test_a_cursor_is_bound_to_its_query_but_not_its_limit() -> None:
    query = SearchQuery(viewer=ALICE, text="rock", genres=("jazz",), bpm=Range(1, 2))
    fingerprint = query_fingerprint(query, "tantivy")
    assert query_fingerprint(replace(query, limit=5, cursor="x"), "tantivy") == fingerprint
    for other in (
        replace(query, viewer=BOB),
        replace(query, text="rock "),
        replace(query, genres=()),
        replace(query, bpm=Range(1, 3)),
        replace(query, instrumental=False),
        replace(query, sort="title"),
    ):
        assert query_fingerprint(other, "tantivy") != fingerprint
    assert query_fingerprint(query, "opensearch") != fingerprint
    cursor = encode_cursor(fingerprint, {"k": "abc", "o": 4})
    assert decode_cursor(cursor, fingerprint) == {"q": fingerprint, "k": "abc", "o": 4}
    with pytest.raises(InvalidCursor):
        decode_cursor(cursor, query_fingerprint(replace(query, viewer=BOB), "tantivy"))
    for garbage in ("", "!!!", "bm90IGpzb24", "WzEsMl0"):  # not base64 / not JSON / a list
        with pytest.raises(InvalidCursor):
            decode_cursor(garbage, fingerprint)
    assert issubclass(InvalidCursor, ValueError)


def test_marks_render_escaped_and_parse_back() -> None:
    text = "Rock & Roll <Live>"
    rendered = render_marks(text, [(0, 4), (13, 17), (2, 4)])
    assert rendered == "<mark>Rock</mark> &amp; Roll &lt;<mark>Live</mark>&gt;"
    assert parse_marks(rendered) == (text, [(0, 4), (13, 17)])
    assert render_marks(text, []) == "Rock &amp; Roll &lt;Live&gt;"


def test_fragments_of_a_field_and_its_prefix_field_merge() -> None:
    merged = merge_fragments(
        [
            ["<mark>Let</mark> It Be", "The Beatles"],
            ["Let <mark>It</mark> Be", "It&#x27;s <mark>me</mark>"],
        ]
    )
    assert merged == ["<mark>Let</mark> <mark>It</mark> Be", "It's <mark>me</mark>"]


def test_ids_order_like_their_strings() -> None:
    ids = [uuid.uuid4() for _ in range(200)]
    assert sorted(ids, key=str) == sorted(ids, key=lambda i: i.int)
