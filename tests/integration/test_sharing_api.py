"""The sharing API end to end through the local gateway, on real PostgreSQL and Redis."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.core.pagination import encode_cursor
from tests.support.events import RecordingSink
from tests.support.stack import Api, StackHarness

pytestmark = pytest.mark.integration


def _problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    return body


def _ok(response: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


def _person(harness: StackHarness, name: str | None = None, **claims: Any) -> Api:
    """A signed-in user with a subject of their own (and the given token claims)."""
    subject = f"{(name or 'user').split()[0].lower()}-{uuid.uuid4().hex[:8]}"
    return Api(harness.client, harness.stack.idp.mint(subject, name=name, **claims))


def _me(api: Api) -> str:
    user_id: str = _ok(api.get("/v1/me"))["id"]
    return user_id


def _address() -> str:
    """An address nobody has signed in with yet."""
    return f"nobody-{uuid.uuid4().hex[:10]}@elsewhere.test"


def _share(
    api: Api, object_id: str, permission: str = "view", object_type: str = "track", **grantee: Any
) -> httpx.Response:
    body = {"object_type": object_type, "object_id": object_id, "permission": permission}
    return api.post("/v1/shares", json={**body, **grantee})


def _playlist(harness: StackHarness, owner: Api, title: str = "Late Night") -> str:
    """A playlist row of the owner's, made in SQL (the playlists API is not the subject here)."""
    playlist_id = uuid.uuid4()
    now = harness.clock.now()
    with harness.stack.deps.pool.connection() as conn:
        conn.execute(
            "INSERT INTO playlists (id, owner_id, title, created_at, updated_at) "
            "VALUES (%s, %s, %s, %s, %s)",
            (playlist_id, _me(owner), title, now, now),
        )
    return str(playlist_id)


def _ids(page: dict[str, Any]) -> list[str]:
    return [item["id"] for item in page["items"]]


@pytest.fixture
def owner(harness: StackHarness, tmp_path: Path) -> tuple[Api, str]:
    """A user with one track of their own, titled 'Night Drive'."""
    api = _person(harness, "Olive Owner")
    return api, api.new_track(tmp_path, title="Night Drive")


@pytest.fixture
def sink(harness: StackHarness, monkeypatch: pytest.MonkeyPatch) -> RecordingSink:
    recording = RecordingSink()
    monkeypatch.setattr(harness.stack.deps, "events", recording)
    return recording


# -- making shares ------------------------------------------------------------------------------


def test_a_share_by_user_id_is_active_at_once_and_does_not_reveal_the_grantees_address(
    harness: StackHarness, owner: tuple[Api, str]
) -> None:
    # Given a track owner and another user known by id
    api, track_id = owner
    grantee = _person(harness, "Gina Grantee")
    grantee_id = _me(grantee)

    # When the owner shares the track with that user id
    response = _share(api, track_id, "stream", grantee_user_id=grantee_id)

    # Then the share is made, active, and shows both people but not the grantee's address
    share = _ok(response, 201)
    assert response.headers["location"] == f"/v1/shares/{share['id']}"
    assert share["object_type"] == "track"
    assert share["object_id"] == track_id
    assert share["object_title"] == "Night Drive"
    assert share["owner"] == {"id": _me(api), "name": "Olive Owner"}
    assert share["grantee"] == {"user_id": grantee_id, "email": None, "name": "Gina Grantee"}
    assert (share["permission"], share["status"], share["version"]) == ("stream", "active", 1)
    assert share["created_at"] == share["updated_at"]
    # And owner and grantee read the same share
    assert _ok(api.get(f"/v1/shares/{share['id']}")) == share
    assert _ok(grantee.get(f"/v1/shares/{share['id']}")) == share


def test_a_share_by_the_address_of_a_verified_account_is_theirs_at_once(
    harness: StackHarness, owner: tuple[Api, str]
) -> None:
    # Given a user whose identity provider vouches for their address
    api, track_id = owner
    address = _address()
    grantee = _person(harness, email=address)
    grantee_id = _me(grantee)

    # When the owner shares with that address, typed with capitals and spaces
    share = _ok(_share(api, track_id, grantee_email=f"  {address.upper()} "), 201)

    # Then the share is active for that user, showing the address as stored (lowercase)
    assert share["status"] == "active"
    assert share["grantee"]["user_id"] == grantee_id
    assert share["grantee"]["email"] == address
    assert _ids(_ok(grantee.get("/v1/shares"))) == [share["id"]]
    assert _ok(grantee.get(f"/v1/tracks/{track_id}"))["permission"] == "view"


