"""Search service Lambda: full-text search over the tracks the caller may see."""

from typing import Annotated, Any

from aws_lambda_powertools.event_handler.depends import Depends
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.utilities.typing import LambdaContext

from ingest.events.emitter import Emitter
from services.core.errors import ProblemError
from services.core.http import create_resolver, current_events, current_principal
from services.core.pagination import invalid_cursor
from services.core.principal import Principal
from services.core.search.model import InvalidCursor, Range, SearchQuery, SortKey
from services.search.logic import Search
from services.search.models import SearchOut

app = create_resolver("search")
Caller = Annotated[Principal, Depends(current_principal)]
# API Gateway joins a repeated parameter with commas: ?genre=a&genre=b arrives as "a,b".
ListParam = Annotated[str | None, Query(max_length=1000, description="Comma-separated values.")]


def _search(events: Annotated[Emitter, Depends(current_events)]) -> Search:
    from services.core.wiring import dependencies

    return Search(dependencies().search_index, events)


def _values(raw: str | None) -> tuple[str, ...]:
    return tuple(v.strip() for v in (raw or "").split(",") if v.strip())


def _range(name: str, low: float | None, high: float | None) -> Range:
    if low is not None and high is not None and low > high:
        raise ProblemError(
            422,
            "invalid_range",
            "Invalid range",
            f"{name}_min ({low:g}) is above {name}_max ({high:g}).",
        )
    return Range(low, high)


@app.get("/v1/search", summary="Search the tracks you may see (typo-tolerant, with facets)")
def search(
    caller: Caller,
    searcher: Annotated[Search, Depends(_search)],
    q: Annotated[str, Query(max_length=200, description="Free text; the last word a prefix.")] = "",
    genre: ListParam = None,
    mood: ListParam = None,
    tag: ListParam = None,
    key: ListParam = None,
    instrumental: Annotated[bool | None, Query()] = None,
    bpm_min: Annotated[float | None, Query(ge=0, le=999)] = None,
    bpm_max: Annotated[float | None, Query(ge=0, le=999)] = None,
    duration_min: Annotated[int | None, Query(ge=0, description="Milliseconds.")] = None,
    duration_max: Annotated[int | None, Query(ge=0, description="Milliseconds.")] = None,
    year_min: Annotated[int | None, Query(ge=1000, le=2200)] = None,
    year_max: Annotated[int | None, Query(ge=1000, le=2200)] = None,
    sort: Annotated[SortKey, Query()] = "relevance",
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=2000)] = None,
) -> SearchOut:
    query = SearchQuery(
        viewer=caller.user_id,
        text=q.strip(),
        genres=_values(genre),
        moods=_values(mood),
        tags=_values(tag),
        keys=_values(key),
        instrumental=instrumental,
        bpm=_range("bpm", bpm_min, bpm_max),
        duration_ms=_range("duration", duration_min, duration_max),
        year=_range("year", year_min, year_max),
        sort=sort,
        limit=limit,
        cursor=cursor,
    )
    try:
        return searcher.search(caller, query)
    except InvalidCursor as exc:
        raise invalid_cursor() from exc


def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
