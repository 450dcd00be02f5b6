"""The search index of the ``aws`` profile: OpenSearch through ``opensearch-py``.

Indices ``<alias>-gen-000001`` ... hold the documents; the alias names the live one, and while
a rebuild runs, ``<alias>-rebuilding`` names the one being built. Writes are bulk requests with
``version_type=external`` (the database's change version): a version conflict is a stale
change, skipped and not an error. A delete indexes a tombstone (id, ``deleted``, when) with its
version instead of removing the document, because OpenSearch forgets a removed document's
version after ``index.gc_deletes`` (60 s): an older upsert arriving later would bring it back.
Tombstones have no viewers, so no query finds them; a rebuild carries those younger than
``TOMBSTONE_RETENTION`` over.

The mapping mirrors the tantivy adapter: text fields analyzed into words (letters and digits,
lowercased, accents folded) with a ``prefix`` sub-field of edge n-grams for as-you-type
matching; keyword fields (normalized in Python) for filters and facets; numeric fields; a
lowercased title for sorting. The query: a ``term`` on ``viewers`` and the filters in the
``filter`` context (they do not score), then per word a ``multi_match`` with
``fuzziness: AUTO:4,8`` (0 edits below 4 characters, 1 for 4-7, 2 from 8) over the text fields
boosted in ``TEXT_FIELDS`` order, the last word also over the ``prefix`` sub-fields.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from services.core.search.common import (
    apply_in_order,
    change_id,
    decode_cursor,
    document_from_source,
    document_source,
    encode_cursor,
    merge_fragments,
    query_fingerprint,
)
from services.core.search.model import (
    FACETS,
    FIELD_BOOSTS,
    HIGHLIGHT_FIELDS,
    TEXT_FIELDS,
    Change,
    Hit,
    InvalidCursor,
    RebuildInProgress,
    SearchIndexError,
    SearchQuery,
    SearchResult,
    TrackDocument,
    Upsert,
    normalize_keyword,
    query_words,
)

if TYPE_CHECKING:
    from opensearchpy import OpenSearch

log = logging.getLogger(__name__)

GENERATION_INFIX = "-gen-"
REBUILDING_SUFFIX = "-rebuilding"
TOMBSTONE_RETENTION = "14d"  # the longest an SQS message can live
FUZZINESS = "AUTO:4,8"
FACET_SIZE = 1000
KEYWORD_FIELDS: dict[str, str] = {
    "genre": "genre_kw",
    "mood": "mood_kw",
    "key": "key_kw",
    "tags": "tags_kw",
}
DERIVED_FIELDS: tuple[str, ...] = (*KEYWORD_FIELDS.values(), "sort_title")

_TEXT_FIELD = {
    "type": "text",
    "analyzer": "ms_text",
    "fields": {
        "prefix": {"type": "text", "analyzer": "ms_prefix", "search_analyzer": "ms_text"},
    },
}
_KEYWORD = {"type": "keyword"}

ANALYSIS: dict[str, Any] = {
    "tokenizer": {"ms_words": {"type": "pattern", "pattern": "[^\\p{L}\\p{N}]+"}},
    "filter": {"ms_edge": {"type": "edge_ngram", "min_gram": 1, "max_gram": 20}},
    "analyzer": {
        "ms_text": {
            "type": "custom",
            "tokenizer": "ms_words",
            "filter": ["lowercase", "asciifolding"],
        },
        "ms_prefix": {
            "type": "custom",
            "tokenizer": "ms_words",
            "filter": ["lowercase", "asciifolding", "ms_edge"],
        },
    },
}

MAPPINGS: dict[str, Any] = {
    "dynamic": "strict",
    "properties": {
        "id": _KEYWORD,
        "owner_id": _KEYWORD,
        "viewers": _KEYWORD,
        **{name: _TEXT_FIELD for name in TEXT_FIELDS},
        **{name: _KEYWORD for name in KEYWORD_FIELDS.values()},
        "key": {"type": "keyword", "index": False, "doc_values": False},
        "sort_title": _KEYWORD,
        "instrumental": {"type": "boolean"},
        "bpm": {"type": "double"},
        "duration_ms": {"type": "long"},
        "year": {"type": "integer"},
        "created_at": {"type": "date"},
        "deleted": {"type": "boolean"},
        "deleted_at": {"type": "date"},
    },
}

SORTS: dict[str, list[dict[str, Any]]] = {
    "relevance": [{"_score": "desc"}, {"id": "asc"}],
    "newest": [{"created_at": {"order": "desc", "missing": "_last"}}, {"id": "asc"}],
    "title": [{"sort_title": "asc"}, {"id": "asc"}],
    "duration": [{"duration_ms": "asc"}, {"id": "asc"}],
}

HIGHLIGHT: dict[str, Any] = {
    "pre_tags": ["<mark>"],
    "post_tags": ["</mark>"],
    "encoder": "html",
    "number_of_fragments": 0,
    "fields": {field: {} for name in HIGHLIGHT_FIELDS for field in (name, f"{name}.prefix")},
}


def index_body(*, shards: int, replicas: int, building: bool) -> dict[str, Any]:
    """Settings and mappings of a generation; one being built refreshes only when told to and
    has no replicas until its swap."""
    settings: dict[str, Any] = {
        "number_of_shards": shards,
        "number_of_replicas": 0 if building else replicas,
    }
    if building:
        settings["refresh_interval"] = "-1"
    return {"settings": {"index": settings, "analysis": ANALYSIS}, "mappings": MAPPINGS}


def index_source(doc: TrackDocument) -> dict[str, Any]:
    """What OpenSearch stores for a document: the document and its derived keyword fields."""
    source = document_source(doc)
    source["genre_kw"] = None if doc.genre is None else normalize_keyword(doc.genre)
    source["mood_kw"] = None if doc.mood is None else normalize_keyword(doc.mood)
    source["key_kw"] = None if doc.key is None else normalize_keyword(doc.key)
    source["tags_kw"] = [normalize_keyword(t) for t in doc.tags]
    source["sort_title"] = normalize_keyword(doc.title)
    return source


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else float(value)


def _range(field: str, low: float | None, high: float | None, *, integer: bool) -> dict[str, Any]:
    bounds: dict[str, Any] = {}
    if low is not None:
        bounds["gte"] = math.ceil(low) if integer else _number(low)
    if high is not None:
        bounds["lte"] = math.floor(high) if integer else _number(high)
    return {"range": {field: bounds}}


def _word_clause(word: str, last: bool) -> dict[str, Any]:
    fields = [f"{name}^{FIELD_BOOSTS[name]:g}" for name in TEXT_FIELDS]
    clause: dict[str, Any] = {
        "multi_match": {
            "query": word,
            "fields": fields,
            "type": "best_fields",
            "fuzziness": FUZZINESS,
        }
    }
    if not last:
        return clause
    prefix_fields = [f"{name}.prefix^{FIELD_BOOSTS[name]:g}" for name in TEXT_FIELDS]
    as_you_type = {
        "multi_match": {
            "query": word,
            "fields": prefix_fields,
            "type": "best_fields",
            "fuzziness": FUZZINESS,
        }
    }
    return {"bool": {"should": [clause, as_you_type], "minimum_should_match": 1}}


def query_clause(query: SearchQuery) -> tuple[dict[str, Any], list[str]]:
    """The ``query`` of a search request and the words of its text."""
    filters: list[dict[str, Any]] = [{"term": {"viewers": str(query.viewer)}}]
    for field, values in (
        ("genre_kw", query.genres),
        ("mood_kw", query.moods),
        ("tags_kw", query.tags),
        ("key_kw", query.keys),
    ):
        if values:
            filters.append({"terms": {field: sorted({normalize_keyword(v) for v in values})}})
    if query.instrumental is not None:
        filters.append({"term": {"instrumental": query.instrumental}})
    for field, bounds, integer in (
        ("bpm", query.bpm, False),
        ("duration_ms", query.duration_ms, True),
        ("year", query.year, True),
    ):
        if bounds.low is not None or bounds.high is not None:
            filters.append(_range(field, bounds.low, bounds.high, integer=integer))
    words = query_words(query.text)
    boolean: dict[str, Any] = {"filter": filters}
    if words:
        boolean["must"] = [_word_clause(w, i == len(words) - 1) for i, w in enumerate(words)]
    return {"bool": boolean}, words


def search_body(query: SearchQuery, after: list[Any] | None) -> dict[str, Any]:
    """The body of the search request for one page."""
    clause, words = query_clause(query)
    body: dict[str, Any] = {
        "query": clause,
        "size": max(1, query.limit) + 1,
        "track_total_hits": True,
        "sort": SORTS[query.sort],
        "_source": {"excludes": list(DERIVED_FIELDS)},
        "aggs": {
            name: {"terms": {"field": KEYWORD_FIELDS[name], "size": FACET_SIZE}} for name in FACETS
        },
    }
    if words:
        body["highlight"] = HIGHLIGHT
    if after is not None:
        body["search_after"] = after
    return body


def _after(state: Mapping[str, Any]) -> list[Any]:
    after = state.get("a")
    if (
        not isinstance(after, list)
        or len(after) != 2
        or not all(v is None or isinstance(v, str | int | float) for v in after)
    ):
        raise InvalidCursor("the cursor does not fit this query")
    return after


def _highlights(raw: Mapping[str, list[str]]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for name in HIGHLIGHT_FIELDS:
        groups = [raw.get(name, []), raw.get(f"{name}.prefix", [])]
        fragments = merge_fragments(groups)
        if fragments:
            found[name] = fragments
    return found


def _generation_name(alias: str, number: int) -> str:
    return f"{alias}{GENERATION_INFIX}{number:06d}"


class OpenSearchIndex:
    """``SearchIndex`` over OpenSearch indices behind ``alias`` (see the module documentation).

    ``client`` is an ``opensearchpy.OpenSearch``; ``now`` is the clock of tombstones.
    """

    adapter = "opensearch"

    def __init__(
        self,
        client: OpenSearch,
        alias: str,
        *,
        shards: int = 1,
        replicas: int = 1,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.client = client
        self.alias = alias
        self.rebuilding_alias = alias + REBUILDING_SUFFIX
        self.shards = shards
        self.replicas = replicas
        self._now = now
        self._ensured = False

    # -- generations -----------------------------------------------------------------------------
    def generations(self) -> dict[str, set[str]]:
        """Every generation index of this alias and the aliases it carries."""
        state = self.client.indices.get_alias(index=f"{self.alias}{GENERATION_INFIX}*")
        return {name: set((info or {}).get("aliases") or {}) for name, info in state.items()}

    def _targets(self) -> tuple[str, str | None]:
        """The live index and the one being rebuilt (if any), creating the first on first use."""
        state = self.generations()
        live = [n for n, aliases in state.items() if self.alias in aliases]
        if not live:
            self.ensure()
            state = self.generations()
            live = [n for n, aliases in state.items() if self.alias in aliases]
        if len(live) != 1:
            raise SearchIndexError(f"alias {self.alias} names {len(live)} indices: {live}")
        building = [n for n, aliases in state.items() if self.rebuilding_alias in aliases]
        return live[0], (building[0] if building else None)

    def ensure(self) -> str:
        """Create the first generation and point the alias at it unless the alias exists."""
        from opensearchpy.exceptions import RequestError

        state = self.generations()
        for name, aliases in state.items():
            if self.alias in aliases:
                return name
        name = _generation_name(self.alias, 1)
        try:
            self.client.indices.create(
                index=name,
                body=index_body(shards=self.shards, replicas=self.replicas, building=False),
            )
        except RequestError as exc:
            if "resource_already_exists" not in str(exc.error):
                raise
        self.client.indices.update_aliases(
            body={"actions": [{"add": {"index": name, "alias": self.alias}}]}
        )
        return name

    def _next_generation(self, state: Mapping[str, object]) -> str:
        prefix = f"{self.alias}{GENERATION_INFIX}"
        numbers = [int(n[len(prefix) :]) for n in state if n[len(prefix) :].isdigit()]
        return _generation_name(self.alias, max(numbers, default=0) + 1)

    # -- writes ----------------------------------------------------------------------------------
    def _actions(self, index: str, changes: Iterable[Change]) -> list[dict[str, Any]]:
        deleted_at = self._now().isoformat()
        body: list[dict[str, Any]] = []
        for change in changes:
            track = str(change_id(change))
            body.append(
                {
                    "index": {
                        "_index": index,
                        "_id": track,
                        "version": change.version,
                        "version_type": "external",
                    }
                }
            )
            if isinstance(change, Upsert):
                body.append(index_source(change.document))
            else:
                body.append({"id": track, "deleted": True, "deleted_at": deleted_at})
        return body

    def _bulk(self, index: str, changes: Sequence[Change], *, refresh: str) -> list[bool]:
        """Send the changes to one index; for each, whether it was applied (False: stale)."""
        if not changes:
            return []
        response = self.client.bulk(body=self._actions(index, changes), refresh=refresh)
        applied: list[bool] = []
        errors: list[Any] = []
        for item in response.get("items", []):
            result = next(iter(item.values()))
            status = int(result.get("status", 500))
            if status in (200, 201):
                applied.append(True)
            elif status == 409:
                applied.append(False)  # version conflict: an older or the same change
            else:
                applied.append(False)
                errors.append(result.get("error"))
        if errors or len(applied) != len(changes):
            raise SearchIndexError(f"bulk write to {index} failed: {errors[:3]}")
        return applied

    def write(self, changes: Sequence[Change]) -> int:
        if not changes:
            return 0
        live, building = self._targets()
        applied = self._bulk(live, changes, refresh="wait_for")
        if building is not None:
            # The rebuild gets what the live index took (not what it refused as stale).
            taken = [c for c, ok in zip(changes, applied, strict=True) if ok]
            self._bulk(building, taken, refresh="false")
        return sum(applied)

    def version(self, track_id: uuid.UUID) -> int | None:
        from opensearchpy.exceptions import NotFoundError

        try:
            found = self.client.get(index=self.alias, id=str(track_id), _source="false")
        except NotFoundError:
            return None
        if not found.get("found"):
            return None
        return int(found["_version"])

    def close(self) -> None:
        """Nothing to release: the client belongs to the caller."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- searches --------------------------------------------------------------------------------
    def search(self, query: SearchQuery) -> SearchResult:
        from opensearchpy.exceptions import NotFoundError

        fingerprint = query_fingerprint(query, self.adapter)
        after = None
        if query.cursor is not None:
            after = _after(decode_cursor(query.cursor, fingerprint))
        limit = max(1, query.limit)
        try:
            response = self.client.search(index=self.alias, body=search_body(query, after))
        except NotFoundError:
            self.ensure()
            response = self.client.search(index=self.alias, body=search_body(query, after))
        raw_hits = response["hits"]["hits"]
        hits = []
        for raw in raw_hits[:limit]:
            doc = document_from_source(raw["_source"])
            score = float(raw.get("_score") or 0.0) if query.sort == "relevance" else 0.0
            hits.append(Hit(doc, score, _highlights(raw.get("highlight") or {})))
        next_cursor = None
        if len(raw_hits) > limit:
            next_cursor = encode_cursor(fingerprint, {"a": raw_hits[limit - 1]["sort"]})
        aggregations = response.get("aggregations") or {}
        facets = {
            name: {
                str(b["key"]): int(b["doc_count"])
                for b in sorted(
                    aggregations.get(name, {}).get("buckets", []),
                    key=lambda b: (-int(b["doc_count"]), str(b["key"])),
                )
            }
            for name in FACETS
        }
        total = response["hits"]["total"]
        return SearchResult(
            hits=hits,
            total=int(total["value"] if isinstance(total, dict) else total),
            facets=facets,
            next_cursor=next_cursor,
        )

    # -- rebuilds --------------------------------------------------------------------------------
    def begin_rebuild(self, *, replace_unfinished: bool = False) -> OpenSearchRebuild:
        """Start a new generation. A rebuild left unfinished (its process died) blocks the next
        one (``RebuildInProgress``) unless ``replace_unfinished``: then it is deleted."""
        live, building = self._targets()
        if building is not None:
            if not replace_unfinished:
                raise RebuildInProgress(
                    f"{building} is being rebuilt for {self.alias}; if its process died, "
                    "begin again with replace_unfinished=True"
                )
            self.client.indices.delete(index=building)
        name = self._next_generation(self.generations())
        self.client.indices.create(
            index=name, body=index_body(shards=self.shards, replicas=self.replicas, building=True)
        )
        self.client.indices.update_aliases(
            body={"actions": [{"add": {"index": name, "alias": self.rebuilding_alias}}]}
        )
        log.info("search index rebuild started: %s (live %s)", name, live)
        return OpenSearchRebuild(self, name)