def test_a_share_to_an_unknown_address_waits_and_attaches_at_its_first_sign_in(
    harness: StackHarness, owner: tuple[Api, str]
) -> None:
    # Given a share to an address nobody has signed in with
    api, track_id = owner
    address = _address()
    pending = _ok(_share(api, track_id, "stream", grantee_email=address), 201)
    assert pending["status"] == "pending"
    assert pending["grantee"] == {"user_id": None, "email": address, "name": None}
    assert _ids(_ok(api.get("/v1/shares?direction=outgoing"))) == [pending["id"]]

    # When that address signs in for the first time (the provider vouching for it)
    newcomer = harness.user(f"newcomer-{uuid.uuid4().hex[:8]}", email=address)

    # Then the share is theirs: in their incoming list, active, and it gives access
    incoming = _ok(newcomer.get("/v1/shares"))
    assert _ids(incoming) == [pending["id"]]
    attached = incoming["items"][0]
    assert attached["status"] == "active"
    assert attached["grantee"]["user_id"] == _me(newcomer)
    assert attached["version"] == 2
    assert _ok(api.get(f"/v1/shares/{pending['id']}")) == attached
    assert _ok(newcomer.get(f"/v1/tracks/{track_id}"))["permission"] == "stream"
    assert newcomer.get(f"/v1/tracks/{track_id}/stream").status_code == 200


def test_an_address_the_provider_does_not_vouch_for_gets_no_pending_share(
    harness: StackHarness, owner: tuple[Api, str], tmp_path: Path
) -> None:
    # Given a pending share to an address
    api, track_id = owner
    address = _address()
    share = _ok(_share(api, track_id, grantee_email=address), 201)

    # When someone signs in with that address, unverified
    subject = f"claimer-{uuid.uuid4().hex[:8]}"
    unverified = Api(
        harness.client, harness.stack.idp.mint(subject, email=address, email_verified=False)
    )

    # Then they get nothing: no incoming share, no track
    assert _ok(unverified.get("/v1/shares"))["items"] == []
    _problem(unverified.get(f"/v1/tracks/{track_id}"), 404, "track_not_found")
    _problem(unverified.get(f"/v1/shares/{share['id']}"), 404, "share_not_found")
    assert _ok(api.get(f"/v1/shares/{share['id']}"))["status"] == "pending"
    # And a new share to that address is still pending rather than theirs
    other_track = api.new_track(tmp_path)
    assert _ok(_share(api, other_track, grantee_email=address), 201)["status"] == "pending"

    # When the provider later vouches for the same account's address
    verified = Api(harness.client, harness.stack.idp.mint(subject, email=address))

    # Then both shares attach to that account
    assert len(_ok(verified.get("/v1/shares"))["items"]) == 2
    assert _ok(verified.get(f"/v1/tracks/{track_id}"))["permission"] == "view"


def test_a_pending_share_the_user_already_has_directly_is_withdrawn_at_attachment(
    harness: StackHarness, owner: tuple[Api, str]
) -> None:
    # Given an account whose address is not yet vouched for, shared a track both by address
    # (pending) and by its user id (live)
    api, track_id = owner
    address = _address()
    subject = f"twice-{uuid.uuid4().hex[:8]}"
    unverified = Api(
        harness.client, harness.stack.idp.mint(subject, email=address, email_verified=False)
    )
    pending = _ok(_share(api, track_id, "view", grantee_email=address), 201)
    direct = _ok(_share(api, track_id, "download", grantee_user_id=_me(unverified)), 201)

    # When the provider vouches for the address
    verified = Api(harness.client, harness.stack.idp.mint(subject, email=address))

    # Then the direct share stands, and the pending one is withdrawn rather than left pending
    assert _ids(_ok(verified.get("/v1/shares"))) == [direct["id"]]
    assert _ids(_ok(api.get("/v1/shares?direction=outgoing"))) == [direct["id"]]
    _problem(api.get(f"/v1/shares/{pending['id']}"), 404, "share_not_found")
    assert _ok(verified.get(f"/v1/tracks/{track_id}"))["permission"] == "download"


