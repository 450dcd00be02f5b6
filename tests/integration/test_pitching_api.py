"""Pitching: owners create and manage pitches; recipients use their link; engagement adds up."""

from __future__ import annotations

import html
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.core.db import autocommit
from services.core.ids import uuid7
from services.pitching import repository as repo
from services.pitching.links import token_hash
from tests.support.events import RecordingSink
from tests.support.stack import Api, StackHarness

pytestmark = pytest.mark.integration


@pytest.fixture
def sink(harness: StackHarness, monkeypatch: pytest.MonkeyPatch) -> RecordingSink:
    recording = RecordingSink()
    monkeypatch.setattr(harness.stack.deps, "events", recording)
    return recording


@dataclass
class Sender:
    api: Api
    playlist_id: str
    track_ids: list[str]

    def pitch(self, **overrides: Any) -> dict[str, Any]:
        body = {
            "playlist_id": self.playlist_id,
            "title": "Summer sync picks",
            "message": "Three cues for the beach scene.",
            "recipients": [
                {"name": "Sam Supervisor", "email": "sam@studio.test", "company": "Studio"},
                {"name": "Alex Editor", "email": "alex@studio.test"},
            ],
            **overrides,
        }
        response = self.api.post("/v1/pitches", json=body)
        assert response.status_code == 201, response.text
        pitch: dict[str, Any] = response.json()
        return pitch


@pytest.fixture(scope="module")
def sender(harness: StackHarness, tmp_path_factory: pytest.TempPathFactory) -> Sender:
    """An owner with a playlist of three tracks of their own."""
    api = harness.user()
    folder = tmp_path_factory.mktemp("pitch-tracks")
    track_ids = [api.new_track(folder, f"Cue {n}", seconds=3.0) for n in range(3)]
    playlist = api.post("/v1/playlists", json={"title": "Beach"}).json()
    for track_id in track_ids:
        added = api.post(f"/v1/playlists/{playlist['id']}/tracks", json={"track_id": track_id})
        assert added.status_code == 201, added.text
    return Sender(api, playlist["id"], track_ids)


def _path(link: str) -> str:
    return "/" + link.split("/", 3)[3]


def _problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["code"] == code
    return body


def _event(harness: StackHarness, event_type: str, track_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "event_type": event_type,
        "event_id": str(uuid.uuid4()),
        "event_version": 1,
        "occurred_at": harness.clock.now().isoformat(),
        "track_id": track_id,
        **extra,
    }


# -- creating --------------------------------------------------------------------------------


def test_a_pitch_gets_one_link_per_recipient_and_stores_only_their_hashes(
    harness: StackHarness, sender: Sender
) -> None:
    # Given a playlist of three tracks
    # When its owner pitches it to two recipients
    pitch = sender.pitch()
    # Then each recipient has an absolute link of its own, shown this once
    links = [r["link"] for r in pitch["recipients"]]
    assert len(set(links)) == 2
    assert all(link.startswith("http://testserver/p/") for link in links)
    entries = sender.api.get(f"/v1/playlists/{sender.playlist_id}").json()["entries"]
    assert [t["id"] for t in pitch["tracks"]] == [e["track"]["id"] for e in entries]
    assert [t["id"] for t in pitch["tracks"]] == sender.track_ids
    assert pitch["status"] == "active" and pitch["has_password"] is False
    # And the database holds no token, only 32-byte hashes
    tokens = [link.rsplit("/", 1)[1] for link in links]
    with harness.stack.deps.pool.connection() as conn:
        rows = conn.execute(
            "SELECT * FROM pitch_recipients WHERE pitch_id = %s", (pitch["id"],)
        ).fetchall()
    stored = " ".join(str(v) for row in rows for v in row.values())
    assert not any(token in stored for token in tokens)
    assert all(len(row["token_hash"]) == 32 for row in rows)
    # And reading the pitch again never shows a link
    again = sender.api.get(f"/v1/pitches/{pitch['id']}").json()
    assert [r["link"] for r in again["recipients"]] == [None, None]


