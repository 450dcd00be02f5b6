"""The library API end to end through the local gateway, on real PostgreSQL and Redis."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest

from tests.support.audio_files import (
    FORMATS,
    SAMPLE_TAGS,
    make_audio,
    make_not_audio,
    make_truncated,
    make_unsupported,
)
from tests.support.events import RecordingSink
from tests.support.stack import Api, StackHarness

pytestmark = pytest.mark.integration

TAGS = SAMPLE_TAGS
EXPECTED = {
    "mp3": ("mp3", "mp3", "audio/mpeg"),
    "wav": ("wav", "pcm", "audio/wav"),
    "bwf": ("wav", "pcm", "audio/wav"),
    "flac": ("flac", "flac", "audio/flac"),
    "aiff": ("aiff", "pcm", "audio/aiff"),
    "m4a_aac": ("m4a", "aac", "audio/mp4"),
    "m4a_alac": ("m4a", "alac", "audio/mp4"),
    "ogg_vorbis": ("ogg", "vorbis", "audio/ogg"),
    "ogg_opus": ("ogg", "opus", "audio/ogg"),
}


def _problem(response: object, status: int, code: str) -> dict[str, object]:
    import httpx

    assert isinstance(response, httpx.Response)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, object] = response.json()
    assert body["code"] == code, body
    assert body["status"] == status
    return body


def _row_counts(database_url: str, owner_email: str) -> tuple[int, int]:
    """(tracks, pending-or-completed uploads) rows of the user with that email."""
    with psycopg.connect(database_url) as conn:
        tracks = conn.execute(
            "SELECT count(*) FROM tracks t JOIN users u ON u.id = t.owner_id WHERE u.email = %s",
            (owner_email,),
        ).fetchone()
        uploads = conn.execute(
            "SELECT count(*) FROM uploads p JOIN users u ON u.id = p.owner_id "
            "WHERE u.email = %s AND p.status <> 'rejected'",
            (owner_email,),
        ).fetchone()
    assert tracks is not None and uploads is not None
    return tracks[0], uploads[0]


def _objects(harness: StackHarness) -> list[Path]:
    root = harness.stack.settings.objects_dir
    return [p for p in root.rglob("*") if p.is_file() and ".slots" not in p.parts]


@pytest.mark.parametrize("fmt", FORMATS)
def test_upload_of_each_supported_format_creates_a_track_with_its_metadata(
    harness: StackHarness, tmp_path: Path, fmt: str
) -> None:
    # Given a tagged file of the format
    path = make_audio(fmt, tmp_path / f"night-drive.{fmt}", seconds=1.0, tags=TAGS)
    api = harness.user()

    # When it is uploaded through the API
    response = api.upload(path)

    # Then the track carries what the file says
    assert response.status_code == 201, response.text
    track = response.json()
    container, codec, content_type = EXPECTED[fmt]
    assert (track["container"], track["codec"], track["content_type"]) == (
        container,
        codec,
        content_type,
    )
    assert track["title"] == "Night Drive"
    assert track["artists"] == ["Ada Lane", "The Sync Band"]
    assert track["album"] == "Cues Vol. 1"
    assert track["year"] == 2024
    assert track["genre"] == "Synthwave"
    assert track["isrc"] == "USRC17607839"
    assert track["bpm"] == 118
    assert track["musical_key"] == "Am"
    assert 900 <= track["duration_ms"] <= 1100
    assert track["size_bytes"] == path.stat().st_size
    assert track["original_filename"] == path.name
    assert response.headers["etag"] == '"1"'
    # and it is in the owner's library
    listed = api.get("/v1/tracks").json()["items"]
    assert [t["id"] for t in listed] == [track["id"]]


def test_untagged_file_takes_its_title_from_the_filename(
    harness: StackHarness, tmp_path: Path
) -> None:
    path = make_audio("flac", tmp_path / "Rain Loop.flac")
    response = harness.user().upload(path)
    assert response.status_code == 201, response.text
    assert response.json()["title"] == "Rain Loop"
    assert response.json()["artists"] == []


@pytest.mark.parametrize(
    ("maker", "status", "code"),
    [
        (lambda p: make_not_audio(p / "cover.png"), 415, "not_audio"),
        (lambda p: make_truncated("wav", p / "cut.wav"), 422, "corrupt_audio"),
        (lambda p: make_truncated("flac", p / "cut.flac"), 422, "corrupt_audio"),
        (lambda p: make_unsupported(p / "song.wma"), 415, "unsupported_codec"),
    ],
    ids=["not-audio", "truncated-wav", "truncated-flac", "wma"],
)
def test_bad_file_is_refused_and_leaves_nothing_behind(
    harness: StackHarness, tmp_path: Path, maker: object, status: int, code: str
) -> None:
    # Given a file that is not acceptable audio
    assert callable(maker)
    path: Path = maker(tmp_path)
    api = harness.user()
    before = set(_objects(harness))
    email = api.get("/v1/me").json()["email"]

    # When it is uploaded
    response = api.upload(path)

    # Then it is refused with a stable code, and neither a row nor the bytes remain
    _problem(response, status, code)
    assert _row_counts(harness.stack.settings.database_url or "", email) == (0, 0)
    assert set(_objects(harness)) == before


def test_upload_over_the_size_limit_is_refused_before_any_byte_is_sent(
    harness: StackHarness,
) -> None:
    limit = harness.stack.settings.upload_max_bytes
    response = harness.user().post("/v1/uploads", json={"filename": "x.wav", "size": limit + 1})
    body = _problem(response, 413, "upload_too_large")
    assert body["max_bytes"] == limit


def test_sending_more_bytes_than_announced_is_cut_off(
    harness: StackHarness, tmp_path: Path
) -> None:
    path = make_audio("wav", tmp_path / "a.wav")
    api = harness.user()
    target = api.start_upload(path, size=100).json()
    sent = harness.client.put(target["url"], content=path.read_bytes())
    _problem(sent, 413, "upload_too_large")
    # nothing arrived, so completion says so and the upload can still be used
    _problem(api.complete(target["upload_id"]), 409, "upload_not_received")


def test_fewer_bytes_than_announced_is_rejected_as_incomplete(
    harness: StackHarness, tmp_path: Path
) -> None:
    path = make_audio("wav", tmp_path / "a.wav")
    api = harness.user()
    target = api.start_upload(path, size=path.stat().st_size + 10).json()
    harness.client.put(target["url"], content=path.read_bytes())
    _problem(api.complete(target["upload_id"]), 422, "upload_size_mismatch")


def test_an_upload_url_cannot_write_again_once_the_upload_is_completed(
    harness: StackHarness, tmp_path: Path
) -> None:
    # Given a completed upload, streamed as checked
    path = make_audio("wav", tmp_path / "a.wav")
    api = harness.user()
    target = api.send(path)
    track = api.complete(target["upload_id"]).json()

    # When its upload URL is used again to swap the bytes
    swapped = harness.client.put(target["url"], content=b"<html>not audio</html>")

    # Then it is refused and the track still streams the checked bytes
    _problem(swapped, 409, "upload_closed")
    url = api.get(f"/v1/tracks/{track['id']}/stream").json()["url"]
    streamed = harness.client.get(url)
    assert streamed.content == path.read_bytes()
    assert streamed.headers["x-content-type-options"] == "nosniff"


def test_completing_an_unknown_upload_is_not_found(harness: StackHarness) -> None:
    response = harness.user().post(f"/v1/uploads/{uuid.uuid4()}/complete")
    _problem(response, 404, "upload_not_found")


def test_completing_an_upload_twice_is_a_conflict_naming_the_track(
    harness: StackHarness, tmp_path: Path
) -> None:
    path = make_audio("mp3", tmp_path / "a.mp3")
    api = harness.user()
    target = api.send(path)
    first = api.complete(target["upload_id"])
    assert first.status_code == 201
    again = api.complete(target["upload_id"])
    body = _problem(again, 409, "upload_already_completed")
    assert body["track_id"] == first.json()["id"]


def test_same_bytes_twice_is_a_duplicate_naming_the_existing_track(
    harness: StackHarness, tmp_path: Path
) -> None:
    path = make_audio("flac", tmp_path / "a.flac")
    api = harness.user()
    first = api.upload(path).json()
    before = set(_objects(harness))
    body = _problem(api.upload(path), 409, "duplicate_track")
    assert body["existing_track_id"] == first["id"]
    assert set(_objects(harness)) == before
    # another user may upload the same bytes to their own library
    assert harness.user().upload(path).status_code == 201


def test_upload_url_expires(harness: StackHarness, tmp_path: Path) -> None:
    path = make_audio("wav", tmp_path / "a.wav")
    api = harness.user()
    target = api.start_upload(path).json()
    harness.clock.advance(timedelta(hours=2))
    _problem(harness.client.put(target["url"], content=path.read_bytes()), 403, "url_expired")
    _problem(api.complete(target["upload_id"]), 410, "upload_expired")


def test_tampered_upload_url_is_refused(harness: StackHarness, tmp_path: Path) -> None:
    path = make_audio("wav", tmp_path / "a.wav")
    target = harness.user().start_upload(path).json()
    forged = target["url"].replace("max=", "max=9")
    _problem(harness.client.put(forged, content=b"x"), 403, "url_signature_invalid")


# -- listing ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def catalogue(harness: StackHarness, tmp_path_factory: pytest.TempPathFactory) -> Api:
    """A user with five tracks of different titles, lengths, genres and artists."""
    folder = tmp_path_factory.mktemp("catalogue")
    api = harness.user()
    specs = [
        ("Echo", 1.5, "Ambient", ["Ada Lane"]),
        ("alpha", 0.6, "Rock", ["Bo Reed"]),
        ("Delta", 2.0, "ambient", ["Ada Lane", "Bo Reed"]),
        ("Charlie", 0.8, "Jazz", ["Cy Moss"]),
        ("Bravo", 1.2, "Rock", ["Ada Lane"]),
    ]
    for title, seconds, genre, artists in specs:
        path = make_audio(
            "wav",
            folder / f"{title}.wav",
            seconds=seconds,
            tags={"title": title, "genre": genre, "artist": artists},
        )
        assert api.upload(path).status_code == 201
        harness.clock.advance(timedelta(seconds=1))
    return api


def _all_pages(api: Api, query: str, limit: int = 2) -> list[str]:
    titles: list[str] = []
    cursor = None
    while True:
        url = f"/v1/tracks?limit={limit}&{query}" + (f"&cursor={cursor}" if cursor else "")
        page = api.get(url)
        assert page.status_code == 200, page.text
        titles += [t["title"] for t in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            return titles


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("title", ["alpha", "Bravo", "Charlie", "Delta", "Echo"]),
        ("-title", ["Echo", "Delta", "Charlie", "Bravo", "alpha"]),
        ("duration", ["alpha", "Charlie", "Bravo", "Echo", "Delta"]),
        ("-duration", ["Delta", "Echo", "Bravo", "Charlie", "alpha"]),
        ("created", ["Echo", "alpha", "Delta", "Charlie", "Bravo"]),
        ("-created", ["Bravo", "Charlie", "Delta", "alpha", "Echo"]),
    ],
)
def test_listing_pages_through_every_track_once_in_the_requested_order(
    catalogue: Api, sort: str, expected: list[str]
) -> None:
    assert _all_pages(catalogue, f"sort={sort}") == expected


def test_listing_filters_by_genre_and_artist_case_insensitively(catalogue: Api) -> None:
    assert _all_pages(catalogue, "sort=title&genre=AMBIENT") == ["Delta", "Echo"]
    assert _all_pages(catalogue, "sort=title&artist=bo%20reed") == ["alpha", "Delta"]


def test_a_cursor_from_another_sort_is_refused(catalogue: Api) -> None:
    cursor = catalogue.get("/v1/tracks?limit=1&sort=title").json()["next_cursor"]
    _problem(catalogue.get(f"/v1/tracks?sort=duration&cursor={cursor}"), 400, "invalid_cursor")
    _problem(catalogue.get("/v1/tracks?cursor=not-a-cursor"), 400, "invalid_cursor")


def test_unknown_sort_is_a_validation_error(catalogue: Api) -> None:
    _problem(catalogue.get("/v1/tracks?sort=size"), 422, "validation_failed")


# -- one track --------------------------------------------------------------------------------


@pytest.fixture
def track(harness: StackHarness, tmp_path: Path) -> tuple[Api, dict[str, object]]:
    api = harness.user()
    path = make_audio("wav", tmp_path / "t.wav", seconds=2.0, tags={"title": "Tide"})
    response = api.upload(path)
    assert response.status_code == 201
    return api, response.json()


def test_editing_whitelisted_fields_bumps_the_version(
    track: tuple[Api, dict[str, object]],
) -> None:
    api, t = track
    response = api.patch(
        f"/v1/tracks/{t['id']}",
        json={"title": "Tide (Edit)", "artists": ["Mo"], "bpm": 90, "genre": None},
    )
    assert response.status_code == 200, response.text
    edited = response.json()
    assert (edited["title"], edited["artists"], edited["bpm"], edited["genre"]) == (
        "Tide (Edit)",
        ["Mo"],
        90,
        None,
    )
    assert edited["version"] == 2
    assert response.headers["etag"] == '"2"'
    assert api.get(f"/v1/tracks/{t['id']}").json()["title"] == "Tide (Edit)"


def test_search_fields_are_editable_and_lists_clear_to_empty(
    track: tuple[Api, dict[str, object]],
) -> None:
    # Given a track
    api, t = track
    # When its owner sets mood, tags and instrumental
    edited = api.patch(
        f"/v1/tracks/{t['id']}",
        json={"mood": "Uplifting", "tags": ["summer", "beach"], "instrumental": True},
    ).json()
    # Then they are kept
    assert (edited["mood"], edited["tags"], edited["instrumental"]) == (
        "Uplifting",
        ["summer", "beach"],
        True,
    )
    # And clearing a list field leaves it empty, not null
    cleared = api.patch(f"/v1/tracks/{t['id']}", json={"tags": None, "artists": None})
    assert cleared.status_code == 200, cleared.text
    assert (cleared.json()["tags"], cleared.json()["artists"]) == ([], [])


@pytest.mark.parametrize(
    "body",
    [{"sha256": "0" * 64}, {"duration_ms": 1}, {"title": None}, {"isrc": "nope"}, {"year": 99}],
    ids=["sha256", "duration", "null-title", "bad-isrc", "bad-year"],
)
def test_editing_anything_else_is_refused(
    track: tuple[Api, dict[str, object]], body: dict[str, object]
) -> None:
    api, t = track
    _problem(api.patch(f"/v1/tracks/{t['id']}", json=body), 422, "validation_failed")


def test_editing_a_stale_version_is_refused_with_the_current_one(
    track: tuple[Api, dict[str, object]],
) -> None:
    api, t = track
    assert api.patch(f"/v1/tracks/{t['id']}", json={"album": "A"}).status_code == 200
    stale = api.patch(f"/v1/tracks/{t['id']}", json={"album": "B"}, headers={"If-Match": '"1"'})
    body = _problem(stale, 412, "version_mismatch")
    assert body["current_version"] == 2
    fresh = api.patch(f"/v1/tracks/{t['id']}", json={"album": "B"}, headers={"If-Match": '"2"'})
    assert fresh.status_code == 200


def test_deleting_a_track_removes_row_and_audio(
    harness: StackHarness, track: tuple[Api, dict[str, object]]
) -> None:
    api, t = track
    before = len(_objects(harness))
    assert api.delete(f"/v1/tracks/{t['id']}").status_code == 204
    _problem(api.get(f"/v1/tracks/{t['id']}"), 404, "track_not_found")
    assert len(_objects(harness)) == before - 1
    _problem(api.delete(f"/v1/tracks/{t['id']}"), 404, "track_not_found")


# -- streaming and downloading --------------------------------------------------------------


def _media(harness: StackHarness, api: Api, track_id: object, kind: str) -> str:
    response = api.get(f"/v1/tracks/{track_id}/{kind}")
    assert response.status_code == 200, response.text
    url: str = response.json()["url"]
    return url


@pytest.mark.parametrize(
    ("range_header", "expected"),
    [
        ("bytes=0-99", slice(0, 100)),
        ("bytes=1000-1499", slice(1000, 1500)),
        ("bytes=-500", slice(-500, None)),
    ],
    ids=["first-bytes", "middle", "suffix"],
)
def test_streaming_serves_byte_ranges(
    harness: StackHarness,
    track: tuple[Api, dict[str, object]],
    tmp_path: Path,
    range_header: str,
    expected: slice,
) -> None:
    api, t = track
    whole = harness.client.get(_media(harness, api, t["id"], "stream"))
    assert whole.status_code == 200
    assert whole.headers["accept-ranges"] == "bytes"
    assert whole.headers["content-type"] == "audio/wav"
    part = harness.client.get(
        _media(harness, api, t["id"], "stream"), headers={"Range": range_header}
    )
    assert part.status_code == 206
    assert part.content == whole.content[expected]
    size = len(whole.content)
    start = expected.start if expected.start >= 0 else size + expected.start
    assert part.headers["content-range"] == f"bytes {start}-{start + len(part.content) - 1}/{size}"


def test_unsatisfiable_range_is_416(
    harness: StackHarness, track: tuple[Api, dict[str, object]]
) -> None:
    api, t = track
    url = _media(harness, api, t["id"], "stream")
    response = harness.client.get(url, headers={"Range": "bytes=99999999-"})
    assert response.status_code == 416
    assert response.headers["content-range"].startswith("bytes */")


def test_download_is_an_attachment_with_a_proper_filename(
    harness: StackHarness, tmp_path: Path
) -> None:
    api = harness.user()
    path = make_audio("flac", tmp_path / "x.flac", tags={"title": "Café: Nuit", "artist": "Zoë"})
    t = api.upload(path).json()
    response = harness.client.get(_media(harness, api, t["id"], "download"))
    assert response.status_code == 200
    assert response.content == path.read_bytes()
    assert response.headers["content-disposition"] == (
        'attachment; filename="Zo_ - Caf__ Nuit.flac"; '
        "filename*=UTF-8''Zo%C3%AB%20-%20Caf%C3%A9_%20Nuit.flac"
    )


def test_media_urls_expire(harness: StackHarness, track: tuple[Api, dict[str, object]]) -> None:
    api, t = track
    url = _media(harness, api, t["id"], "stream")
    harness.clock.advance(timedelta(minutes=6))
    _problem(harness.client.get(url), 403, "url_expired")


# -- authorization ----------------------------------------------------------------------------


def test_no_route_lets_another_user_see_or_touch_a_track(
    harness: StackHarness, track: tuple[Api, dict[str, object]], tmp_path: Path
) -> None:
    owner, t = track
    mallory = harness.user("mallory")
    tid = t["id"]
    for response in (
        mallory.get(f"/v1/tracks/{tid}"),
        mallory.patch(f"/v1/tracks/{tid}", json={"title": "mine"}),
        mallory.delete(f"/v1/tracks/{tid}"),
        mallory.get(f"/v1/tracks/{tid}/stream"),
        mallory.get(f"/v1/tracks/{tid}/download"),
    ):
        _problem(response, 404, "track_not_found")
    assert tid not in [x["id"] for x in mallory.get("/v1/tracks").json()["items"]]
    # and another user's upload cannot be completed by mallory
    path = make_audio("wav", tmp_path / "o.wav")
    target = owner.send(path)
    _problem(mallory.complete(target["upload_id"]), 404, "upload_not_found")
    # the owner still has it all
    assert owner.get(f"/v1/tracks/{tid}").json()["title"] == "Tide"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/me"),
        ("GET", "/v1/tracks"),
        ("POST", "/v1/uploads"),
        ("GET", "/v1/tracks/0f6b7e52-4b7c-4f43-9b59-4d0b3c2f1a11"),
        ("GET", "/v1/tracks/0f6b7e52-4b7c-4f43-9b59-4d0b3c2f1a11/stream"),
        ("PATCH", "/v1/tracks/0f6b7e52-4b7c-4f43-9b59-4d0b3c2f1a11"),
        ("DELETE", "/v1/tracks/0f6b7e52-4b7c-4f43-9b59-4d0b3c2f1a11"),
    ],
)
def test_every_route_needs_a_valid_token(harness: StackHarness, method: str, path: str) -> None:
    _problem(harness.client.request(method, path), 401, "token_missing")
    bad = harness.client.request(method, path, headers={"Authorization": "Bearer abc.def.ghi"})
    assert bad.status_code == 401
    assert bad.json()["code"] == "token_malformed"


# -- the stack itself ---------------------------------------------------------------------------


def test_health_openapi_and_docs_are_served(harness: StackHarness) -> None:
    assert harness.client.get("/healthz").json()["migrations"] == "applied"
    spec = harness.client.get("/openapi.json").json()
    assert {"/v1/tracks", "/v1/tracks/{track_id}", "/v1/uploads"} <= set(spec["paths"])
    assert "musicsync API" in harness.client.get("/docs").text
    jwks = harness.client.get("/.well-known/jwks.json").json()
    assert jwks["keys"][0]["kty"] == "RSA"


def test_unknown_route_is_a_problem_not_a_stack_trace(harness: StackHarness) -> None:
    _problem(harness.client.get("/v1/nothing"), 404, "route_not_found")
    _problem(harness.user().get("/v1/tracks/not-a-uuid"), 422, "validation_failed")


def test_uploads_never_completed_are_swept_with_their_bytes(
    harness: StackHarness, tmp_path: Path
) -> None:
    from services.library.sweeper import lambda_handler

    # Given an upload whose bytes arrived but which was never completed
    path = make_audio("wav", tmp_path / "abandoned.wav")
    api = harness.user()
    target = api.send(path)
    assert [p for p in _objects(harness) if p.name == target["upload_id"]]

    # When its URL has expired and the scheduled sweeper runs
    harness.clock.advance(timedelta(hours=2))
    result = lambda_handler({}, None)

    # Then its bytes are gone and completing it says it expired
    assert result["expired"] >= 1
    assert not [p for p in _objects(harness) if p.name == target["upload_id"]]
    _problem(api.complete(target["upload_id"]), 409, "upload_rejected")


def test_a_database_failure_before_routing_is_a_500_problem_too(
    harness: StackHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    api = harness.user()

    def down(token: object) -> None:
        raise RuntimeError("connection refused to 10.0.0.5")

    monkeypatch.setattr(harness.stack.deps.users, "provision", down)
    response = api.get("/v1/tracks", headers={"X-Correlation-Id": "corr-9"})
    body = _problem(response, 500, "internal_error")
    assert body["correlation_id"] == "corr-9"
    assert "10.0.0.5" not in response.text


def test_an_unexpected_failure_is_a_500_problem_with_the_correlation_id_and_no_trace(
    harness: StackHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    from services.library.logic import Library

    def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(Library, "get_track", broken)
    response = harness.user().get(
        "/v1/tracks/0f6b7e52-4b7c-4f43-9b59-4d0b3c2f1a11",
        headers={"X-Correlation-Id": "corr-123"},
    )
    body = _problem(response, 500, "internal_error")
    assert body["correlation_id"] == "corr-123"
    assert response.headers["x-correlation-id"] == "corr-123"
    assert "secret internals" not in response.text and "Traceback" not in response.text


def test_each_library_action_emits_its_usage_event_once_after_the_response(
    harness: StackHarness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a sink that records what the services send
    sink = RecordingSink()
    monkeypatch.setattr(harness.stack.deps, "events", sink)
    api = harness.user()
    me = api.get("/v1/me").json()["id"]

    # When a user uploads, streams, downloads, edits and deletes a track, and a bad file fails
    track = api.upload(make_audio("wav", tmp_path / "e.wav")).json()
    api.get(f"/v1/tracks/{track['id']}/stream")
    api.get(f"/v1/tracks/{track['id']}/download")
    api.patch(
        f"/v1/tracks/{track['id']}", json={"genre": "Ambient"}, headers={"X-Correlation-Id": "c-9"}
    )
    api.delete(f"/v1/tracks/{track['id']}")
    api.upload(make_not_audio(tmp_path / "x.png"))

    # Then each action is one event, by that user, naming the track, with the request's id
    kinds = [e.event_type for e in sink.events]
    assert kinds == [
        "track_upload_started",
        "track_uploaded",
        "track_stream_started",
        "track_downloaded",
        "track_updated",
        "track_deleted",
        "track_upload_started",
        "track_upload_rejected",
    ]
    assert {e.actor_id for e in sink.events} == {me}
    assert all(e.source == "library" for e in sink.events)
    by_kind = {e.event_type: e for e in sink.events}
    assert str(by_kind["track_uploaded"].track_id) == track["id"]
    assert by_kind["track_uploaded"].bytes == track["size_bytes"]
    assert by_kind["track_updated"].properties == {"fields": ["genre"]}
    assert by_kind["track_updated"].correlation_id == "c-9"
    assert by_kind["track_upload_rejected"].properties["reason"] == "not_audio"
    assert len({e.event_id for e in sink.events}) == len(sink.events)


@pytest.mark.parametrize(
    ("sort", "state"),
    [
        ("title", {"id": "0f6b7e52-4b7c-4f43-9b59-4d0b3c2f1a11"}),
        ("title", {"v": "a", "id": "not-a-uuid"}),
        ("duration", {"v": "x", "id": "0f6b7e52-4b7c-4f43-9b59-4d0b3c2f1a11"}),
        ("created", {"v": "not a date", "id": "0f6b7e52-4b7c-4f43-9b59-4d0b3c2f1a11"}),
        ("created", {"v": [1], "id": "0f6b7e52-4b7c-4f43-9b59-4d0b3c2f1a11"}),
    ],
    ids=["no-value", "bad-id", "text-duration", "bad-date", "list-value"],
)
def test_a_cursor_tampered_with_is_a_client_error(
    catalogue: Api, sort: str, state: dict[str, object]
) -> None:
    from services.core.pagination import encode_cursor

    cursor = encode_cursor({"scope": f"{sort}||", **state})
    _problem(catalogue.get(f"/v1/tracks?sort={sort}&cursor={cursor}"), 400, "invalid_cursor")


def test_an_upload_that_cannot_be_expired_now_does_not_hold_back_the_others(
    harness: StackHarness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from services.library.sweeper import sweep

    # Given two overdue uploads, one whose bytes cannot be removed right now
    sink = RecordingSink()
    monkeypatch.setattr(harness.stack.deps, "events", sink)
    api = harness.user()
    stuck = api.send(make_audio("wav", tmp_path / "stuck.wav"))
    free = api.send(make_audio("flac", tmp_path / "free.flac"))
    harness.clock.advance(timedelta(hours=2))
    real_abort = harness.stack.deps.objects.abort_upload

    def abort(key: str, multipart_id: str | None) -> None:
        if key.endswith(stuck["upload_id"]):
            raise OSError("disk busy")
        real_abort(key, multipart_id)

    monkeypatch.setattr(harness.stack.deps.objects, "abort_upload", abort)

    # When the sweeper runs twice
    sweep()
    sweep()

    # Then the other upload is expired once, with one event, and the stuck one is still pending
    expired = [
        e.properties["upload_id"] for e in sink.events if e.event_type == "track_upload_rejected"
    ]
    assert free["upload_id"] in expired and stuck["upload_id"] not in expired
    assert expired.count(free["upload_id"]) == 1
    _problem(api.complete(free["upload_id"]), 409, "upload_rejected")
    # and once the store works again, the stuck one is refused as expired, bytes dropped
    monkeypatch.setattr(harness.stack.deps.objects, "abort_upload", real_abort)
    _problem(api.complete(stuck["upload_id"]), 410, "upload_expired")
    assert not [p for p in _objects(harness) if p.name == stuck["upload_id"]]


# -- completing under a lease -------------------------------------------------------------------


def _idle_in_transaction(database_url: str) -> list[str]:
    """Queries of the connections to this database left idle inside an open transaction (but
    the change-capture publisher's: it holds the outbox rows it claimed while it indexes them,
    by design, and whenever a write happened just before)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT query FROM pg_stat_activity WHERE datname = current_database() "
            "AND state = 'idle in transaction' AND pid <> pg_backend_pid()"
        ).fetchall()
    return [r[0] for r in rows if "FROM outbox" not in r[0]]


