"""The tantivy adapter's own mechanics: processes sharing an index on disk (a writer, readers),
generations behind the pointer, the journal of writes made during a rebuild, a rebuild whose
process died, the writer lock, and pagination through ties larger than a page."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
from dataclasses import replace
from pathlib import Path

import pytest

from services.core.search.model import (
    Delete,
    InvalidCursor,
    RebuildInProgress,
    SearchIndexError,
    SearchQuery,
    SortKey,
    Upsert,
)
from services.core.search.port import SearchIndex
from services.core.search.tantivy_index import CURRENT, REBUILD_MARKER, TantivyIndex, highlight
from tests.support.search_corpus import ALICE, TRACKS, track, upserts

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]


def run_child(script: str, *args: str, timeout: float = 60) -> str:
    """Run ``script`` in another Python process (the indexer, another API worker)."""
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), *args],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


WRITER = """
    import sys, uuid
    from dataclasses import replace
    from pathlib import Path
    from services.core.search.model import Upsert
    from services.core.search.tantivy_index import TantivyIndex
    from tests.support.search_corpus import track

    index = TantivyIndex(Path(sys.argv[1]))
    first, count = int(sys.argv[2]), int(sys.argv[3])
    for n in range(first, first + count):
        doc = replace(track("jolene"), id=uuid.UUID(int=n), title=f"Child Song {n}")
        assert index.write([Upsert(doc, 1)]) == 1
    index.close()
    print("ok")
