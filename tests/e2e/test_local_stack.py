"""The README's main job as a user runs it: `musicsync up`, token, import, stream, download."""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psutil  # type: ignore[import-untyped]
import pytest

from tests.support.audio_files import make_audio, make_not_audio
from tests.support.aws import free_port
from tests.support.running_stack import RunningStack, cli

pytestmark = pytest.mark.e2e


@pytest.fixture
def stack_dir(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "data"
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _lake_events(data_dir: Path) -> Any:
    """Every event in the stack's local lake, as a DataFrame (DuckDB over the Parquet files)."""
    import duckdb

    pattern = data_dir / "lake" / "events" / "*" / "*" / "*.parquet"
    query = f"SELECT * FROM read_parquet('{pattern}', hive_partitioning = true)"
    return duckdb.connect().execute(query).df()


def test_a_user_imports_lists_streams_and_downloads_and_data_survives_a_restart(
    stack_dir: Path, tmp_path: Path
) -> None:
    # Given a running stack and a folder with three tracks and one file that is not audio
    port = free_port()
    stack = RunningStack(stack_dir, port)
    try:
        music = tmp_path / "music"
        (music / "album").mkdir(parents=True)
        make_audio("mp3", music / "one.mp3", tags={"title": "One", "artist": "Ada"})
        make_audio("flac", music / "album" / "two.flac", tags={"title": "Two"})
        make_audio("wav", music / "album" / "three.wav", seconds=2.0, tags={"title": "Three"})
        make_not_audio(music / "notes.ogg")

        # When the user gets a token and imports the folder
        token = cli("token", "alice", "--data-dir", str(stack_dir))
        assert token.returncode == 0, token.stderr
        bearer = token.stdout.strip()
        imported = cli("import", str(music), "--url", stack.url, "--data-dir", str(stack_dir))

        # Then three are imported and the summary says which one failed and why
        assert imported.returncode == 1, imported.stdout + imported.stderr
        assert "Imported 3 of 4" in imported.stderr
        assert "notes.ogg" in imported.stderr and "not_audio" in imported.stderr

        api = httpx.Client(base_url=stack.url, headers={"Authorization": f"Bearer {bearer}"})
        alice = api.get("/v1/me").json()["id"]
        tracks = api.get("/v1/tracks?sort=title").json()["items"]
        assert [t["title"] for t in tracks] == ["One", "Three", "Two"]
        three = tracks[1]

        # and streams a range of one, and downloads it with a proper filename
        stream = api.get(f"/v1/tracks/{three['id']}/stream").json()
        part = httpx.get(stream["url"], headers={"Range": "bytes=-500"})
        assert part.status_code == 206 and len(part.content) == 500
        download = api.get(f"/v1/tracks/{three['id']}/download").json()
        got = httpx.get(download["url"])
        assert got.content == (music / "album" / "three.wav").read_bytes()
        assert got.headers["content-disposition"].startswith('attachment; filename="Three.wav"')

        # and the stack serves its API description
        assert "/v1/tracks" in httpx.get(f"{stack.url}/openapi.json").json()["paths"]

        # and a second stack cannot take the same port
        clash = cli("up", "--port", str(port), "--data-dir", str(tmp_path / "other"))
        assert clash.returncode == 1, clash.stdout + clash.stderr
    finally:
        assert stack.stop() == 0, stack.output()

    # And every interaction is in the lake once the stack has stopped (flushed on shutdown)
    events = _lake_events(stack_dir)
    counts = events.groupby("event_type").size().to_dict()
    assert counts["track_upload_started"] == 4
    assert counts["track_uploaded"] == 3
    assert counts["track_upload_rejected"] == 1
    assert counts["track_stream_started"] == 1
    assert counts["track_downloaded"] == 1
    assert events["event_id"].is_unique
    assert set(events["source"]) == {"library"}
    assert set(events["actor_id"]) == {alice}

    # When the stack is started again on the same data dir
    stack = RunningStack(stack_dir, free_port())
    try:
        # Then the library is still there, and links signed before the restart still verify
        again = httpx.get(
            f"{stack.url}/v1/tracks", headers={"Authorization": f"Bearer {bearer}"}
        ).json()
        assert len(again["items"]) == 3
        old_link = httpx.URL(download["url"]).copy_with(port=httpx.URL(stack.url).port)
        assert httpx.get(old_link).content == (music / "album" / "three.wav").read_bytes()
    finally:
        assert stack.stop() == 0, stack.output()


def test_ctrl_c_stops_workers_and_embedded_servers_cleanly(stack_dir: Path) -> None:
    # Given a running stack with its worker processes and embedded PostgreSQL
    stack = RunningStack(stack_dir, free_port())
    postmaster = stack_dir / "postgres" / "postmaster.pid"
    assert postmaster.exists()

    # When the user presses Ctrl-C (SIGINT to the whole foreground process group)
    os.killpg(stack.process.pid, signal.SIGINT)
    code = stack.process.wait(timeout=60)

    # Then it exits cleanly, PostgreSQL is stopped, and no worker is left serving
    assert code == 0, stack.output()
    assert "Stopped; data kept" in stack.output()
    assert not postmaster.exists()
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{stack.url}/healthz", timeout=2)


def test_keep_alive_connections_are_spread_evenly_over_the_serving_processes(
    stack_dir: Path,
) -> None:
    # Given a running stack with its two serving processes (the default)
    stack = RunningStack(stack_dir, free_port())
    port = httpx.URL(stack.url).port
    clients = [httpx.Client(base_url=stack.url) for _ in range(8)]
    try:
        # When eight clients each keep a connection open
        for client in clients:
            assert client.get("/openapi.json").status_code == 200
        # Then each serving process holds four of them (the parent accepts and hands them out)
        held = {
            child.pid: sum(
                1
                for c in child.net_connections(kind="tcp")
                if c.status == psutil.CONN_ESTABLISHED and c.laddr.port == port
            )
            for child in psutil.Process(stack.process.pid).children()
        }
        assert sorted(n for n in held.values() if n) == [4, 4], held
        assert not any(
            c.laddr.port == port and c.status == psutil.CONN_ESTABLISHED
            for c in psutil.Process(stack.process.pid).net_connections(kind="tcp")
        )
    finally:
        for client in clients:
            client.close()
        assert stack.stop() == 0, stack.output()


def test_a_second_stack_on_the_same_port_says_so_and_stops(stack_dir: Path, tmp_path: Path) -> None:
    stack = RunningStack(stack_dir, free_port())
    try:
        port = str(httpx.URL(stack.url).port)
        second = cli("up", "--port", port, "--data-dir", str(tmp_path / "other"), timeout=120)
        assert second.returncode == 1
        assert f"port {port} on 127.0.0.1 is in use" in second.stdout + second.stderr
        assert httpx.get(f"{stack.url}/healthz").status_code == 200
    finally:
        assert stack.stop() == 0, stack.output()
