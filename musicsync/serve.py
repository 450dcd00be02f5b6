"""Serving processes of the local stack, each new connection handed to the next in turn.

The parent process accepts connections and passes each one (its file descriptor, over a Unix
socket pair) to the workers in turn. The two ways of letting workers accept for themselves both
left one worker with most of a load's keep-alive connections: uvicorn's shared socket (one
worker accepts a whole burst while the others sleep), and a socket per worker with SO_REUSEPORT
(the kernel hashes each connection's addresses: 16 connections over 2 workers split 11/5 or
worse one time in five, and the busier worker's queue doubled the latency of half the load).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from multiprocessing.synchronize import Event
from types import FrameType
from typing import Any

import uvicorn

log = logging.getLogger("musicsync.serve")
QUIET: dict[str, Any] = {"log_level": "warning", "access_log": False}
_BACKLOG = 2048


class _Server(uvicorn.Server):
    """Serves the connections the parent hands over; tells the parent once it does; stops if
    the parent dies."""

    def __init__(self, config: uvicorn.Config, ready: Event, handoff: socket.socket) -> None:
        super().__init__(config)
        self._ready = ready
        self._handoff = handoff

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=[])  # no listening socket of its own
        loop = asyncio.get_running_loop()
        self._handoff.setblocking(False)
        loop.add_reader(self._handoff.fileno(), self._adopt, loop)
        parent = os.getppid()
        threading.Thread(target=self._watch, args=(parent,), daemon=True).start()
        self._ready.set()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        asyncio.get_running_loop().remove_reader(self._handoff.fileno())
        self._handoff.close()
        await super().shutdown(sockets)

    def _adopt(self, loop: asyncio.AbstractEventLoop) -> None:
        """Serve the connections the parent sent, as uvicorn serves the ones it accepts."""
        while True:
            try:
                _, fds, _, _ = socket.recv_fds(self._handoff, 1, 16)
            except BlockingIOError:
                return
            if not fds:  # the parent closed its end: it is stopping
                loop.remove_reader(self._handoff.fileno())
                return
            for fd in fds:
                connection = socket.socket(fileno=fd)
                loop.create_task(loop.connect_accepted_socket(self._protocol, connection))

    def _protocol(self) -> asyncio.Protocol:
        protocol: asyncio.Protocol = self.config.http_protocol_class(  # type: ignore[call-arg]
            config=self.config, server_state=self.server_state, app_state=self.lifespan.state
        )
        return protocol

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Ctrl-C reaches the whole process group; the parent answers it by stopping the
        # hand-out and sending SIGTERM here, which lets requests under way finish. Reacting to
        # both raced: a worker caught between them could end in a KeyboardInterrupt traceback.
        if sig != signal.SIGINT:
            super().handle_exit(sig, frame)

    def _watch(self, parent: int) -> None:
        # A worker outliving a SIGKILLed parent would keep serving a stack whose database
        # is gone.
        while not self.should_exit:
            if os.getppid() != parent:
                self.should_exit = True
            time.sleep(1)


def _worker(factory: str, handoff: socket.socket, ready: Event) -> None:
    config = uvicorn.Config(factory, factory=True, **QUIET)
    _Server(config, ready, handoff).run()


def _listen(host: str, port: int) -> socket.socket | None:
    """The stack's listening socket, or None when something (another stack?) holds the port."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError:
        listener.close()
        return None
    listener.listen(_BACKLOG)
    return listener


def _hand_out(
    listener: socket.socket, handoffs: list[socket.socket], stop: threading.Event
) -> None:
    """Accept connections and give each to the next worker in turn (until ``stop``)."""
    listener.settimeout(0.2)
    turn = 0
    while not stop.is_set():
        try:
            connection, _ = listener.accept()
        except TimeoutError:
            continue
        except OSError:
            if stop.is_set():
                return
            log.exception("accepting a connection failed")
            continue
        with connection:  # the worker holds its own descriptor once sent
            for _ in handoffs:
                handoff = handoffs[turn % len(handoffs)]
                turn += 1
                try:
                    socket.send_fds(handoff, [b"c"], [connection.fileno()])
                    break
                except OSError:  # that worker is gone (the supervisor stops the stack)
                    continue


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
    listener = _listen(host, port)
    if listener is None:
        log.error("port %d on %s is in use (another musicsync up?)", port, host)
        return 1
    context = multiprocessing.get_context("spawn")
    stop = threading.Event()
    previous = {
        sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    processes: list[multiprocessing.process.BaseProcess] = []
    handoffs: list[socket.socket] = []
    handing_out: threading.Thread | None = None
    try:
        readiness = [context.Event() for _ in range(workers)]
        for number, ready in enumerate(readiness):
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            worker = context.Process(
                target=_worker,
                args=(factory, theirs, ready),
                name=f"musicsync-worker-{number}",
            )
            worker.start()
            theirs.close()
            processes.append(worker)
            handoffs.append(ours)
        deadline = time.monotonic() + timeout
        for process, ready in zip(processes, readiness, strict=True):
            while not ready.wait(0.2):
                if stop.is_set():
                    return 0
                if not process.is_alive() or time.monotonic() > deadline:
                    log.error("%s did not start within %.0f s", process.name, timeout)
                    return 1
        handing_out = threading.Thread(
            target=_hand_out, args=(listener, handoffs, stop), name="musicsync-accept", daemon=True
        )
        handing_out.start()
        on_ready()
        while not stop.wait(0.5):
            for process in processes:
                if not process.is_alive():
                    log.error("%s exited (code %s); stopping", process.name, process.exitcode)
                    return 1
        return 0
    finally:
        stop.set()
        if handing_out is not None:
            handing_out.join()
        listener.close()
        for handoff in handoffs:
            handoff.close()
        for process in processes:
            if process.is_alive():
                process.terminate()  # SIGTERM: uvicorn finishes open requests first
        for process in processes:
            process.join(timeout)
            if process.is_alive():
                process.kill()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
