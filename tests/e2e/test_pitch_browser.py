"""A music supervisor opens a pitch link in a real browser: plays, shortlists, downloads.

Headless Chromium from Debian's packages (/usr/bin/chromium), driven by Playwright, against a
real `musicsync up` stack over HTTP; the owner's side goes through the HTTP API. Nothing is
installed at run time: without the system browser the test fails and says how to get it.
"""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, Response

from tests.support.audio_files import make_audio
from tests.support.browser import chromium
from tests.support.running_stack import RunningStack, cli

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("browser")]

TITLES = ("Harbour Lights", "Midnight Run")
PHONE_WIDTH = 360


@dataclass
class Owner:
    """The rights holder, through the HTTP API with a bearer token."""

    api: httpx.Client
    tracks: dict[str, str]  # title -> track id
    playlist_id: str

    def pitch(self, **fields: Any) -> dict[str, Any]:
        body = {
            "playlist_id": self.playlist_id,
            "title": "Summer campaign picks",
            "message": "Hi Jo,\n\nTwo cues for the summer campaign.\nThe first is my pick.",
            "allow_download": True,
            "recipients": [{"name": "Jo Supervisor", "email": "jo@example.com", "company": "Sync"}],
            **fields,
        }
        created = self.api.post("/v1/pitches", json=body)
        assert created.status_code == 201, created.text
        pitch: dict[str, Any] = created.json()
        assert pitch["recipients"][0]["link"].startswith("http")
        return pitch

    def engagement(self, pitch_id: str) -> dict[str, Any]:
        got = self.api.get(f"/v1/pitches/{pitch_id}")
        assert got.status_code == 200, got.text
        engagement: dict[str, Any] = got.json()["recipients"][0]["engagement"]
        return engagement


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    data_dir = tmp_path_factory.mktemp("pitch-browser") / "data"
    running = RunningStack(data_dir)
    try:
        yield running
    finally:
        running.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def owner(stack: RunningStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Owner]:
    token = cli("token", "alice", "--name", "Alice Owner", "--data-dir", str(stack.data_dir))
    assert token.returncode == 0, token.stdout + token.stderr
    bearer = token.stdout.strip()
    music = tmp_path_factory.mktemp("pitch-music")
    with httpx.Client(
        base_url=stack.url, headers={"Authorization": f"Bearer {bearer}"}, timeout=30
    ) as api:
        tracks = {}
        for n, title in enumerate(TITLES):
            tags = {"title": title, "artist": "Ada Lane", "album": "Cues Vol. 1"}
            path = make_audio("wav", music / f"{n}.wav", seconds=7.0, tags=tags)
            tracks[title] = _upload(api, path)
        playlist = api.post("/v1/playlists", json={"title": "Summer cues"})
        assert playlist.status_code == 201, playlist.text
        playlist_id = playlist.json()["id"]
        for track_id in tracks.values():
            added = api.post(f"/v1/playlists/{playlist_id}/tracks", json={"track_id": track_id})
            assert added.status_code in (200, 201), added.text
        yield Owner(api, tracks, playlist_id)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    opened = context.new_page()
    problems: list[str] = []
    opened.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    opened.on(
        "console",
        lambda message: (
            problems.append(f"console: {message.text}")
            if "Content Security Policy" in message.text
            else None
        ),
    )
    try:
        yield opened
        # The page's own script, styles and media all pass its Content-Security-Policy.
        assert problems == []
    finally:
        context.close()


def _upload(api: httpx.Client, path: Path) -> str:
    started = api.post("/v1/uploads", json={"filename": path.name, "size": path.stat().st_size})
    assert started.status_code == 201, started.text
    target = started.json()
    sent = httpx.put(target["url"], content=path.read_bytes(), headers=target["headers"])
    assert sent.status_code == 200, sent.text
    completed = api.post(f"/v1/uploads/{target['upload_id']}/complete", json={})
    assert completed.status_code == 201, completed.text
    track_id: str = completed.json()["id"]
    return track_id


def _posted(path: str, *needles: str) -> Callable[[Response], bool]:
    """Matches the answer to the page's POST to `path` whose body mentions every needle."""

    def matches(response: Response) -> bool:
        request = response.request
        body = request.post_data or ""
        return (
            request.method == "POST"
            and request.url.endswith(path)
            and all(needle in body for needle in needles)
        )

    return matches


