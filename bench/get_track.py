"""GET /v1/tracks/{id} through the local stack: >= 500 requests/s with p99 < 50 ms at 32 clients.

Run from the repository root: ``.venv/bin/python -m bench.get_track [--profile FILE]``.

It starts ``musicsync up`` (embedded PostgreSQL and Redis) on a free port, uploads one small
track, then loads ``GET /v1/tracks/{id}`` with 32 keep-alive connections: 3 s of warm-up, then
15 s measured. The load generator is ``wrk`` when installed (one thread; a Lua script counts
non-2xx answers and prints the latency percentiles), else an asyncio client speaking raw
HTTP/1.1. ``--profile FILE`` adds a third, separate run during which ``py-spy`` samples the
server, and prints where its time goes (the profile does not affect the measured figures).
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from bench._support import (
    HOST,
    Row,
    Stack,
    api_client,
    exit_code,
    log,
    machine_busy_seconds,
    percentile,
    print_table,
    run_main,
    temp_dir,
    tree_cpu_seconds,
    upload,
)

TARGET_RPS = 500.0
TARGET_P99_MS = 50.0
CONNECTIONS = 32

_WRK_SCRIPT = r"""
local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  non2xx = 0
end

function response(status, headers, body)
  if status < 200 or status > 299 then
    non2xx = non2xx + 1
  end
end

function done(summary, latency, requests)
  local bad = 0
  for _, thread in ipairs(threads) do
    bad = bad + thread:get("non2xx")
  end
  local e = summary.errors
  io.write(string.format("BENCH requests %d\n", summary.requests))
  io.write(string.format("BENCH duration_us %d\n", summary.duration))
  io.write(string.format("BENCH non2xx %d\n", bad))
  io.write(string.format("BENCH socket_errors %d\n", e.connect + e.read + e.write + e.timeout))
  for _, p in ipairs({50, 90, 99, 99.9}) do
    io.write(string.format("BENCH p%s_us %d\n", tostring(p), latency:percentile(p)))
  end
  io.write(string.format("BENCH max_us %d\n", latency.max))
