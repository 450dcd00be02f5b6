"""The local gateway runs one handler at a time per process, whatever the service."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from musicsync import asgi
from services.gateway import routes


def test_handlers_of_two_services_never_run_at_once_in_one_process(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Given handlers that take a while and note how many run at the same moment
    # (powertools keeps the current event in class attributes every resolver shares)
    lock = threading.Lock()
    running = 0
    most = 0

    def slow_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        time.sleep(0.02)
        with lock:
            running -= 1
        return {"statusCode": 200, "body": event["rawPath"]}

    monkeypatch.setattr(routes, "handler", lambda module: slow_handler)
    app = asgi.create_app(
        objects=None,
        jwks=dict,
        ready=dict,
        openapi=dict,
        dashboards=tmp_path,
    )

    # When requests for four services arrive together
    async def burst() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://local") as client:
            paths = ["/v1/tracks", "/v1/playlists", "/p/abc", "/v1/search"] * 3
            return await asyncio.gather(*(client.get(path) for path in paths))

    answers = asyncio.run(burst())

    # Then each got its own answer, and no two handlers overlapped
    assert [a.text for a in answers] == ["/v1/tracks", "/v1/playlists", "/p/abc", "/v1/search"] * 3
    assert most == 1
