"""Upload completion (checksum + metadata) runs within 1.5x of plain hashlib.sha256.

Run from the repository root: ``.venv/bin/python -m bench.upload_completion``.

Part 1 (the target). Over the same files - 8 WAVs of 64 MiB made by ``make_large_wav`` and a
few real small files of other formats made by ``make_audio`` - it times
``services.library.audio.inspect_file`` (which reads each file once: SHA-256, format checks,
tags) against a plain loop of 1 MiB ``f.read`` + ``hashlib.sha256().update``. Both run in this
process, interleaved (the order alternates each round), after one warm-up pass that also puts
the files in the page cache; the medians of the rounds give MiB/s and the ratio.

Part 2 (information). End to end through ``musicsync up``: ``POST /v1/uploads/{id}/complete``
for a 256 MiB WAV already PUT, a few times (each file differs in its last bytes, so none is a
duplicate), as a client sees it.
"""

from __future__ import annotations

import argparse
import hashlib
import time
from pathlib import Path

from bench._support import (
    CHUNK,
    MIB,
    OtherCpu,
    Row,
    Stack,
    api_client,
    exit_code,
    fmt_mib,
    fmt_ms,
    log,
    median,
    print_table,
    run_main,
    temp_dir,
    upload,
)

TARGET_RATIO = 1.5
LARGE_FILES = 8
LARGE_SIZE = 64 * MIB
SMALL_FORMATS = ("mp3", "flac", "aiff", "m4a_aac", "m4a_alac", "ogg_vorbis", "ogg_opus", "bwf")
SMALL_SECONDS = 30.0
E2E_SIZE = 256 * MIB


def plain_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def make_files(folder: Path) -> list[Path]:
    from tests.support.audio_files import make_audio, make_large_wav

    files = [make_large_wav(folder / f"large-{n}.wav", LARGE_SIZE) for n in range(LARGE_FILES)]
    tags: dict[str, str | list[str]] = {
        "title": "Bench",
        "artist": ["Ada", "Grace"],
        "date": "2024",
        "isrc": "GB-ABC-24-00001",
    }
    for fmt in SMALL_FORMATS:
        files.append(make_audio(fmt, folder / f"small-{fmt}.bin", seconds=SMALL_SECONDS, tags=tags))
    return files


def time_hashlib(files: list[Path]) -> tuple[float, dict[Path, str]]:
    digests = {}
    t0 = time.perf_counter()
    for path in files:
        digests[path] = plain_sha256(path)
    return time.perf_counter() - t0, digests


def time_inspect(files: list[Path]) -> tuple[float, dict[Path, str]]:
    from services.library.audio import inspect_file

    digests = {}
    t0 = time.perf_counter()
    for path in files:
        digests[path] = inspect_file(path).sha256
    return time.perf_counter() - t0, digests


