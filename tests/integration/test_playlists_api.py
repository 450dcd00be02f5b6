"""The playlists API end to end through the local gateway, on real PostgreSQL and Redis."""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.events import RecordingSink
from tests.support.stack import Api, StackHarness

pytestmark = pytest.mark.integration

UNKNOWN = "0f6b7e52-4b7c-4f43-9b59-4d0b3c2f1a11"


def _problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    assert body["status"] == status
    return body


def _ok(response: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


@dataclass
class User:
    api: Api
    id: str


def _user(harness: StackHarness) -> User:
    api = harness.user()
    return User(api, _ok(api.get("/v1/me"))["id"])


def _share(
    harness: StackHarness,
    owner: User,
    grantee: User,
    permission: str,
    *,
    playlist_id: str | None = None,
    track_id: str | None = None,
) -> str:
    """A live share row, written straight to the database (the sharing service is separate)."""
    share_id = uuid.uuid4()
    now = harness.clock.now()
    with harness.stack.deps.pool.connection() as conn:
        conn.execute(
            """INSERT INTO shares (id, owner_id, object_type, track_id, playlist_id, grantee_id,
                                   permission, created_at, updated_at)
               VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)""",
            (
                share_id,
                owner.id,
                "playlist" if playlist_id else "track",
                track_id,
                playlist_id,
                grantee.id,
                permission,
                now,
                now,
            ),
        )
    return str(share_id)


def _revoke(harness: StackHarness, share_id: str) -> None:
    with harness.stack.deps.pool.connection() as conn:
        conn.execute(
            "UPDATE shares SET revoked_at = %s WHERE id = %s", (harness.clock.now(), share_id)
        )


def _create(api: Api, title: str = "Late Night Cues", **body: Any) -> dict[str, Any]:
    return _ok(api.post("/v1/playlists", json={"title": title, **body}), 201)


def _add(api: Api, playlist_id: str, track_id: str, position: int | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"track_id": track_id}
    if position is not None:
        body["position"] = position
    return _ok(api.post(f"/v1/playlists/{playlist_id}/tracks", json=body), 201)


def _get(api: Api, playlist_id: str) -> dict[str, Any]:
    return _ok(api.get(f"/v1/playlists/{playlist_id}"))


def _order(playlist: dict[str, Any]) -> list[str]:
    """The playlist's entry ids in order, checking positions are 0..n-1."""
    entries = playlist["entries"]
    assert [e["position"] for e in entries] == list(range(len(entries)))
    assert playlist["track_count"] == len(entries)
    return [e["id"] for e in entries]


def _track_order(playlist: dict[str, Any]) -> list[str | None]:
    return [e["track"]["id"] if e["track"] else None for e in playlist["entries"]]


def _stored_positions(harness: StackHarness, playlist_id: str) -> list[int]:
    with harness.stack.deps.pool.connection() as conn:
        rows = conn.execute(
            "SELECT position FROM playlist_entries WHERE playlist_id = %s ORDER BY position",
            (playlist_id,),
        ).fetchall()
    return [r["position"] for r in rows]


@pytest.fixture(scope="module")
def owner(
    harness: StackHarness, tmp_path_factory: pytest.TempPathFactory
) -> tuple[User, list[str]]:
    """A user with four tracks of their own (each test makes its own playlists)."""
    folder = tmp_path_factory.mktemp("playlist-tracks")
    user = _user(harness)
    tracks = [user.api.new_track(folder, title=f"Cue {n}", seconds=0.2) for n in range(4)]
    return user, tracks


@pytest.fixture
def filled(owner: tuple[User, list[str]]) -> tuple[User, dict[str, Any], list[str]]:
    """A playlist of the owner's four tracks, in order (entry ids returned)."""
    user, tracks = owner
    playlist = _create(user.api)
    entries = [_add(user.api, playlist["id"], t)["entry"]["id"] for t in tracks]
    return user, _get(user.api, playlist["id"]), entries


# -- create, read, list -------------------------------------------------------------------------


def test_creating_a_playlist_returns_it_empty_at_version_1_with_its_etag(
    owner: tuple[User, list[str]],
) -> None:
    # Given a signed-in user
    user, _ = owner

    # When they create a playlist with a padded title and a description
    response = user.api.post(
        "/v1/playlists", json={"title": "  Road Trip  ", "description": "For the ads."}
    )

    # Then it is theirs, titled without the padding, empty, at version 1
    created = _ok(response, 201)
    assert response.headers["etag"] == '"1"'
    assert created["title"] == "Road Trip"
    assert created["description"] == "For the ads."
    assert (created["owner_id"], created["permission"]) == (user.id, "owner")
    assert (created["version"], created["track_count"], created["entries"]) == (1, 0, [])
    fetched = user.api.get(f"/v1/playlists/{created['id']}")
    assert fetched.headers["etag"] == '"1"'
    assert fetched.json() == created


def test_description_defaults_to_empty(owner: tuple[User, list[str]]) -> None:
    assert _create(owner[0].api, "No words")["description"] == ""


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"title": ""},
        {"title": "   "},
        {"title": "x" * 201},
        {"title": None},
        {"title": "ok", "description": "d" * 5001},
        {"title": "ok", "owner_id": UNKNOWN},
    ],
    ids=["no-title", "empty", "blank", "too-long", "null", "long-description", "extra-field"],
)
def test_creating_with_a_bad_body_is_a_validation_error(
    owner: tuple[User, list[str]], body: dict[str, Any]
) -> None:
    _problem(owner[0].api.post("/v1/playlists", json=body), 422, "validation_failed")


