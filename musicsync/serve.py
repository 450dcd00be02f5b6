"""Serving processes of the local stack, spread over the cores with SO_REUSEPORT.

uvicorn's own multi-worker mode shares one listening socket, and one worker can accept a whole
burst of keep-alive connections while the others idle; with a socket per worker bound with
SO_REUSEPORT, the kernel spreads connections over the workers instead.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from multiprocessing.synchronize import Event
from typing import Any

import uvicorn

log = logging.getLogger("musicsync.serve")
QUIET: dict[str, Any] = {"log_level": "warning", "access_log": False}


class _Server(uvicorn.Server):
    """Tells the parent once it accepts connections; stops if the parent dies."""

    def __init__(self, config: uvicorn.Config, ready: Event) -> None:
        super().__init__(config)
        self._ready = ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        parent = os.getppid()
        threading.Thread(target=self._watch, args=(parent,), daemon=True).start()
        self._ready.set()

    def _watch(self, parent: int) -> None:
        # A worker outliving a SIGKILLed parent would keep serving a stack whose database
        # is gone, and keep the port.
        while not self.should_exit:
            if os.getppid() != parent:
                self.should_exit = True
            time.sleep(1)


def _port_is_free(host: str, port: int) -> bool:
    """Bind without SO_REUSEPORT: fails if anything, a stack's workers included, holds it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _worker(factory: str, host: str, port: int, ready: Event) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    config = uvicorn.Config(factory, factory=True, **QUIET)
    _Server(config, ready).run(sockets=[sock])


def serve_workers(
    factory: str,
    *,
    host: str,
    port: int,
    workers: int,
    on_ready: Callable[[], None],
    timeout: float = 60,
) -> int:
    """Run ``workers`` processes serving the app that ``factory`` makes, until SIGINT/SIGTERM.

    ``on_ready`` is called once every worker accepts connections. Returns 0 after a requested
    stop, 1 when a worker failed to start or died.
    """
    if not _port_is_free(host, port):
        log.error("port %d on %s is in use (another musicsync up?)", port, host)
        return 1
    context = multiprocessing.get_context("spawn")
    stop = threading.Event()
    previous = {
        sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    processes: list[multiprocessing.process.BaseProcess] = []
    try:
        readiness = [context.Event() for _ in range(workers)]
        for number, ready in enumerate(readiness):
            worker = context.Process(
                target=_worker,
                args=(factory, host, port, ready),
                name=f"musicsync-worker-{number}",
            )
            worker.start()
            processes.append(worker)
        deadline = time.monotonic() + timeout
        for process, ready in zip(processes, readiness, strict=True):
            while not ready.wait(0.2):
                if stop.is_set():
                    return 0
                if not process.is_alive() or time.monotonic() > deadline:
                    log.error("%s did not start within %.0f s", process.name, timeout)
                    return 1
        on_ready()
        while not stop.wait(0.5):
            for process in processes:
                if not process.is_alive():
                    log.error("%s exited (code %s); stopping", process.name, process.exitcode)
                    return 1
        return 0
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()  # SIGTERM: uvicorn finishes open requests first
        for process in processes:
            process.join(timeout)
            if process.is_alive():
                process.kill()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
