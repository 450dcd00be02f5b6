"""The local stack in-process (real PostgreSQL and Redis), driven over HTTP with TestClient."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from musicsync.stack import LocalStack, local_settings, open_stack
from services.core.clock import ManualClock
from tests.support.audio_files import make_audio

PUBLIC_URL = "http://testserver"


@dataclass
class Api:
    """One signed-in user talking to the stack."""

    client: TestClient
    token: str

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = {**self.auth, **kw.pop("headers", {})}
        response: httpx.Response = self.client.request(method, path, headers=headers, **kw)
        return response

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("POST", path, **kw)

    def patch(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("PATCH", path, **kw)

    def put(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("PUT", path, **kw)

    def delete(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("DELETE", path, **kw)

    def start_upload(self, path: Path, size: int | None = None) -> httpx.Response:
        return self.post(
            "/v1/uploads", json={"filename": path.name, "size": size or path.stat().st_size}
        )

    def send(self, path: Path) -> dict[str, Any]:
        """Start an upload and send the bytes; the upload target, not yet completed."""
        started = self.start_upload(path)
        assert started.status_code == 201, started.text
        target: dict[str, Any] = started.json()
        sent = self.client.put(target["url"], content=path.read_bytes(), headers=target["headers"])
        assert sent.status_code == 200, sent.text
        return target

    def complete(self, upload_id: str) -> httpx.Response:
        return self.post(f"/v1/uploads/{upload_id}/complete", json={})

    def upload(self, path: Path) -> httpx.Response:
        """The whole flow a client runs: start, send the bytes, complete."""
        return self.complete(self.send(path)["upload_id"])

    def new_track(self, folder: Path, title: str | None = None, seconds: float = 1.0) -> str:
        """Upload a short WAV with a title of its own (so never a duplicate); its track id."""
        title = title or f"Track {uuid.uuid4().hex[:8]}"
        path = make_audio(
            "wav",
            folder / f"{uuid.uuid4().hex}.wav",
            seconds=seconds,
            tags={"title": title, "artist": "Test Artist"},
        )
        response = self.upload(path)
        assert response.status_code == 201, response.text
        path.unlink()
        track_id: str = response.json()["id"]
        return track_id


@dataclass
class StackHarness:
    stack: LocalStack
    client: TestClient
    clock: ManualClock

    def user(self, name: str | None = None, email: str | None = None) -> Api:
        """A signed-in user (the dev IdP vouches for the address: ``<name>@example.com``)."""
        name = name or f"user-{uuid.uuid4().hex[:8]}"
        return Api(self.client, self.stack.idp.mint(name, email=email))


@pytest.fixture(scope="module")
def harness(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackHarness]:
    clock = ManualClock(datetime.now(UTC))
    settings = local_settings(
        tmp_path_factory.mktemp("stack"),
        database_url=database_url,
        redis_url=os.environ.get("REDIS_URL"),
        public_url=PUBLIC_URL,
        upload_max_bytes=50 * 1024 * 1024,
    )
    with open_stack(settings, clock) as stack, TestClient(stack.app, base_url=PUBLIC_URL) as client:
        yield StackHarness(stack, client, clock)
