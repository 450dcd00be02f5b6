"""Library service Lambda: tracks, uploads, stream and download URLs."""

import uuid
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.depends import Depends
from aws_lambda_powertools.event_handler.openapi.params import Body, Header, Query
from aws_lambda_powertools.utilities.typing import LambdaContext

from ingest.events.emitter import Emitter
from services.core.http import (
    create_resolver,
    current_events,
    current_principal,
    etag,
    expected_version,
    json_response,
)
from services.core.objects.port import CompletedPart
from services.core.principal import Principal
from services.library.logic import Library, library
from services.library.models import (
    CompleteRequest,
    MediaUrlOut,
    MeOut,
    SortKey,
    TrackOut,
    TrackPage,
    TrackPatch,
    TrackScope,
    UploadOut,
    UploadRequest,
)

app = create_resolver("library")
Caller = Annotated[Principal, Depends(current_principal)]


def _library(events: Annotated[Emitter, Depends(current_events)]) -> Library:
    return library(events)


Lib = Annotated[Library, Depends(_library)]


def _with_etag(track: TrackOut, status: int = 200) -> Response[TrackOut]:
    return json_response(track, status, etag(track.version))


@app.get("/v1/me", summary="The signed-in user")
def me(caller: Caller) -> MeOut:
    return MeOut(
        id=caller.user_id,
        email=caller.email,
        name=caller.name,
        issuer=caller.issuer,
        subject=caller.subject,
    )


@app.post("/v1/uploads", summary="Start an upload: get the URL(s) to send the file to")
def start_upload(
    caller: Caller, lib: Lib, request: Annotated[UploadRequest, Body()]
) -> Response[UploadOut]:
    return json_response(lib.start_upload(caller, request), 201)


@app.post("/v1/uploads/<upload_id>/complete", summary="Finish an upload and create the track")
def complete_upload(
    caller: Caller,
    lib: Lib,
    upload_id: uuid.UUID,
    request: Annotated[CompleteRequest | None, Body()] = None,
) -> Response[TrackOut]:
    parts = [CompletedPart(p.part_number, p.etag) for p in (request.parts if request else [])]
    return _with_etag(lib.complete_upload(caller, upload_id, parts), 201)


@app.get("/v1/tracks", summary="List your tracks, the ones shared with you, or both")
def list_tracks(
    caller: Caller,
    lib: Lib,
    scope: Annotated[TrackScope, Query(description="owned, shared with you, or all")] = "owned",
    sort: Annotated[SortKey, Query()] = "-created",
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[str | None, Query(max_length=1000)] = None,
    genre: Annotated[str | None, Query(max_length=100)] = None,
    artist: Annotated[str | None, Query(max_length=300)] = None,
) -> TrackPage:
    return lib.list_tracks(
        caller, scope=scope, sort=sort, limit=limit, cursor=cursor, genre=genre, artist=artist
    )


@app.get("/v1/tracks/<track_id>", summary="One track")
def get_track(caller: Caller, lib: Lib, track_id: uuid.UUID) -> Response[TrackOut]:
    return _with_etag(lib.get_track(caller, track_id))


@app.patch("/v1/tracks/<track_id>", summary="Edit a track's metadata")
def update_track(
    caller: Caller,
    lib: Lib,
    track_id: uuid.UUID,
    patch: Annotated[TrackPatch, Body()],
    if_match: Annotated[str | None, Header(alias="if-match")] = None,
) -> Response[TrackOut]:
    track = lib.update_track(caller, track_id, patch, expected_version(if_match, "track"))
    return _with_etag(track)


@app.delete("/v1/tracks/<track_id>", summary="Delete a track and its audio")
def delete_track(caller: Caller, lib: Lib, track_id: uuid.UUID) -> Response[None]:
    lib.delete_track(caller, track_id)
    return Response(status_code=204)


@app.get("/v1/tracks/<track_id>/stream", summary="A short-lived URL to stream the audio")
def stream_url(caller: Caller, lib: Lib, track_id: uuid.UUID) -> MediaUrlOut:
    return lib.media_url(caller, track_id, download=False)


@app.get("/v1/tracks/<track_id>/download", summary="A short-lived URL to download the file")
def download_url(caller: Caller, lib: Lib, track_id: uuid.UUID) -> MediaUrlOut:
    return lib.media_url(caller, track_id, download=True)


def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