def measure_local(folder: Path, rounds: int) -> list[Row]:
    log(f"writing {LARGE_FILES} x {fmt_mib(LARGE_SIZE)} WAV and {len(SMALL_FORMATS)} small files")
    files = make_files(folder)
    small = [p for p in files if p.name.startswith("small-")]
    total_bytes = sum(p.stat().st_size for p in files)
    small_bytes = sum(p.stat().st_size for p in small)

    log("warm-up pass (page cache, imports)")
    _, expected = time_hashlib(files)
    _, inspected = time_inspect(files)
    if inspected != expected:
        raise RuntimeError("inspect_file's SHA-256 differs from hashlib's")

    log(f"{rounds} interleaved rounds over {fmt_mib(total_bytes)}")
    hash_times: list[float] = []
    inspect_times: list[float] = []
    with OtherCpu() as other:
        for n in range(rounds):
            order = (time_hashlib, time_inspect) if n % 2 == 0 else (time_inspect, time_hashlib)
            for fn in order:
                seconds, digests = fn(files)
                if digests != expected:
                    raise RuntimeError(f"{fn.__name__}: checksums changed between rounds")
                (hash_times if fn is time_hashlib else inspect_times).append(seconds)
    # The small real files alone: where the metadata parsing weighs most.
    small_hash = median([time_hashlib(small)[0] for _ in range(rounds)])
    small_inspect = median([time_inspect(small)[0] for _ in range(rounds)])

    hashed, inspected_s = median(hash_times), median(inspect_times)
    ratio = inspected_s / hashed
    return [
        Row("files", f"{len(files)} ({fmt_mib(total_bytes)}), page-cached"),
        Row("plain hashlib.sha256, 1 MiB reads: median", f"{total_bytes / MIB / hashed:.0f} MiB/s"),
        Row(
            "inspect_file (hash + metadata): median", f"{total_bytes / MIB / inspected_s:.0f} MiB/s"
        ),
        Row(
            "time ratio inspect_file / hashlib (medians)",
            f"{ratio:.2f}x",
            f"<= {TARGET_RATIO}x",
            ratio <= TARGET_RATIO,
        ),
        Row(
            "rounds: hashlib / inspect_file (min-max)",
            f"{_range(hash_times)} / {_range(inspect_times)}",
        ),
        Row(
            f"small real files only ({len(small)} formats, {fmt_mib(small_bytes)}): ratio",
            f"{small_inspect / small_hash:.2f}x ({fmt_ms(small_inspect)} vs {fmt_ms(small_hash)})",
        ),
        other.row(),
    ]


def _rate(n_bytes: int, seconds: float) -> str:
    return f"{n_bytes / MIB / seconds:.0f} MiB/s"


def _range(values: list[float]) -> str:
    return f"{min(values) * 1000:.0f}-{max(values) * 1000:.0f} ms"


def measure_end_to_end(folder: Path, runs: int) -> list[Row]:
    from tests.support.audio_files import make_large_wav

    source = make_large_wav(folder / "e2e.wav", E2E_SIZE)
    puts: list[float] = []
    completes: list[float] = []
    with Stack() as stack:
        api = api_client(stack, stack.token("bench-upload"))
        for n in range(runs):
            # A different last sample each time: a new checksum, so no duplicate rejection.
            with source.open("r+b") as f:
                f.seek(E2E_SIZE - 4)
                f.write(n.to_bytes(4, "little"))
            log(f"end to end {n + 1}/{runs}: PUT {fmt_mib(E2E_SIZE)}, then complete")
            done = upload(api, source)
            if done.track["size_bytes"] != E2E_SIZE:
                raise RuntimeError(f"unexpected track: {done.track}")
            puts.append(done.put_seconds)
            completes.append(done.complete_seconds)
        api.close()
    source.unlink()
    complete = median(completes)
    return [
        Row(
            f"POST .../complete, {fmt_mib(E2E_SIZE)} WAV: median (min-max)",
            f"{fmt_ms(complete)} ({_range(completes)})",
        ),
        Row("  as throughput", f"{E2E_SIZE / MIB / complete:.0f} MiB/s"),
        Row("  for comparison, the PUT of the bytes: median", fmt_ms(median(puts))),
        Row("runs", str(runs)),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Upload completion throughput.")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds (3-20)")
    parser.add_argument("--e2e-runs", type=int, default=3, help="256 MiB uploads (0-5)")
    args = parser.parse_args(argv)
    rounds = min(max(args.rounds, 3), 20)
    e2e_runs = min(max(args.e2e_runs, 0), 5)

    with temp_dir() as folder:
        rows = measure_local(folder, rounds)
        print_table("Upload completion: inspect_file vs plain hashlib.sha256 (target)", rows)
        for path in folder.iterdir():
            path.unlink()
        if e2e_runs:
            e2e = measure_end_to_end(folder, e2e_runs)
            print_table("Upload completion through the local stack (information)", e2e)
    return exit_code(rows)


if __name__ == "__main__":
    run_main(main)
