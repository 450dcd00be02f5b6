"""The local lake writer: >= 100,000 events/s, < 3x a bare write, <= 80 bytes per event on disk.

Run from the repository root: ``.venv/bin/python -m bench.lake_writer [--events N] [--batch B]
[--repeat R]`` (about 75 s with the defaults).

Everything runs in this one process (one core; the writer's Parquet and zstd work is not
threaded). The events are a typical mix made up beforehand as plain values: mostly playback
progress reports, stream starts and completions, a few searches and uploads, with UUIDv7 event
and user ids, UUIDv4 correlation ids (one per request) and session ids, and small JSON
properties. What is timed is what a producer and the sink do:

(a) end to end: for every event, ``uuid7`` and ``UsageEvent(...)`` (the emit-equivalent), in
    sends of ``--batch`` events (500 by default, Firehose's ``PutRecordBatch`` maximum: a bulk
    sender such as the collector; an emitter's per-invocation sends are smaller and shown as
    information), then ``close()``, which flushes; the clock stops when the last Parquet file
    is renamed in.
    With the spool (fdatasync group-committed every 50 ms, the default), without it, and, as
    information, with an fdatasync per send and with smaller sends. Each figure is the median
    of ``--repeat`` runs, each in a fresh folder, and the files are read back and counted.
(b) the floor, in the same run: the same construction, then the same events made into one Arrow
    table (the writer's own column conversion, the fastest bare path; ``to_row`` +
    ``Table.from_pylist`` is shown too) and written by one ``pyarrow.parquet.write_table``.
    The ratio is (a) with the spool over it.
(c) storage: the mix written as a lake of small files (a flush every 2,000 events), then
    ``lake.compaction.compact``; bytes of all ``*.parquet`` files per event.
"""

from __future__ import annotations

import argparse
import gc
import random
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from bench._support import Row, exit_code, log, print_table, run_main, temp_dir
from ingest.events.envelope import UsageEvent, to_row
from ingest.events.lake_writer import LocalLakeWriter, _to_batch
from lake.compaction import compact
from services.core.clock import SystemClock
from services.core.ids import uuid7

TARGET_EVENTS_PER_S = 100_000.0
TARGET_RATIO = 3.0
TARGET_BYTES_PER_EVENT = 80.0
SMALL_FLUSH_EVENTS = 2_000

# (event type, share of events)
_MIX = (
    ("track_playback_progress", 0.80),
    ("track_stream_started", 0.09),
    ("track_playback_completed", 0.05),
    ("search_performed", 0.04),
    ("track_upload_started", 0.01),
    ("track_uploaded", 0.01),
)
_WORDS = ("love", "night", "blue", "fire", "summer", "road", "heart", "dance", "rain", "city")


@dataclass(frozen=True)
class Plan:
    """One event's values, decided before timing starts; ``build`` makes the UsageEvent."""

    occurred_at: datetime
    fields: dict[str, Any]

    def build(self) -> UsageEvent:
        return UsageEvent(
            event_id=uuid7(self.occurred_at), occurred_at=self.occurred_at, **self.fields
        )


def make_plans(n: int, seed: int = 7) -> list[Plan]:
    """A typical two hours of usage by a few thousand listeners, ending now."""
    rng = random.Random(seed)
    start = datetime.now(UTC) - timedelta(hours=2)
    users = [str(uuid7(start - timedelta(days=rng.randrange(400)))) for _ in range(3_000)]
    sessions = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in users]
    tracks = [uuid7(start - timedelta(days=rng.randrange(400))) for _ in range(20_000)]
    types = [name for name, _ in _MIX]
    weights = [share for _, share in _MIX]
    step = timedelta(hours=2) / n
    plans = []
    for i in range(n):
        at = start + step * i
        who = rng.randrange(len(users))
        track = tracks[rng.randrange(len(tracks))]
        event_type = rng.choices(types, weights)[0]
        fields: dict[str, Any] = {
            "event_type": event_type,
            "event_version": 1,
            "actor_type": "user",
            "actor_id": users[who],
            "session_id": sessions[who],
            "correlation_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "source": "collector",
        }
        if event_type in ("track_playback_progress", "track_playback_completed"):
            fields |= {
                "track_id": track,
                "position_ms": rng.randrange(240_000),
                "listened_ms": rng.choice((10_000, 10_000, 10_000, rng.randrange(10_000))),
            }
        elif event_type == "track_stream_started":
            fields |= {
                "source": "library",
                "track_id": track,
                "properties": {"client": rng.choice(("web", "ios", "android"))},
            }
        elif event_type == "search_performed":
            fields |= {
                "source": "search",
                "result_count": rng.randrange(200),
                "latency_ms": rng.randrange(5, 80),
                "properties": {
                    "query": " ".join(rng.sample(_WORDS, rng.randrange(1, 4))),
                    "filters": {"genre": rng.choice(("pop", "jazz", "rock"))},
                },
            }
        else:
            upload_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            fields |= {"source": "library", "bytes": rng.randrange(1 << 20, 1 << 28)}
            fields["properties"] = {"upload_id": upload_id}
            if event_type == "track_uploaded":
                fields["track_id"] = track
        plans.append(Plan(at, fields))
    return plans


