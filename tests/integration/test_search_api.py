"""Search on the local stack: writes reach the index through the outbox; access is enforced."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support.events import RecordingSink
from tests.support.stack import Api, StackHarness

pytestmark = pytest.mark.integration


def _search(api: Api, query: str = "", **params: Any) -> dict[str, Any]:
    response = api.get("/v1/search", params={"q": query, **params})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _titles(result: dict[str, Any]) -> list[str]:
    return [hit["track"]["title"] for hit in result["hits"]]


def _eventually(check: Callable[[], bool], what: str, seconds: float = 10.0) -> None:
    """The index follows the database shortly after commit: wait for it, then say what failed."""
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds} s: {what}")
        time.sleep(0.05)


def _me(api: Api) -> str:
    user_id: str = api.get("/v1/me").json()["id"]
    return user_id


def test_an_upload_becomes_searchable_and_follows_edits_and_deletion(
    harness: StackHarness, tmp_path: Path
) -> None:
    # Given a user who uploads a track
    api = harness.user()
    track_id = api.new_track(tmp_path, "Marmalade Skies")
    # Then it is found by a word of its title, typo and all
    _eventually(lambda: "Marmalade Skies" in _titles(_search(api, "marmelade")), "upload found")
    # When its title is edited
    api.patch(f"/v1/tracks/{track_id}", json={"title": "Tangerine Dream", "mood": "Dreamy"})
    # Then the new title is found and the old one is not
    _eventually(lambda: "Tangerine Dream" in _titles(_search(api, "tangerine")), "edit found")
    assert _search(api, "marmalade")["hits"] == []
    # Facet values are the lowercased keywords that filters match
    assert _search(api, "tangerine")["facets"]["mood"] == {"dreamy": 1}
    # When it is deleted, it is gone
    assert api.delete(f"/v1/tracks/{track_id}").status_code == 204
    _eventually(lambda: _search(api, "tangerine")["hits"] == [], "deletion applied")


def test_a_share_lets_the_grantee_find_the_track_until_it_is_revoked(
    harness: StackHarness, tmp_path: Path
) -> None:
    # Given an owner's track and another user who cannot find it
    owner, grantee = harness.user(), harness.user()
    track_id = owner.new_track(tmp_path, "Velvet Harbour")
    _eventually(lambda: _titles(_search(owner, "velvet")) == ["Velvet Harbour"], "owner finds it")
    assert _search(grantee, "velvet")["hits"] == []
    # When the owner shares it with them
    share = owner.post(
        "/v1/shares",
        json={
            "object_type": "track",
            "object_id": track_id,
            "permission": "view",
            "grantee_user_id": _me(grantee),
        },
    ).json()
    # Then the grantee finds it
    _eventually(lambda: _titles(_search(grantee, "velvet")) == ["Velvet Harbour"], "share seen")
    # And after the share is revoked, no longer
    assert owner.delete(f"/v1/shares/{share['id']}").status_code == 204
    _eventually(lambda: _search(grantee, "velvet")["hits"] == [], "revocation seen")


def test_a_shared_playlist_makes_its_tracks_findable(harness: StackHarness, tmp_path: Path) -> None:
    owner, grantee = harness.user(), harness.user()
    track_id = owner.new_track(tmp_path, "Copper Lanterns")
    playlist = owner.post("/v1/playlists", json={"title": "Glow"}).json()
    owner.post(f"/v1/playlists/{playlist['id']}/tracks", json={"track_id": track_id})
    owner.post(
        "/v1/shares",
        json={
            "object_type": "playlist",
            "object_id": playlist["id"],
            "permission": "view",
            "grantee_user_id": _me(grantee),
        },
    )
    _eventually(lambda: _titles(_search(grantee, "copper")) == ["Copper Lanterns"], "via playlist")


def test_filters_facets_and_pages_only_count_what_the_caller_may_see(
    harness: StackHarness, tmp_path: Path
) -> None:
    # Given two users with tracks of one genre each
    mine, theirs = harness.user(), harness.user()
    for n in range(3):
        track = mine.new_track(tmp_path, f"Orbit {n}")
        mine.patch(f"/v1/tracks/{track}", json={"genre": "Ambient", "bpm": 100 + n * 10})
    other = theirs.new_track(tmp_path, "Orbit Elsewhere")
    theirs.patch(f"/v1/tracks/{other}", json={"genre": "Techno", "bpm": 110})
    _eventually(lambda: _search(mine, "orbit", bpm_min=110)["total"] == 2, "edits indexed")
    # When the first user searches with a BPM range and pages through
    result = _search(mine, "orbit", bpm_min=110, bpm_max=120, limit=1, sort="title")
    # Then both bounds are included, only their tracks count, and the cursor pages on
    assert result["total"] == 2
    assert list(result["facets"]["genre"].values()) == [2]
    second = _search(
        mine, "orbit", bpm_min=110, bpm_max=120, limit=1, sort="title", cursor=result["next_cursor"]
    )
    assert _titles(result) + _titles(second) == ["Orbit 1", "Orbit 2"]
    assert second["next_cursor"] is None


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({"bpm_min": 120, "bpm_max": 100}, 422, "invalid_range"),
        ({"sort": "loudness"}, 422, "validation_failed"),
        ({"limit": 0}, 422, "validation_failed"),
        ({"q": "x" * 201}, 422, "validation_failed"),
        ({"cursor": "not-a-cursor"}, 400, "invalid_cursor"),
    ],
)
def test_bad_search_parameters_are_refused(
    harness: StackHarness, params: dict[str, Any], status: int, code: str
) -> None:
    response = harness.user().get("/v1/search", params=params)
    assert response.status_code == status, response.text
    assert response.json()["code"] == code


def test_a_search_with_filters_only_lists_what_matches_them(harness: StackHarness) -> None:
    result = _search(harness.user(), "", genre="Nothing Like It")
    assert result["hits"] == [] and result["total"] == 0


def test_searching_needs_a_signed_in_user(harness: StackHarness) -> None:
    assert harness.client.get("/v1/search?q=anything").status_code == 401


def test_a_search_is_a_usage_event_with_query_filters_and_counts(
    harness: StackHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = RecordingSink()
    monkeypatch.setattr(harness.stack.deps, "events", sink)
    api = harness.user()
    _search(api, "nothing here", genre="Ambient,Jazz", bpm_min=90)
    [event] = [e for e in sink.events if e.event_type == "search_performed"]
    assert event.properties["query"] == "nothing here"
    assert event.properties["filters"] == {"genres": ["Ambient", "Jazz"], "bpm": [90.0, None]}
    assert event.result_count == 0 and event.latency_ms is not None