def _eventually(check: Callable[[], dict[str, Any]], seconds: float = 5.0) -> dict[str, Any]:
    """Polls `check` until it stops raising AssertionError (the page reports asynchronously)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.25)


def _text(page: Page) -> str:
    return " ".join(page.locator("main").inner_text().split())


def test_a_supervisor_plays_shortlists_and_downloads_and_the_owner_sees_it(
    owner: Owner, page: Page
) -> None:
    # Given a pitch of two tracks with downloads allowed
    pitch = owner.pitch()
    link = pitch["recipients"][0]["link"]
    first, second = TITLES

    # When the supervisor opens the link
    response = page.goto(link)

    # Then the page is the pitch, with the headers that keep it private and locked down
    assert response is not None and response.status == 200
    headers = response.headers
    csp = headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp
    assert headers["referrer-policy"] == "no-referrer"
    assert "noindex" in headers["x-robots-tag"]
    assert page.get_by_role("heading", level=1).inner_text() == "Summer campaign picks"
    assert "from Alice Owner" in _text(page)

    # When they play the first track from the keyboard for a few seconds, then pause it
    play = page.get_by_role("button", name=f"Play {first}")
    play.focus()
    page.keyboard.press("Enter")
    page.wait_for_function(
        "() => document.getElementById('player-audio').currentTime > 3", timeout=15_000
    )
    assert play.get_attribute("aria-pressed") == "true"
    assert f"Now playing: 1. {first}" in page.locator("#now-playing").inner_text()
    with page.expect_response(_posted("/events", "pitch_track_paused")) as paused:
        page.keyboard.press("Enter")
    assert paused.value.status == 202, paused.value.text()
    assert play.get_attribute("aria-pressed") == "false"

    # and shortlist it
    shortlist = page.get_by_role("button", name=f"Shortlist {first}")
    assert shortlist.get_attribute("aria-pressed") == "false"
    with page.expect_response(_posted("/feedback", '"shortlisted":true')) as saved:
        shortlist.click()
    assert saved.value.ok, saved.value.text()
    assert shortlist.get_attribute("aria-pressed") == "true"

    # and download the second one
    with page.expect_download() as downloading:
        page.get_by_role("link", name=f"Download {second}").click()
    download = downloading.value
    assert download.suggested_filename.endswith(".wav"), download.suggested_filename
    assert download.failure() is None

    # Then the owner sees the open, the play with its listened time, the shortlist and download
    ids = owner.tracks

    def summary() -> dict[str, Any]:
        engagement = owner.engagement(pitch["id"])
        tracks = {t["track_id"]: t for t in engagement["tracks"]}
        assert engagement["opened"] is True
        one, two = tracks.get(ids[first], {}), tracks.get(ids[second], {})
        assert one.get("plays", 0) >= 1, engagement
        assert one.get("listened_ms", 0) >= 2500, engagement
        assert one.get("shortlisted") is True, engagement
        assert two.get("downloads") == 1, engagement
        return engagement

    engagement = _eventually(summary)
    assert engagement["downloads"] == 1 and engagement["shortlisted"] == 1

    # And on a phone-width screen nothing scrolls sideways
    page.set_viewport_size({"width": PHONE_WIDTH, "height": 780})
    page.reload()
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= PHONE_WIDTH, f"the page is {width} px wide at {PHONE_WIDTH} px"
    # and the shortlist survived the reload
    shortlisted = page.get_by_role("button", name=f"Shortlist {first}")
    assert shortlisted.get_attribute("aria-pressed") == "true"


def test_a_password_protected_link_asks_for_its_password_first(owner: Owner, page: Page) -> None:
    # Given a pitch with a password
    pitch = owner.pitch(password="correct horse")
    link = pitch["recipients"][0]["link"]

    # When the supervisor opens the link, they get the password form, not the tracks
    response = page.goto(link)
    assert response is not None and response.status == 200
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert page.get_by_role("button", name=f"Play {TITLES[0]}").count() == 0
    password = page.get_by_label("Password")

    # When they send a wrong password, the form says so
    password.fill("wrong horse")
    with page.expect_navigation():
        password.press("Enter")
    assert page.get_by_role("alert").inner_text() == "That password is not right."
    assert page.get_by_role("button", name=f"Play {TITLES[0]}").count() == 0

    # When they send the right one, the pitch opens and its tracks play
    page.get_by_label("Password").fill("correct horse")
    with page.expect_navigation():
        page.get_by_role("button", name="Open the pitch").click()
    assert page.url == link
    play = page.get_by_role("button", name=f"Play {TITLES[0]}")
    assert page.locator("li[data-track-id]").count() == 2
    play.click()
    page.wait_for_function(
        "() => document.getElementById('player-audio').currentTime > 0.5", timeout=15_000
    )


def test_withdrawn_and_expired_links_say_so(owner: Owner, page: Page) -> None:
    # Given a link the owner withdrew
    withdrawn = owner.pitch()
    recipient = withdrawn["recipients"][0]
    revoked = owner.api.delete(f"/v1/pitches/{withdrawn['id']}/recipients/{recipient['id']}")
    assert revoked.status_code == 204, revoked.text

    # When it is opened, the page says it was withdrawn
    response = page.goto(recipient["link"])
    assert response is not None and response.status == 410
    assert "noindex" in response.headers["x-robots-tag"]
    assert "withdrawn" in _text(page) and "new link" in _text(page)

    # Given a link that expires in two seconds
    expires_at = datetime.now(UTC) + timedelta(seconds=2)
    expiring = owner.pitch(expires_at=expires_at.isoformat())
    link = expiring["recipients"][0]["link"]
    time.sleep(max(0.0, (expires_at - datetime.now(UTC)).total_seconds()) + 1.0)

    # When it is opened after that, the page says it expired
    response = page.goto(link)
    assert response is not None and response.status == 410
    assert "expired" in _text(page) and "new link" in _text(page)

    # And a link that never existed is a 404 page
    missing = page.goto(link.rsplit("/", 1)[0] + "/" + uuid.uuid4().hex + "abcdefghijk")
    assert missing is not None and missing.status == 404
    assert "can't find this link" in _text(page)