def test_limits_are_inclusive(owner: tuple[User, list[str]]) -> None:
    created = _create(owner[0].api, "t" * 200, description="d" * 5000)
    assert (len(created["title"]), len(created["description"])) == (200, 5000)


def test_get_shows_entries_in_order_with_the_tracks_metadata(
    filled: tuple[User, dict[str, Any], list[str]], owner: tuple[User, list[str]]
) -> None:
    _, playlist, entries = filled
    _, tracks = owner
    assert _order(playlist) == entries
    assert _track_order(playlist) == tracks
    first = playlist["entries"][0]
    assert first["available"] is True
    assert first["track"]["title"] == "Cue 0"
    assert first["track"]["artists"] == ["Test Artist"]
    assert first["track"]["permission"] == "owner"
    assert 100 <= first["track"]["duration_ms"] <= 300
    assert set(first["track"]) == {"id", "title", "artists", "album", "duration_ms", "permission"}
    assert playlist["version"] == 5  # created, then four additions


def test_listing_pages_newest_first_with_summaries(harness: StackHarness, tmp_path: Path) -> None:
    # Given a user with three playlists, the middle one holding a track
    user = _user(harness)
    ids = []
    for title in ("First", "Second", "Third"):
        ids.append(_create(user.api, title)["id"])
        harness.clock.advance(timedelta(seconds=1))
    _add(user.api, ids[1], user.api.new_track(tmp_path, seconds=0.2))

    # When they page through their playlists two at a time
    first = _ok(user.api.get("/v1/playlists?limit=2"))
    second = _ok(user.api.get(f"/v1/playlists?limit=2&cursor={first['next_cursor']}"))

    # Then they see each once, newest first, with counts and their permission
    assert [p["title"] for p in first["items"]] == ["Third", "Second"]
    assert [p["title"] for p in second["items"]] == ["First"]
    assert second["next_cursor"] is None
    summary = first["items"][1]
    assert summary["track_count"] == 1
    assert summary["version"] == 2
    assert summary["permission"] == "owner"
    assert "entries" not in summary
    assert set(summary) == {
        "id",
        "owner_id",
        "title",
        "description",
        "track_count",
        "permission",
        "version",
        "created_at",
        "updated_at",
    }


def test_listing_by_scope_separates_owned_and_shared_playlists(harness: StackHarness) -> None:
    # Given a user with a playlist of their own, and two playlists shared with them (one revoked)
    me, friend = _user(harness), _user(harness)
    mine = _create(me.api, "Mine")["id"]
    harness.clock.advance(timedelta(seconds=1))
    shared = _create(friend.api, "Shared")["id"]
    revoked = _create(friend.api, "Revoked")["id"]
    _share(harness, friend, me, "edit", playlist_id=shared)
    _revoke(harness, _share(harness, friend, me, "view", playlist_id=revoked))

    def titles(scope: str) -> list[tuple[str, str]]:
        items = _ok(me.api.get(f"/v1/playlists?scope={scope}"))["items"]
        return [(p["title"], p["permission"]) for p in items]

    # Then each scope lists what it says, with the caller's permission; revoked shares are gone
    assert titles("owned") == [("Mine", "owner")]
    assert titles("shared") == [("Shared", "edit")]
    assert titles("all") == [("Shared", "edit"), ("Mine", "owner")]
    assert (
        _ok(me.api.get("/v1/playlists"))["items"]
        == _ok(me.api.get("/v1/playlists?scope=all"))["items"]
    )
    # and the friend's listing is unchanged by the shares
    assert [p["id"] for p in _ok(friend.api.get("/v1/playlists?scope=shared"))["items"]] == []
    assert mine not in [p["id"] for p in _ok(friend.api.get("/v1/playlists"))["items"]]


