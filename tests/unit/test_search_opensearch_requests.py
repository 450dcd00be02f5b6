"""The OpenSearch adapter without a server: every request it makes, for every query feature and
every write shape, against recorded bodies in tests/fixtures/opensearch/*.json (so that a
change is visible in review), and its handling of answers (versions, conflicts, errors, hits,
highlights, cursors, facets) against a fake server.

The fake speaks HTTP-level OpenSearch to the real ``opensearchpy`` client (a connection class),
keeps indices, aliases and external versions, and answers searches with a canned response.

Re-record after a deliberate change with::

    UPDATE_OPENSEARCH_FIXTURES=1 .venv/bin/pytest tests/unit/test_search_opensearch_requests.py
"""

from __future__ import annotations

import fnmatch
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
from opensearchpy import Connection, OpenSearch

from services.core.search.model import (
    Change,
    Delete,
    InvalidCursor,
    Range,
    RebuildInProgress,
    SearchIndexError,
    SearchQuery,
    Upsert,
)
from services.core.search.opensearch_index import OpenSearchIndex
from services.core.search.port import SearchIndex
from tests.support.search_corpus import ALICE, BOB, track

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "opensearch"
UPDATE = os.environ.get("UPDATE_OPENSEARCH_FIXTURES") == "1"
ALIAS = "tracks"
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
EMPTY_SEARCH: dict[str, Any] = {
    "hits": {"total": {"value": 0, "relation": "eq"}, "hits": []},
    "aggregations": {name: {"buckets": []} for name in ("genre", "mood", "key")},
}


