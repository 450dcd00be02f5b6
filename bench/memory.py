"""Uploading and streaming a 1 GiB file grows the server's resident memory by < 100 MiB.

Run from the repository root: ``.venv/bin/python -m bench.memory``.

It starts ``musicsync up``, warms it up (a small upload, a whole and a ranged stream), takes the
baseline RSS of the ``musicsync up`` process (the median of 1 s of samples; the embedded
PostgreSQL and Redis are separate processes and are not counted), then, while a thread samples
that RSS every 50 ms: PUTs a 1 GiB WAV (made by ``make_large_wav``, streamed from disk in
1 MiB chunks with an explicit Content-Length), completes the upload (hash + metadata), streams
the file back whole, then a 512 MiB range. Peak minus baseline is judged against 100 MiB.
The 1 GiB file is deleted afterwards, through the API and on the client side.
"""

from __future__ import annotations

import argparse
import threading
import time
from dataclasses import dataclass, field

from bench._support import (
    MIB,
    Row,
    Stack,
    api_client,
    exit_code,
    fetch,
    fmt_mib,
    log,
    media_url,
    median,
    print_table,
    run_main,
    temp_dir,
    upload,
)

TARGET_GROWTH = 100 * MIB
FILE_SIZE = 1024 * MIB
INTERVAL = 0.05


@dataclass
class Sampler:
    """Samples the serving processes' RSS every ``INTERVAL`` seconds, tagged with the phase."""

    stack: Stack
    phase: str = "idle"
    samples: list[tuple[str, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((self.phase, self.stack.server_rss_bytes()))
            self._stop.wait(INTERVAL)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def peak(self, phase: str | None = None) -> int:
        return max(rss for p, rss in self.samples if phase is None or p == phase)


def main(argv: list[str] | None = None) -> int:
    argparse.ArgumentParser(description="Server memory while moving a 1 GiB file.").parse_args(argv)
    from tests.support.audio_files import make_audio, make_large_wav

    with temp_dir() as tmp:
        log(f"writing a {fmt_mib(FILE_SIZE)} WAV")
        big = make_large_wav(tmp / "one-gib.wav", FILE_SIZE)
        with Stack() as stack:
            api = api_client(stack, stack.token("bench-memory"))

            log("warm-up: a small upload, streamed whole and as a range")
            small = upload(api, make_audio("wav", tmp / "small.wav", seconds=5.0))
            url = media_url(api, small.track_id)
            fetch(url)
            fetch(url, {"Range": "bytes=1000-99999"})

            baseline_samples = []
            for _ in range(20):
                baseline_samples.append(stack.server_rss_bytes())
                time.sleep(INTERVAL)
            baseline = int(median(baseline_samples))
            log(f"baseline RSS {fmt_mib(baseline)}")

            phases: list[tuple[str, float, int]] = []
            with Sampler(stack) as sampler:
                t0 = time.perf_counter()
                sampler.phase = "upload (PUT + complete)"
                done = upload(api, big)
                phases.append(("PUT 1 GiB", done.put_seconds, FILE_SIZE))
                phases.append(("complete (hash + metadata)", done.complete_seconds, FILE_SIZE))
                track_id = done.track_id

                sampler.phase = "stream whole"
                url = media_url(api, track_id)
                t = time.perf_counter()
                status, received = fetch(url)
                phases.append(("stream whole", time.perf_counter() - t, received))
                if status != 200 or received != FILE_SIZE:
                    raise RuntimeError(f"whole stream: {status}, {received} bytes")

                sampler.phase = "stream range"
                start, end = 256 * MIB, 768 * MIB - 1
                t = time.perf_counter()
                status, received = fetch(url, {"Range": f"bytes={start}-{end}"})
                phases.append(("stream 512 MiB range", time.perf_counter() - t, received))
                if status != 206 or received != end - start + 1:
                    raise RuntimeError(f"range stream: {status}, {received} bytes")

                sampler.phase = "after"
                time.sleep(1.0)
                elapsed = time.perf_counter() - t0
            after = sampler.samples[-1][1]

            deleted = api.delete(f"/v1/tracks/{track_id}")
            if deleted.status_code != 204:
                raise RuntimeError(f"DELETE track: {deleted.status_code} {deleted.text}")
            api.close()
        big.unlink()

    peak = sampler.peak()
    growth = peak - baseline
    rows = [
        Row("baseline RSS (after warm-up)", fmt_mib(baseline)),
        Row("peak RSS", fmt_mib(peak)),
        Row(
            "growth (peak - baseline)",
            fmt_mib(growth),
            f"< {fmt_mib(TARGET_GROWTH)}",
            growth < TARGET_GROWTH,
        ),
    ]
    for phase in ("upload (PUT + complete)", "stream whole", "stream range"):
        rows.append(Row(f"  peak growth during {phase}", fmt_mib(sampler.peak(phase) - baseline)))
    rows.append(Row("RSS 1 s after the last transfer", fmt_mib(after)))
    rows.append(Row("samples (every 50 ms)", f"{len(sampler.samples)} over {elapsed:.1f} s"))
    for label, seconds, n_bytes in phases:
        rows.append(Row(f"  {label}", f"{seconds:.2f} s ({n_bytes / MIB / seconds:.0f} MiB/s)"))
    print_table("Server memory while moving a 1 GiB file (musicsync up process RSS)", rows)
    return exit_code(rows)


if __name__ == "__main__":
    run_main(main)