def test_a_cursor_from_another_scope_or_forged_is_refused(harness: StackHarness) -> None:
    from services.core.pagination import encode_cursor

    user = _user(harness)
    for title in ("a", "b"):
        _create(user.api, title)
    cursor = _ok(user.api.get("/v1/playlists?limit=1&scope=owned"))["next_cursor"]
    assert cursor
    _problem(user.api.get(f"/v1/playlists?scope=all&cursor={cursor}"), 400, "invalid_cursor")
    _problem(user.api.get("/v1/playlists?cursor=not-a-cursor"), 400, "invalid_cursor")
    forged = encode_cursor({"scope": "playlists|all", "at": "yesterday", "id": UNKNOWN})
    _problem(user.api.get(f"/v1/playlists?cursor={forged}"), 400, "invalid_cursor")


@pytest.mark.parametrize("query", ["scope=mine", "limit=0", "limit=101"])
def test_bad_listing_parameters_are_validation_errors(
    owner: tuple[User, list[str]], query: str
) -> None:
    _problem(owner[0].api.get(f"/v1/playlists?{query}"), 422, "validation_failed")


# -- rename, describe, delete -------------------------------------------------------------------


def test_renaming_and_describing_bumps_the_version(owner: tuple[User, list[str]]) -> None:
    api = owner[0].api
    playlist = _create(api, "Draft")
    pid = playlist["id"]

    renamed = api.patch(f"/v1/playlists/{pid}", json={"title": " Final "})
    assert _ok(renamed)["title"] == "Final"
    assert (renamed.json()["version"], renamed.headers["etag"]) == (2, '"2"')

    described = _ok(
        api.patch(
            f"/v1/playlists/{pid}", json={"description": "Spots"}, headers={"If-Match": '"2"'}
        )
    )
    assert (described["title"], described["description"], described["version"]) == (
        "Final",
        "Spots",
        3,
    )
    assert described["updated_at"] >= playlist["updated_at"]
    # an empty patch changes nothing
    assert _ok(api.patch(f"/v1/playlists/{pid}", json={}))["version"] == 3


@pytest.mark.parametrize(
    "body",
    [{"title": None}, {"description": None}, {"title": ""}, {"version": 9}, {"owner_id": UNKNOWN}],
    ids=["null-title", "null-description", "empty-title", "version", "owner"],
)
def test_patching_anything_else_is_refused(
    owner: tuple[User, list[str]], body: dict[str, Any]
) -> None:
    api = owner[0].api
    pid = _create(api)["id"]
    _problem(api.patch(f"/v1/playlists/{pid}", json=body), 422, "validation_failed")
    assert _get(api, pid)["version"] == 1


def test_patching_a_stale_version_is_a_conflict_naming_the_current_one(
    owner: tuple[User, list[str]],
) -> None:
    # Given a playlist someone renamed since the client read version 1
    api = owner[0].api
    pid = _create(api, "One")["id"]
    _ok(api.patch(f"/v1/playlists/{pid}", json={"title": "Two"}))

    # When the client renames it from version 1
    stale = api.patch(f"/v1/playlists/{pid}", json={"title": "Three"}, headers={"If-Match": '"1"'})

    # Then it is told the current version and nothing changed
    assert _problem(stale, 409, "version_conflict")["current_version"] == 2
    assert _get(api, pid)["title"] == "Two"
    # a weak ETag of the current version works; a malformed one is a client error
    fresh = api.patch(f"/v1/playlists/{pid}", json={"title": "Four"}, headers={"If-Match": 'W/"2"'})
    assert _ok(fresh)["version"] == 3
    bad = api.patch(f"/v1/playlists/{pid}", json={"title": "x"}, headers={"If-Match": "abc"})
    _problem(bad, 400, "invalid_if_match")


def test_deleting_a_playlist_removes_it_and_its_entries(
    harness: StackHarness, filled: tuple[User, dict[str, Any], list[str]]
) -> None:
    user, playlist, _ = filled
    pid = playlist["id"]
    assert user.api.delete(f"/v1/playlists/{pid}").status_code == 204
    _problem(user.api.get(f"/v1/playlists/{pid}"), 404, "playlist_not_found")
    _problem(user.api.delete(f"/v1/playlists/{pid}"), 404, "playlist_not_found")
    assert pid not in [p["id"] for p in _ok(user.api.get("/v1/playlists?limit=100"))["items"]]
    assert _stored_positions(harness, pid) == []
    # the tracks themselves are untouched
    for entry in playlist["entries"]:
        assert user.api.get(f"/v1/tracks/{entry['track']['id']}").status_code == 200


# -- adding and removing ------------------------------------------------------------------------


