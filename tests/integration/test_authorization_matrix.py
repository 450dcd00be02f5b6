"""The authorization matrix: every route of the playlists, sharing and pitching services, the
recipient's pitch page and the library routes a share affects, for every kind of caller.

Everything is generated from ``TABLE``: a row is a route and how to aim it at an object for a
given caller (``target``); its columns are the callers, each with the exact status (and the
problem's ``code``, or the words of the HTML page, where the status is an error). Every cell is
a test of its own, named ``<route>-<caller>``.

The rules the table encodes (``services.core.authz``): owners may do everything on their
objects; a track share grants view < stream < download, a playlist share view < edit (and
``stream`` on the playlist's tracks); deleting, sharing and pitching an object is its owner's
alone; a share is seen by its owner and its grantee, changed by its owner only; a pitch is seen
by its owner only. An object the caller cannot see is a 404 ``<type>_not_found``, never a 403;
one they see but may not act on that way is a 403 ``permission_denied``; no token is a 401 on
every ``/v1`` route. A pitch link is its recipient's credential: expired or revoked 410, unknown
404, and it reaches only the tracks of its own pitch.

The world (users, tracks, a playlist, shares, pitches and links) is made once per module. Cells
that change or destroy what they act on get objects of their own from a factory, with the same
access for their caller as the world's, so no cell depends on another.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.stack import Api, StackHarness

pytestmark = pytest.mark.integration

# -- callers (the columns) ------------------------------------------------------------------------

# Signed-in users (and no one) on the /v1 routes.
TRACK_GRANTEES = {
    "grantee_track_view": "view",
    "grantee_track_stream": "stream",
    "grantee_track_download": "download",
}
PLAYLIST_GRANTEES = {"grantee_playlist_view": "view", "grantee_playlist_edit": "edit"}
USERS = ("owner", *TRACK_GRANTEES, *PLAYLIST_GRANTEES, "other_user", "anonymous")
# Holders of a pitch link on the /p routes.
LINKS = (
    "link_live",
    "link_of_other_pitch",
    "link_expired",
    "link_revoked",
    "link_pitch_revoked",
    "link_replaced",
    "link_unknown",
)
# The expiring pitches end a minute after the world is made; their cells run two minutes on.
CLOCK_SHIFT = {"link_expired": timedelta(minutes=2)}


@dataclass(frozen=True)
class Expect:
    status: int
    code: str | None = None  # the problem's code (a JSON error)
    page: str | None = None  # words the HTML page says (the link's navigation errors)


OK = Expect(200)
CREATED = Expect(201)
ACCEPTED = Expect(202)
NO_CONTENT = Expect(204)
REDIRECT = Expect(302)
ANON = Expect(401, "token_missing")
DENIED = Expect(403, "permission_denied")
NO_TRACK = Expect(404, "track_not_found")
NO_PLAYLIST = Expect(404, "playlist_not_found")
NO_SHARE = Expect(404, "share_not_found")
NO_PITCH = Expect(404, "pitch_not_found")
NO_DOWNLOAD = Expect(403, "download_not_allowed")
EVENTS_REFUSED = Expect(422, "events_rejected")
LINK_EXPIRED = Expect(410, "link_expired")
LINK_REVOKED = Expect(410, "link_revoked")
LINK_UNKNOWN = Expect(404, "link_not_found")
PAGE_EXPIRED = Expect(410, page="this link has expired")
PAGE_REVOKED = Expect(410, page="this link was withdrawn")
PAGE_UNKNOWN = Expect(404, page="find this link")


def users(*cells: Expect) -> dict[str, Expect]:
    """A row's cells for the signed-in callers, in the order of ``USERS``."""
    return dict(zip(USERS, cells, strict=True))


def links(*cells: Expect) -> dict[str, Expect]:
    """A row's cells for the link holders, in the order of ``LINKS``."""
    return dict(zip(LINKS, cells, strict=True))


# -- the world ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    json: Any = None
    params: dict[str, str] = field(default_factory=dict)