"""


def titles(index: SearchIndex, text: str = "", limit: int = 100) -> set[str]:
    result = index.search(SearchQuery(viewer=ALICE, text=text, limit=limit))
    return {h.document.title for h in result.hits}


def test_the_adapter_satisfies_the_port(tmp_path: Path) -> None:
    index: SearchIndex = TantivyIndex(tmp_path)
    with index.begin_rebuild() as rebuild:
        assert rebuild.generation == "gen-000002"
    index.close()


def test_another_process_sees_writes_and_writes_are_seen_here(tmp_path: Path) -> None:
    index = TantivyIndex(tmp_path)
    index.write(upserts())
    index.close()  # from here on this process only reads: the child is the writer
    run_child(WRITER, str(tmp_path), "1", "3")
    # This process holds no writer: it only reads, and sees the other process's commits.
    assert {"Child Song 1", "Child Song 2", "Child Song 3"} <= titles(index, "child song")
    reader = """
        import sys
        from pathlib import Path
        from services.core.search.model import SearchQuery
        from services.core.search.tantivy_index import TantivyIndex
        from tests.support.search_corpus import ALICE
        index = TantivyIndex(Path(sys.argv[1]))
        print(index.search(SearchQuery(viewer=ALICE, text="child song")).total)
    """
    assert run_child(reader, str(tmp_path)).strip() == "3"


def test_writes_of_another_process_during_a_rebuild_reach_the_new_generation(
    tmp_path: Path,
) -> None:
    index = TantivyIndex(tmp_path)
    index.write(upserts())
    index.close()  # the child is the indexer (the writer); this process rebuilds and reads
    rebuild = index.begin_rebuild()
    rebuild.add(upserts(version=1))
    run_child(WRITER, str(tmp_path), "100", "5")  # the indexer writes the live generation
    assert json.loads((tmp_path / REBUILD_MARKER).read_text())["generation"] == "gen-000002"
    assert (tmp_path / "gen-000002.journal").read_text().count("\n") == 5
    assert "Child Song 100" in titles(index, "child song")  # live already
    rebuild.commit_swap()
    assert (tmp_path / CURRENT).read_text().strip() == "gen-000002"
    assert not (tmp_path / REBUILD_MARKER).exists()
    assert {f"Child Song {n}" for n in range(100, 105)} <= titles(index, "child song")
    # After the swap the indexer writes the new generation (it follows the pointer).
    run_child(WRITER, str(tmp_path), "200", "1")
    assert "Child Song 200" in titles(index, "child song")
    assert index.current_generation() == "gen-000002"


def test_a_rebuild_whose_process_died_is_cleaned_up_by_the_next(tmp_path: Path) -> None:
    index = TantivyIndex(tmp_path)
    index.write(upserts())
    dying = """
        import os, sys
        from pathlib import Path
        from services.core.search.tantivy_index import TantivyIndex
        from tests.support.search_corpus import upserts
        rebuild = TantivyIndex(Path(sys.argv[1])).begin_rebuild()
        rebuild.add(upserts(version=9))
        print(rebuild.generation, flush=True)
        os._exit(1)
    """
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(dying), str(tmp_path)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.stdout.strip() == "gen-000002"
    assert (tmp_path / REBUILD_MARKER).exists()
    # Writes meanwhile still work; the first one clears what the dead rebuild left.
    assert index.write([Upsert(replace(track("jolene"), title="Jolene II"), 2)]) == 1
    assert not (tmp_path / REBUILD_MARKER).exists()
    assert not (tmp_path / "gen-000002").exists()
    assert not (tmp_path / "gen-000002.journal").exists()
    with index.begin_rebuild() as rebuild:
        assert rebuild.generation == "gen-000002"  # the dead one's directory was removed
        rebuild.add(upserts(version=1))
        rebuild.commit_swap()
    assert index.version(track("jolene").id) == 1  # the snapshot said so; no stale journal
    assert index.version(track("yesterday").id) == 1


def test_one_rebuild_at_a_time(tmp_path: Path) -> None:
    index = TantivyIndex(tmp_path)
    rebuild = index.begin_rebuild()
    with pytest.raises(RebuildInProgress):
        index.begin_rebuild()
    with pytest.raises(RebuildInProgress):
        TantivyIndex(tmp_path).begin_rebuild()
    rebuild.abort()
    rebuild.abort()  # harmless
    assert not (tmp_path / "gen-000002").exists()
    with pytest.raises(SearchIndexError):
        rebuild.add(upserts())
    index.begin_rebuild().abort()


def test_the_previous_generation_is_kept_and_older_ones_removed(tmp_path: Path) -> None:
    index = TantivyIndex(tmp_path)
    index.write(upserts())
    for version in (2, 3, 4):
        with index.begin_rebuild() as rebuild:
            rebuild.add(upserts(version))
            rebuild.commit_swap()
    assert index.generations() == ["gen-000003", "gen-000004"]
    assert index.version(TRACKS[0].id) == 4


def test_a_second_writer_waits_for_the_lock_then_gives_up(tmp_path: Path) -> None:
    first = TantivyIndex(tmp_path)
    first.write([Upsert(track("yesterday"), 1)])  # keeps tantivy's writer
    second = TantivyIndex(tmp_path, writer_wait_seconds=0.2)
    with pytest.raises(SearchIndexError, match="LockBusy"):
        second.write([Upsert(track("jolene"), 1)])
    first.close()
    assert second.write([Upsert(track("jolene"), 1)]) == 1
    assert titles(first) == {"Yesterday", "Jolene"}
    second.close()


def test_pages_through_ties_larger_than_a_page(tmp_path: Path) -> None:
    index = TantivyIndex(tmp_path)
    same = [replace(track("jolene"), id=uuid.uuid4(), title="Same Song") for _ in range(30)]
    index.write([Upsert(doc, 1) for doc in same])
    sorts: tuple[SortKey, ...] = ("relevance", "title")
    for sort in sorts:
        query = SearchQuery(viewer=ALICE, text="same song", sort=sort, limit=7)
        seen: list[uuid.UUID] = []
        while True:
            result = index.search(query)
            seen.extend(h.document.id for h in result.hits)
            if result.next_cursor is None:
                break
            query = replace(query, cursor=result.next_cursor)
        assert seen == sorted((d.id for d in same), key=str), sort


def test_a_forged_cursor_is_refused(tmp_path: Path) -> None:
    from services.core.search.common import encode_cursor, query_fingerprint

    index = TantivyIndex(tmp_path)
    index.write(upserts())
    query = SearchQuery(viewer=ALICE, text="yesterday", limit=2)
    fingerprint = query_fingerprint(query, "tantivy")
    for position in ({"o": 2}, {"o": -1, "s": 1.0, "id": "x"}, {"o": 1, "s": "nan", "id": "x"}):
        with pytest.raises(InvalidCursor):
            index.search(replace(query, cursor=encode_cursor(fingerprint, position)))
    sorted_query = replace(query, sort="title")
    forged = encode_cursor(query_fingerprint(sorted_query, "tantivy"), {"o": 0, "k": 7})
    with pytest.raises(InvalidCursor):
        index.search(replace(sorted_query, cursor=forged))


def test_a_deletion_then_a_rebuild_without_the_track(tmp_path: Path) -> None:
    index = TantivyIndex(tmp_path)
    index.write(upserts())
    index.write([Delete(track("jolene").id, 5)])
    with index.begin_rebuild() as rebuild:
        rebuild.add(u for u in upserts() if u.document.id != track("jolene").id)
        rebuild.commit_swap()
    assert index.version(track("jolene").id) == 5
    assert index.write([Upsert(track("jolene"), 4)]) == 0


@pytest.mark.parametrize(
    ("value", "words", "expected"),
    [
        ("Yesterday's News", ["yesterdy"], "<mark>Yesterday</mark>&#x27;s News"),
        ("Rock & Roll", ["rock"], "<mark>Rock</mark> &amp; Roll"),
        ("Café del Mar", ["cafe"], "<mark>Café</mark> del Mar"),
        ("The Beatles", ["beat"], "The <mark>Beatles</mark>"),
        ("The Beatles", ["beat", "the"], "<mark>The</mark> Beatles"),
        ("Claude Debussy", ["claude", "debusy"], "<mark>Claude</mark> <mark>Debussy</mark>"),
        ("Jolene", ["jom"], None),
    ],
)
def test_highlight(value: str, words: list[str], expected: str | None) -> None:
    got = highlight(value, words)
    if expected is not None:
        expected = expected.replace("&#x27;", "'")
    assert got == expected