def test_adding_at_a_position_inserts_there_and_by_default_at_the_end(
    owner: tuple[User, list[str]],
) -> None:
    user, (a, b, c, d) = owner
    pid = _create(user.api)["id"]

    # When tracks are added at the end, at the front, in the middle, and one twice
    _add(user.api, pid, a)
    _add(user.api, pid, b)
    front = user.api.post(f"/v1/playlists/{pid}/tracks", json={"track_id": c, "position": 0})
    middle = _add(user.api, pid, d, position=2)
    again = _add(user.api, pid, a, position=4)

    # Then each lands where asked, the same track may appear twice, and versions move on
    added = _ok(front, 201)
    assert front.headers["etag"] == '"4"'
    assert added["playlist_version"] == 4
    assert added["entry"]["position"] == 0
    assert added["entry"]["track"]["id"] == c
    assert added["entry"]["available"] is True
    assert middle["entry"]["position"] == 2
    playlist = _get(user.api, pid)
    assert _track_order(playlist) == [c, a, d, b, a]
    assert _order(playlist)[2] == middle["entry"]["id"]
    assert _order(playlist)[4] == again["entry"]["id"] != _order(playlist)[1]
    assert playlist["version"] == 6


def test_adding_beyond_the_end_is_out_of_range(owner: tuple[User, list[str]]) -> None:
    user, tracks = owner
    pid = _create(user.api)["id"]
    _add(user.api, pid, tracks[0])
    body = _problem(
        user.api.post(f"/v1/playlists/{pid}/tracks", json={"track_id": tracks[1], "position": 2}),
        422,
        "position_out_of_range",
    )
    assert body["entry_count"] == 1
    negative = {"track_id": tracks[1], "position": -1}
    _problem(user.api.post(f"/v1/playlists/{pid}/tracks", json=negative), 422, "validation_failed")
    # position == length is the end
    assert _add(user.api, pid, tracks[1], position=1)["entry"]["position"] == 1
    assert _get(user.api, pid)["version"] == 3


def test_a_full_playlist_refuses_another_track(
    harness: StackHarness, owner: tuple[User, list[str]]
) -> None:
    # Given a playlist that already holds 500 entries (written straight to the database)
    user, tracks = owner
    pid = _create(user.api)["id"]
    now = harness.clock.now()
    with harness.stack.deps.pool.connection() as conn:
        conn.execute(
            """INSERT INTO playlist_entries (id, playlist_id, track_id, position, added_at)
               SELECT gen_random_uuid(), %s, %s, n, %s FROM generate_series(0, 499) n""",
            (pid, tracks[0], now),
        )

    # When one more is added
    response = user.api.post(f"/v1/playlists/{pid}/tracks", json={"track_id": tracks[1]})

    # Then it is refused, and the playlist is unchanged
    assert _problem(response, 422, "playlist_full")["max_entries"] == 500
    playlist = _get(user.api, pid)
    assert (playlist["track_count"], playlist["version"]) == (500, 1)
    # and after removing one, there is room again
    removed = user.api.delete(f"/v1/playlists/{pid}/tracks/{playlist['entries'][0]['id']}")
    assert removed.status_code == 204
    assert _add(user.api, pid, tracks[1])["entry"]["position"] == 499


def test_removing_an_entry_closes_the_gap(
    harness: StackHarness, filled: tuple[User, dict[str, Any], list[str]]
) -> None:
    user, playlist, entries = filled
    pid = playlist["id"]

    response = user.api.delete(f"/v1/playlists/{pid}/tracks/{entries[1]}")

    assert response.status_code == 204
    assert response.headers["etag"] == '"6"'
    after = _get(user.api, pid)
    assert _order(after) == [entries[0], entries[2], entries[3]]
    assert after["version"] == 6
    assert _stored_positions(harness, pid) == [0, 1, 2]


def test_removing_an_unknown_entry_or_one_of_another_playlist_is_not_found(
    filled: tuple[User, dict[str, Any], list[str]],
) -> None:
    user, playlist, entries = filled
    other = _create(user.api)["id"]
    _problem(user.api.delete(f"/v1/playlists/{other}/tracks/{entries[0]}"), 404, "entry_not_found")
    _problem(user.api.delete(f"/v1/playlists/{other}/tracks/{UNKNOWN}"), 404, "entry_not_found")
    assert _order(_get(user.api, playlist["id"])) == entries
    assert _get(user.api, other)["version"] == 1


def test_add_and_remove_honour_if_match(filled: tuple[User, dict[str, Any], list[str]]) -> None:
    user, playlist, entries = filled
    pid, track = playlist["id"], playlist["entries"][0]["track"]["id"]
    stale = {"If-Match": '"1"'}

    added = user.api.post(f"/v1/playlists/{pid}/tracks", json={"track_id": track}, headers=stale)
    removed = user.api.delete(f"/v1/playlists/{pid}/tracks/{entries[0]}", headers=stale)

    assert _problem(added, 409, "version_conflict")["current_version"] == 5
    assert _problem(removed, 409, "version_conflict")["current_version"] == 5
    assert _order(_get(user.api, pid)) == entries
    current = {"If-Match": '"5"'}
    ok = user.api.post(f"/v1/playlists/{pid}/tracks", json={"track_id": track}, headers=current)
    assert _ok(ok, 201)["playlist_version"] == 6


