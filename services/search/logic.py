"""Search as a use case: run the caller's query against the index, and say that it happened."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from services.core.principal import Principal
from services.core.search.model import Range, SearchQuery
from services.search.models import SearchHit, SearchOut, SearchTrack

if TYPE_CHECKING:
    from ingest.events.emitter import Emitter
    from services.core.search.port import SearchIndex


@dataclass
class Search:
    index: SearchIndex
    events: Emitter

    def search(self, caller: Principal, query: SearchQuery) -> SearchOut:
        started = time.perf_counter()
        result = self.index.search(query)
        latency_ms = round((time.perf_counter() - started) * 1000)
        self.events.emit(
            "search_performed",
            actor_type="user",
            actor_id=str(caller.user_id),
            result_count=result.total,
            latency_ms=latency_ms,
            properties={"query": query.text, "filters": _filters(query), "sort": query.sort},
        )
        return SearchOut(
            hits=[
                SearchHit(
                    track=SearchTrack.model_validate(
                        {
                            **asdict(hit.document),
                            "artists": list(hit.document.artists),
                            "tags": list(hit.document.tags),
                        }
                    ),
                    score=hit.score,
                    highlights=hit.highlights,
                )
                for hit in result.hits
            ],
            total=result.total,
            facets=result.facets,
            next_cursor=result.next_cursor,
        )


def _filters(query: SearchQuery) -> dict[str, Any]:
    """The filters the query used, for the lake (ranges as [low, high])."""
    filters: dict[str, Any] = {}
    for name in ("genres", "moods", "tags", "keys"):
        if values := getattr(query, name):
            filters[name] = list(values)
    if query.instrumental is not None:
        filters["instrumental"] = query.instrumental
    for name in ("bpm", "duration_ms", "year"):
        bounds: Range = getattr(query, name)
        if bounds.low is not None or bounds.high is not None:
            filters[name] = [bounds.low, bounds.high]
    return filters
