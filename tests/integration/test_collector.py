"""POST /v1/events: client usage events through the local gateway, on real PostgreSQL and Redis."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.support.audio_files import make_audio
from tests.support.events import RecordingSink
from tests.support.stack import Api, StackHarness

pytestmark = pytest.mark.integration


@pytest.fixture
def sink(harness: StackHarness, monkeypatch: pytest.MonkeyPatch) -> RecordingSink:
    recording = RecordingSink()
    monkeypatch.setattr(harness.stack.deps, "events", recording)
    return recording


@pytest.fixture
def listener(harness: StackHarness, tmp_path: Path) -> tuple[Api, str]:
    """A user with one track of their own."""
    api = harness.user()
    track = api.upload(make_audio("wav", tmp_path / "t.wav", seconds=2.0)).json()
    return api, track["id"]


def _progress(track_id: str, at: datetime, /, **overrides: Any) -> dict[str, Any]:
    event = {
        "event_type": "track_playback_progress",
        "event_id": str(uuid.uuid4()),
        "event_version": 1,
        "occurred_at": at.isoformat(),
        "track_id": track_id,
        "position_ms": 1500,
        "listened_ms": 1500,
        "session_id": "player-1",
    }
    event.update(overrides)
    return event


def test_valid_events_are_accepted_with_the_caller_as_actor(
    harness: StackHarness, listener: tuple[Api, str], sink: RecordingSink
) -> None:
    # Given a player that reports two progress events of the user's own track
    api, track_id = listener
    now = harness.clock.now()
    sent = [_progress(track_id, now - timedelta(seconds=5)), _progress(track_id, now)]

    # When it posts them
    response = api.post("/v1/events", json={"events": sent}, headers={"X-Correlation-Id": "c1"})

    # Then both are accepted and sent on, as the caller, with the client's ids
    assert response.status_code == 202, response.text
    assert response.json() == {"accepted": 2, "rejected": []}
    me = api.get("/v1/me").json()["id"]
    got = [e for e in sink.events if e.source == "collector"]
    assert [str(e.event_id) for e in got] == [e["event_id"] for e in sent]
    assert {(e.actor_type, e.actor_id, e.correlation_id, e.session_id) for e in got} == {
        ("user", me, "c1", "player-1")
    }
    assert got[0].position_ms == 1500 and str(got[0].track_id) == track_id


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"position_ms": "12"}, "invalid_event"),
        ({"listened_ms": -1}, "invalid_event"),
        ({"actor_id": "someone-else"}, "invalid_event"),
        ({"actor_type": "system"}, "invalid_event"),
        ({"source": "library"}, "invalid_event"),
        ({"event_type": "track_uploaded"}, "invalid_event"),
        ({"event_version": 2}, "invalid_event"),
        ({"event_id": "not-a-uuid"}, "invalid_event"),
        ({"occurred_at": "yesterday"}, "invalid_event"),
        ({"track_id": None}, "invalid_event"),
    ],
    ids=[
        "wrong-type",
        "negative-measure",
        "forged-actor",
        "forged-actor-type",
        "forged-source",
        "server-side-type",
        "unknown-version",
        "bad-uuid",
        "bad-time",
        "null-required",
    ],
)
def test_each_bad_event_is_refused_with_its_reason_and_the_rest_accepted(
    harness: StackHarness,
    listener: tuple[Api, str],
    sink: RecordingSink,
    overrides: dict[str, Any],
    code: str,
) -> None:
    api, track_id = listener
    now = harness.clock.now()
    good, bad = _progress(track_id, now), _progress(track_id, now, **overrides)
    response = api.post("/v1/events", json={"events": [bad, good]})
    assert response.status_code == 202, response.text
    result = response.json()
    assert result["accepted"] == 1
    [rejection] = result["rejected"]
    assert (rejection["index"], rejection["code"]) == (0, code)
    assert rejection["reason"]
    assert [str(e.event_id) for e in sink.events if e.source == "collector"] == [good["event_id"]]


@pytest.mark.parametrize(
    ("shift", "code"),
    [
        (timedelta(days=7, seconds=1), "too_old"),
        (-timedelta(minutes=5, seconds=1), "in_the_future"),
    ],
)
def test_events_too_old_or_from_the_future_are_refused(
    harness: StackHarness, listener: tuple[Api, str], shift: timedelta, code: str
) -> None:
    api, track_id = listener
    event = _progress(track_id, harness.clock.now() - shift)
    response = api.post("/v1/events", json={"events": [event]})
    assert response.status_code == 422
    assert response.json()["code"] == "events_rejected"
    assert response.json()["rejected"][0]["code"] == code


def test_events_about_another_users_track_are_refused(
    harness: StackHarness, listener: tuple[Api, str], sink: RecordingSink
) -> None:
    _, track_id = listener
    mallory = harness.user("mallory")
    response = mallory.post(
        "/v1/events", json={"events": [_progress(track_id, harness.clock.now())]}
    )
    assert response.status_code == 422
    assert response.json()["rejected"][0]["code"] == "object_not_accessible"
    assert not [e for e in sink.events if e.source == "collector"]


def test_pitch_recipient_events_do_not_come_through_the_user_collector(
    harness: StackHarness, listener: tuple[Api, str]
) -> None:
    api, track_id = listener
    event = {
        "event_type": "pitch_track_played",
        "event_id": str(uuid.uuid4()),
        "event_version": 1,
        "occurred_at": harness.clock.now().isoformat(),
        "track_id": track_id,
    }
    response = api.post("/v1/events", json={"events": [event]})
    assert response.json()["rejected"][0]["code"] == "wrong_actor"


def test_the_same_event_id_twice_in_a_request_is_accepted_once(
    harness: StackHarness, listener: tuple[Api, str]
) -> None:
    api, track_id = listener
    event = _progress(track_id, harness.clock.now())
    result = api.post("/v1/events", json={"events": [event, event]}).json()
    assert result["accepted"] == 1
    assert result["rejected"][0]["code"] == "duplicate_event_id"


def test_too_many_events_or_too_large_a_body_is_refused_whole(
    harness: StackHarness, listener: tuple[Api, str]
) -> None:
    api, track_id = listener
    now = harness.clock.now()
    many = [_progress(track_id, now) for _ in range(101)]
    assert api.post("/v1/events", json={"events": many}).json()["code"] == "validation_failed"
    big = [_progress(track_id, now, properties={"pad": "x" * 70_000})]
    response = api.post("/v1/events", json={"events": big})
    assert response.status_code == 413
    assert response.json()["code"] == "body_too_large"
    assert api.post("/v1/events", json={"events": []}).status_code == 422


def test_a_caller_over_the_rate_limit_is_told_when_to_come_back(
    harness: StackHarness, listener: tuple[Api, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a limit of three requests a minute
    api, track_id = listener
    monkeypatch.setattr(harness.stack.deps.settings, "collector_requests_per_minute", 3)
    body = {"events": [_progress(track_id, harness.clock.now())]}

    # When the caller sends a fourth within the minute
    codes = [api.post("/v1/events", json=body).status_code for _ in range(4)]

    # Then it is refused with Retry-After, and another user is not affected
    assert codes[:3] == [202, 202, 202]
    refused = api.post("/v1/events", json=body)
    assert refused.status_code == 429
    assert refused.json()["code"] == "rate_limited"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert harness.user().post("/v1/events", json=body).status_code != 429