def test_an_address_of_several_verified_accounts_is_shared_with_the_earliest(
    harness: StackHarness, owner: tuple[Api, str]
) -> None:
    # Given two accounts (two providers' subjects) vouched for with the same address
    api, track_id = owner
    address = _address()
    first = _person(harness, email=address)
    first_id = _me(first)
    harness.clock.advance(timedelta(seconds=1))
    second = _person(harness, email=address)
    assert _me(second) != first_id

    # When the owner shares with that address
    share = _ok(_share(api, track_id, grantee_email=address), 201)

    # Then the share is for the account created first
    assert share["grantee"]["user_id"] == first_id
    _problem(second.get(f"/v1/tracks/{track_id}"), 404, "track_not_found")


def test_sharing_again_with_the_same_grantee_changes_the_live_shares_permission(
    harness: StackHarness, owner: tuple[Api, str]
) -> None:
    # Given a view share to a user, by user id
    api, track_id = owner
    address = _address()
    grantee = _person(harness, email=address)
    first = _ok(_share(api, track_id, "view", grantee_user_id=_me(grantee)), 201)

    # When the owner shares the same track with them again, at download, by their address
    again = _share(api, track_id, "download", grantee_email=address)

    # Then the same share now has the new permission and a new version
    changed = _ok(again, 200)
    assert changed["id"] == first["id"]
    assert (changed["permission"], changed["version"]) == ("download", 2)
    assert changed["updated_at"] >= first["updated_at"]
    assert _ok(grantee.get(f"/v1/tracks/{track_id}"))["permission"] == "download"
    # And asking for the permission it already has changes nothing
    same = _ok(_share(api, track_id, "download", grantee_user_id=_me(grantee)), 200)
    assert (same["id"], same["version"]) == (first["id"], 2)
    # And there is still one share of the track
    outgoing = _ok(api.get("/v1/shares?direction=outgoing"))
    assert [s["id"] for s in outgoing["items"] if s["object_id"] == track_id] == [first["id"]]


def test_sharing_again_with_the_same_pending_address_changes_the_pending_share(
    harness: StackHarness, owner: tuple[Api, str]
) -> None:
    api, track_id = owner
    address = _address()
    first = _ok(_share(api, track_id, "view", grantee_email=address), 201)

    changed = _ok(_share(api, track_id, "stream", grantee_email=address.upper()), 200)

    assert (changed["id"], changed["permission"], changed["version"]) == (first["id"], "stream", 2)
    assert changed["status"] == "pending"


def test_a_playlist_is_shared_at_its_own_permissions(
    harness: StackHarness, owner: tuple[Api, str]
) -> None:
    api, _ = owner
    playlist_id = _playlist(harness, api, "Sync Picks")
    grantee = _person(harness)

    share = _ok(_share(api, playlist_id, "edit", "playlist", grantee_user_id=_me(grantee)), 201)

    assert (share["object_type"], share["object_id"]) == ("playlist", playlist_id)
    assert (share["object_title"], share["permission"]) == ("Sync Picks", "edit")
    listed = _ok(grantee.get("/v1/shares?object_type=playlist"))
    assert _ids(listed) == [share["id"]]


@pytest.mark.parametrize(
    ("object_type", "permission"),
    [
        ("track", "edit"),
        ("track", "owner"),
        ("track", "VIEW"),
        ("playlist", "stream"),
        ("playlist", "download"),
    ],
)
def test_a_permission_the_object_type_does_not_have_is_refused(
    harness: StackHarness, owner: tuple[Api, str], object_type: str, permission: str
) -> None:
    api, track_id = owner
    object_id = track_id if object_type == "track" else _playlist(harness, api)

    response = _share(api, object_id, permission, object_type, grantee_email=_address())

    body = _problem(response, 422, "invalid_permission")
    assert set(body["allowed"]) < {"view", "stream", "download", "edit"}
    assert _ok(api.get("/v1/shares?direction=outgoing"))["items"] == []


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"grantee_email": "a@example.com", "grantee_user_id": str(uuid.uuid4())},
        {"grantee_email": None, "grantee_user_id": None},
        {"grantee_email": "not-an-address"},
        {"grantee_email": "two@@example.com"},
        {"grantee_email": f"{'a' * 64}@{'b' * 186}.example"},  # 255 characters
        {"grantee_user_id": "not-a-uuid"},
        {"grantee_email": "a@example.com", "object_type": "pitch"},
        {"grantee_email": "a@example.com", "object_id": "nope"},
        {"grantee_email": "a@example.com", "role": "admin"},
    ],
    ids=[
        "no-grantee",
        "both-grantees",
        "both-null",
        "not-an-address",
        "two-ats",
        "address-too-long",
        "bad-user-id",
        "unknown-object-type",
        "bad-object-id",
        "unknown-field",
    ],
)
def test_a_request_that_does_not_name_one_valid_grantee_and_object_is_a_validation_error(
    owner: tuple[Api, str], body: dict[str, Any]
) -> None:
    api, track_id = owner
    request = {"object_type": "track", "object_id": track_id, "permission": "view", **body}

    _problem(api.post("/v1/shares", json=request), 422, "validation_failed")