def test_a_track_the_caller_cannot_stream_cannot_be_added(
    harness: StackHarness, tmp_path: Path
) -> None:
    # Given a user's playlist, and tracks of someone else: unshared, shared to view, to stream
    me, other = _user(harness), _user(harness)
    pid = _create(me.api)["id"]
    folder = tmp_path
    hidden, viewable, streamable = (other.api.new_track(folder, seconds=0.2) for _ in range(3))
    _share(harness, other, me, "view", track_id=viewable)
    _share(harness, other, me, "stream", track_id=streamable)

    def add(track_id: str) -> httpx.Response:
        return me.api.post(f"/v1/playlists/{pid}/tracks", json={"track_id": track_id})

    # Then an invisible or unknown track is not found, a view-only one is not allowed
    _problem(add(hidden), 404, "track_not_found")
    _problem(add(UNKNOWN), 404, "track_not_found")
    _problem(add(viewable), 403, "permission_denied")
    # and one they may stream is added, shown with their permission on it
    entry = _ok(add(streamable), 201)["entry"]
    assert entry["track"]["permission"] == "stream"
    assert _get(me.api, pid)["version"] == 2


def test_a_track_whose_share_was_revoked_shows_as_unavailable_without_metadata(
    harness: StackHarness, tmp_path: Path
) -> None:
    # Given a playlist holding a track shared with its owner, and the playlist shared onwards
    me, other, friend = _user(harness), _user(harness), _user(harness)
    folder = tmp_path
    theirs = other.api.new_track(folder, title="Secret Demo", seconds=0.2)
    mine = me.api.new_track(folder, seconds=0.2)
    share = _share(harness, other, me, "stream", track_id=theirs)
    pid = _create(me.api)["id"]
    _add(me.api, pid, mine)
    _add(me.api, pid, theirs)
    _share(harness, me, friend, "view", playlist_id=pid)
    assert _track_order(_get(friend.api, pid)) == [mine, theirs]

    # When the track's owner revokes the share
    _revoke(harness, share)

    # Then neither the playlist's owner nor its grantee sees anything of that track
    for user in (me, friend):
        response = user.api.get(f"/v1/playlists/{pid}")
        playlist = _ok(response)
        assert [e["available"] for e in playlist["entries"]] == [True, False]
        assert playlist["entries"][1]["track"] is None
        assert playlist["track_count"] == 2
        assert "Secret Demo" not in response.text and theirs not in response.text
    # and the entry can still be removed by the owner
    gone = playlist["entries"][1]["id"]
    assert me.api.delete(f"/v1/playlists/{pid}/tracks/{gone}").status_code == 204


def test_a_track_deleted_from_the_library_leaves_no_gap(
    harness: StackHarness, tmp_path: Path
) -> None:
    user = _user(harness)
    tracks = [user.api.new_track(tmp_path, seconds=0.2) for _ in range(3)]
    pid = _create(user.api)["id"]
    for t in tracks:
        _add(user.api, pid, t)

    assert user.api.delete(f"/v1/tracks/{tracks[1]}").status_code == 204

    playlist = _get(user.api, pid)
    assert _track_order(playlist) == [tracks[0], tracks[2]]
    _order(playlist)  # positions as shown are 0..n-1
    # the next write renumbers what is stored
    user.api.delete(f"/v1/playlists/{pid}/tracks/{playlist['entries'][0]['id']}")
    assert _stored_positions(harness, pid) == [0]


# -- reordering ---------------------------------------------------------------------------------


def test_reorder_puts_the_entries_in_the_new_order(
    harness: StackHarness, filled: tuple[User, dict[str, Any], list[str]]
) -> None:
    user, playlist, entries = filled
    pid = playlist["id"]
    new_order = [entries[2], entries[0], entries[3], entries[1]]

    response = user.api.put(
        f"/v1/playlists/{pid}/order", json={"entry_ids": new_order}, headers={"If-Match": '"5"'}
    )

    reordered = _ok(response)
    assert response.headers["etag"] == '"6"'
    assert _order(reordered) == new_order
    assert _order(_get(user.api, pid)) == new_order
    assert _stored_positions(harness, pid) == [0, 1, 2, 3]
    # the version may come in the body instead of If-Match
    back = user.api.put(f"/v1/playlists/{pid}/order", json={"entry_ids": entries, "version": 6})
    assert _order(_ok(back)) == entries


