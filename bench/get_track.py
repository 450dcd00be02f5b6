"""GET /v1/tracks/{id} through the local stack: >= 500 requests/s with p99 < 50 ms at 32 clients.

Run from the repository root: ``.venv/bin/python -m bench.get_track [--profile FILE]``.

It starts ``musicsync up`` (embedded PostgreSQL and Redis) on a free port, uploads one small
track, then loads ``GET /v1/tracks/{id}`` with 32 keep-alive connections: 3 s of warm-up, then
15 s measured. The load generator is ``wrk`` when installed (one thread; a Lua script counts
non-2xx answers and prints the latency percentiles), else an asyncio client speaking raw
HTTP/1.1. ``--profile FILE`` adds a third, separate run during which ``py-spy`` samples the
serving processes, and prints where their time goes (it does not affect the measured figures).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bench._support import (
    GATEWAY_STAGES,
    HttpLoad,
    Row,
    Stack,
    StackCpu,
    add_load_options,
    api_client,
    exit_code,
    http_load,
    load_client,
    load_options,
    load_rows,
    log,
    print_table,
    py_spy_path,
    py_spy_recording,
    run_main,
    single_connection_row,
    summarize_stacks,
    temp_dir,
    upload,
)

TARGET_RPS = 500.0
TARGET_P99_MS = 50.0
CONNECTIONS = 32


# -- profiling -----------------------------------------------------------------------------------
# Inclusive shares worth knowing for this route: (label, function name as py-spy shows it).
_STAGES = (
    *GATEWAY_STAGES,
    ("    powertools Depends resolution", "build_dependency_tree"),
    ("    the route function get_track", "get_track"),
    ("      Tracks.get_track (authorization + DB read)", "Tracks.get_track"),
    ("    response validation", "OpenAPIResponseValidationMiddleware._handle_response"),
    ("    pydantic model_dump", "BaseModel.model_dump"),
    ("  JWT verification", "TokenVerifier.verify"),
    ("  psycopg query execution", "Cursor.execute"),
    ("  pool checkout/return", "ConnectionPool.connection"),
)


def profile_server(
    stack: Stack, url: str, headers: dict[str, str], seconds: float, out: Path
) -> None:
    if py_spy_path() is None:
        log("py-spy not found: `.venv/bin/pip install py-spy` to profile")
        return
    loaded = False
    try:
        with py_spy_recording(stack, seconds, out):
            http_load(
                url,
                client=load_client("auto"),
                warmup=0.0,
                seconds=seconds,
                connections=CONNECTIONS,
                headers=headers,
            )
            loaded = True
    except RuntimeError as exc:
        if not loaded:
            raise
        log(str(exc))  # py-spy failed: the profile is extra, the figures stand
        return
    print(f"\n== where the serving processes' time goes (py-spy, raw stacks in {out}) ==")
    summarize_stacks(out, _STAGES)


# -- the benchmark -------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    add_load_options(parser, connections=CONNECTIONS)
    args = parser.parse_args(argv)
    warmup, duration, client = load_options(parser, args)

    from tests.support.audio_files import make_audio

    with temp_dir() as tmp, Stack() as stack:
        token = stack.token("bench-get-track")
        api = api_client(stack, token)
        track = upload(
            api,
            make_audio(
                "wav", tmp / "tone.wav", seconds=1.0, tags={"title": "Bench", "artist": "Ada"}
            ),
        )
        path = f"/v1/tracks/{track.track_id}"
        url = f"{stack.url}{path}"
        check = api.get(path)
        if check.status_code != 200 or check.json()["id"] != track.track_id:
            raise RuntimeError(f"GET {path}: {check.status_code} {check.text}")
        log(f"one request, one client: {check.elapsed.total_seconds() * 1000:.1f} ms")
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}

        def load(warm: float, seconds: float, connections: int) -> HttpLoad:
            return http_load(
                url,
                client=client,
                warmup=warm,
                seconds=seconds,
                connections=connections,
                headers=headers,
            )

        servers = stack.embedded_servers()
        log(f"load: {client}, {args.connections} connections, {warmup:.0f} s warm-up")
        # wrk warms up in a run of its own; the asyncio client warms up and measures in one go.
        if client == "wrk" and warmup > 0:
            load(0.0, warmup, args.connections)
            log(f"measuring {duration:.0f} s")
        with StackCpu(stack, servers) as cpu:
            result = load(warmup if client == "python" else 0.0, duration, args.connections)
        # The asyncio client warms up and measures in one go: its CPU figures span both.
        wall_note = " (incl. warm-up)" if client == "python" else ""

        rows = [
            Row(
                "requests/s",
                f"{result.rps:.0f}",
                f">= {TARGET_RPS:.0f}",
                result.rps >= TARGET_RPS,
            ),
            *load_rows(result, TARGET_P99_MS),
            *cpu.rows(result, server="server process CPU", note=wall_note),
        ]
        # The cost of one request with no queueing: one connection, a few seconds.
        log("one connection, 5 s: the service time without queueing")
        single = load(1.0 if client == "python" else 0.0, 5.0, 1)
        rows.append(single_connection_row(single))
        print_table(
            f"GET /v1/tracks/{{id}}: {args.connections} connections, {duration:.0f} s "
            f"after {warmup:.0f} s warm-up, client {result.client}",
            rows,
        )
        if args.profile is not None:
            profile_server(stack, url, headers, 10.0, args.profile.resolve())
        api.close()
    return exit_code(rows)


if __name__ == "__main__":
    run_main(main)