def test_sharing_with_yourself_is_refused_by_id_and_by_address(
    harness: StackHarness, owner: tuple[Api, str]
) -> None:
    api, track_id = owner
    my_address = _ok(api.get("/v1/me"))["email"]

    _problem(_share(api, track_id, grantee_user_id=_me(api)), 422, "cannot_share_with_self")
    _problem(_share(api, track_id, grantee_email=my_address.upper()), 422, "cannot_share_with_self")
    assert _ok(api.get("/v1/shares?direction=outgoing"))["items"] == []


def test_sharing_with_an_unknown_user_id_is_not_found(owner: tuple[Api, str]) -> None:
    api, track_id = owner

    _problem(_share(api, track_id, grantee_user_id=str(uuid.uuid4())), 404, "user_not_found")


def test_only_the_owner_may_share_an_object(harness: StackHarness, owner: tuple[Api, str]) -> None:
    # Given a track shared at the highest permission and a playlist, both of the owner's
    api, track_id = owner
    playlist_id = _playlist(harness, api)
    grantee = _person(harness)
    stranger = _person(harness)
    _ok(_share(api, track_id, "download", grantee_user_id=_me(grantee)), 201)
    _ok(_share(api, playlist_id, "edit", "playlist", grantee_user_id=_me(grantee)), 201)

    # Then the grantee may not share them on, and a stranger cannot even see them
    target = {"grantee_user_id": _me(stranger)}
    _problem(_share(grantee, track_id, "view", **target), 403, "permission_denied")
    _problem(_share(grantee, playlist_id, "view", "playlist", **target), 403, "permission_denied")
    grantee_id = {"grantee_user_id": _me(grantee)}
    _problem(_share(stranger, track_id, "view", **grantee_id), 404, "track_not_found")
    _problem(
        _share(stranger, playlist_id, "view", "playlist", **grantee_id), 404, "playlist_not_found"
    )
    _problem(_share(api, str(uuid.uuid4()), "view", **grantee_id), 404, "track_not_found")
    # And a track id given as a playlist is no playlist
    _problem(_share(api, track_id, "view", "playlist", **grantee_id), 404, "playlist_not_found")
    assert _ok(stranger.get("/v1/shares"))["items"] == []


# -- listing and reading ------------------------------------------------------------------------


def test_incoming_and_outgoing_lists_page_newest_first(
    harness: StackHarness, owner: tuple[Api, str]
) -> None:
    # Given five shares from the owner to one grantee (a track and four playlists), made one
    # after another, and a pending one to an unknown address
    api, track_id = owner
    grantee = _person(harness)
    target = {"grantee_user_id": _me(grantee)}
    made = [_ok(_share(api, track_id, "stream", **target), 201)["id"]]
    for n in range(4):
        harness.clock.advance(timedelta(seconds=1))
        playlist_id = _playlist(harness, api, f"Playlist {n}")
        made.append(_ok(_share(api, playlist_id, "view", "playlist", **target), 201)["id"])
    harness.clock.advance(timedelta(seconds=1))
    pending = _ok(_share(api, track_id, grantee_email=_address()), 201)["id"]
    newest_first = made[::-1]

    # When the grantee pages through what was shared with them, two at a time
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        query = "/v1/shares?direction=incoming&limit=2" + (f"&cursor={cursor}" if cursor else "")
        page = _ok(grantee.get(query))
        seen += _ids(page)
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break

    # Then each share comes once, newest first, and the owner's list has the pending one too
    assert seen == newest_first
    assert pages == 3
    assert _ids(_ok(grantee.get("/v1/shares"))) == newest_first  # incoming is the default
    assert _ids(_ok(grantee.get("/v1/shares?object_type=track"))) == [made[0]]
    assert _ids(_ok(grantee.get("/v1/shares?object_type=playlist"))) == newest_first[:4]
    assert _ids(_ok(grantee.get("/v1/shares?direction=outgoing"))) == []
    assert _ids(_ok(api.get("/v1/shares?direction=outgoing"))) == [pending, *newest_first]
    assert _ids(_ok(api.get("/v1/shares?direction=incoming"))) == []
    outgoing_page = _ok(api.get("/v1/shares?direction=outgoing&limit=5"))
    assert _ids(outgoing_page) == [pending, *newest_first[:4]]
    last = _ok(api.get(f"/v1/shares?direction=outgoing&cursor={outgoing_page['next_cursor']}"))
    assert (_ids(last), last["next_cursor"]) == ([made[0]], None)


