"""The Firehose sink encodes and batches >= 50,000 events/s on one core (network stubbed).

Run from the repository root: ``.venv/bin/python -m bench.firehose_sink``.

A typical mix of usage events (mostly playback progress, then stream starts, pitch plays,
searches with properties, sign-ins, playlist changes and downloads) is built up front, then sent
through ``FirehoseSink`` 1,000 events per ``send`` (one invocation's buffer), several rounds.
The client is a fake whose ``put_record_batch`` accepts everything at once and checks the
batch limits, so what is timed is the sink's own work: rows, JSON, chunking. The figure is the
median round's events per second (wall clock, one thread).
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from bench._support import Row, exit_code, log, print_table, run_main, temp_dir
from ingest.events.dead_letters import LocalDeadLetters
from ingest.events.envelope import UsageEvent
from ingest.events.firehose import MAX_BATCH_BYTES, MAX_BATCH_RECORDS, FirehoseSink
from services.core.clock import SystemClock

TARGET = 50_000
EVENTS = 100_000
PER_SEND = 1_000
ROUNDS = 5


class CountingClient:
    """Stands in for the Firehose client: accepts every record at once and counts them."""

    def __init__(self) -> None:
        self.calls = 0
        self.records = 0
        self.bytes = 0

    def put_record_batch(self, **params: Any) -> Any:
        records = params["Records"]
        size = sum(len(r["Data"]) for r in records)
        if len(records) > MAX_BATCH_RECORDS or size > MAX_BATCH_BYTES:
            raise RuntimeError(f"batch over the limits: {len(records)} records, {size} bytes")
        self.calls += 1
        self.records += len(records)
        self.bytes += size
        return {"FailedPutCount": 0, "RequestResponses": [{"RecordId": "r"}] * len(records)}


def typical_events(n: int, seed: int = 7) -> list[UsageEvent]:
    """``n`` events in the proportions the product produces them."""
    rng = random.Random(seed)
    start = datetime(2026, 3, 1, tzinfo=UTC)
    tracks = [uuid.UUID(int=rng.getrandbits(128)) for _ in range(200)]
    users = [f"user-{i}" for i in range(50)]
    kinds = (
        ["playback_progress"] * 45
        + ["stream_started"] * 15
        + ["pitch_track_played"] * 10
        + ["search_performed"] * 10
        + ["signed_in"] * 10
        + ["playlist_track_added"] * 5
        + ["track_downloaded"] * 5
    )
    events = []
    for i in range(n):
        kind = rng.choice(kinds)
        common: dict[str, Any] = {
            "event_id": uuid.UUID(int=rng.getrandbits(128)),
            "event_type": kind,
            "event_version": 1,
            "occurred_at": start + timedelta(microseconds=i * 7919),
            "actor_type": "user",
            "actor_id": rng.choice(users),
            "session_id": f"s-{rng.randrange(1000)}",
            "source": "library",
            "correlation_id": uuid.UUID(int=rng.getrandbits(128)).hex,
        }
        track = rng.choice(tracks)
        if kind == "playback_progress":
            event = UsageEvent(
                **common, track_id=track, position_ms=rng.randrange(300_000), listened_ms=10_000
            )
        elif kind == "stream_started":
            event = UsageEvent(**common, track_id=track, position_ms=0)
        elif kind == "pitch_track_played":
            event = UsageEvent(
                **{**common, "actor_type": "recipient", "source": "pitching"},
                pitch_id=uuid.UUID(int=rng.getrandbits(128)),
                recipient_id=uuid.UUID(int=rng.getrandbits(128)),
                track_id=track,
                position_ms=rng.randrange(300_000),
            )
        elif kind == "search_performed":
            event = UsageEvent(
                **{**common, "source": "search"},
                result_count=rng.randrange(100),
                latency_ms=rng.randrange(5, 80),
                properties={"query": "late night synth", "filters": {"genre": ["ambient"]}},
            )
        elif kind == "signed_in":
            event = UsageEvent(**{**common, "source": "gateway"}, properties={"method": "oidc"})
        elif kind == "playlist_track_added":
            event = UsageEvent(
                **{**common, "source": "playlists"},
                playlist_id=uuid.UUID(int=rng.getrandbits(128)),
                track_id=track,
                properties={"position": rng.randrange(50)},
            )
        else:
            event = UsageEvent(**common, track_id=track, bytes=rng.randrange(1, 50_000_000))
        events.append(event)
    return events


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=EVENTS)
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    args = parser.parse_args(argv)

    log(f"building {args.events:,} events")
    events = typical_events(args.events)
    sends = [events[i : i + PER_SEND] for i in range(0, len(events), PER_SEND)]
    rates: list[float] = []
    with temp_dir() as tmp:
        dead_letters = LocalDeadLetters(tmp, SystemClock())
        client = CountingClient()
        sink = FirehoseSink("bench", SystemClock(), dead_letters, client=client)
        sink.send(sends[0])  # warm-up: first-call imports and caches
        for n in range(args.rounds):
            started = time.perf_counter()
            for batch in sends:
                sink.send(batch)
            seconds = time.perf_counter() - started
            rates.append(len(events) / seconds)
            log(f"round {n + 1}: {rates[-1]:,.0f} events/s")
        if dead_letters.batches():
            raise RuntimeError("events were dead-lettered during the benchmark")
    expected = len(sends[0]) + args.rounds * len(events)
    if client.records != expected:
        raise RuntimeError(f"client got {client.records} records, expected {expected}")

    rate = statistics.median(rates)
    rows = [
        Row(
            "encode + batch, typical mix (median round, 1 thread)",
            f"{rate:,.0f} events/s",
            f">= {TARGET:,} events/s",
            rate >= TARGET,
        ),
        Row("time per event", f"{1e6 / rate:.1f} us"),
        Row("rounds (min / max)", f"{min(rates):,.0f} / {max(rates):,.0f} events/s"),
        Row("mean record size", f"{client.bytes / client.records:.0f} bytes"),
        Row("records per PutRecordBatch", f"{client.records / client.calls:.0f}"),
    ]
    print_table("Firehose sink: encoding + batching", rows)
    return exit_code(rows)


if __name__ == "__main__":
    run_main(main)