def test_the_pitch_keeps_the_track_list_it_was_sent_with(
    harness: StackHarness, sender: Sender, tmp_path: Path
) -> None:
    # Given a pitch of the playlist
    pitch = sender.pitch()
    # When the playlist changes afterwards
    extra = sender.api.new_track(tmp_path, "Late addition")
    sender.api.post(f"/v1/playlists/{sender.playlist_id}/tracks", json={"track_id": extra})
    # Then the recipient still sees the tracks as sent
    page = harness.client.get(_path(pitch["recipients"][0]["link"]))
    assert page.status_code == 200
    assert "Late addition" not in page.text
    assert [t["id"] for t in sender.api.get(f"/v1/pitches/{pitch['id']}").json()["tracks"]] == (
        sender.track_ids
    )
    entries = sender.api.get(f"/v1/playlists/{sender.playlist_id}").json()["entries"]
    sender.api.delete(f"/v1/playlists/{sender.playlist_id}/tracks/{entries[-1]['id']}")


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"expires_at": "2000-01-01T00:00:00Z"}, 422, "invalid_expiry"),
        ({"title": ""}, 422, "validation_failed"),
        ({"title": "x" * 201}, 422, "validation_failed"),
        ({"message": "x" * 5001}, 422, "validation_failed"),
        ({"recipients": []}, 422, "validation_failed"),
        (
            {"recipients": [{"name": "No Mail", "email": "not-an-address"}]},
            422,
            "validation_failed",
        ),
        (
            {
                "recipients": [
                    {"name": "A", "email": "a@x.test"},
                    {"name": "B", "email": "A@x.test"},
                ]
            },
            422,
            "duplicate_recipient",
        ),
        ({"password": "short"}, 422, "validation_failed"),
        ({"playlist_id": str(uuid.uuid4())}, 404, "playlist_not_found"),
    ],
)
def test_a_bad_pitch_is_refused_with_a_stable_code(
    sender: Sender, change: dict[str, Any], status: int, code: str
) -> None:
    body = {
        "playlist_id": sender.playlist_id,
        "title": "T",
        "recipients": [{"name": "R", "email": "r@x.test"}],
        **change,
    }
    _problem(sender.api.post("/v1/pitches", json=body), status, code)


def test_expiry_more_than_a_year_ahead_and_too_many_recipients_are_refused(
    harness: StackHarness, sender: Sender
) -> None:
    far = (harness.clock.now() + timedelta(days=366)).isoformat()
    body = {
        "playlist_id": sender.playlist_id,
        "title": "T",
        "expires_at": far,
        "recipients": [{"name": "R", "email": "r@x.test"}],
    }
    _problem(sender.api.post("/v1/pitches", json=body), 422, "invalid_expiry")
    many = [{"name": f"R{n}", "email": f"r{n}@x.test"} for n in range(201)]
    body = {"playlist_id": sender.playlist_id, "title": "T", "recipients": many}
    _problem(sender.api.post("/v1/pitches", json=body), 422, "validation_failed")


def test_an_empty_playlist_cannot_be_pitched(sender: Sender) -> None:
    empty = sender.api.post("/v1/playlists", json={"title": "Nothing yet"}).json()
    body = {
        "playlist_id": empty["id"],
        "title": "T",
        "recipients": [{"name": "R", "email": "r@x.test"}],
    }
    _problem(sender.api.post("/v1/pitches", json=body), 422, "playlist_empty")


def test_another_users_playlist_cannot_be_pitched(harness: StackHarness, sender: Sender) -> None:
    stranger = harness.user()
    body = {
        "playlist_id": sender.playlist_id,
        "title": "T",
        "recipients": [{"name": "R", "email": "r@x.test"}],
    }
    _problem(stranger.post("/v1/pitches", json=body), 404, "playlist_not_found")


def test_creating_a_pitch_emits_created_and_one_sent_per_recipient(
    sender: Sender, sink: RecordingSink
) -> None:
    pitch = sender.pitch()
    kinds = [(e.event_type, e.recipient_id) for e in sink.events if e.source == "pitching"]
    assert kinds[0] == ("pitch_created", None)
    assert sorted(str(r) for _, r in kinds[1:]) == sorted(r["id"] for r in pitch["recipients"])


# -- the recipient's page ------------------------------------------------------------------------