def chunks(plans: list[Plan], size: int) -> Iterator[list[Plan]]:
    for i in range(0, len(plans), size):
        yield plans[i : i + size]


@dataclass(frozen=True)
class Timing:
    wall: float
    cpu: float  # this process's CPU seconds (all its threads): about wall on one core


def run_writer(root: Path, plans: list[Plan], batch: int, **options: Any) -> Timing:
    """From the first event built to the last file renamed in (close included)."""
    writer = LocalLakeWriter(root, SystemClock(), **options)
    wall, cpu = time.perf_counter(), time.process_time()
    for part in chunks(plans, batch):
        writer.send([plan.build() for plan in part])
    writer.close()
    return Timing(time.perf_counter() - wall, time.process_time() - cpu)


def run_floor(root: Path, plans: list[Plan], *, via_rows: bool) -> Timing:
    """The same events built, made one table and written by one write_table."""
    wall, cpu = time.perf_counter(), time.process_time()
    events = [plan.build() for plan in plans]
    now = datetime.now(UTC)
    if via_rows:
        table = pa.Table.from_pylist([to_row(event, now) for event in events])
    else:
        table = pa.Table.from_batches([_to_batch(events, now)])
    pq.write_table(table, root / "floor.parquet", compression="zstd")
    return Timing(time.perf_counter() - wall, time.process_time() - cpu)


def run_builds(plans: list[Plan]) -> Timing:
    """The producer's part alone: the events built, in the same chunks, and dropped."""
    wall, cpu = time.perf_counter(), time.process_time()
    for part in chunks(plans, 500):
        [plan.build() for plan in part]
    return Timing(time.perf_counter() - wall, time.process_time() - cpu)


def lake_rows(root: Path) -> int:
    return sum(pq.read_metadata(path).num_rows for path in root.glob("events/*/*/*.parquet"))


def lake_bytes(root: Path) -> int:
    return sum(path.stat().st_size for path in root.glob("events/*/*/*.parquet"))