end
"""


@dataclass
class LoadResult:
    client: str
    requests: int
    seconds: float
    non2xx: int
    socket_errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    client_cpu_seconds: float
    statuses: Counter[int] = field(default_factory=Counter)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


# -- wrk -----------------------------------------------------------------------------------------
def run_wrk(url: str, token: str, seconds: float, connections: int, script: Path) -> LoadResult:
    wrk = shutil.which("wrk")
    assert wrk is not None
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(
        [
            wrk,
            "--threads",
            "1",
            "--connections",
            str(connections),
            "--duration",
            f"{round(seconds)}s",
            "--timeout",
            "10s",
            "--latency",
            "--script",
            str(script),
            "--header",
            f"Authorization: Bearer {token}",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
        check=False,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr}{done.stdout}")
    values: dict[str, float] = {}
    for line in done.stdout.splitlines():
        if line.startswith("BENCH "):
            _, key, value = line.split()
            values[key] = float(value)
    return LoadResult(
        client="wrk",
        requests=int(values["requests"]),
        seconds=values["duration_us"] / 1e6,
        non2xx=int(values["non2xx"]),
        socket_errors=int(values["socket_errors"]),
        p50_ms=values["p50_us"] / 1000,
        p90_ms=values["p90_us"] / 1000,
        p99_ms=values["p99_us"] / 1000,
        max_ms=values["max_us"] / 1000,
        client_cpu_seconds=(after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
    )


# -- the asyncio fallback ------------------------------------------------------------------------
@dataclass
class _Window:
    start: float
    end: float
    latencies_ns: list[int] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    socket_errors: int = 0


async def _connection(port: int, request: bytes, window: _Window) -> None:
    """One keep-alive connection sending requests back to back until the window ends."""
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    try:
        while time.perf_counter() < window.end:
            if writer is None or reader is None:
                reader, writer = await asyncio.open_connection(HOST, port)
            started = time.perf_counter_ns()
            try:
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head[9:12])
                lower = head.lower()
                if b"transfer-encoding: chunked" in lower:
                    raise RuntimeError("chunked responses are not supported by this client")
                at = lower.find(b"\r\ncontent-length:")
                length = 0
                if at >= 0:
                    end = lower.index(b"\r\n", at + 2)
                    length = int(lower[at + len(b"\r\ncontent-length:") : end])
                if length:
                    await reader.readexactly(length)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                if time.perf_counter() >= window.start:
                    window.socket_errors += 1
                writer.close()
                reader = writer = None
                continue
            finished = time.perf_counter_ns()
            if window.start <= finished / 1e9 < window.end:
                window.latencies_ns.append(finished - started)
                window.statuses[status] += 1
            if b"\r\nconnection: close" in lower:
                writer.close()
                reader = writer = None
    finally:
        if writer is not None:
            writer.close()


async def _load(port: int, request: bytes, connections: int, window: _Window) -> None:
    await asyncio.gather(*(_connection(port, request, window) for _ in range(connections)))


def run_python(
    port: int, path: str, token: str, warmup: float, seconds: float, connections: int
) -> LoadResult:
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nAuthorization: Bearer {token}\r\n"
        "Accept: application/json\r\n\r\n"
    ).encode()
    now = time.perf_counter()
    window = _Window(start=now + warmup, end=now + warmup + seconds)
    cpu_before = time.process_time()
    try:
        import uvloop

        uvloop.run(_load(port, request, connections, window))
    except ImportError:
        asyncio.run(_load(port, request, connections, window))
    cpu = time.process_time() - cpu_before
    latencies = sorted(ns / 1e6 for ns in window.latencies_ns)
    ok = sum(n for status, n in window.statuses.items() if 200 <= status <= 299)
    return LoadResult(
        client="python-asyncio",
        requests=len(latencies),
        seconds=seconds,
        non2xx=len(latencies) - ok,
        socket_errors=window.socket_errors,
        p50_ms=percentile(latencies, 50),
        p90_ms=percentile(latencies, 90),
        p99_ms=percentile(latencies, 99),
        max_ms=latencies[-1] if latencies else float("nan"),
        # Warm-up and measurement share one process here: scale to the measured share.
        client_cpu_seconds=cpu * seconds / (warmup + seconds),
        statuses=window.statuses,
    )


# -- profiling -----------------------------------------------------------------------------------
def _frame_package(frame: str) -> str:
    """'pydantic', 'stdlib:asyncio', 'project:services/core/http.py' ... for a py-spy frame."""
    where = frame[frame.rfind("(") + 1 : frame.rfind(")")]
    path = where.rsplit(":", 1)[0]
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    for top in ("services/", "musicsync/", "bench/"):
        if f"/{top}" in path or path.startswith(top):
            return "project:" + top + path.split(top, 1)[1]
    if "/python3." in path:
        rest = path.split("/python3.", 1)[1].split("/", 1)
        module = rest[1] if len(rest) > 1 else path
        return "stdlib:" + module.split("/", 1)[0].removesuffix(".py")
    return path or frame


def _frame_function(frame: str) -> str:
    """A frame without its line number: 'resolve (aws_lambda_powertools/.../api_gateway.py)'."""
    name, _, where = frame.partition(" (")
    path = where.rsplit(":", 1)[0]
    for marker in ("site-packages/", "/work/main/", "/lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{name} ({path})"


# Inclusive shares worth knowing for this route: (label, function name as py-spy shows it).
_STAGES = (
    ("event loop thread: uvicorn + starlette + thread hop", "RequestResponseCycle.run_asgi"),
    ("  local gateway proxy (HTTP -> event -> HTTP)", "create_app.<locals>.proxy"),
    ("  run_in_threadpool (hand-off to a worker thread)", "run_in_threadpool"),
    ("  uvicorn writing the response", "RequestResponseCycle.send"),
    ("handler (musicsync.asgi._invoke, under the lock)", "_invoke"),
    ("  authenticate (token check + user lookup)", "authenticate"),
    ("    JWT verification", "TokenVerifier.verify"),
    ("  powertools resolve (routing, validation, response)", "ApiGatewayResolver.resolve"),
    ("    powertools Depends resolution", "build_dependency_tree"),
    ("    the route function get_track", "get_track"),
    ("      Library.get_track (DB read)", "Library.get_track"),
    ("      psycopg query execution", "Cursor.execute"),
    ("      pool checkout/return", "ConnectionPool.connection"),
    ("    response validation", "OpenAPIResponseValidationMiddleware._handle_response"),
    ("    pydantic model_dump", "BaseModel.model_dump"),
)


def summarize_profile(raw: Path, top: int = 20) -> None:
    """Print the share of the main stages, and self time by package and by function."""
    stacks: list[tuple[list[str], int]] = []
    for line in raw.read_text().splitlines():
        body, _, count = line.rpartition(" ")
        if body and count.isdigit():
            frames = [f for f in body.split(";") if " (" in f]
            if frames:
                stacks.append((frames, int(count)))
    total = sum(n for _, n in stacks)
    if not total:
        print("py-spy recorded no samples")
        return
    by_package: Counter[str] = Counter()
    self_fn: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for frames, n in stacks:
        by_package[_frame_package(frames[-1])] += n
        self_fn[_frame_function(frames[-1])] += n
        for name in {f.partition(" (")[0] for f in frames}:
            inclusive[name] += n
    print(f"(shares of {total} samples of the thread holding the GIL)")
    workers = sum(n for frames, n in stacks if any("WorkerThread.run" in f for f in frames))
    print("\n-- main stages (inclusive) --")
    print(f"{100 * (total - workers) / total:6.1f}%  event loop thread, all of it")
    print(f"{100 * workers / total:6.1f}%  worker threads (anyio thread pool), all of it")
    for label, name in _STAGES:
        print(f"{100 * inclusive[name] / total:6.1f}%  {label}  [{name}]")
    for title, counts in (
        ("self time by package (leaf frame)", by_package),
        ("self time by function", self_fn),
    ):
        print(f"\n-- {title} --")
        for name, n in counts.most_common(top):
            print(f"{100 * n / total:6.1f}%  {name}")
    print(flush=True)


def profile_server(
    stack: Stack, url: str, token: str, seconds: float, out: Path, script: Path
) -> None:
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        log("py-spy not found: `.venv/bin/pip install py-spy` to profile")
        return
    log(f"profiling the server (pid {stack.pid}) with py-spy for {seconds:.0f} s under load")
    recorder = subprocess.Popen(
        [
            py_spy,
            "record",
            "--pid",
            str(stack.pid),
            "--duration",
            str(round(seconds)),
            "--rate",
            "200",
            # Only the thread holding the GIL: threads queued on the handler lock are not work.
            "--gil",
            "--format",
            "raw",
            "--output",
            str(out),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        time.sleep(1.0)  # let py-spy attach before the load starts
        if shutil.which("wrk"):
            run_wrk(url, token, seconds, CONNECTIONS, script)
        else:
            path = url.split(str(stack.port), 1)[1]
            run_python(stack.port, path, token, 0.0, seconds, CONNECTIONS)
        _, err = recorder.communicate(timeout=60)
    finally:
        if recorder.poll() is None:
            recorder.terminate()
            recorder.wait(timeout=10)
    if recorder.returncode != 0 or not out.exists():
        log(f"py-spy failed ({recorder.returncode}): {err.decode(errors='replace')}")
        return
    print(f"\n== where the server's time goes under load (py-spy, raw stacks in {out}) ==")
    summarize_profile(out)


# -- the benchmark -------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of warm-up (max 30)")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds measured (max 60)")
    parser.add_argument("--connections", type=int, default=CONNECTIONS)
    parser.add_argument("--client", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument(
        "--profile", type=Path, help="also record a py-spy profile (raw stacks) to this file"
    )
    args = parser.parse_args(argv)
    warmup = min(max(args.warmup, 0.0), 30.0)
    duration = min(max(args.duration, 1.0), 60.0)
    client = args.client
    if client == "auto":
        client = "wrk" if shutil.which("wrk") else "python"
    if client == "wrk" and not shutil.which("wrk"):
        parser.error("wrk is not installed (apt-get install -y wrk)")

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
        script = tmp / "count.lua"
        script.write_text(_WRK_SCRIPT)

        servers = stack.embedded_servers()
        log(f"load: {client}, {args.connections} connections, {warmup:.0f} s warm-up")
        if client == "wrk" and warmup > 0:
            run_wrk(url, token, warmup, args.connections, script)
            log(f"measuring {duration:.0f} s")
        server_cpu = stack.server_cpu_seconds()
        db_cpu = tree_cpu_seconds(servers)
        busy = machine_busy_seconds()
        wall = time.perf_counter()
        if client == "wrk":
            result = run_wrk(url, token, duration, args.connections, script)
        else:
            result = run_python(stack.port, path, token, warmup, duration, args.connections)
        wall = time.perf_counter() - wall
        busy = machine_busy_seconds() - busy
        server_cpu = stack.server_cpu_seconds() - server_cpu
        db_after = tree_cpu_seconds(servers)
        db_cpu_used = sum(db_after[pid] - db_cpu.get(pid, 0.0) for pid in db_after)
        # The asyncio client warms up and measures in one go: its CPU figures span both.
        wall_note = " (incl. warm-up)" if client == "python" else ""
        # Everything else that ran meanwhile: other processes compete for the two cores.
        client_cpu = result.client_cpu_seconds * (wall / result.seconds)
        other = busy - server_cpu - db_cpu_used - client_cpu

        rows = [
            Row(
                "requests/s",
                f"{result.rps:.0f}",
                f">= {TARGET_RPS:.0f}",
                result.rps >= TARGET_RPS,
            ),
            Row("latency p50", f"{result.p50_ms:.1f} ms"),
            Row("latency p90", f"{result.p90_ms:.1f} ms"),
            Row(
                "latency p99",
                f"{result.p99_ms:.1f} ms",
                f"< {TARGET_P99_MS:.0f} ms",
                result.p99_ms < TARGET_P99_MS,
            ),
            Row("latency max", f"{result.max_ms:.1f} ms"),
            Row("non-2xx responses", str(result.non2xx), "0", result.non2xx == 0),
            Row("socket errors", str(result.socket_errors), "0", result.socket_errors == 0),
            Row("requests measured", f"{result.requests} in {result.seconds:.1f} s"),
            Row(
                "server process CPU" + wall_note,
                f"{100 * server_cpu / wall:.0f}% of a core",
            ),
            Row(
                "embedded PostgreSQL+Redis CPU" + wall_note,
                f"{100 * db_cpu_used / wall:.0f}% of a core",
            ),
            Row(
                f"load generator CPU ({result.client})",
                f"{100 * result.client_cpu_seconds / result.seconds:.0f}% of a core",
            ),
            Row(
                "rest of the machine: other processes, kernel" + wall_note,
                f"{100 * max(other, 0.0) / wall:.0f}% of a core",
            ),
        ]
        # The cost of one request with no queueing: one connection, a few seconds.
        log("one connection, 5 s: the service time without queueing")
        if client == "wrk":
            single = run_wrk(url, token, 5.0, 1, script)
        else:
            single = run_python(stack.port, path, token, 1.0, 5.0, 1)
        rows.append(
            Row(
                "1 connection: p50 / p99, requests/s",
                f"{single.p50_ms:.2f} / {single.p99_ms:.2f} ms, {single.rps:.0f}",
            )
        )
        print_table(
            f"GET /v1/tracks/{{id}}: {args.connections} connections, {duration:.0f} s "
            f"after {warmup:.0f} s warm-up, client {result.client}",
            rows,
        )
        if args.profile is not None:
            profile_server(stack, url, token, 10.0, args.profile.resolve(), script)
        api.close()
    return exit_code(rows)


if __name__ == "__main__":
    run_main(main)