def test_the_recipient_page_lists_the_tracks_with_strict_headers(
    harness: StackHarness, sender: Sender
) -> None:
    pitch = sender.pitch()
    page = harness.client.get(_path(pitch["recipients"][0]["link"]))
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "Cue 0" in page.text and "Cue 2" in page.text
    assert page.headers["referrer-policy"] == "no-referrer"
    assert "noindex" in page.headers["x-robots-tag"]
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    script = harness.client.get("/p/assets/pitch.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]


def test_each_view_shows_what_changed_since_the_last_one(
    harness: StackHarness, tmp_path: Path
) -> None:
    # Given a pitch of two tracks, its page viewed once (so rendered and kept)
    owner = harness.user()
    tracks = [owner.new_track(tmp_path, title) for title in ("Opening", "Closing")]
    playlist = owner.post("/v1/playlists", json={"title": "Two"}).json()
    for track_id in tracks:
        owner.post(f"/v1/playlists/{playlist['id']}/tracks", json={"track_id": track_id})
    pitch = owner.post(
        "/v1/pitches",
        json={
            "playlist_id": playlist["id"],
            "title": "Twice",
            "message": "Hello",
            "recipients": [{"name": "Sam", "email": "sam@studio.test"}],
        },
    ).json()
    path = _path(pitch["recipients"][0]["link"])
    views = 0

    def view() -> str:
        nonlocal views
        views += 1
        page = harness.client.get(path)
        assert page.status_code == 200
        text: str = page.text
        # Served as ASCII: other characters travel as character references
        assert text.isascii()
        return html.unescape(text)

    assert "Opening" in view()
    # When each thing the page shows changes, Then the next view shows it
    owner.patch(f"/v1/tracks/{tracks[0]}", json={"title": "Ouverture à minuit"})
    assert "Ouverture à minuit" in view() and "Opening" not in view()
    owner.patch(f"/v1/tracks/{tracks[1]}", json={"artists": ["Zoë Keys"], "album": "Nocturnes"})
    seen = view()
    assert "Zoë Keys" in seen and "Nocturnes" in seen
    feedback = {"track_id": tracks[1], "shortlisted": True, "comment": "Lovely"}
    harness.client.post(f"{path}/feedback", json=feedback)
    seen = view()
    assert 'aria-pressed="true"' in seen and ">Lovely</textarea>" in seen
    harness.client.post(f"{path}/feedback", json={"track_id": tracks[1], "comment": "Lovelier"})
    assert ">Lovelier</textarea>" in view()
    assert "/download" not in view()
    owner.patch(f"/v1/pitches/{pitch['id']}", json={"allow_download": True, "title": "Thrice"})
    seen = view()
    assert "/download" in seen and "Thrice" in seen
    owner.delete(f"/v1/tracks/{tracks[0]}")
    seen = view()
    assert "Ouverture" not in seen and 'Tracks <span class="count">(1)' in seen
    # And every view was recorded as one open
    detail = owner.get(f"/v1/pitches/{pitch['id']}").json()
    assert detail["recipients"][0]["engagement"]["opens"] == views


def test_each_view_of_a_password_protected_page_is_one_open_once_unlocked(
    harness: StackHarness, sender: Sender, sink: RecordingSink
) -> None:
    # Given a password-protected link
    pitch = sender.pitch(password="correct horse")
    path = _path(pitch["recipients"][0]["link"])
    client = httpx.Client(transport=harness.client._transport, base_url="http://testserver")
    # When it is viewed locked (the form), then unlocked and viewed twice
    assert 'name="password"' in client.get(path).text
    client.post(f"{path}/unlock", data={"password": "correct horse"})
    assert "Cue 0" in client.get(path).text and "Cue 0" in client.get(path).text
    # Then two opens are recorded, and each went to the lake once
    detail = sender.api.get(f"/v1/pitches/{pitch['id']}").json()
    assert detail["recipients"][0]["engagement"]["opens"] == 2
    opened = [e for e in sink.events if e.event_type == "pitch_opened"]
    assert len(opened) == 2 and len({e.event_id for e in opened}) == 2
    assert {e.recipient_id for e in opened} == {uuid.UUID(pitch["recipients"][0]["id"])}


def test_the_open_a_lookup_records_leaves_its_connection_committing_synchronously(
    harness: StackHarness, sender: Sender
) -> None:
    # Given a link, opened for its page on a pooled connection (its commit is asynchronous)
    pitch = sender.pitch()
    token = pitch["recipients"][0]["link"].rsplit("/", 1)[1]
    now = harness.clock.now()
    event_id = uuid7(now)
    with autocommit(harness.stack.deps.pool) as conn:
        row = repo.link_by_token_hash(conn, token_hash(token), now, page_open=event_id)
        # Then the open is recorded under the id given
        assert row is not None and row["opened"] is True and row["gone"] is None
        stored = conn.execute(
            "SELECT event_type FROM pitch_interactions WHERE event_id = %s", (event_id,)
        ).fetchone()
        assert stored == {"event_type": "pitch_opened"}
        # And the setting ended with that statement: later writes there wait for the disk
        assert conn.execute("SHOW synchronous_commit").fetchone() == {"synchronous_commit": "on"}


def test_unknown_tokens_are_404_pages(harness: StackHarness) -> None:
    for token in ("A" * 43, "short", "x" * 300):
        response = harness.client.get(f"/p/{token}")
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("text/html")


def test_revoked_and_expired_links_are_410_pages_that_say_so(
    harness: StackHarness, sender: Sender
) -> None:
    # Given a pitch with two recipients
    pitch = sender.pitch(expires_at=(harness.clock.now() + timedelta(hours=1)).isoformat())
    first, second = (_path(r["link"]) for r in pitch["recipients"])
    # When the owner revokes the first recipient
    revoked = sender.api.delete(
        f"/v1/pitches/{pitch['id']}/recipients/{pitch['recipients'][0]['id']}"
    )
    assert revoked.status_code == 204
    # Then the first link is gone and the second still works
    gone = harness.client.get(first)
    assert gone.status_code == 410 and "withdrawn" in gone.text.lower()
    assert harness.client.get(second).status_code == 200
    # And after the expiry the second link is gone too
    harness.clock.advance(timedelta(hours=1, seconds=1))
    try:
        expired = harness.client.get(second)
        assert expired.status_code == 410 and "expired" in expired.text.lower()
        # And the owner sees the statuses
        detail = sender.api.get(f"/v1/pitches/{pitch['id']}").json()
        assert detail["status"] == "expired"
        assert [r["status"] for r in detail["recipients"]] == ["revoked", "expired"]
    finally:
        harness.clock.advance(-timedelta(hours=1, seconds=1))


def test_revoking_the_whole_pitch_ends_every_link(harness: StackHarness, sender: Sender) -> None:
    pitch = sender.pitch()
    response = sender.api.post(f"/v1/pitches/{pitch['id']}/revoke")
    assert response.status_code == 200 and response.json()["status"] == "revoked"
    for recipient in pitch["recipients"]:
        assert harness.client.get(_path(recipient["link"])).status_code == 410


def test_a_new_link_replaces_the_old_one(harness: StackHarness, sender: Sender) -> None:
    pitch = sender.pitch()
    recipient = pitch["recipients"][0]
    response = sender.api.post(f"/v1/pitches/{pitch['id']}/recipients/{recipient['id']}/link")
    assert response.status_code == 200
    new_link = response.json()["link"]
    assert new_link != recipient["link"]
    assert harness.client.get(_path(recipient["link"])).status_code == 404
    assert harness.client.get(_path(new_link)).status_code == 200


def test_recipients_can_be_added_but_not_twice(harness: StackHarness, sender: Sender) -> None:
    pitch = sender.pitch()
    url = f"/v1/pitches/{pitch['id']}/recipients"
    added = sender.api.post(url, json={"recipients": [{"name": "New", "email": "new@x.test"}]})
    assert added.status_code == 201
    assert harness.client.get(_path(added.json()["recipients"][0]["link"])).status_code == 200
    again = sender.api.post(url, json={"recipients": [{"name": "Sam", "email": "SAM@studio.test"}]})
    _problem(again, 409, "duplicate_recipient")


def test_patch_changes_expiry_and_downloads_with_version_checks(
    harness: StackHarness, sender: Sender
) -> None:
    pitch = sender.pitch()
    url = f"/v1/pitches/{pitch['id']}"
    later = (harness.clock.now() + timedelta(days=60)).isoformat()
    changed = sender.api.patch(
        url,
        json={"expires_at": later, "allow_download": True},
        headers={"If-Match": f'"{pitch["version"]}"'},
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["allow_download"] is True
    assert changed.json()["version"] == pitch["version"] + 1
    stale = sender.api.patch(
        url, json={"title": "New"}, headers={"If-Match": f'"{pitch["version"]}"'}
    )
    assert _problem(stale, 409, "version_conflict")["current_version"] == pitch["version"] + 1
    _problem(
        sender.api.patch(url, json={"expires_at": "2001-01-01T00:00:00Z"}), 422, "invalid_expiry"
    )
    _problem(sender.api.patch(url, json={"title": None}), 422, "validation_failed")


# -- password ------------------------------------------------------------------------------------


def test_a_password_protected_link_asks_once_then_opens(
    harness: StackHarness, sender: Sender
) -> None:
    pitch = sender.pitch(password="correct horse")
    path = _path(pitch["recipients"][0]["link"])
    track_id = sender.track_ids[0]
    client = httpx.Client(transport=harness.client._transport, base_url="http://testserver")
    # Given no session: the page is the password form, and the media and feedback routes refuse
    first = client.get(path)
    assert (
        first.status_code == 200 and 'name="password"' in first.text and "Cue 0" not in first.text
    )
    _problem(client.get(f"{path}/tracks/{track_id}/stream"), 401, "password_required")
    _problem(
        client.post(f"{path}/feedback", json={"track_id": track_id, "shortlisted": True}),
        401,
        "password_required",
    )
    # When a wrong password is sent: the form again, with an error
    wrong = client.post(f"{path}/unlock", data={"password": "wrong horse"})
    assert wrong.status_code == 401 and 'name="password"' in wrong.text
    # When the right one is sent: a session cookie scoped to the link, and the page opens
    right = client.post(f"{path}/unlock", data={"password": "correct horse"})
    assert right.status_code == 303 and right.headers["location"] == path
    cookie = right.headers["set-cookie"]
    assert "HttpOnly" in cookie and f"Path={path}" in cookie
    opened = client.get(path)
    assert opened.status_code == 200 and "Cue 0" in opened.text
    assert client.get(f"{path}/tracks/{track_id}/stream").status_code == 302
    # And changing the password ends that session
    sender.api.patch(f"/v1/pitches/{pitch['id']}", json={"password": "battery staple"})
    assert 'name="password"' in client.get(path).text


def test_password_guessing_is_rate_limited(
    harness: StackHarness, sender: Sender, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(harness.stack.deps.settings, "pitch_unlock_attempts", 3)
    pitch = sender.pitch(password="correct horse")
    path = _path(pitch["recipients"][0]["link"])
    codes = [
        harness.client.post(f"{path}/unlock", data={"password": f"guess {n}"}).status_code
        for n in range(4)
    ]
    assert codes == [401, 401, 401, 429]
    limited = harness.client.post(f"{path}/unlock", data={"password": "correct horse"})
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 0


def test_link_lookups_are_rate_limited_per_link(
    harness: StackHarness, sender: Sender, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(harness.stack.deps.settings, "pitch_link_requests_per_minute", 2)
    path = _path(sender.pitch()["recipients"][0]["link"])
    statuses = [harness.client.get(path).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    harness.clock.advance(timedelta(seconds=61))
    assert harness.client.get(path).status_code == 200


# -- media -----------------------------------------------------------------------------------------


def test_stream_and_download_redirect_to_short_lived_urls(
    harness: StackHarness, sender: Sender
) -> None:
    pitch = sender.pitch(allow_download=True)
    path = _path(pitch["recipients"][0]["link"])
    track_id = sender.track_ids[1]
    stream = harness.client.get(f"{path}/tracks/{track_id}/stream", follow_redirects=False)
    assert stream.status_code == 302 and stream.headers["cache-control"] == "no-store"
    audio = harness.client.get(_path(stream.headers["location"]), headers={"Range": "bytes=0-3"})
    assert audio.status_code == 206 and audio.content == b"RIFF"
    download = harness.client.get(f"{path}/tracks/{track_id}/download", follow_redirects=False)
    file = harness.client.get(_path(download.headers["location"]))
    assert file.status_code == 200
    assert "attachment" in file.headers["content-disposition"]
    assert "Cue 1" in file.headers["content-disposition"]


def test_downloads_only_where_allowed_and_only_tracks_of_the_pitch(
    harness: StackHarness, sender: Sender, tmp_path: Path
) -> None:
    pitch = sender.pitch(allow_download=False)
    path = _path(pitch["recipients"][0]["link"])
    _problem(
        harness.client.get(f"{path}/tracks/{sender.track_ids[0]}/download"),
        403,
        "download_not_allowed",
    )
    outside = sender.api.new_track(tmp_path, "Not pitched")
    _problem(harness.client.get(f"{path}/tracks/{outside}/stream"), 404, "track_not_found")


# -- events, feedback and engagement ------------------------------------------------------


def test_player_events_add_up_to_the_engagement_summary(
    harness: StackHarness, sender: Sender, sink: RecordingSink
) -> None:
    # Given a pitch with downloads allowed, opened by its first recipient
    pitch = sender.pitch(allow_download=True)
    sam, alex = pitch["recipients"]
    path = _path(sam["link"])
    harness.client.get(path)
    first, second = sender.track_ids[0], sender.track_ids[1]
    # When the recipient plays a track, reports progress, pauses, shortlists and comments,
    # and downloads another
    events = [
        _event(harness, "pitch_track_played", first, position_ms=0),
        _event(harness, "pitch_track_progress", first, position_ms=1000, listened_ms=1000),
        _event(
            harness, "pitch_track_seeked", first, position_ms=2500, properties={"from_ms": 1000}
        ),
        _event(harness, "pitch_track_paused", first, position_ms=2600, listened_ms=100),
    ]
    reported = harness.client.post(f"{path}/events", json={"events": events})
    assert reported.status_code == 202 and reported.json() == {"accepted": 4, "rejected": []}
    # And the same report is sent again (a retry): it counts once
    assert harness.client.post(f"{path}/events", json={"events": events}).status_code == 202
    feedback = harness.client.post(
        f"{path}/feedback",
        json={"track_id": first, "shortlisted": True, "comment": "Love the hook"},
    )
    assert feedback.json() == {"track_id": first, "shortlisted": True, "comment": "Love the hook"}
    harness.client.get(f"{path}/tracks/{second}/download", follow_redirects=False)
    # Then the owner sees it all for that recipient, and nothing for the other
    detail = sender.api.get(f"/v1/pitches/{pitch['id']}").json()
    by_id = {r["id"]: r for r in detail["recipients"]}
    summary = by_id[sam["id"]]["engagement"]
    assert summary["opened"] is True and summary["opens"] == 1
    assert summary["plays"] == 1 and summary["listened_ms"] == 1100
    assert summary["downloads"] == 1 and summary["shortlisted"] == 1
    tracks = {t["track_id"]: t for t in summary["tracks"]}
    assert tracks[first] == {
        "track_id": first,
        "title": "Cue 0",
        "plays": 1,
        "listened_ms": 1100,
        "furthest_ms": 2600,
        "completed": False,
        "downloads": 0,
        "shortlisted": True,
        "comment": "Love the hook",
    }
    assert tracks[second]["downloads"] == 1
    assert by_id[alex["id"]]["engagement"]["opened"] is False
    # And every interaction went to the lake once, as the recipient, with pitch and recipient
    mine = [
        e
        for e in sink.events
        if e.recipient_id == uuid.UUID(sam["id"]) and e.event_type != "pitch_sent"
    ]
    assert sorted(e.event_type for e in mine) == sorted(
        [
            "pitch_opened",
            "pitch_track_played",
            "pitch_track_progress",
            "pitch_track_seeked",
            "pitch_track_paused",
            "pitch_track_shortlisted",
            "pitch_comment_added",
            "pitch_track_downloaded",
        ]
    )
    assert all(e.actor_type == "recipient" and e.actor_id == sam["id"] for e in mine)
    assert all(e.pitch_id == uuid.UUID(pitch["id"]) for e in mine)


def test_events_are_refused_one_by_one_with_reasons(
    harness: StackHarness, sender: Sender, tmp_path: Path
) -> None:
    pitch = sender.pitch()
    path = _path(pitch["recipients"][0]["link"])
    outside = sender.api.new_track(tmp_path, "Elsewhere")
    track = sender.track_ids[0]
    events = [
        _event(harness, "pitch_track_played", track, position_ms=0),
        _event(harness, "pitch_track_played", outside, position_ms=0),
        _event(harness, "track_playback_progress", track, position_ms=1, listened_ms=1),
        {
            **_event(harness, "pitch_track_played", track, position_ms=0),
            "pitch_id": str(uuid.uuid4()),
        },
        _event(harness, "pitch_track_progress", track, position_ms=10_000_000, listened_ms=1),
        {
            **_event(harness, "pitch_track_played", track, position_ms=0),
            "occurred_at": (harness.clock.now() - timedelta(days=8)).isoformat(),
        },
    ]
    result = harness.client.post(f"{path}/events", json={"events": events}).json()
    assert result["accepted"] == 1
    assert [(r["index"], r["code"]) for r in result["rejected"]] == [
        (1, "object_not_accessible"),
        (2, "wrong_actor"),
        (3, "invalid_event"),
        (4, "invalid_event"),
        (5, "too_old"),
    ]


def test_unshortlisting_and_clearing_a_comment(harness: StackHarness, sender: Sender) -> None:
    pitch = sender.pitch()
    path = _path(pitch["recipients"][0]["link"])
    track = sender.track_ids[2]
    harness.client.post(
        f"{path}/feedback", json={"track_id": track, "shortlisted": True, "comment": "Maybe"}
    )
    undone = harness.client.post(
        f"{path}/feedback", json={"track_id": track, "shortlisted": False, "comment": ""}
    )
    assert undone.json() == {"track_id": track, "shortlisted": False, "comment": None}
    _problem(
        harness.client.post(f"{path}/feedback", json={"track_id": track}), 422, "validation_failed"
    )
    long = harness.client.post(f"{path}/feedback", json={"track_id": track, "comment": "x" * 2001})
    _problem(long, 422, "validation_failed")


def test_the_expiry_sweeper_announces_each_expired_pitch_once(
    harness: StackHarness, sender: Sender, sink: RecordingSink
) -> None:
    from services.pitching.sweeper import sweep

    pitch = sender.pitch(expires_at=(harness.clock.now() + timedelta(minutes=5)).isoformat())
    harness.clock.advance(timedelta(minutes=6))
    try:
        sweep()
        sweep()
    finally:
        harness.clock.advance(-timedelta(minutes=6))
    expired = [e for e in sink.events if e.event_type == "pitch_expired"]
    assert [str(e.pitch_id) for e in expired].count(pitch["id"]) == 1


def test_pitches_list_newest_first_with_counts(harness: StackHarness, tmp_path: Path) -> None:
    api = harness.user()
    track = api.new_track(tmp_path)
    playlist = api.post("/v1/playlists", json={"title": "P"}).json()
    api.post(f"/v1/playlists/{playlist['id']}/tracks", json={"track_id": track})
    mine = Sender(api, playlist["id"], [track])
    ids = [mine.pitch(title=f"Pitch {n}")["id"] for n in range(3)]
    first = api.get("/v1/pitches?limit=2").json()
    rest = api.get(f"/v1/pitches?limit=2&cursor={first['next_cursor']}").json()
    assert [p["id"] for p in first["items"] + rest["items"]] == ids[::-1]
    assert rest["next_cursor"] is None
    assert first["items"][0]["recipient_count"] == 2 and first["items"][0]["track_count"] == 1
    _problem(api.get("/v1/pitches?cursor=bogus"), 400, "invalid_cursor")
    assert harness.user().get("/v1/pitches").json()["items"] == []


def test_other_users_cannot_see_or_change_a_pitch(harness: StackHarness, sender: Sender) -> None:
    pitch = sender.pitch()
    stranger = harness.user()
    rid = pitch["recipients"][0]["id"]
    for method, url in [
        ("GET", f"/v1/pitches/{pitch['id']}"),
        ("PATCH", f"/v1/pitches/{pitch['id']}"),
        ("POST", f"/v1/pitches/{pitch['id']}/revoke"),
        ("DELETE", f"/v1/pitches/{pitch['id']}/recipients/{rid}"),
        ("POST", f"/v1/pitches/{pitch['id']}/recipients/{rid}/link"),
    ]:
        kwargs: dict[str, Any] = {"json": {"title": "x"}} if method == "PATCH" else {}
        _problem(stranger.request(method, url, **kwargs), 404, "pitch_not_found")
