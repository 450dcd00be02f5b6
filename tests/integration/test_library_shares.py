"""The library honours shares: its real HTTP routes, for grantees of tracks and of playlists."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.stack import Api, StackHarness

pytestmark = pytest.mark.integration

PERMISSIONS = ("view", "stream", "download")


def _problem(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == code, response.text


def _ok(response: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


def _me(api: Api) -> str:
    user_id: str = _ok(api.get("/v1/me"))["id"]
    return user_id


def _share(
    api: Api, object_id: str, grantee: Api, permission: str, object_type: str = "track"
) -> str:
    body = {
        "object_type": object_type,
        "object_id": object_id,
        "permission": permission,
        "grantee_user_id": _me(grantee),
    }
    share_id: str = _ok(api.post("/v1/shares", json=body), 201)["id"]
    return share_id


def _playlist(harness: StackHarness, owner: Api, track_ids: Iterable[str]) -> str:
    """A playlist of the owner's holding the tracks, made in SQL (not through its API)."""
    playlist_id = uuid.uuid4()
    now = harness.clock.now()
    owner_id = _me(owner)
    with harness.stack.deps.pool.connection() as conn:
        conn.execute(
            "INSERT INTO playlists (id, owner_id, title, created_at, updated_at) "
            "VALUES (%s, %s, 'Shared picks', %s, %s)",
            (playlist_id, owner_id, now, now),
        )
        for position, track_id in enumerate(track_ids):
            conn.execute(
                "INSERT INTO playlist_entries (id, playlist_id, track_id, position, added_by, "
                "added_at) VALUES (%s, %s, %s, %s, %s, %s)",
                (uuid.uuid4(), playlist_id, track_id, position, owner_id, now),
            )
    return str(playlist_id)


def _listed(api: Api, scope: str | None = None) -> dict[str, str]:
    """Track id -> the caller's permission, over every page of the listing."""
    found: dict[str, str] = {}
    cursor = None
    while True:
        params = {"limit": "100", **({"scope": scope} if scope else {})}
        if cursor:
            params["cursor"] = cursor
        page = _ok(api.get("/v1/tracks", params=params))
        found.update({item["id"]: item["permission"] for item in page["items"]})
        cursor = page["next_cursor"]
        if cursor is None:
            return found


@dataclass
class Shared:
    """An owner's tracks, one shared with the grantee at each permission, and one kept back."""

    owner: Api
    grantee: Api
    stranger: Api
    tracks: dict[str, str]  # permission -> track id
    unshared: str
    grantees_own: str


@pytest.fixture(scope="module")
def shared(harness: StackHarness, tmp_path_factory: pytest.TempPathFactory) -> Shared:
    folder = tmp_path_factory.mktemp("library-shares")
    owner, grantee, stranger = harness.user(), harness.user(), harness.user()
    tracks = {}
    for permission in PERMISSIONS:
        tracks[permission] = owner.new_track(folder, title=f"Shared at {permission}")
        _share(owner, tracks[permission], grantee, permission)
    return Shared(
        owner=owner,
        grantee=grantee,
        stranger=stranger,
        tracks=tracks,
        unshared=owner.new_track(folder, title="Kept back"),
        grantees_own=grantee.new_track(folder, title="The grantee's own"),
    )


# Permission -> status of (read, stream URL, download URL) for the grantee.
EXPECTED = {
    "view": (200, 403, 403),
    "stream": (200, 200, 403),
    "download": (200, 200, 200),
}


@pytest.mark.parametrize("permission", PERMISSIONS)
def test_a_track_share_allows_exactly_what_its_permission_names(
    harness: StackHarness, shared: Shared, permission: str
) -> None:
    # Given a track shared with the grantee at the permission
    track_id = shared.tracks[permission]
    grantee = shared.grantee

    # When the grantee reads it and asks for its stream and download URLs
    read = grantee.get(f"/v1/tracks/{track_id}")
    stream = grantee.get(f"/v1/tracks/{track_id}/stream")
    download = grantee.get(f"/v1/tracks/{track_id}/download")

    # Then each answer is what the permission allows; what it does not is a 403
    assert (read.status_code, stream.status_code, download.status_code) == EXPECTED[permission]
    assert read.json()["permission"] == permission
    assert read.json()["owner_id"] == _me(shared.owner)
    for response in (stream, download):
        if response.status_code == 403:
            _problem(response, 403, "permission_denied")
            assert response.json()["permission"] == permission
        else:
            # And the URL it gives serves the audio
            assert harness.client.get(response.json()["url"]).status_code == 200


@pytest.mark.parametrize("permission", PERMISSIONS)
def test_a_grantee_can_never_edit_or_delete_a_shared_track(shared: Shared, permission: str) -> None:
    track_id = shared.tracks[permission]

    _problem(
        shared.grantee.patch(f"/v1/tracks/{track_id}", json={"title": "Mine now"}),
        403,
        "permission_denied",
    )
    _problem(shared.grantee.delete(f"/v1/tracks/{track_id}"), 403, "permission_denied")

    assert _ok(shared.owner.get(f"/v1/tracks/{track_id}"))["title"] == f"Shared at {permission}"


@pytest.mark.parametrize(
    ("method", "suffix"),
    [("GET", ""), ("GET", "/stream"), ("GET", "/download"), ("PATCH", ""), ("DELETE", "")],
)
def test_shares_give_nothing_to_anyone_else(shared: Shared, method: str, suffix: str) -> None:
    # Given tracks shared with someone, and one shared with nobody
    kwargs: dict[str, Any] = {"json": {"title": "x"}} if method == "PATCH" else {}
    for track_id in [*shared.tracks.values(), shared.unshared]:
        # Then another user cannot see any of them
        response = shared.stranger.request(method, f"/v1/tracks/{track_id}{suffix}", **kwargs)
        _problem(response, 404, "track_not_found")
    # And the grantee cannot see the one not shared with them
    response = shared.grantee.request(method, f"/v1/tracks/{shared.unshared}{suffix}", **kwargs)
    _problem(response, 404, "track_not_found")