class FakeOpenSearch:
    """Just enough OpenSearch for the adapter: indices, aliases, documents with external
    versions; searches answer ``search_response``. Every request is recorded."""

    def __init__(self) -> None:
        self.indices: dict[str, dict[str, Any]] = {}
        self.requests: list[dict[str, Any]] = []
        self.search_response: dict[str, Any] = EMPTY_SEARCH
        self.fail_bulk_with: dict[str, Any] | None = None

    # -- helpers ---------------------------------------------------------------------------------
    def resolve(self, name: str) -> list[str]:
        if name in self.indices:
            return [name]
        return [n for n, info in self.indices.items() if name in info["aliases"]]

    def doc(self, index: str, track: uuid.UUID) -> tuple[int, dict[str, Any]] | None:
        docs: dict[str, tuple[int, dict[str, Any]]] = self.indices[index]["docs"]
        return docs.get(str(track))

    def _index_op(self, index: str, meta: dict[str, Any], source: dict[str, Any]) -> dict[str, Any]:
        docs = self.indices[index]["docs"]
        held = docs.get(meta["_id"])
        assert meta.get("version_type") == "external"
        if held is not None and meta["version"] <= held[0]:
            return {"_index": index, "_id": meta["_id"], "status": 409,
                    "error": {"type": "version_conflict_engine_exception"}}  # fmt: skip
        docs[meta["_id"]] = (meta["version"], source)
        return {"_index": index, "_id": meta["_id"], "_version": meta["version"],
                "status": 201 if held is None else 200}  # fmt: skip

    # -- requests --------------------------------------------------------------------------------
    def handle(
        self, method: str, url: str, params: dict[str, Any], body: bytes | None
    ) -> tuple[int, Any]:
        path = unquote(url.split("?", 1)[0])
        parsed: Any = None
        if body:
            text = body.decode()
            if path.endswith("/_bulk"):
                parsed = [json.loads(line) for line in text.splitlines() if line.strip()]
            else:
                parsed = json.loads(text)
        self.requests.append(
            {"method": method, "path": path, "params": dict(sorted(params.items())), "body": parsed}
        )
        parts = [p for p in path.split("/") if p]
        if method == "GET" and len(parts) == 2 and parts[1] == "_alias":
            return 200, {
                n: {"aliases": {a: {} for a in sorted(info["aliases"])}}
                for n, info in sorted(self.indices.items())
                if fnmatch.fnmatch(n, parts[0])
            }
        if method == "PUT" and len(parts) == 1:
            if parts[0] in self.indices:
                return 400, {"error": {"type": "resource_already_exists_exception"}}
            self.indices[parts[0]] = {"aliases": set(), "docs": {}, "body": parsed}
            return 200, {"acknowledged": True, "index": parts[0]}
        if method == "POST" and parts == ["_aliases"]:
            for action in parsed["actions"]:
                (verb, spec), = action.items()  # fmt: skip
                aliases = self.indices[spec["index"]]["aliases"]
                if verb == "add":
                    aliases.add(spec["alias"])
                else:
                    aliases.discard(spec["alias"])
            return 200, {"acknowledged": True}
        if method in ("POST", "PUT") and parts == ["_bulk"]:
            if self.fail_bulk_with is not None:
                items = [{"index": self.fail_bulk_with} for _ in parsed[::2]]
                return 200, {"errors": True, "items": items}
            items = []
            for meta_line, source in zip(parsed[::2], parsed[1::2], strict=True):
                meta = meta_line["index"]
                items.append({"index": self._index_op(meta["_index"], meta, source)})
            return 200, {"errors": any(i["index"]["status"] >= 300 for i in items), "items": items}
        if method == "GET" and len(parts) == 3 and parts[1] == "_doc":
            found = self.resolve(parts[0])
            if not found:
                return 404, {"error": {"type": "index_not_found_exception"}}
            held = self.indices[found[0]]["docs"].get(parts[2])
            if held is None:
                return 404, {"_index": found[0], "_id": parts[2], "found": False}
            return 200, {"_index": found[0], "_id": parts[2], "_version": held[0], "found": True}
        if method in ("GET", "POST") and len(parts) == 2 and parts[1] == "_search":
            if not self.resolve(parts[0]):
                return 404, {"error": {"type": "index_not_found_exception"}}
            return 200, self.search_response
        if method == "POST" and parts == ["_reindex"]:
            source, dest = parsed["source"]["index"], parsed["dest"]["index"]
            created = 0
            for ident, (version, doc) in list(self.indices[source]["docs"].items()):
                if doc.get("deleted"):
                    meta = {"_id": ident, "version": version, "version_type": "external"}
                    created += self._index_op(dest, meta, doc)["status"] == 201
            return 200, {"created": created, "version_conflicts": 0, "failures": []}
        if method == "PUT" and len(parts) == 2 and parts[1] == "_settings":
            return 200, {"acknowledged": True}
        if method in ("GET", "POST") and len(parts) == 2 and parts[1] == "_refresh":
            return 200, {"_shards": {"failed": 0}}
        if method == "DELETE" and len(parts) == 1:
            for name in parts[0].split(","):
                self.indices.pop(name, None)
            return 200, {"acknowledged": True}
        return 400, {"error": {"type": "unexpected_request", "reason": f"{method} {path}"}}


def fake_client(server: FakeOpenSearch) -> OpenSearch:
    class FakeConnection(Connection):
        def perform_request(  # type: ignore[override]
            self,
            method: str,
            url: str,
            params: dict[str, Any] | None = None,
            body: bytes | None = None,
            timeout: float | None = None,
            ignore: tuple[int, ...] = (),
            headers: dict[str, str] | None = None,
        ) -> tuple[int, dict[str, str], str]:
            query = {
                k: v.decode() if isinstance(v, bytes) else str(v) for k, v in (params or {}).items()
            }
            status, answer = server.handle(method, url, query, body)
            raw = json.dumps(answer)
            if not 200 <= status < 300 and status not in ignore:
                self._raise_error(status, raw, "application/json")
            return status, {"content-type": "application/json"}, raw

    return OpenSearch(hosts=[{"host": "fake", "port": 9200}], connection_class=FakeConnection)


@pytest.fixture
def server() -> FakeOpenSearch:
    return FakeOpenSearch()


@pytest.fixture
def index(server: FakeOpenSearch) -> OpenSearchIndex:
    return OpenSearchIndex(fake_client(server), ALIAS, replicas=1, now=lambda: NOW)


@pytest.fixture
def ready(index: OpenSearchIndex, server: FakeOpenSearch) -> OpenSearchIndex:
    """An index whose first generation exists; requests recorded from here on."""
    index.ensure()
    server.requests.clear()
    return index