def _body(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


def _path(link: str) -> str:
    return "/" + link.split("/", 3)[3]


@dataclass
class World:
    harness: StackHarness
    folder: Path
    apis: dict[str, Api]  # every signed-in caller, the stranger and the bystander
    user_ids: dict[str, str]
    track: str = ""  # the owner's; shared with each track grantee; in the playlist
    second_track: str = ""  # the owner's; in the playlist only
    unreachable_track: str = ""  # the stranger's; in no one else's reach
    playlist: str = ""  # the owner's, with both tracks; shared with each playlist grantee
    stranger_playlist: str = ""
    shares: dict[str, str] = field(default_factory=dict)  # grantee -> the share made to them
    pitch: str = ""  # the owner's live pitch (downloads allowed)
    pitches: list[str] = field(default_factory=list)  # every pitch of the owner's world
    other_pitch: str = ""  # the stranger's
    links: dict[str, dict[str, str]] = field(default_factory=dict)  # flavour -> holder -> path

    @property
    def owner(self) -> Api:
        return self.apis["owner"]

    def send(self, caller: str, call: Call) -> httpx.Response:
        """The call as the caller makes it: with their token, or none (anonymous, links)."""
        kw: dict[str, Any] = {"params": call.params, "follow_redirects": False}
        if call.json is not None:
            kw["json"] = call.json
        if caller in self.apis:
            return self.apis[caller].request(call.method, call.path, **kw)
        response: httpx.Response = self.harness.client.request(call.method, call.path, **kw)
        return response

    # factories: objects of the owner's, reached by the caller as the world's are

    def share(self, object_type: str, object_id: str, grantee: str, permission: str) -> str:
        body = {
            "object_type": object_type,
            "object_id": object_id,
            "grantee_user_id": self.user_ids[grantee],
            "permission": permission,
        }
        share_id: str = _body(self.owner.post("/v1/shares", json=body), 201)["id"]
        return share_id

    def new_playlist(self, track_ids: list[str], owner: str = "owner") -> str:
        api = self.apis[owner]
        playlist_id: str = _body(api.post("/v1/playlists", json={"title": "Picks"}), 201)["id"]
        for track_id in track_ids:
            added = api.post(f"/v1/playlists/{playlist_id}/tracks", json={"track_id": track_id})
            _body(added, 201)
        return playlist_id

    def fresh_playlist(self, caller: str) -> str:
        """A new playlist of the owner's with both tracks, shared as the world's is."""
        playlist_id = self.new_playlist([self.track, self.second_track])
        if caller in PLAYLIST_GRANTEES:
            self.share("playlist", playlist_id, caller, PLAYLIST_GRANTEES[caller])
        return playlist_id

    def fresh_track(self, caller: str) -> str:
        """A new track of the owner's that the caller reaches as they reach the world's."""
        track_id = self.owner.new_track(self.folder)
        if caller in TRACK_GRANTEES:
            self.share("track", track_id, caller, TRACK_GRANTEES[caller])
        elif caller in PLAYLIST_GRANTEES:
            playlist_id = self.new_playlist([track_id])
            self.share("playlist", playlist_id, caller, PLAYLIST_GRANTEES[caller])
        return track_id

    def fresh_share(self, caller: str) -> str:
        """A new share of the owner's: to the caller when a grantee (of the kind of object and
        at the permission they hold), else to the bystander."""
        if caller in TRACK_GRANTEES:
            track_id = self.owner.new_track(self.folder)
            return self.share("track", track_id, caller, TRACK_GRANTEES[caller])
        playlist_id = self.new_playlist([])
        if caller in PLAYLIST_GRANTEES:
            return self.share("playlist", playlist_id, caller, PLAYLIST_GRANTEES[caller])
        return self.share("playlist", playlist_id, "bystander", "view")

    def new_pitch(self, *, allow_download: bool = True, **extra: Any) -> dict[str, Any]:
        body = {
            "playlist_id": self.playlist,
            "title": "Matrix pitch",
            "allow_download": allow_download,
            "recipients": [{"name": "Sam", "email": f"{uuid.uuid4().hex[:10]}@studio.test"}],
            **extra,
        }
        pitch: dict[str, Any] = _body(self.owner.post("/v1/pitches", json=body), 201)
        return pitch

    def fresh_recipient(self) -> str:
        """A new recipient of the owner's live pitch."""
        body = {"recipients": [{"name": "New", "email": f"{uuid.uuid4().hex[:10]}@x.test"}]}
        added = _body(self.owner.post(f"/v1/pitches/{self.pitch}/recipients", json=body), 201)
        recipient_id: str = added["recipients"][0]["id"]
        return recipient_id

    def new_user_id(self) -> str:
        user_id: str = _body(self.harness.user().get("/v1/me"), 200)["id"]
        return user_id


def _link_set(world: World, *, allow_download: bool) -> dict[str, str]:
    """Paths of this flavour's links, by holder (the ones of no pitch of this flavour too)."""
    harness, owner = world.harness, world.owner
    recipients = [
        {"name": name, "email": f"{name}-{uuid.uuid4().hex[:8]}@studio.test"}
        for name in ("live", "revoked", "replaced")
    ]
    live = world.new_pitch(allow_download=allow_download, recipients=recipients)
    paths = {r["name"]: _path(r["link"]) for r in live["recipients"]}
    ids = {r["name"]: r["id"] for r in live["recipients"]}
    revoked = owner.delete(f"/v1/pitches/{live['id']}/recipients/{ids['revoked']}")
    assert revoked.status_code == 204, revoked.text
    _body(owner.post(f"/v1/pitches/{live['id']}/recipients/{ids['replaced']}/link"), 200)
    soon = (harness.clock.now() + timedelta(minutes=1)).isoformat()
    expiring = world.new_pitch(allow_download=allow_download, expires_at=soon)
    withdrawn = world.new_pitch(allow_download=allow_download)
    _body(owner.post(f"/v1/pitches/{withdrawn['id']}/revoke"), 200)
    world.pitches += [live["id"], expiring["id"], withdrawn["id"]]
    if allow_download:
        world.pitch = live["id"]
    return {
        "link_live": paths["live"],
        "link_of_other_pitch": world.links["other"]["link_of_other_pitch"],
        "link_expired": _path(expiring["recipients"][0]["link"]),
        "link_revoked": paths["revoked"],
        "link_pitch_revoked": _path(withdrawn["recipients"][0]["link"]),
        "link_replaced": paths["replaced"],
        "link_unknown": f"/p/{secrets.token_urlsafe(32)}",
    }


@pytest.fixture(scope="module")
def world(harness: StackHarness, tmp_path_factory: pytest.TempPathFactory) -> World:
    folder = tmp_path_factory.mktemp("matrix-tracks")
    names = [u for u in USERS if u != "anonymous"] + ["stranger", "bystander"]
    apis = {name: harness.user() for name in names}
    user_ids = {name: _body(api.get("/v1/me"), 200)["id"] for name, api in apis.items()}
    world = World(harness, folder, apis, user_ids)
    owner = world.owner
    world.track = owner.new_track(folder, "Matrix one")
    world.second_track = owner.new_track(folder, "Matrix two")
    world.unreachable_track = apis["stranger"].new_track(folder, "Not yours")
    world.playlist = world.new_playlist([world.track, world.second_track])
    for grantee, permission in TRACK_GRANTEES.items():
        world.shares[grantee] = world.share("track", world.track, grantee, permission)
    for grantee, permission in PLAYLIST_GRANTEES.items():
        world.shares[grantee] = world.share("playlist", world.playlist, grantee, permission)
    world.shares["bystander"] = world.share("playlist", world.playlist, "bystander", "view")
    # Another owner's pitch, downloads allowed, of a track of their own.
    world.stranger_playlist = world.new_playlist([world.unreachable_track], owner="stranger")
    body = {
        "playlist_id": world.stranger_playlist,
        "title": "Elsewhere",
        "allow_download": True,
        "recipients": [{"name": "Kim", "email": "kim@elsewhere.test"}],
    }
    other = _body(apis["stranger"].post("/v1/pitches", json=body), 201)
    world.other_pitch = other["id"]
    world.links["other"] = {"link_of_other_pitch": _path(other["recipients"][0]["link"])}
    world.links["downloads"] = _link_set(world, allow_download=True)
    world.links["no_downloads"] = _link_set(world, allow_download=False)
    return world


# -- listings: what each caller must and must not see ---------------------------------------------


Visible = Callable[[World, str], tuple[set[str], set[str]]]
Check = Callable[[World, str, Call, httpx.Response], None]


def listing(visible: Visible) -> Check:
    """A check that the caller's listing (every page) holds the world's ids they may see and
    none of the others ``visible`` names."""

    def check(world: World, caller: str, call: Call, response: httpx.Response) -> None:
        if response.status_code != 200:
            return
        page = response.json()
        listed = {item["id"] for item in page["items"]}
        while page["next_cursor"]:
            more = Call(
                call.method, call.path, params={**call.params, "cursor": page["next_cursor"]}
            )
            page = _body(world.send(caller, more), 200)
            listed |= {item["id"] for item in page["items"]}
        expected, universe = visible(world, caller)
        assert expected <= listed, f"missing: {expected - listed}"
        assert not (universe - expected) & listed, f"shown: {(universe - expected) & listed}"

    return check


def visible_tracks(world: World, caller: str) -> tuple[set[str], set[str]]:
    both = {world.track, world.second_track}
    expected = {
        "owner": both,
        **{grantee: {world.track} for grantee in TRACK_GRANTEES},
        **{grantee: both for grantee in PLAYLIST_GRANTEES},
    }.get(caller, set())
    return expected, both | {world.unreachable_track}


def visible_playlists(world: World, caller: str) -> tuple[set[str], set[str]]:
    sees = caller == "owner" or caller in PLAYLIST_GRANTEES
    return ({world.playlist} if sees else set()), {world.playlist, world.stranger_playlist}


def incoming_shares(world: World, caller: str) -> tuple[set[str], set[str]]:
    own = {world.shares[caller]} if caller in world.shares else set()
    return own, set(world.shares.values())


def outgoing_shares(world: World, caller: str) -> tuple[set[str], set[str]]:
    every = set(world.shares.values())
    return (every if caller == "owner" else set()), every


def visible_pitches(world: World, caller: str) -> tuple[set[str], set[str]]:
    mine = set(world.pitches)
    return (mine if caller == "owner" else set()), mine | {world.other_pitch}


def events_refused_as_not_in_pitch(
    world: World, caller: str, call: Call, response: httpx.Response
) -> None:
    if response.status_code == 422:
        assert [r["code"] for r in response.json()["rejected"]] == ["object_not_accessible"]
    elif response.status_code == 202:
        assert response.json() == {"accepted": 1, "rejected": []}


# -- targets: the call a row makes for a caller ---------------------------------------------------


Target = Callable[[World, str], Call]


def get(path: Callable[[World], str], **params: str) -> Target:
    return lambda w, c: Call("GET", path(w), params=dict(params))


def track_url(suffix: str = "") -> Callable[[World], str]:
    return lambda w: f"/v1/tracks/{w.track}{suffix}"


def fresh_track_delete(w: World, c: str) -> Call:
    return Call("DELETE", f"/v1/tracks/{w.fresh_track(c)}")


def fresh_playlist_call(
    method: str, suffix: str = "", json: Callable[[World], Any] | None = None
) -> Target:
    def target(w: World, c: str) -> Call:
        body = None if json is None else json(w)
        return Call(method, f"/v1/playlists/{w.fresh_playlist(c)}{suffix}", body)

    return target


def add_to_own_playlist(w: World, c: str) -> Call:
    """The world's track added to a new playlist of the caller's (the owner's for no one)."""
    playlist_id = w.new_playlist([], owner=c if c in w.apis else "owner")
    return Call("POST", f"/v1/playlists/{playlist_id}/tracks", {"track_id": w.track})


def remove_entry(w: World, c: str) -> Call:
    playlist_id = w.fresh_playlist(c)
    entries = _body(w.owner.get(f"/v1/playlists/{playlist_id}"), 200)["entries"]
    return Call("DELETE", f"/v1/playlists/{playlist_id}/tracks/{entries[0]['id']}")


def reorder(w: World, c: str) -> Call:
    playlist_id = w.fresh_playlist(c)
    playlist = _body(w.owner.get(f"/v1/playlists/{playlist_id}"), 200)
    order = [entry["id"] for entry in reversed(playlist["entries"])]
    body = {"entry_ids": order, "version": playlist["version"]}
    return Call("PUT", f"/v1/playlists/{playlist_id}/order", body)


def create_share(object_type: str, object_id: Callable[[World], str]) -> Target:
    def target(w: World, c: str) -> Call:
        body = {
            "object_type": object_type,
            "object_id": object_id(w),
            "grantee_user_id": w.new_user_id(),
            "permission": "view",
        }
        return Call("POST", "/v1/shares", body)

    return target


def own_share(w: World, c: str) -> Call:
    """The share made to the caller; for callers with none, the track-view grantee's."""
    return Call("GET", f"/v1/shares/{w.shares.get(c, w.shares['grantee_track_view'])}")


def pitch_body(w: World) -> dict[str, Any]:
    recipient = {"name": "Sam", "email": f"{uuid.uuid4().hex[:10]}@studio.test"}
    return {"playlist_id": w.playlist, "title": "Pitched", "recipients": [recipient]}


def recipients_body(w: World) -> dict[str, Any]:
    return {"recipients": [{"name": "Ada", "email": f"{uuid.uuid4().hex[:10]}@x.test"}]}


def fresh_recipient_call(method: str, suffix: str = "") -> Target:
    return lambda w, c: Call(
        method, f"/v1/pitches/{w.pitch}/recipients/{w.fresh_recipient()}{suffix}"
    )


def revoke_fresh_pitch(w: World, c: str) -> Call:
    return Call("POST", f"/v1/pitches/{w.new_pitch()['id']}/revoke")


def on_link(method: str, suffix: str = "", flavour: str = "downloads", json: Any = None) -> Target:
    """A call on the holder's link of this flavour's pitch; ``{track}`` is its first track."""

    def target(w: World, c: str) -> Call:
        path = w.links[flavour][c] + suffix.format(track=w.track)
        body = json(w) if callable(json) else json
        return Call(method, path, body)

    return target


def played(w: World) -> dict[str, Any]:
    event = {
        "event_type": "pitch_track_played",
        "event_id": str(uuid.uuid4()),
        "event_version": 1,
        "occurred_at": w.harness.clock.now().isoformat(),
        "track_id": w.track,
        "position_ms": 0,
    }
    return {"events": [event]}


# -- THE TABLE ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    route: str
    target: Target
    cells: dict[str, Expect]
    check: Check | None = None


# fmt: off
TABLE: list[Row] = [
    # Library routes a share affects. Columns: owner, grantee of the track (view, stream,
    # download), grantee of the playlist holding it (view, edit), another user, no one.
    Row("track.list", get(lambda w: "/v1/tracks", scope="all", limit="100"),
        users(OK, OK, OK, OK, OK, OK, OK, ANON), listing(visible_tracks)),
    Row("track.get", get(track_url()),
        users(OK, OK, OK, OK, OK, OK, NO_TRACK, ANON)),
    Row("track.stream", get(track_url("/stream")),
        users(OK, DENIED, OK, OK, OK, OK, NO_TRACK, ANON)),
    Row("track.download", get(track_url("/download")),
        users(OK, DENIED, DENIED, OK, DENIED, DENIED, NO_TRACK, ANON)),
    Row("track.patch", lambda w, c: Call("PATCH", track_url()(w), {"genre": "Matrix"}),
        users(OK, DENIED, DENIED, DENIED, DENIED, DENIED, NO_TRACK, ANON)),
    Row("track.delete", fresh_track_delete,
        users(NO_CONTENT, DENIED, DENIED, DENIED, DENIED, DENIED, NO_TRACK, ANON)),
    # Playlists: the owner's playlist (a fresh one where the cell changes it).
    Row("playlist.create", lambda w, c: Call("POST", "/v1/playlists", {"title": "Mine"}),
        users(CREATED, CREATED, CREATED, CREATED, CREATED, CREATED, CREATED, ANON)),
    Row("playlist.list", get(lambda w: "/v1/playlists", limit="100"),
        users(OK, OK, OK, OK, OK, OK, OK, ANON), listing(visible_playlists)),
    Row("playlist.get", get(lambda w: f"/v1/playlists/{w.playlist}"),
        users(OK, NO_PLAYLIST, NO_PLAYLIST, NO_PLAYLIST, OK, OK, NO_PLAYLIST, ANON)),
    Row("playlist.patch", fresh_playlist_call("PATCH", json=lambda w: {"title": "Renamed"}),
        users(OK, NO_PLAYLIST, NO_PLAYLIST, NO_PLAYLIST, DENIED, OK, NO_PLAYLIST, ANON)),
    Row("playlist.delete", fresh_playlist_call("DELETE"),
        users(NO_CONTENT, NO_PLAYLIST, NO_PLAYLIST, NO_PLAYLIST, DENIED, DENIED, NO_PLAYLIST,
              ANON)),
    Row("playlist.add_track",
        fresh_playlist_call("POST", "/tracks", lambda w: {"track_id": w.track}),
        users(CREATED, NO_PLAYLIST, NO_PLAYLIST, NO_PLAYLIST, DENIED, CREATED, NO_PLAYLIST,
              ANON)),
    Row("playlist.add_unreachable_track",
        fresh_playlist_call("POST", "/tracks", lambda w: {"track_id": w.unreachable_track}),
        users(NO_TRACK, NO_PLAYLIST, NO_PLAYLIST, NO_PLAYLIST, DENIED, NO_TRACK, NO_PLAYLIST,
              ANON)),
    Row("playlist.add_track_to_own_playlist", add_to_own_playlist,
        users(CREATED, DENIED, CREATED, CREATED, CREATED, CREATED, NO_TRACK, ANON)),
    Row("playlist.remove_entry", remove_entry,
        users(NO_CONTENT, NO_PLAYLIST, NO_PLAYLIST, NO_PLAYLIST, DENIED, NO_CONTENT, NO_PLAYLIST,
              ANON)),
    Row("playlist.reorder", reorder,
        users(OK, NO_PLAYLIST, NO_PLAYLIST, NO_PLAYLIST, DENIED, OK, NO_PLAYLIST, ANON)),
    # Sharing: sharing the owner's track and playlist (with a new user), the shares themselves.
    Row("share.create_track", create_share("track", lambda w: w.track),
        users(CREATED, DENIED, DENIED, DENIED, DENIED, DENIED, NO_TRACK, ANON)),
    Row("share.create_playlist", create_share("playlist", lambda w: w.playlist),
        users(CREATED, NO_PLAYLIST, NO_PLAYLIST, NO_PLAYLIST, DENIED, DENIED, NO_PLAYLIST, ANON)),
    Row("share.list_incoming", get(lambda w: "/v1/shares", direction="incoming", limit="100"),
        users(OK, OK, OK, OK, OK, OK, OK, ANON), listing(incoming_shares)),
    Row("share.list_outgoing", get(lambda w: "/v1/shares", direction="outgoing", limit="100"),
        users(OK, OK, OK, OK, OK, OK, OK, ANON), listing(outgoing_shares)),
    Row("share.get_own", own_share,
        users(OK, OK, OK, OK, OK, OK, NO_SHARE, ANON)),
    Row("share.get_another_grantees", get(lambda w: f"/v1/shares/{w.shares['bystander']}"),
        users(OK, NO_SHARE, NO_SHARE, NO_SHARE, NO_SHARE, NO_SHARE, NO_SHARE, ANON)),
    Row("share.delete", lambda w, c: Call("DELETE", f"/v1/shares/{w.fresh_share(c)}"),
        users(NO_CONTENT, DENIED, DENIED, DENIED, DENIED, DENIED, NO_SHARE, ANON)),
    # Pitching: pitching the owner's playlist; the owner's live pitch (a fresh one, or a fresh
    # recipient of it, where the cell revokes).
    Row("pitch.create", lambda w, c: Call("POST", "/v1/pitches", pitch_body(w)),
        users(CREATED, NO_PLAYLIST, NO_PLAYLIST, NO_PLAYLIST, DENIED, DENIED, NO_PLAYLIST, ANON)),
    Row("pitch.list", get(lambda w: "/v1/pitches", limit="100"),
        users(OK, OK, OK, OK, OK, OK, OK, ANON), listing(visible_pitches)),
    Row("pitch.get", get(lambda w: f"/v1/pitches/{w.pitch}"),
        users(OK, NO_PITCH, NO_PITCH, NO_PITCH, NO_PITCH, NO_PITCH, NO_PITCH, ANON)),
    Row("pitch.patch", lambda w, c: Call("PATCH", f"/v1/pitches/{w.pitch}", {"message": "Hi"}),
        users(OK, NO_PITCH, NO_PITCH, NO_PITCH, NO_PITCH, NO_PITCH, NO_PITCH, ANON)),
    Row("pitch.add_recipients",
        lambda w, c: Call("POST", f"/v1/pitches/{w.pitch}/recipients", recipients_body(w)),
        users(CREATED, NO_PITCH, NO_PITCH, NO_PITCH, NO_PITCH, NO_PITCH, NO_PITCH, ANON)),
    Row("pitch.revoke_recipient", fresh_recipient_call("DELETE"),
        users(NO_CONTENT, NO_PITCH, NO_PITCH, NO_PITCH, NO_PITCH, NO_PITCH, NO_PITCH, ANON)),
    Row("pitch.reissue_link", fresh_recipient_call("POST", "/link"),
        users(OK, NO_PITCH, NO_PITCH, NO_PITCH, NO_PITCH, NO_PITCH, NO_PITCH, ANON)),
    Row("pitch.revoke", revoke_fresh_pitch,
        users(OK, NO_PITCH, NO_PITCH, NO_PITCH, NO_PITCH, NO_PITCH, NO_PITCH, ANON)),
    # The recipient's pitch page. Columns: the recipient's live link, the link of a recipient
    # of another owner's pitch (downloads allowed) aimed at this pitch's tracks, an expired
    # link, a revoked recipient's link, a link of a revoked pitch, a link replaced by a new
    # one, a well-formed token of no link.
    Row("pitch_page.open", on_link("GET"),
        links(OK, OK, PAGE_EXPIRED, PAGE_REVOKED, PAGE_REVOKED, PAGE_UNKNOWN, PAGE_UNKNOWN)),
    Row("pitch_page.stream", on_link("GET", "/tracks/{track}/stream"),
        links(REDIRECT, NO_TRACK, PAGE_EXPIRED, PAGE_REVOKED, PAGE_REVOKED, PAGE_UNKNOWN,
              PAGE_UNKNOWN)),
    Row("pitch_page.download", on_link("GET", "/tracks/{track}/download"),
        links(REDIRECT, NO_TRACK, PAGE_EXPIRED, PAGE_REVOKED, PAGE_REVOKED, PAGE_UNKNOWN,
              PAGE_UNKNOWN)),
    Row("pitch_page.download_not_allowed",
        on_link("GET", "/tracks/{track}/download", flavour="no_downloads"),
        links(NO_DOWNLOAD, NO_TRACK, PAGE_EXPIRED, PAGE_REVOKED, PAGE_REVOKED, PAGE_UNKNOWN,
              PAGE_UNKNOWN)),
    Row("pitch_page.events", on_link("POST", "/events", json=played),
        links(ACCEPTED, EVENTS_REFUSED, LINK_EXPIRED, LINK_REVOKED, LINK_REVOKED, LINK_UNKNOWN,
              LINK_UNKNOWN), events_refused_as_not_in_pitch),
    Row("pitch_page.feedback",
        on_link("POST", "/feedback", json=lambda w: {"track_id": w.track, "shortlisted": True}),
        links(OK, NO_TRACK, LINK_EXPIRED, LINK_REVOKED, LINK_REVOKED, LINK_UNKNOWN,
              LINK_UNKNOWN)),
]
# fmt: on

CELLS = [
    pytest.param(row, caller, expect, id=f"{row.route}-{caller}")
    for row in TABLE
    for caller, expect in row.cells.items()
]


def test_the_table_covers_every_route_for_every_caller() -> None:
    assert len({row.route for row in TABLE}) == len(TABLE)
    assert all(set(row.cells) in (set(USERS), set(LINKS)) for row in TABLE)


@pytest.mark.parametrize(("row", "caller", "expect"), CELLS)
def test_cell(world: World, row: Row, caller: str, expect: Expect) -> None:
    call = row.target(world, caller)
    shift = CLOCK_SHIFT.get(caller)
    if shift:
        world.harness.clock.advance(shift)
    try:
        response = world.send(caller, call)
    finally:
        if shift:
            world.harness.clock.advance(-shift)
    where = f"{call.method} {call.path} as {caller}: {response.text[:500]}"
    assert response.status_code == expect.status, where
    content_type = response.headers.get("content-type", "")
    if expect.code is not None:
        assert content_type.startswith("application/problem+json"), where
        assert response.json()["code"] == expect.code, where
    if expect.page is not None:
        assert content_type.startswith("text/html"), where
        assert expect.page in response.text.lower(), where
    if expect.status == 302:
        assert response.headers["location"], where
    if row.check is not None:
        row.check(world, caller, call, response)
