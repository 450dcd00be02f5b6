"""POST /v1/pitches with 200 recipients through the local stack: under 1 s a request.

Run from the repository root: ``.venv/bin/python -m bench.pitch_create [--profile FILE]``.

It starts ``musicsync up`` (embedded PostgreSQL and Redis) on a free port, uploads 3 distinct
short WAVs into a playlist, then creates pitches of that playlist for 200 recipients each
(distinct addresses), one request at a time on one keep-alive connection: without a password,
then with one (Argon2id, hashed once per pitch), 3 unmeasured warm-ups then 20 measured
requests of each. It prints the wall time per request as the client sees it (send to parsed
answer), and as the server-side share the CPU time the serving processes and the embedded
PostgreSQL used during each request. For reference it also times, in this process, what the
request must do anyway: one Argon2id hash and 200 link tokens (each 32 random bytes and a
SHA-256). ``--profile FILE`` adds 10 more requests (5 of each kind) during which ``py-spy``
samples every busy thread of the serving processes, and prints where the handler's time goes.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench._support import (
    Row,
    Stack,
    api_client,
    exit_code,
    expect,
    fmt_ms,
    log,
    machine_busy_seconds,
    percentile,
    playlist_of_tones,
    print_table,
    py_spy_recording,
    recipients,
    run_main,
    summarize_stacks,
    temp_dir,
    tree_cpu_seconds,
)

TARGET_SECONDS = 1.0
RECIPIENTS = 200
TRACKS = 3
PASSWORD = "correct horse battery"  # noqa: S105 (a sample pitch password)

# Shares of the handler threads' wall time (waits on the database included): what one request
# spends where, since Argon2id runs in C without the GIL and a GIL-only profile would hide it.
_STAGES = (
    ("  powertools resolve (routing, validation, response)", "ApiGatewayResolver.resolve"),
    ("    the route function create_pitch", "create_pitch"),
    ("      Pitches.create", "Pitches.create"),
    ("        hash_password (Argon2id)", "hash_password"),
    ("        Pitches._add_recipients (200 tokens + COPY)", "Pitches._add_recipients"),
    ("          new_token (secrets + SHA-256)", "new_token"),
    ("          insert_recipients (COPY)", "insert_recipients"),
    ("          uuid7", "uuid7"),
    ("        Pitches._authorize (one levels_by_type)", "Pitches._authorize"),
    ("        insert_pitch_tracks (executemany)", "insert_pitch_tracks"),
    ("      Pitches._sent (200 pitch_sent events)", "Pitches._sent"),
    ("      _pitch_out (response model)", "_pitch_out"),
    ("  after the response: Emitter.flush (201 events to the lake)", "Emitter.flush"),
    ("psycopg waiting for the database", "Connection.wait"),
)


@dataclass
class Runs:
    label: str
    wall: list[float] = field(default_factory=list)
    server_cpu: float = 0.0  # seconds per request, mean over the series
    db_cpu: float = 0.0
    response_bytes: int = 0


def _body(playlist_id: str, run: int, password: str | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "playlist_id": playlist_id,
        "title": f"Bench pitch {run}",
        "message": "Three short tones for you.",
        "allow_download": False,
        "recipients": recipients(RECIPIENTS, tag=f"p{run}-"),
    }
    if password is not None:
        body["password"] = password
    return body


def _create(api: httpx.Client, playlist_id: str, run: int, password: str | None) -> Any:
    body = _body(playlist_id, run, password)
    pitch = expect(api.post("/v1/pitches", json=body), 201)
    links = {r["link"] for r in pitch["recipients"]}
    if len(links) != RECIPIENTS or not all(link and "/p/" in link for link in links):
        raise RuntimeError(f"expected {RECIPIENTS} distinct links, got {len(links)}")
    if pitch["has_password"] != (password is not None):
        raise RuntimeError(f"has_password is {pitch['has_password']}")
    return pitch


def _measure(
    stack: Stack,
    api: httpx.Client,
    playlist_id: str,
    runs: Runs,
    first_run: int,
    count: int,
    password: str | None,
) -> None:
    servers = stack.embedded_servers()
    # CPU times tick in 10 ms: they are taken over the whole series, then divided.
    server_before = stack.server_cpu_seconds()
    db_before = tree_cpu_seconds(servers)
    for n in range(first_run, first_run + count):
        body = _body(playlist_id, n, password)
        started = time.perf_counter()
        response = api.post("/v1/pitches", json=body)
        pitch = expect(response, 201)
        runs.wall.append(time.perf_counter() - started)
        runs.response_bytes = len(response.content)
        if len(pitch["recipients"]) != RECIPIENTS:
            raise RuntimeError(f"{len(pitch['recipients'])} recipients in the answer")
    # Events go to the lake after the response: let the last request's finish.
    time.sleep(0.2)
    db_after = tree_cpu_seconds(servers)
    runs.server_cpu = (stack.server_cpu_seconds() - server_before) / count
    runs.db_cpu = sum(db_after[p] - db_before.get(p, 0.0) for p in db_after) / count


def _reference_costs() -> tuple[float, float]:
    """(median Argon2id hash, median 200 tokens) in this process, seconds."""
    from services.pitching.links import hash_password, new_token

    hash_password(PASSWORD)  # builds the hasher
    hashes = []
    for _ in range(7):
        t0 = time.perf_counter()
        hash_password(PASSWORD)
        hashes.append(time.perf_counter() - t0)
    tokens = []
    for _ in range(7):
        t0 = time.perf_counter()
        for _ in range(RECIPIENTS):
            new_token()
        tokens.append(time.perf_counter() - t0)
    return statistics.median(hashes), statistics.median(tokens)


def _rows(runs: Runs) -> list[Row]:
    wall = sorted(runs.wall)
    p50, p90, worst = percentile(wall, 50), percentile(wall, 90), wall[-1]
    return [
        Row(
            f"{runs.label}: wall p50 / p90 / max",
            f"{fmt_ms(p50)} / {fmt_ms(p90)} / {fmt_ms(worst)}",
            f"< {TARGET_SECONDS * 1000:.0f} ms each",
            worst < TARGET_SECONDS,
        ),
        Row(
            "  server processes CPU per request: mean",
            f"{fmt_ms(runs.server_cpu)} ({100 * runs.server_cpu / statistics.mean(wall):.0f}% "
            "of the mean wall time)",
        ),
        Row("  embedded PostgreSQL+Redis CPU per request: mean", fmt_ms(runs.db_cpu)),
        Row("  response size", f"{runs.response_bytes / 1024:.0f} KiB"),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=20, help="measured requests of each kind")
    parser.add_argument("--warmups", type=int, default=3, help="warm-up requests of each kind")
    parser.add_argument(
        "--profile", type=Path, help="also record a py-spy profile (raw stacks) to this file"
    )
    args = parser.parse_args(argv)
    count = min(max(args.runs, 1), 100)
    warmups = min(max(args.warmups, 0), 10)

    with temp_dir() as tmp, Stack() as stack:
        api = api_client(stack, stack.token("bench-pitch-create"), timeout=60.0)
        playlist_id, _ = playlist_of_tones(api, tmp, TRACKS)
        results: list[Runs] = []
        run = 0
        # Everything else on the machine meanwhile: a noise gauge (two cores, shared).
        servers = stack.embedded_servers()
        busy, own, wall = machine_busy_seconds(), time.process_time(), time.perf_counter()
        stack_cpu = stack.server_cpu_seconds() + sum(tree_cpu_seconds(servers).values())
        for label, password in (("no password", None), ("with a password", PASSWORD)):
            log(f"{label}: {warmups} warm-ups, then {count} measured requests")
            for _ in range(warmups):
                _create(api, playlist_id, run, password)
                run += 1
            runs = Runs(label)
            _measure(stack, api, playlist_id, runs, run, count, password)
            run += count
            results.append(runs)
        stack_cpu = stack.server_cpu_seconds() + sum(tree_cpu_seconds(servers).values()) - stack_cpu
        wall = time.perf_counter() - wall
        other = machine_busy_seconds() - busy - (time.process_time() - own) - stack_cpu
        hash_s, tokens_s = _reference_costs()
        rows = [row for runs in results for row in _rows(runs)]
        rows += [
            Row("requests measured", f"{count} of each kind after {warmups} warm-ups"),
            Row(
                "rest of the machine meanwhile (other processes, kernel)",
                f"{100 * max(other, 0.0) / wall:.0f}% of a core",
            ),
            Row("for reference, in this process: one Argon2id hash", fmt_ms(hash_s)),
            Row(f"for reference, in this process: {RECIPIENTS} link tokens", fmt_ms(tokens_s)),
        ]
        print_table(
            f"POST /v1/pitches, {RECIPIENTS} recipients, {TRACKS}-track playlist, "
            "one request at a time",
            rows,
        )
        if args.profile is not None:
            out = args.profile.resolve()
            with py_spy_recording(stack, 12.0, out, gil=False):
                for n in range(10):
                    _create(api, playlist_id, run, None if n % 2 else PASSWORD)
                    run += 1
            print(f"\n== where the serving processes' time goes (py-spy, raw stacks in {out}) ==")
            summarize_stacks(out, _STAGES, within="_WorkItem.run")
        api.close()
    return exit_code(rows)


if __name__ == "__main__":
    run_main(main)