def _set_claim(database_url: str, upload_id: str, lease_until: object) -> None:
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "UPDATE uploads SET status = 'processing', lease_until = %s WHERE id = %s",
            (lease_until, upload_id),
        )


def _upload_state(database_url: str, upload_id: str) -> tuple[str, object]:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT status, lease_until FROM uploads WHERE id = %s", (upload_id,)
        ).fetchone()
    assert row is not None
    return row[0], row[1]


def test_no_database_connection_is_held_while_the_file_is_inspected(
    harness: StackHarness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from services.library import audio

    # Given an inspection that looks at the database's connections while it runs
    database_url = harness.stack.settings.database_url or ""
    real_inspect = audio.inspect_file
    seen: list[list[str]] = []

    def inspect_file(path: Path) -> audio.Inspection:
        seen.append(_idle_in_transaction(database_url))
        return real_inspect(path)

    monkeypatch.setattr(audio, "inspect_file", inspect_file)

    # When a file is uploaded
    response = harness.user().upload(make_audio("wav", tmp_path / "held.wav"))

    # Then it became a track, and no transaction was left open during the inspection
    assert response.status_code == 201, response.text
    assert seen == [[]]


def test_a_second_completion_while_the_first_runs_is_told_to_retry(
    harness: StackHarness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ingest.events.emitter import Emitter
    from services.core.errors import ProblemError
    from services.core.principal import Principal
    from services.library import audio
    from services.library.logic import Library

    # Given a completion that is inspecting the file (holding a valid lease)
    api = harness.user()
    me = api.get("/v1/me").json()
    caller = Principal(uuid.UUID(me["id"]), "test", "test", me["email"], None)
    deps = harness.stack.deps
    events = Emitter(deps.events, deps.clock, source="library")
    library = Library(deps.pool, deps.objects, deps.clock, deps.settings, events)
    target = api.send(make_audio("flac", tmp_path / "twice.flac"))
    real_inspect = audio.inspect_file
    concurrent: list[ProblemError] = []

    def inspect_file(path: Path) -> audio.Inspection:
        # When the same upload is completed again meanwhile (straight through the library: the
        # test client serves one request at a time)
        with pytest.raises(ProblemError) as refused:
            library.complete_upload(caller, uuid.UUID(target["upload_id"]), [])
        concurrent.append(refused.value)
        return real_inspect(path)

    monkeypatch.setattr(audio, "inspect_file", inspect_file)
    first = api.complete(target["upload_id"])

    # Then the second is told another completion is running, and the first still succeeds
    assert [(e.status, e.code) for e in concurrent] == [(409, "upload_in_progress")]
    assert "retry" in str(concurrent[0].detail)
    assert first.status_code == 201, first.text
    again = _problem(api.complete(target["upload_id"]), 409, "upload_already_completed")
    assert again["track_id"] == first.json()["id"]


def test_a_completion_that_lost_its_lease_leaves_the_upload_to_the_new_claim(
    harness: StackHarness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from services.library import audio

    # Given a completion so slow that its lease ran out and another completion claimed it
    database_url = harness.stack.settings.database_url or ""
    api = harness.user()
    target = api.send(make_audio("wav", tmp_path / "slow.wav"))
    real_inspect = audio.inspect_file
    takeover = harness.clock.now() + timedelta(minutes=20)

    def inspect_file(path: Path) -> audio.Inspection:
        _set_claim(database_url, target["upload_id"], takeover)
        return real_inspect(path)

    monkeypatch.setattr(audio, "inspect_file", inspect_file)

    # When the slow completion finishes its work
    response = api.complete(target["upload_id"])

    # Then it gives way: no track, the new claim untouched, the bytes still there
    _problem(response, 409, "upload_in_progress")
    assert _upload_state(database_url, target["upload_id"]) == ("processing", takeover)
    assert [p for p in _objects(harness) if p.name == target["upload_id"]]
    assert api.get("/v1/tracks").json()["items"] == []


def test_an_upload_not_received_stays_usable_after_the_claim(
    harness: StackHarness, tmp_path: Path
) -> None:
    # Given an upload whose bytes have not been sent
    database_url = harness.stack.settings.database_url or ""
    path = make_audio("wav", tmp_path / "late.wav")
    api = harness.user()
    target = api.start_upload(path).json()

    # When it is completed too early, then the bytes are sent and it is completed again
    _problem(api.complete(target["upload_id"]), 409, "upload_not_received")
    assert _upload_state(database_url, target["upload_id"]) == ("pending", None)
    harness.client.put(target["url"], content=path.read_bytes(), headers=target["headers"])

    # Then the retry makes the track
    assert api.complete(target["upload_id"]).status_code == 201


def test_a_completion_that_crashed_can_be_completed_again_once_its_lease_ran_out(
    harness: StackHarness, tmp_path: Path
) -> None:
    # Given an upload whose completion crashed mid-way, its lease now run out
    database_url = harness.stack.settings.database_url or ""
    api = harness.user()
    target = api.send(make_audio("mp3", tmp_path / "crashed.mp3"))
    _set_claim(database_url, target["upload_id"], harness.clock.now() - timedelta(minutes=1))

    # When it is completed again
    response = api.complete(target["upload_id"])

    # Then the track is made
    assert response.status_code == 201, response.text
    assert _upload_state(database_url, target["upload_id"]) == ("completed", None)


def test_the_sweeper_expires_a_crashed_completion_but_not_one_still_running(
    harness: StackHarness, tmp_path: Path
) -> None:
    from services.library.sweeper import sweep

    # Given two overdue uploads being completed: one crashed (lease run out), one still running
    database_url = harness.stack.settings.database_url or ""
    api = harness.user()
    crashed = api.send(make_audio("wav", tmp_path / "crashed.wav"))
    running = api.send(make_audio("flac", tmp_path / "running.flac"))
    harness.clock.advance(timedelta(hours=2))
    now = harness.clock.now()
    _set_claim(database_url, crashed["upload_id"], now - timedelta(minutes=1))
    _set_claim(database_url, running["upload_id"], now + timedelta(minutes=10))

    # When the sweeper runs
    sweep()

    # Then the crashed one is expired with its bytes, the running one is left alone
    assert _upload_state(database_url, crashed["upload_id"]) == ("rejected", None)
    assert not [p for p in _objects(harness) if p.name == crashed["upload_id"]]
    assert _upload_state(database_url, running["upload_id"]) == (
        "processing",
        now + timedelta(minutes=10),
    )
    assert [p for p in _objects(harness) if p.name == running["upload_id"]]
    _problem(api.complete(running["upload_id"]), 409, "upload_in_progress")
    _problem(api.complete(crashed["upload_id"]), 409, "upload_rejected")