def check_fixture(name: str, requests: list[dict[str, Any]]) -> None:
    """The requests equal the recorded ones (or are recorded, with UPDATE_OPENSEARCH_FIXTURES)."""
    path = FIXTURES / f"{name}.json"
    text = json.dumps(requests, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return
    assert path.exists(), f"{path} missing: record it with UPDATE_OPENSEARCH_FIXTURES=1"
    assert json.loads(text) == json.loads(path.read_text()), (
        f"the requests differ from {path.name}; if the change is deliberate, re-record with "
        "UPDATE_OPENSEARCH_FIXTURES=1 and review the diff"
    )


def test_the_adapter_satisfies_the_port(index: OpenSearchIndex) -> None:
    port: SearchIndex = index
    assert port is index


# -- recorded requests ---------------------------------------------------------------------------
def test_first_use_creates_the_first_generation_behind_the_alias(
    index: OpenSearchIndex, server: FakeOpenSearch
) -> None:
    assert index.ensure() == "tracks-gen-000001"
    assert index.ensure() == "tracks-gen-000001"
    check_fixture("create_index", server.requests)
    assert server.indices["tracks-gen-000001"]["aliases"] == {"tracks"}


def test_write_upserts_and_a_delete(ready: OpenSearchIndex, server: FakeOpenSearch) -> None:
    changes: list[Change] = [
        Upsert(track("yesterday"), 3),
        Upsert(track("clair-de-lune"), 1),
        Delete(track("strobe").id, 7),
    ]
    assert ready.write(changes) == 3
    check_fixture("write", server.requests)


def test_version(ready: OpenSearchIndex, server: FakeOpenSearch) -> None:
    ready.write([Upsert(track("yesterday"), 3)])
    server.requests.clear()
    assert ready.version(track("yesterday").id) == 3
    assert ready.version(track("strobe").id) is None
    check_fixture("version", server.requests)


SEARCHES: dict[str, SearchQuery] = {
    "search_match_all": SearchQuery(viewer=ALICE),
    "search_text_typos_and_prefix": SearchQuery(viewer=ALICE, text="Beatls  yesterdy'S"),
    "search_single_short_word": SearchQuery(viewer=BOB, text="be", limit=5),
    "search_filters": SearchQuery(
        viewer=ALICE,
        genres=("Rock", "jazz", "rock"),
        moods=("Melancholic",),
        tags=("piano", "Live "),
        keys=("F major",),
        instrumental=False,
    ),
    "search_ranges": SearchQuery(
        viewer=ALICE,
        bpm=Range(100, 120.5),
        duration_ms=Range(low=180_000.5),
        year=Range(high=1970),
    ),
    "search_text_filters_facets": SearchQuery(
        viewer=ALICE, text="daft", genres=("funk",), bpm=Range(110, 122), limit=10
    ),
    "search_sort_newest": SearchQuery(viewer=ALICE, sort="newest"),
    "search_sort_title": SearchQuery(viewer=ALICE, sort="title", limit=50),
    "search_sort_duration": SearchQuery(viewer=ALICE, text="groove", sort="duration"),
}


@pytest.mark.parametrize("name", sorted(SEARCHES))
def test_search_request(ready: OpenSearchIndex, server: FakeOpenSearch, name: str) -> None:
    ready.search(SEARCHES[name])
    check_fixture(name, server.requests)


def _hit(slug: str, score: float | None, sort: list[Any], **highlight: list[str]) -> dict[str, Any]:
    from services.core.search.opensearch_index import index_source

    hit: dict[str, Any] = {
        "_index": "tracks-gen-000001",
        "_id": str(track(slug).id),
        "_score": score,
        "_source": index_source(track(slug)),
        "sort": sort,
    }
    if highlight:
        hit["highlight"] = highlight
    return hit


def test_the_next_page_searches_after_the_last_hit(
    ready: OpenSearchIndex, server: FakeOpenSearch
) -> None:
    ids = [str(track(s).id) for s in ("yesterday", "yesterday-tribute", "yesterdays-news")]
    server.search_response = {
        "hits": {
            "total": {"value": 7, "relation": "eq"},
            "hits": [
                _hit("yesterday", 9.5, [9.5, ids[0]]),
                _hit("yesterday-tribute", 9.5, [9.5, ids[1]]),
                _hit("yesterdays-news", 4.25, [4.25, ids[2]]),
            ],
        },
        "aggregations": EMPTY_SEARCH["aggregations"],
    }
    query = SearchQuery(viewer=ALICE, text="yesterday", limit=2)
    first = ready.search(query)
    assert [h.document.title for h in first.hits] == ["Yesterday", "Yesterday"]
    assert first.total == 7 and first.next_cursor is not None
    server.search_response = EMPTY_SEARCH
    server.requests.clear()
    last = ready.search(replace(query, cursor=first.next_cursor))
    assert last.next_cursor is None
    check_fixture("search_second_page", server.requests)
    assert server.requests[0]["body"]["search_after"] == [9.5, ids[1]]


# -- rebuilds ------------------------------------------------------------------------------------
def test_rebuild_requests(ready: OpenSearchIndex, server: FakeOpenSearch) -> None:
    ready.write([Upsert(track("yesterday"), 1), Delete(track("strobe").id, 4)])
    server.requests.clear()
    with ready.begin_rebuild() as rebuild:
        assert rebuild.generation == "tracks-gen-000002"
        assert rebuild.add([Upsert(track("yesterday"), 2), Upsert(track("jolene"), 1)]) == 2
        assert rebuild.apply([Upsert(track("jolene"), 1), Delete(track("jolene").id, 2)]) == 1
        assert rebuild.commit_swap() == "tracks-gen-000002"
    check_fixture("rebuild", server.requests)
    assert server.indices["tracks-gen-000002"]["aliases"] == {"tracks"}
    assert server.indices["tracks-gen-000001"]["aliases"] == set()
    # The tombstone came over: a stale upsert stays out.
    assert ready.write([Upsert(track("strobe"), 3)]) == 0


def test_writes_during_a_rebuild_reach_both_indices(
    ready: OpenSearchIndex, server: FakeOpenSearch
) -> None:
    ready.write([Upsert(track("yesterday"), 5)])
    rebuild = ready.begin_rebuild()
    server.requests.clear()
    changes: list[Change] = [
        Upsert(track("yesterday"), 4),  # stale for the live index: not forwarded
        Upsert(track("hey-jude"), 2),
        Delete(track("strobe").id, 3),
    ]
    assert ready.write(changes) == 2
    check_fixture("write_during_rebuild", server.requests)
    assert server.doc("tracks-gen-000002", track("yesterday").id) is None
    assert server.doc("tracks-gen-000002", track("hey-jude").id) is not None
    rebuild.abort()
    assert "tracks-gen-000002" not in server.indices
    assert ready.write([Upsert(track("hey-jude"), 3)]) == 1


def test_one_rebuild_at_a_time(ready: OpenSearchIndex, server: FakeOpenSearch) -> None:
    first = ready.begin_rebuild()
    first.add([Upsert(track("yesterday"), 1)])
    with pytest.raises(RebuildInProgress):
        ready.begin_rebuild()
    # Its process died: the next one replaces it (a new, empty index of the same name).
    second = ready.begin_rebuild(replace_unfinished=True)
    assert second.generation == first.generation == "tracks-gen-000002"
    assert server.indices["tracks-gen-000002"]["docs"] == {}
    second.abort()
    assert sorted(server.indices) == ["tracks-gen-000001"]


def test_old_generations_are_deleted_but_the_previous_one_is_kept(
    ready: OpenSearchIndex, server: FakeOpenSearch
) -> None:
    for _ in range(3):
        with ready.begin_rebuild() as rebuild:
            rebuild.commit_swap()
    assert sorted(server.indices) == ["tracks-gen-000003", "tracks-gen-000004"]
    assert server.indices["tracks-gen-000004"]["aliases"] == {"tracks"}


# -- answers -------------------------------------------------------------------------------------
def test_versions_decide_what_a_write_applies(ready: OpenSearchIndex) -> None:
    doc = track("yesterday")
    assert ready.write([Upsert(doc, 2)]) == 1
    assert ready.write([Upsert(doc, 2)]) == 0  # duplicate
    assert ready.write([Upsert(doc, 1)]) == 0  # stale
    assert ready.write([Delete(doc.id, 3)]) == 1
    assert ready.write([Upsert(doc, 2)]) == 0  # older than the tombstone
    assert ready.version(doc.id) == 3
    assert ready.write([Upsert(doc, 4), Upsert(doc, 5), Upsert(doc, 4)]) == 2


def test_a_failed_bulk_item_is_an_error(ready: OpenSearchIndex, server: FakeOpenSearch) -> None:
    server.fail_bulk_with = {"status": 429, "error": {"type": "es_rejected_execution_exception"}}
    with pytest.raises(SearchIndexError, match="es_rejected_execution_exception"):
        ready.write([Upsert(track("yesterday"), 1)])


def test_hits_highlights_and_facets_from_the_answer(
    ready: OpenSearchIndex, server: FakeOpenSearch
) -> None:
    server.search_response = {
        "hits": {
            "total": {"value": 1, "relation": "eq"},
            "hits": [
                _hit(
                    "rock-and-roll-live",
                    3.5,
                    [3.5, str(track("rock-and-roll-live").id)],
                    title=["<mark>Rock</mark> &amp; Roll &lt;Live&gt;"],
                    **{
                        "title.prefix": ["Rock &amp; Roll &lt;<mark>Live</mark>&gt;"],
                        "artists.prefix": ["<mark>Led</mark> Zeppelin"],
                    },
                )
            ],
        },
        "aggregations": {
            "genre": {"buckets": [{"key": "rock", "doc_count": 1}]},
            "mood": {
                "buckets": [{"key": "calm", "doc_count": 2}, {"key": "angry", "doc_count": 2}]
            },
            "key": {"buckets": []},
        },
    }
    result = ready.search(SearchQuery(viewer=ALICE, text="rock live"))
    (hit,) = result.hits
    assert hit.document == track("rock-and-roll-live")
    assert hit.score == 3.5
    assert hit.highlights == {
        "title": ["<mark>Rock</mark> &amp; Roll &lt;<mark>Live</mark>&gt;"],
        "artists": ["<mark>Led</mark> Zeppelin"],
    }
    assert result.facets == {"genre": {"rock": 1}, "mood": {"angry": 2, "calm": 2}, "key": {}}
    assert result.next_cursor is None
    # Scores mean something only under the relevance sort.
    assert ready.search(SearchQuery(viewer=ALICE, text="rock", sort="title")).hits[0].score == 0.0


def test_a_cursor_of_another_query_is_refused(
    ready: OpenSearchIndex, server: FakeOpenSearch
) -> None:
    ident = str(track("yesterday").id)
    server.search_response = {
        "hits": {
            "total": {"value": 2, "relation": "eq"},
            "hits": [_hit("yesterday", None, [1, ident]), _hit("yesterday", None, [2, ident])],
        },
        "aggregations": EMPTY_SEARCH["aggregations"],
    }
    cursor = ready.search(SearchQuery(viewer=ALICE, sort="newest", limit=1)).next_cursor
    assert cursor is not None
    with pytest.raises(InvalidCursor):
        ready.search(SearchQuery(viewer=BOB, sort="newest", limit=1, cursor=cursor))
    with pytest.raises(InvalidCursor):
        ready.search(SearchQuery(viewer=ALICE, sort="title", limit=1, cursor=cursor))
    with pytest.raises(InvalidCursor):
        ready.search(SearchQuery(viewer=ALICE, cursor="%%%"))


def test_a_search_before_any_write_creates_the_index(
    index: OpenSearchIndex, server: FakeOpenSearch
) -> None:
    assert index.search(SearchQuery(viewer=ALICE)).total == 0
    assert "tracks-gen-000001" in server.indices


@pytest.fixture(autouse=True)
def _no_stray_fixtures() -> Iterator[None]:
    yield
    if UPDATE:
        return
    # Every fixture file belongs to a test here (a renamed test leaves none behind).
    known = {"create_index", "write", "version", "search_second_page", "rebuild",
             "write_during_rebuild", *SEARCHES}  # fmt: skip
    stray = {p.stem for p in FIXTURES.glob("*.json")} - known
    assert not stray, f"fixtures without a test: {sorted(stray)}"
