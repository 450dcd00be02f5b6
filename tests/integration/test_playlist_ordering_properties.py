"""Playlist ordering under random sequences of add / remove / reorder, through the HTTP API.

A plain Python list is the model: after every step the playlist's order as the API shows it
equals the model, its positions are 0..n-1 (as shown and as stored), and every accepted write
moved the version strictly forward while a refused one changed nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from tests.support.stack import Api, StackHarness

pytestmark = pytest.mark.integration

TRACKS = 4


def _json(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    return body


class PlaylistOrdering(RuleBasedStateMachine):
    """One fresh playlist per run; the model is [(entry id, track id), ...] in order."""

    api: ClassVar[Api]
    harness: ClassVar[StackHarness]
    tracks: ClassVar[list[str]]

    def __init__(self) -> None:
        super().__init__()
        self.model: list[tuple[str, str]] = []
        self.pid = ""
        self.version = 0

    @initialize()
    def create(self) -> None:
        created = _json(self.api.post("/v1/playlists", json={"title": "Property"}), 201)
        self.pid, self.version = created["id"], created["version"]

    def _accepted(self, version: int) -> None:
        assert version > self.version
        self.version = version

    @rule(track=st.integers(0, TRACKS - 1), where=st.none() | st.integers(0, 600))
    def add(self, track: int, where: int | None) -> None:
        body: dict[str, Any] = {"track_id": self.tracks[track]}
        if where is not None:
            body["position"] = where
        response = self.api.post(f"/v1/playlists/{self.pid}/tracks", json=body)
        if where is not None and where > len(self.model):
            assert _json(response, 422)["code"] == "position_out_of_range"
            return
        added = _json(response, 201)
        index = len(self.model) if where is None else where
        assert added["entry"]["position"] == index
        self.model.insert(index, (added["entry"]["id"], self.tracks[track]))
        self._accepted(added["playlist_version"])

    @precondition(lambda self: bool(self.model))
    @rule(pick=st.integers(0, 10_000))
    def remove(self, pick: int) -> None:
        entry_id, _ = self.model[pick % len(self.model)]
        response = self.api.delete(
            f"/v1/playlists/{self.pid}/tracks/{entry_id}",
            headers={"If-Match": f'"{self.version}"'},
        )
        assert response.status_code == 204, response.text
        self.model = [e for e in self.model if e[0] != entry_id]
        self._accepted(int(response.headers["etag"].strip('"')))

    @rule(data=st.data())
    def reorder(self, data: st.DataObject) -> None:
        new_order = data.draw(st.permutations(self.model))
        response = self.api.put(
            f"/v1/playlists/{self.pid}/order",
            json={"entry_ids": [entry_id for entry_id, _ in new_order], "version": self.version},
        )
        reordered = _json(response, 200)
        self.model = list(new_order)
        assert [e["id"] for e in reordered["entries"]] == [entry_id for entry_id, _ in self.model]
        self._accepted(reordered["version"])

    @precondition(lambda self: self.version > 1)
    @rule(data=st.data())
    def stale_reorder(self, data: st.DataObject) -> None:
        new_order = data.draw(st.permutations(self.model))
        response = self.api.put(
            f"/v1/playlists/{self.pid}/order",
            json={"entry_ids": [entry_id for entry_id, _ in new_order]},
            headers={"If-Match": f'"{self.version - 1}"'},
        )
        body = _json(response, 409)
        assert (body["code"], body["current_version"]) == ("version_conflict", self.version)

    @precondition(lambda self: bool(self.model))
    @rule(drop=st.integers(0, 10_000))
    def mismatched_reorder(self, drop: int) -> None:
        entry_ids = [entry_id for entry_id, _ in self.model]
        del entry_ids[drop % len(entry_ids)]
        response = self.api.put(
            f"/v1/playlists/{self.pid}/order",
            json={"entry_ids": entry_ids, "version": self.version},
        )
        body = _json(response, 409)
        assert body["code"] == "order_mismatch"
        assert body["entry_ids"] == [entry_id for entry_id, _ in self.model]

    @invariant()
    def the_api_shows_the_model(self) -> None:
        if not self.pid:
            return
        playlist = _json(self.api.get(f"/v1/playlists/{self.pid}"), 200)
        entries = playlist["entries"]
        assert [(e["id"], e["track"]["id"]) for e in entries] == self.model
        assert [e["position"] for e in entries] == list(range(len(entries)))
        assert playlist["track_count"] == len(self.model)
        assert playlist["version"] == self.version
        with self.harness.stack.deps.pool.connection() as conn:
            stored = conn.execute(
                "SELECT position FROM playlist_entries WHERE playlist_id = %s ORDER BY position",
                (self.pid,),
            ).fetchall()
        assert [row["position"] for row in stored] == list(range(len(self.model)))


@pytest.fixture(scope="module")
def tracks(
    harness: StackHarness, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Api, list[str]]:
    """A user with a few short tracks, made once for the module."""
    folder: Path = tmp_path_factory.mktemp("ordering-tracks")
    api = harness.user()
    return api, [api.new_track(folder, seconds=0.2) for _ in range(TRACKS)]


def test_playlist_order_follows_a_list_model_under_random_edits(
    harness: StackHarness, tracks: tuple[Api, list[str]]
) -> None:
    PlaylistOrdering.api, PlaylistOrdering.tracks = tracks
    PlaylistOrdering.harness = harness
    run_state_machine_as_test(
        PlaylistOrdering,
        settings=settings(
            max_examples=25,
            stateful_step_count=20,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
            database=None,
        ),
    )