def test_a_cursor_is_only_good_for_the_listing_that_issued_it(
    harness: StackHarness, owner: tuple[Api, str]
) -> None:
    # Given two shares and the first page's cursor of the outgoing list
    api, track_id = owner
    for _ in range(2):
        _ok(_share(api, track_id, grantee_email=_address()), 201)
    cursor = _ok(api.get("/v1/shares?direction=outgoing&limit=1"))["next_cursor"]
    assert cursor

    # Then another direction or filter, garbage, or a cursor tampered with is refused
    for query in (
        f"direction=incoming&cursor={cursor}",
        f"direction=outgoing&object_type=track&cursor={cursor}",
        "direction=outgoing&cursor=garbage!",
        "direction=outgoing&cursor=" + encode_cursor({"scope": "outgoing|", "at": 5, "id": "x"}),
        "direction=outgoing&cursor="
        + encode_cursor(
            {"scope": "outgoing|", "at": "2030-01-01T00:00:00", "id": str(uuid.uuid4())}
        ),
    ):
        _problem(api.get(f"/v1/shares?{query}"), 400, "invalid_cursor")
    # And bad query values are validation errors
    for query in ("direction=sideways", "object_type=pitch", "limit=0", "limit=101"):
        _problem(api.get(f"/v1/shares?{query}"), 422, "validation_failed")


def test_a_share_is_visible_only_to_its_owner_and_grantee(
    harness: StackHarness, owner: tuple[Api, str]
) -> None:
    api, track_id = owner
    grantee = _person(harness)
    share = _ok(_share(api, track_id, grantee_user_id=_me(grantee)), 201)

    assert _ok(grantee.get(f"/v1/shares/{share['id']}"))["id"] == share["id"]
    _problem(_person(harness).get(f"/v1/shares/{share['id']}"), 404, "share_not_found")
    _problem(api.get(f"/v1/shares/{uuid.uuid4()}"), 404, "share_not_found")
    _problem(api.get("/v1/shares/not-a-uuid"), 422, "validation_failed")


# -- revoking -----------------------------------------------------------------------------------


def test_the_owner_revokes_a_share_and_the_grantee_loses_it(
    harness: StackHarness, owner: tuple[Api, str]
) -> None:
    # Given a track shared with a grantee
    api, track_id = owner
    grantee = _person(harness)
    share = _ok(_share(api, track_id, "download", grantee_user_id=_me(grantee)), 201)

    # When the grantee or a stranger tries to revoke it
    _problem(grantee.delete(f"/v1/shares/{share['id']}"), 403, "permission_denied")
    _problem(_person(harness).delete(f"/v1/shares/{share['id']}"), 404, "share_not_found")
    # Then it still holds
    assert _ok(grantee.get(f"/v1/tracks/{track_id}"))["permission"] == "download"

    # When the owner revokes it
    assert api.delete(f"/v1/shares/{share['id']}").status_code == 204

    # Then it is gone for both of them, and a second revoke finds nothing
    _problem(grantee.get(f"/v1/shares/{share['id']}"), 404, "share_not_found")
    _problem(api.get(f"/v1/shares/{share['id']}"), 404, "share_not_found")
    assert _ok(grantee.get("/v1/shares"))["items"] == []
    assert _ok(api.get("/v1/shares?direction=outgoing"))["items"] == []
    _problem(grantee.get(f"/v1/tracks/{track_id}"), 404, "track_not_found")
    _problem(api.delete(f"/v1/shares/{share['id']}"), 404, "share_not_found")
    _problem(api.delete(f"/v1/shares/{uuid.uuid4()}"), 404, "share_not_found")
    # And sharing again makes a new share
    again = _ok(_share(api, track_id, "view", grantee_user_id=_me(grantee)), 201)
    assert again["id"] != share["id"]
    assert again["version"] == 1


