"""Playlists service Lambda: playlists and their ordered tracks."""

import uuid
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.depends import Depends
from aws_lambda_powertools.event_handler.openapi.params import Body, Header, Query
from aws_lambda_powertools.utilities.typing import LambdaContext

from ingest.events.emitter import Emitter
from services.core.errors import ProblemError
from services.core.http import (
    create_resolver,
    current_events,
    current_principal,
    etag,
    expected_version,
    json_response,
)
from services.core.principal import Principal
from services.playlists.logic import Playlists, playlists
from services.playlists.models import (
    PlaylistCreate,
    PlaylistEntryAdd,
    PlaylistEntryAdded,
    PlaylistOrder,
    PlaylistOut,
    PlaylistPage,
    PlaylistPatch,
    PlaylistScope,
)

app = create_resolver("playlists")
Caller = Annotated[Principal, Depends(current_principal)]
IfMatch = Annotated[
    str | None,
    Header(alias="if-match", description="The playlist's ETag: refuse the change if it moved on."),
]


def _playlists(events: Annotated[Emitter, Depends(current_events)]) -> Playlists:
    return playlists(events)


Lists = Annotated[Playlists, Depends(_playlists)]


def _version(if_match: str | None) -> int | None:
    return expected_version(if_match, "playlist")


def _with_etag(playlist: PlaylistOut, status: int = 200) -> Response[PlaylistOut]:
    return json_response(playlist, status, etag(playlist.version))


@app.post("/v1/playlists", summary="Create a playlist")
def create_playlist(
    caller: Caller, lists: Lists, request: Annotated[PlaylistCreate, Body()]
) -> Response[PlaylistOut]:
    return _with_etag(lists.create_playlist(caller, request), 201)


@app.get("/v1/playlists", summary="List your playlists, the ones shared with you, or both")
def list_playlists(
    caller: Caller,
    lists: Lists,
    scope: Annotated[PlaylistScope, Query(description="owned, shared with you, or all")] = "all",
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[str | None, Query(max_length=1000)] = None,
) -> PlaylistPage:
    return lists.list_playlists(caller, scope=scope, limit=limit, cursor=cursor)


@app.get("/v1/playlists/<playlist_id>", summary="One playlist with its entries in order")
def get_playlist(caller: Caller, lists: Lists, playlist_id: uuid.UUID) -> Response[PlaylistOut]:
    return _with_etag(lists.get_playlist(caller, playlist_id))


@app.patch("/v1/playlists/<playlist_id>", summary="Rename or describe a playlist")
def update_playlist(
    caller: Caller,
    lists: Lists,
    playlist_id: uuid.UUID,
    patch: Annotated[PlaylistPatch, Body()],
    if_match: IfMatch = None,
) -> Response[PlaylistOut]:
    playlist = lists.update_playlist(caller, playlist_id, patch, _version(if_match))
    return _with_etag(playlist)


@app.delete("/v1/playlists/<playlist_id>", summary="Delete a playlist (its owner only)")
def delete_playlist(caller: Caller, lists: Lists, playlist_id: uuid.UUID) -> Response[None]:
    lists.delete_playlist(caller, playlist_id)
    return Response(status_code=204)


@app.post("/v1/playlists/<playlist_id>/tracks", summary="Add a track at a position")
def add_track(
    caller: Caller,
    lists: Lists,
    playlist_id: uuid.UUID,
    request: Annotated[PlaylistEntryAdd, Body()],
    if_match: IfMatch = None,
) -> Response[PlaylistEntryAdded]:
    added = lists.add_track(
        caller,
        playlist_id,
        request.track_id,
        request.position,
        _version(if_match),
    )
    return json_response(added, 201, etag(added.playlist_version))


@app.delete("/v1/playlists/<playlist_id>/tracks/<entry_id>", summary="Remove one entry")
def remove_entry(
    caller: Caller,
    lists: Lists,
    playlist_id: uuid.UUID,
    entry_id: uuid.UUID,
    if_match: IfMatch = None,
) -> Response[None]:
    version = lists.remove_entry(caller, playlist_id, entry_id, _version(if_match))
    return Response(status_code=204, headers=etag(version))


@app.put("/v1/playlists/<playlist_id>/order", summary="Put every entry in a new order")
def reorder(
    caller: Caller,
    lists: Lists,
    playlist_id: uuid.UUID,
    request: Annotated[PlaylistOrder, Body()],
    if_match: IfMatch = None,
) -> Response[PlaylistOut]:
    expected = _version(if_match)
    if expected is not None and request.version is not None and expected != request.version:
        raise ProblemError(
            400,
            "conflicting_versions",
            "Two different versions",
            "If-Match and `version` name different versions: send one of them.",
        )
    if expected is None:
        expected = request.version
    return _with_etag(lists.reorder(caller, playlist_id, request.entry_ids, expected))


def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