@pytest.mark.parametrize(
    "change",
    ["missing", "extra", "unknown", "duplicated", "empty"],
)
def test_reorder_must_name_exactly_the_current_entries(
    filled: tuple[User, dict[str, Any], list[str]], change: str
) -> None:
    user, playlist, entries = filled
    pid = playlist["id"]
    other = _create(user.api)["id"]
    foreign = _add(user.api, other, playlist["entries"][0]["track"]["id"])["entry"]["id"]
    proposed = {
        "missing": entries[:3],
        "extra": [*entries, foreign],
        "unknown": [*entries[:3], UNKNOWN],
        "duplicated": [*entries[:3], entries[0]],
        "empty": [],
    }[change]

    response = user.api.put(
        f"/v1/playlists/{pid}/order", json={"entry_ids": proposed}, headers={"If-Match": '"5"'}
    )

    body = _problem(response, 409, "order_mismatch")
    assert body["current_version"] == 5
    assert body["entry_ids"] == entries
    after = _get(user.api, pid)
    assert (_order(after), after["version"]) == (entries, 5)


def test_reorder_from_a_stale_version_is_a_conflict(
    filled: tuple[User, dict[str, Any], list[str]],
) -> None:
    user, playlist, entries = filled
    pid = playlist["id"]
    reversed_order = entries[::-1]

    stale = user.api.put(
        f"/v1/playlists/{pid}/order", json={"entry_ids": reversed_order, "version": 4}
    )

    assert _problem(stale, 409, "version_conflict")["current_version"] == 5
    assert _order(_get(user.api, pid)) == entries


def test_reorder_without_a_version_is_refused(
    filled: tuple[User, dict[str, Any], list[str]],
) -> None:
    user, playlist, entries = filled
    pid = playlist["id"]
    url = f"/v1/playlists/{pid}/order"
    _problem(user.api.put(url, json={"entry_ids": entries}), 428, "version_required")
    two = user.api.put(url, json={"entry_ids": entries, "version": 5}, headers={"If-Match": '"4"'})
    _problem(two, 400, "conflicting_versions")
    bad = user.api.put(url, json={"entry_ids": ["nope"], "version": 5})
    _problem(bad, 422, "validation_failed")
    assert _get(user.api, pid)["version"] == 5