def test_scope_shared_lists_exactly_the_shared_tracks_with_their_permission(
    shared: Shared,
) -> None:
    by_permission = {track_id: permission for permission, track_id in shared.tracks.items()}

    assert _listed(shared.grantee, "shared") == by_permission
    assert _listed(shared.grantee, "all") == {**by_permission, shared.grantees_own: "owner"}
    assert _listed(shared.grantee) == {shared.grantees_own: "owner"}
    assert _listed(shared.grantee, "owned") == {shared.grantees_own: "owner"}
    # And the owner's own listing does not change with what they shared
    owned = {track_id: "owner" for track_id in [*shared.tracks.values(), shared.unshared]}
    assert _listed(shared.owner) == owned
    assert _listed(shared.owner, "shared") == {}
    assert _listed(shared.stranger, "all") == {}


def test_a_revoked_share_leaves_the_grantee_nothing(harness: StackHarness, tmp_path: Path) -> None:
    # Given a track shared at download
    owner, grantee = harness.user(), harness.user()
    track_id = owner.new_track(tmp_path)
    share_id = _share(owner, track_id, grantee, "download")
    assert grantee.get(f"/v1/tracks/{track_id}/download").status_code == 200

    # When the owner revokes the share
    assert owner.delete(f"/v1/shares/{share_id}").status_code == 204

    # Then every route answers the grantee as if the track did not exist
    for method, suffix in [("GET", ""), ("GET", "/stream"), ("GET", "/download"), ("DELETE", "")]:
        response = grantee.request(method, f"/v1/tracks/{track_id}{suffix}")
        _problem(response, 404, "track_not_found")
    assert _listed(grantee, "shared") == {}
    assert _listed(grantee, "all") == {}


def test_a_shared_playlist_grants_stream_but_not_download_on_its_tracks(
    harness: StackHarness, tmp_path: Path
) -> None:
    # Given a playlist of two of the owner's tracks, shared with a grantee at view
    owner, grantee = harness.user(), harness.user()
    first, second = owner.new_track(tmp_path), owner.new_track(tmp_path)
    outside = owner.new_track(tmp_path)
    playlist_id = _playlist(harness, owner, [first, second])
    _share(owner, playlist_id, grantee, "view", "playlist")

    # Then the grantee may read and stream each track in it, not download them
    for track_id in (first, second):
        assert _ok(grantee.get(f"/v1/tracks/{track_id}"))["permission"] == "stream"
        assert grantee.get(f"/v1/tracks/{track_id}/stream").status_code == 200
        _problem(grantee.get(f"/v1/tracks/{track_id}/download"), 403, "permission_denied")
        _problem(grantee.delete(f"/v1/tracks/{track_id}"), 403, "permission_denied")
    # And tracks outside the playlist stay invisible
    _problem(grantee.get(f"/v1/tracks/{outside}"), 404, "track_not_found")
    assert _listed(grantee, "shared") == {first: "stream", second: "stream"}


def test_a_playlist_passes_on_a_track_only_while_its_owner_may_stream_it(
    harness: StackHarness, tmp_path: Path
) -> None:
    # Given a track its owner shared at stream with a curator, who put it in a playlist
    # shared with a listener, next to one of the curator's own tracks
    artist, curator, listener = harness.user(), harness.user(), harness.user()
    borrowed = artist.new_track(tmp_path)
    curators_own = curator.new_track(tmp_path)
    borrowed_share = _share(artist, borrowed, curator, "stream")
    playlist_id = _playlist(harness, curator, [borrowed, curators_own])
    _share(curator, playlist_id, listener, "view", "playlist")
    assert _ok(listener.get(f"/v1/tracks/{borrowed}"))["permission"] == "stream"
    assert listener.get(f"/v1/tracks/{borrowed}/stream").status_code == 200
    assert _listed(listener, "shared") == {borrowed: "stream", curators_own: "stream"}

    # When the artist revokes the curator's share
    assert artist.delete(f"/v1/shares/{borrowed_share}").status_code == 204

    # Then the listener loses the borrowed track everywhere, and keeps the curator's own
    for suffix in ("", "/stream", "/download"):
        _problem(listener.get(f"/v1/tracks/{borrowed}{suffix}"), 404, "track_not_found")
    _problem(curator.get(f"/v1/tracks/{borrowed}"), 404, "track_not_found")
    assert _listed(listener, "shared") == {curators_own: "stream"}
    assert _listed(listener, "all") == {curators_own: "stream"}


def test_a_playlist_does_not_pass_on_a_track_its_owner_may_only_view(
    harness: StackHarness, tmp_path: Path
) -> None:
    # Given a track shared at view with a curator who put it in a playlist shared onwards
    artist, curator, listener = harness.user(), harness.user(), harness.user()
    viewed = artist.new_track(tmp_path)
    _share(artist, viewed, curator, "view")
    playlist_id = _playlist(harness, curator, [viewed])
    _share(curator, playlist_id, listener, "view", "playlist")

    # Then the listener gets nothing of it
    _problem(listener.get(f"/v1/tracks/{viewed}"), 404, "track_not_found")
    _problem(listener.get(f"/v1/tracks/{viewed}/stream"), 404, "track_not_found")
    assert _listed(listener, "shared") == {}