def median_timing(
    tmp: Path, repeat: int, expected_rows: int | None, run: Callable[[Path], Timing]
) -> Timing:
    """The median run of ``repeat``, each in a fresh folder (its rows checked, when given)."""
    timings = []
    for n in range(repeat):
        folder = tmp / f"run-{time.monotonic_ns()}-{n}"
        folder.mkdir()
        gc.collect()
        timings.append(run(folder))
        if expected_rows is not None and (found := lake_rows(folder)) != expected_rows:
            raise RuntimeError(f"{found} rows in the lake, {expected_rows} sent")
    return sorted(timings, key=lambda t: t.wall)[len(timings) // 2]


def rate(events: int, seconds: float) -> str:
    return f"{events / seconds:,.0f} events/s ({seconds * 1e6 / events:.2f} us/event)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=200_000, help="events per run")
    parser.add_argument("--batch", type=int, default=500, help="events per send")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure (median)")
    args = parser.parse_args(argv)
    n, batch, repeat = args.events, args.batch, args.repeat
    log(f"making {n:,} planned events")
    plans = make_plans(n)
    # The plans are the simulation's input, not the system's: keep the collector off them, as a
    # producer would not hold hundreds of thousands of objects either.
    gc.collect()
    gc.freeze()
    rows: list[Row] = []
    with temp_dir(prefix="msbench-lake-") as tmp:
        # A warm-up run, so that imports and first allocations are not in the first figure.
        run_writer(tmp / "warm-up", plans[:20_000], batch)

        def writer_run(part: list[Plan], size: int, **options: Any) -> Callable[[Path], Timing]:
            return lambda root: run_writer(root, part, size, **options)

        timings: dict[str, Timing] = {}
        for label, spool in (("spool on", True), ("spool off", False)):
            log(f"(a) writer, {label}, {batch} events per send")
            timing = median_timing(tmp, repeat, n, writer_run(plans, batch, spool=spool))
            timings[label] = timing
            rows.append(
                Row(
                    f"(a) build + send + close, {label}, {batch}/send",
                    rate(n, timing.wall),
                    f">= {TARGET_EVENTS_PER_S:,.0f} events/s",
                    n / timing.wall >= TARGET_EVENTS_PER_S,
                )
            )
        on = timings["spool on"]
        rows.append(Row("    CPU time / wall time, spool on", f"{on.cpu / on.wall:.2f}"))
        log("(a) information: the producer's part, an fdatasync per send, smaller sends")
        build = median_timing(tmp, repeat, None, lambda _: run_builds(plans))
        rows.append(
            Row("    uuid7 + UsageEvent(...) alone (the producer's part)", rate(n, build.wall))
        )
        rows.append(Row("    send + close alone (the sink's part)", rate(n, on.wall - build.wall)))
        timing = median_timing(tmp, repeat, n, writer_run(plans, batch, spool_fsync_seconds=0.0))
        rows.append(Row(f"    spool on, fdatasync every send, {batch}/send", rate(n, timing.wall)))
        for size in (100, 10, 1):
            part = plans[: min(n, 2_000 * size)]
            timing = median_timing(tmp, 1, len(part), writer_run(part, size))
            rows.append(
                Row(
                    f"    spool on, {size}/send ({len(part):,} events)",
                    f"{rate(len(part), timing.wall)}; {timing.wall * 1e6 * size / len(part):.0f}"
                    " us/send",
                )
            )

        log("(b) the floor: one table, one write_table")
        floor = median_timing(
            tmp, repeat, None, lambda root: run_floor(root, plans, via_rows=False)
        )
        naive = median_timing(tmp, repeat, None, lambda root: run_floor(root, plans, via_rows=True))
        ratio = on.wall / floor.wall
        rows.append(
            Row(
                "(b) writer (spool on) / floor, build included in both",
                f"{ratio:.2f} (floor: {rate(n, floor.wall)})",
                f"< {TARGET_RATIO:.0f}",
                ratio < TARGET_RATIO,
            )
        )
        sink_ratio = (on.wall - build.wall) / (floor.wall - build.wall)
        rows.append(
            Row("    the same, build left out of both (the sink's part)", f"{sink_ratio:.2f}")
        )
        rows.append(Row("    floor via to_row + Table.from_pylist instead", rate(n, naive.wall)))

        log("(c) storage: a lake of small files, then compaction")
        lake = tmp / "lake"
        run_writer(lake, plans, batch, max_buffer_events=SMALL_FLUSH_EVENTS)
        files_before = len(list(lake.glob("events/*/*/*.parquet")))
        before = lake_bytes(lake)
        started = time.perf_counter()
        report = compact(lake)
        seconds = time.perf_counter() - started
        if lake_rows(lake) != n:
            raise RuntimeError(f"{lake_rows(lake)} rows after compaction, {n} written")
        after = lake_bytes(lake)
        rows.append(
            Row(f"    before compaction ({files_before} files)", f"{before / n:.1f} bytes/event")
        )
        rows.append(
            Row(
                f"(c) after compaction ({report.files_after} files, {seconds:.1f} s)",
                f"{after / n:.1f} bytes/event",
                f"<= {TARGET_BYTES_PER_EVENT:.0f} bytes/event",
                after / n <= TARGET_BYTES_PER_EVENT,
            )
        )
    print_table(f"Local lake writer ({n:,} events per run, median of {repeat})", rows)
    return exit_code(rows)


if __name__ == "__main__":
    run_main(main)