class OpenSearchRebuild:
    """A new generation being filled; see ``SearchIndex.begin_rebuild``."""

    def __init__(self, owner: OpenSearchIndex, name: str) -> None:
        self._owner = owner
        self._name = name
        self._finished = False
        self._versions: dict[uuid.UUID, int] = {}

    @property
    def generation(self) -> str:
        return self._name

    def _check(self) -> None:
        if self._finished:
            raise SearchIndexError(f"the rebuild {self._name} is finished")

    def add(self, upserts: Iterable[Upsert]) -> int:
        return self.apply(list(upserts))

    def apply(self, changes: Sequence[Change]) -> int:
        self._check()
        # Versions settle it in OpenSearch too; skipping what this rebuild already holds newer
        # saves sending it.
        outcome, latest = apply_in_order(changes, self._versions)
        wanted = [c for c in changes if outcome.final.get(change_id(c)) is c]
        applied = self._owner._bulk(self._name, wanted, refresh="false")
        self._versions.update(latest)
        return sum(applied) + (outcome.count - len(wanted))

    def commit_swap(self) -> str:
        self._check()
        owner, client = self._owner, self._owner.client
        live, _ = owner._targets()
        # Deletions the live index remembers go on being remembered (within the retention).
        client.reindex(
            body={
                "conflicts": "proceed",
                "source": {
                    "index": live,
                    "query": {
                        "bool": {
                            "filter": [
                                {"term": {"deleted": True}},
                                {"range": {"deleted_at": {"gte": f"now-{TOMBSTONE_RETENTION}"}}},
                            ]
                        }
                    },
                },
                "dest": {"index": self._name, "version_type": "external"},
            },
            wait_for_completion=True,
            refresh=True,
            request_timeout=600,
        )
        client.indices.put_settings(
            index=self._name,
            body={"index": {"refresh_interval": None, "number_of_replicas": owner.replicas}},
        )
        client.indices.refresh(index=self._name, request_timeout=600)
        client.indices.update_aliases(
            body={
                "actions": [
                    {"remove": {"index": live, "alias": owner.alias}},
                    {"add": {"index": self._name, "alias": owner.alias}},
                    {"remove": {"index": self._name, "alias": owner.rebuilding_alias}},
                ]
            }
        )
        self._finished = True
        old = sorted(n for n in owner.generations() if n not in (live, self._name))
        if old:
            client.indices.delete(index=",".join(old))
        log.info("search index swapped to %s (was %s)", self._name, live)
        return self._name

    def abort(self) -> None:
        if self._finished:
            return
        self._finished = True
        self._owner.client.indices.delete(index=self._name)
        log.info("search index rebuild %s aborted", self._name)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.abort()
