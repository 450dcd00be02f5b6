"""Event collector Lambda: usage events reported by signed-in clients (players, pages)."""

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.depends import Depends
from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.utilities.typing import LambdaContext

from ingest.events.client import MAX_BODY_BYTES, EventsIn, EventsResult
from ingest.events.emitter import Emitter
from services.collector.logic import Collector
from services.core.errors import ProblemError
from services.core.http import (
    CORRELATION_HEADER,
    create_resolver,
    current_events,
    current_principal,
)
from services.core.principal import Principal
from services.core.ratelimit import check_rate

app = create_resolver("collector", max_body_bytes=MAX_BODY_BYTES)
Caller = Annotated[Principal, Depends(current_principal)]


@app.post(
    "/v1/events",
    summary="Report usage events (at most 100 a call, 64 KiB)",
    responses={202: {"description": "Each event accepted or refused with its reason"}},
)
def collect(
    caller: Caller,
    events: Annotated[Emitter, Depends(current_events)],
    body: Annotated[EventsIn, Body()],
) -> Response[EventsResult]:
    from services.core.wiring import dependencies

    deps = dependencies()
    check_rate(
        deps.redis,
        deps.clock,
        f"events:user:{caller.user_id}",
        limit=deps.settings.collector_requests_per_minute,
        window_seconds=60,
    )
    correlation_id = app.current_event.headers.get(CORRELATION_HEADER)
    result = Collector(deps.pool, deps.clock, events).collect(caller, body.events, correlation_id)
    if not result.accepted:
        raise ProblemError(
            422,
            "events_rejected",
            "No event accepted",
            "Every event was refused; each one's reason is in 'rejected'.",
            rejected=[r.model_dump(mode="json") for r in result.rejected],
        )
    return Response(202, "application/json", body=result)


def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
