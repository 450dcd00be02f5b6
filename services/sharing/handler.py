"""Sharing service Lambda: shares of tracks and playlists with other users."""

import uuid
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.depends import Depends
from aws_lambda_powertools.event_handler.openapi.params import Body, Query
from aws_lambda_powertools.utilities.typing import LambdaContext

from ingest.events.emitter import Emitter
from services.core.http import create_resolver, current_events, current_principal, json_response
from services.core.principal import Principal
from services.sharing.logic import Sharing, sharing
from services.sharing.models import (
    Direction,
    ShareCreate,
    ShareObjectType,
    ShareOut,
    SharePage,
)

app = create_resolver("sharing")
Caller = Annotated[Principal, Depends(current_principal)]


def _sharing(events: Annotated[Emitter, Depends(current_events)]) -> Sharing:
    return sharing(events)


Shares = Annotated[Sharing, Depends(_sharing)]


@app.post(
    "/v1/shares",
    summary="Share a track or playlist you own; sharing again changes the permission",
    responses={
        200: {"description": "The live share for that grantee, with the new permission"},
        201: {"description": "A new share (pending until an unknown address signs in)"},
    },
)
def create_share(
    caller: Caller, shares: Shares, request: Annotated[ShareCreate, Body()]
) -> Response[ShareOut]:
    share, created = shares.create_share(caller, request)
    if created:
        return json_response(share, 201, {"Location": f"/v1/shares/{share.id}"})
    return json_response(share)


@app.get("/v1/shares", summary="Shares made for you (incoming) or by you (outgoing)")
def list_shares(
    caller: Caller,
    shares: Shares,
    direction: Annotated[
        Direction, Query(description="incoming: shared with you; outgoing: shared by you")
    ] = "incoming",
    object_type: Annotated[ShareObjectType | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[str | None, Query(max_length=1000)] = None,
) -> SharePage:
    return shares.list_shares(
        caller, direction=direction, object_type=object_type, limit=limit, cursor=cursor
    )


@app.get("/v1/shares/<share_id>", summary="One share you made or that was made for you")
def get_share(caller: Caller, shares: Shares, share_id: uuid.UUID) -> ShareOut:
    return shares.get_share(caller, share_id)


@app.delete("/v1/shares/<share_id>", summary="Revoke a share you made")
def revoke_share(caller: Caller, shares: Shares, share_id: uuid.UUID) -> Response[None]:
    shares.revoke_share(caller, share_id)
    return Response(status_code=204)


def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
