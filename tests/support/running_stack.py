"""`musicsync up` as a user runs it: a subprocess on a free port, with a data dir of its own."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support.aws import free_port

MUSICSYNC = str(Path(sys.executable).with_name("musicsync"))


def cli_env() -> dict[str, str]:
    """The embedded default, as the README runs it: no outside database or Redis."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run a `musicsync` command; its result, whatever the exit code."""
    return subprocess.run(
        [MUSICSYNC, *args],
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=timeout,
        check=False,
    )


class RunningStack:
    """Started healthy (or an AssertionError with its output); ``stop`` ends it."""

    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        port = port or free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.data_dir = data_dir
        self.log_path = data_dir.parent / f"up-{port}.log"
        self.log = self.log_path.open("w")
        # A session of its own, as a terminal's foreground job: Ctrl-C reaches the whole group.
        self.process = subprocess.Popen(
            [MUSICSYNC, "up", "--port", str(port), "--data-dir", str(data_dir)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=cli_env(),
            start_new_session=True,
        )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"musicsync up exited: {self.output()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise AssertionError(f"stack did not become healthy: {self.output()}")

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text()

    def stop(self) -> int:
        """SIGTERM, as a service manager sends; the exit code of the clean shutdown (the whole
        process group is killed if it does not stop within a minute)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        return self.process.returncode