def test_concurrent_reorders_from_one_version_one_wins_the_other_is_told(
    harness: StackHarness, filled: tuple[User, dict[str, Any], list[str]]
) -> None:
    # Given two clients that read the playlist at the same version
    user, playlist, entries = filled
    pid, version = playlist["id"], playlist["version"]
    orders = {"left": entries[::-1], "right": [entries[1], entries[0], entries[3], entries[2]]}
    barrier = threading.Barrier(2)
    results: dict[str, httpx.Response] = {}

    def send(name: str) -> None:
        barrier.wait()
        results[name] = user.api.put(
            f"/v1/playlists/{pid}/order",
            json={"entry_ids": orders[name]},
            headers={"If-Match": f'"{version}"'},
        )

    # When both send their new order at once
    threads = [threading.Thread(target=send, args=(name,)) for name in orders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    # Then exactly one wins; the other is told the version it missed
    statuses = sorted(r.status_code for r in results.values())
    assert statuses == [200, 409], {k: r.text for k, r in results.items()}
    winner = next(name for name, r in results.items() if r.status_code == 200)
    loser = next(name for name, r in results.items() if r.status_code == 409)
    assert _problem(results[loser], 409, "version_conflict")["current_version"] == version + 1
    # and the playlist holds the winner's order, every entry once, positions dense
    after = _get(user.api, pid)
    assert _order(after) == orders[winner]
    assert after["version"] == version + 1
    assert _stored_positions(harness, pid) == [0, 1, 2, 3]


def test_concurrent_writers_take_turns_on_the_row_lock(
    harness: StackHarness,
    filled: tuple[User, dict[str, Any], list[str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Below the HTTP layer (the local stack runs one request per service at a time), two
    transactions reach the lock together: the second waits, then sees the version it missed."""
    from ingest.events.emitter import Emitter
    from services.core.errors import ProblemError
    from services.core.principal import Principal
    from services.playlists import repository
    from services.playlists.logic import Playlists

    # Given two writers holding the same version, both past their access check
    user, playlist, entries = filled
    pid, version = uuid.UUID(playlist["id"]), playlist["version"]
    caller = Principal(uuid.UUID(user.id), "test", "test", None, None)
    deps = harness.stack.deps
    barrier = threading.Barrier(2, timeout=10)
    real_lock = repository.lock_playlist

    def lock_together(conn: Any, playlist_id: uuid.UUID) -> Any:
        barrier.wait()
        return real_lock(conn, playlist_id)

    monkeypatch.setattr(repository, "lock_playlist", lock_together)
    orders = {
        "left": [uuid.UUID(e) for e in entries[::-1]],
        "right": [uuid.UUID(e) for e in entries[1:] + entries[:1]],
    }
    outcomes: dict[str, object] = {}

    def reorder(name: str) -> None:
        events = Emitter(deps.events, deps.clock, source="playlists")
        logic = Playlists(deps.pool, deps.clock, events)
        try:
            outcomes[name] = logic.reorder(caller, pid, orders[name], version)
        except ProblemError as exc:
            outcomes[name] = exc

    # When both reorder at once
    threads = [threading.Thread(target=reorder, args=(name,)) for name in orders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    # Then one committed and the other was refused with the version it missed
    errors = [o for o in outcomes.values() if isinstance(o, ProblemError)]
    assert len(outcomes) == 2 and len(errors) == 1, outcomes
    assert (errors[0].status, errors[0].code) == (409, "version_conflict")
    assert errors[0].extra["current_version"] == version + 1
    winner = next(name for name, o in outcomes.items() if not isinstance(o, ProblemError))
    monkeypatch.undo()
    after = _get(user.api, str(pid))
    assert _order(after) == [str(e) for e in orders[winner]]
    assert _stored_positions(harness, str(pid)) == [0, 1, 2, 3]


# -- who may do what ----------------------------------------------------------------------------


def _every_route(api: Api, pid: str, entry_id: str, track_id: str) -> dict[str, httpx.Response]:
    base = f"/v1/playlists/{pid}"
    return {
        "get": api.get(base),
        "patch": api.patch(base, json={"title": "mine now"}),
        "add": api.post(f"{base}/tracks", json={"track_id": track_id}),
        "remove": api.delete(f"{base}/tracks/{entry_id}"),
        "reorder": api.put(f"{base}/order", json={"entry_ids": [entry_id], "version": 99}),
        "delete": api.delete(base),
    }


def test_no_route_lets_another_user_see_or_touch_a_playlist(
    harness: StackHarness,
    filled: tuple[User, dict[str, Any], list[str]],
    tmp_path: Path,
) -> None:
    user, playlist, entries = filled
    mallory = _user(harness)
    own_track = mallory.api.new_track(tmp_path, seconds=0.2)

    responses = _every_route(mallory.api, playlist["id"], entries[0], own_track)

    for name, response in responses.items():
        assert response.status_code == 404, (name, response.text)
        _problem(response, 404, "playlist_not_found")
    assert playlist["id"] not in [p["id"] for p in _ok(mallory.api.get("/v1/playlists"))["items"]]
    assert _get(user.api, playlist["id"]) == playlist


def test_a_view_grantee_can_read_but_every_write_is_forbidden(
    harness: StackHarness,
    filled: tuple[User, dict[str, Any], list[str]],
    tmp_path: Path,
) -> None:
    # Given a playlist shared with a user for viewing
    owner_user, playlist, entries = filled
    viewer = _user(harness)
    _share(harness, owner_user, viewer, "view", playlist_id=playlist["id"])
    own_track = viewer.api.new_track(tmp_path, seconds=0.2)

    responses = _every_route(viewer.api, playlist["id"], entries[0], own_track)

    # Then they read it (its tracks streamable for them, as a shared playlist grants)
    seen = _ok(responses.pop("get"))
    assert seen["permission"] == "view"
    assert _order(seen) == entries
    assert {e["track"]["permission"] for e in seen["entries"]} == {"stream"}
    # and every write is forbidden
    for name, response in responses.items():
        body = _problem(response, 403, "permission_denied")
        assert body["permission"] == "view", name
    assert _get(owner_user.api, playlist["id"]) == playlist


def test_an_edit_grantee_can_change_the_playlist_but_not_delete_it(
    harness: StackHarness,
    filled: tuple[User, dict[str, Any], list[str]],
    tmp_path: Path,
) -> None:
    # Given a playlist shared with a user for editing
    owner_user, playlist, entries = filled
    pid = playlist["id"]
    editor = _user(harness)
    _share(harness, owner_user, editor, "edit", playlist_id=pid)
    own_track = editor.api.new_track(tmp_path, seconds=0.2)
    assert _get(editor.api, pid)["permission"] == "edit"

    # When they rename, add their own track, remove an entry and reorder
    _ok(editor.api.patch(f"/v1/playlists/{pid}", json={"title": "Edited"}))
    added = _add(editor.api, pid, own_track, position=0)["entry"]["id"]
    assert editor.api.delete(f"/v1/playlists/{pid}/tracks/{entries[0]}").status_code == 204
    new_order = [entries[3], added, entries[1], entries[2]]
    _ok(editor.api.put(f"/v1/playlists/{pid}/order", json={"entry_ids": new_order, "version": 8}))

    # Then the owner sees every change
    after = _get(owner_user.api, pid)
    assert after["title"] == "Edited"
    assert _order(after) == new_order
    assert after["version"] == 9
    # but the editor cannot delete the playlist
    body = _problem(editor.api.delete(f"/v1/playlists/{pid}"), 403, "permission_denied")
    assert body["permission"] == "edit"
    assert _get(owner_user.api, pid)["version"] == 9


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/playlists"),
        ("POST", "/v1/playlists"),
        ("GET", f"/v1/playlists/{UNKNOWN}"),
        ("PATCH", f"/v1/playlists/{UNKNOWN}"),
        ("DELETE", f"/v1/playlists/{UNKNOWN}"),
        ("POST", f"/v1/playlists/{UNKNOWN}/tracks"),
        ("DELETE", f"/v1/playlists/{UNKNOWN}/tracks/{UNKNOWN}"),
        ("PUT", f"/v1/playlists/{UNKNOWN}/order"),
    ],
)
def test_every_route_needs_a_valid_token(harness: StackHarness, method: str, path: str) -> None:
    _problem(harness.client.request(method, path), 401, "token_missing")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/playlists/not-a-uuid"),
        ("PATCH", "/v1/playlists/not-a-uuid"),
        ("DELETE", "/v1/playlists/not-a-uuid"),
        ("POST", "/v1/playlists/not-a-uuid/tracks"),
        ("DELETE", f"/v1/playlists/{UNKNOWN}/tracks/not-a-uuid"),
        ("PUT", "/v1/playlists/not-a-uuid/order"),
    ],
)
def test_malformed_ids_are_validation_errors(
    owner: tuple[User, list[str]], method: str, path: str
) -> None:
    bodies = {"POST": {"track_id": UNKNOWN}, "PATCH": {"title": "x"}, "PUT": {"entry_ids": []}}
    json = bodies.get(method)
    _problem(owner[0].api.request(method, path, json=json), 422, "validation_failed")


def test_unknown_playlist_is_not_found_on_every_route(owner: tuple[User, list[str]]) -> None:
    user, tracks = owner
    for name, response in _every_route(user.api, UNKNOWN, UNKNOWN, tracks[0]).items():
        assert response.status_code == 404, name
        _problem(response, 404, "playlist_not_found")


# -- events -------------------------------------------------------------------------------------


def test_each_playlist_action_emits_its_usage_event(
    harness: StackHarness, owner: tuple[User, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a sink that records what the services send
    sink = RecordingSink()
    monkeypatch.setattr(harness.stack.deps, "events", sink)
    user, tracks = owner

    # When the user creates, edits, fills, reorders, empties and deletes a playlist
    pid = _create(user.api)["id"]
    user.api.patch(
        f"/v1/playlists/{pid}",
        json={"title": "T", "description": "D"},
        headers={"X-Correlation-Id": "c-7"},
    )
    first = _add(user.api, pid, tracks[0])["entry"]["id"]
    second = _add(user.api, pid, tracks[1])["entry"]["id"]
    user.api.put(f"/v1/playlists/{pid}/order", json={"entry_ids": [second, first], "version": 4})
    user.api.delete(f"/v1/playlists/{pid}/tracks/{first}")
    user.api.delete(f"/v1/playlists/{pid}")
    # and a refused write emits nothing
    user.api.patch(f"/v1/playlists/{pid}", json={"title": "gone"})

    # Then each action is one event, by that user, naming the playlist (and track)
    assert [e.event_type for e in sink.events] == [
        "playlist_created",
        "playlist_updated",
        "playlist_track_added",
        "playlist_track_added",
        "playlist_reordered",
        "playlist_track_removed",
        "playlist_deleted",
    ]
    assert {e.actor_id for e in sink.events} == {user.id}
    assert {e.actor_type for e in sink.events} == {"user"}
    assert {e.source for e in sink.events} == {"playlists"}
    assert {str(e.playlist_id) for e in sink.events} == {pid}
    by_kind = {e.event_type: e for e in sink.events}
    assert by_kind["playlist_updated"].properties == {"fields": ["description", "title"]}
    assert by_kind["playlist_updated"].correlation_id == "c-7"
    assert [str(e.track_id) for e in sink.events if e.event_type == "playlist_track_added"] == [
        tracks[0],
        tracks[1],
    ]
    assert str(by_kind["playlist_track_removed"].track_id) == tracks[0]
    assert len({e.event_id for e in sink.events}) == len(sink.events)


def test_the_openapi_document_describes_the_playlist_routes(harness: StackHarness) -> None:
    spec = harness.client.get("/openapi.json").json()
    assert {
        "/v1/playlists",
        "/v1/playlists/{playlist_id}",
        "/v1/playlists/{playlist_id}/tracks",
        "/v1/playlists/{playlist_id}/tracks/{entry_id}",
        "/v1/playlists/{playlist_id}/order",
    } <= set(spec["paths"])
    assert {"PlaylistOut", "PlaylistPage", "PlaylistEntryOut"} <= set(spec["components"]["schemas"])