def test_a_pending_share_revoked_before_the_sign_in_never_attaches(
    harness: StackHarness, owner: tuple[Api, str]
) -> None:
    api, track_id = owner
    address = _address()
    share = _ok(_share(api, track_id, grantee_email=address), 201)
    assert api.delete(f"/v1/shares/{share['id']}").status_code == 204

    newcomer = harness.user(f"late-{uuid.uuid4().hex[:8]}", email=address)

    assert _ok(newcomer.get("/v1/shares"))["items"] == []
    _problem(newcomer.get(f"/v1/tracks/{track_id}"), 404, "track_not_found")


# -- events -------------------------------------------------------------------------------------


def test_making_and_revoking_shares_emits_their_events_as_the_owner(
    harness: StackHarness, owner: tuple[Api, str], sink: RecordingSink
) -> None:
    # Given an owner with a track and a playlist
    api, track_id = owner
    playlist_id = _playlist(harness, api)
    grantee = {"grantee_user_id": _me(_person(harness))}
    sink.events.clear()

    # When they share both, change the track share's permission, and revoke both
    track_share = _ok(_share(api, track_id, "view", **grantee), 201)["id"]
    playlist_share = _ok(_share(api, playlist_id, "view", "playlist", **grantee), 201)["id"]
    _ok(_share(api, track_id, "stream", **grantee), 200)
    _problem(_share(api, track_id, "edit", **grantee), 422, "invalid_permission")
    for share_id in (track_share, playlist_share):
        assert api.delete(f"/v1/shares/{share_id}").status_code == 204

    # Then one event per share made and per share revoked, naming the share and its object
    events = [e for e in sink.events if e.source == "sharing"]
    got = [
        (
            e.event_type,
            str(e.share_id),
            e.track_id and str(e.track_id),
            e.playlist_id and str(e.playlist_id),
        )
        for e in events
    ]
    assert got == [
        ("share_created", track_share, track_id, None),
        ("share_created", playlist_share, None, playlist_id),
        ("share_revoked", track_share, track_id, None),
        ("share_revoked", playlist_share, None, playlist_id),
    ]
    assert {(e.actor_type, e.actor_id) for e in events} == {("user", _me(api))}
    assert [e.properties["permission"] for e in events] == ["view", "view", "stream", "view"]


# -- concurrency --------------------------------------------------------------------------------


@pytest.mark.parametrize("by", ["user_id", "pending_email"])
def test_concurrent_shares_to_the_same_grantee_make_one_share(
    harness: StackHarness, owner: tuple[Api, str], by: str
) -> None:
    from ingest.events.emitter import Emitter
    from services.core.principal import Principal
    from services.sharing.logic import Sharing
    from services.sharing.models import ShareCreate

    # Given eight requests sharing the same track with the same grantee, at various permissions
    api, track_id = owner
    me = _ok(api.get("/v1/me"))
    caller = Principal(uuid.UUID(me["id"]), me["issuer"], me["subject"], me["email"], me["name"])
    grantee: dict[str, Any] = (
        {"grantee_user_id": _me(_person(harness))}
        if by == "user_id"
        else {"grantee_email": _address()}
    )
    permissions = ["view", "stream", "download"] * 3
    requests = [
        ShareCreate.model_validate(
            {"object_type": "track", "object_id": track_id, "permission": p, **grantee}
        )
        for p in permissions[:8]
    ]
    start = threading.Barrier(len(requests))
    deps = harness.stack.deps

    def send(request: ShareCreate) -> tuple[str, bool]:
        sharing = Sharing(deps.pool, deps.clock, Emitter(RecordingSink(), deps.clock, source="t"))
        start.wait()
        share, created = sharing.create_share(caller, request)
        return str(share.id), created

    # When they run at once
    with ThreadPoolExecutor(len(requests)) as pool:
        results = list(pool.map(send, requests))

    # Then exactly one made the share and the others changed that same one
    assert len({share_id for share_id, _ in results}) == 1
    assert sorted(created for _, created in results) == [False] * 7 + [True]
    outgoing = _ok(api.get("/v1/shares?direction=outgoing"))
    assert _ids(outgoing) == [results[0][0]]
