"""The lake writer's fast column conversions give exactly what the generic paths give."""

from __future__ import annotations

import json
import math
import pickle
import random
import time
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pyarrow as pa
import pytest

from ingest.events.arrow import json_texts, utc_timestamps, uuid_strings
from ingest.events.envelope import UsageEvent, to_row
from ingest.events.lake_writer import _BATCH_SCHEMA, _FEW, _partitions, _to_batch
from services.core.ids import uuid7

TIMESTAMP = pa.timestamp("us", tz="UTC")
RECEIVED = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


def texts(values: list[Any]) -> pa.Array:
    """The generic conversion: str() of each value, None kept."""
    return pa.array([None if v is None else str(v) for v in values], pa.string())


# -- UUIDs ---------------------------------------------------------------------------------------
EDGE_UUIDS = [
    uuid.UUID(int=0),
    uuid.UUID(int=(1 << 128) - 1),
    uuid.UUID(int=1),
    uuid.UUID("00000000-0000-0000-0000-0000000000ff"),
    uuid.UUID("ff000000-0000-0000-0000-000000000000"),
    uuid.UUID("0123abcd-4567-89ef-0123-456789abcdef"),
]


@pytest.mark.parametrize("count", [1, 2, 7, 500, 1001])
def test_uuid_strings_are_the_canonical_text_of_each_id(count: int) -> None:
    rng = random.Random(count)
    ids = [uuid.UUID(int=rng.getrandbits(128)) for _ in range(count)]
    ids[: len(EDGE_UUIDS)] = EDGE_UUIDS[:count]
    array = uuid_strings(ids)
    assert array is not None
    array.validate(full=True)
    assert array.equals(texts(ids))
    assert array.to_pylist() == [str(i) for i in ids]


@pytest.mark.parametrize(
    "present",
    [
        [False, True, True],
        [True, True, False],
        [True, False, True, False, True],
        [False, False, True],
        [False],
        [False, False, False],
        [False] + [True] * 40,
        [True] * 40 + [False],
        [n % 3 == 0 for n in range(100)],
        [n % 3 != 0 for n in range(100)],
        [False] * 100,
    ],
)
def test_uuid_strings_keep_nulls_in_place(present: list[bool]) -> None:
    ids = [uuid.UUID(int=0x1234 * (n + 1)) if p else None for n, p in enumerate(present)]
    array = uuid_strings(ids)
    assert array is not None
    array.validate(full=True)
    assert array.type == pa.string()
    assert array.null_count == present.count(False)
    assert array.to_pylist() == [None if i is None else str(i) for i in ids]
    assert array.equals(texts(ids))


def test_uuid_strings_of_no_values_is_an_empty_string_array() -> None:
    array = uuid_strings([])
    assert array is not None
    assert array.type == pa.string()
    assert len(array) == 0


class TextId(uuid.UUID):
    def __str__(self) -> str:
        return "not the canonical text"


@pytest.mark.parametrize(
    "odd",
    ["019d0c8c-9f00-7000-8000-000000000000", 5, TextId(int=5), b"0123456789abcdef"],
)
@pytest.mark.parametrize("count", [3, 100])
def test_uuid_strings_decline_anything_but_uuids_and_none(odd: Any, count: int) -> None:
    values = [uuid.UUID(int=n) if n % 2 else None for n in range(count)]
    values[1] = odd
    assert uuid_strings(values) is None


# -- JSON ----------------------------------------------------------------------------------------
PROPERTIES: list[Any] = [
    {"client": "web"},
    {"query": "love night", "filters": {"genre": "pop", "years": [1999, 2000]}},
    {"z": 1, "a": 2, "m": {"y": None, "b": True}},
    {"naïve": "café ✓ 😀", "quote": 'say "hi"\n\\'},
    {"id": uuid.UUID(int=7), "at": datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)},
    {"float": 0.1, "big": 1e300, "neg": -0.0, "inf": math.inf, "nan": math.nan},
    {"tuple": (1, 2), "int_key": {1: "one"}},
    {},
    None,
]


def test_json_texts_are_the_text_to_row_gives() -> None:
    array = json_texts(PROPERTIES)
    expected = [
        json.dumps(p, separators=(",", ":"), sort_keys=True, default=str) if p else None
        for p in PROPERTIES
    ]
    assert array.type == pa.string()
    assert array.to_pylist() == expected


def test_json_texts_refuse_a_circular_value_as_json_does() -> None:
    circular: dict[str, Any] = {"a": 1}
    circular["self"] = circular
    with pytest.raises(ValueError, match="Circular reference"):
        json_texts([{"fine": 1}, circular])
    # A shared (not circular) value is fine, also after a failure.
    shared = {"k": [1, 2]}
    assert json_texts([{"a": shared, "b": shared}]).to_pylist() == [
        '{"a":{"k":[1,2]},"b":{"k":[1,2]}}'
    ]


# -- timestamps ----------------------------------------------------------------------------------
def micros(at: datetime) -> int:
    """Microseconds since the epoch, by exact integer arithmetic."""
    delta = at - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


AWARE = [
    datetime(2026, 3, 1, 12, 0, 0, 1, tzinfo=UTC),
    datetime(2026, 3, 1, 12, 0, 0, 999_999, tzinfo=UTC),
    datetime(2026, 3, 1, 17, 30, 0, 123_456, tzinfo=timezone(timedelta(hours=5, minutes=30))),
    datetime(2026, 2, 28, 23, 59, 59, 999_999, tzinfo=timezone(timedelta(hours=-8))),
    datetime(2026, 3, 1, 0, 0, 0, 1, tzinfo=timezone(timedelta(hours=14))),
    datetime(2026, 3, 29, 1, 30, tzinfo=ZoneInfo("Europe/Paris")),  # the hour DST skips
    datetime(2026, 10, 25, 2, 30, fold=1, tzinfo=ZoneInfo("Europe/Paris")),  # the repeated hour
    datetime(1970, 1, 1, tzinfo=UTC),
    datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
    datetime(1900, 1, 1, 0, 0, 0, 1, tzinfo=timezone(timedelta(minutes=-1))),
    datetime(1, 1, 1, tzinfo=UTC),
    datetime(1, 1, 1, 5, tzinfo=timezone(timedelta(hours=5))),
    datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
    datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=timezone(timedelta(hours=23, minutes=59))),
]


def test_utc_timestamps_are_exact_microseconds_since_the_epoch_whatever_the_offset() -> None:
    array = utc_timestamps(AWARE, TIMESTAMP)
    assert array is not None
    assert array.type == TIMESTAMP
    assert array.cast(pa.int64()).to_pylist() == [micros(at) for at in AWARE]
    assert array.equals(pa.array(AWARE, TIMESTAMP))
    assert array.to_pylist() == [at.astimezone(UTC) for at in AWARE]


@pytest.mark.parametrize(
    "odd",
    [
        datetime(2026, 3, 1, 12),  # naive: the caller decides what it means
        None,
        "2026-03-01T12:00:00Z",
        datetime(2026, 3, 1).date(),
    ],
)
def test_utc_timestamps_decline_anything_but_aware_datetimes(odd: Any) -> None:
    assert utc_timestamps([*AWARE, odd, *AWARE], TIMESTAMP) is None


def test_utc_timestamps_of_few_values_are_left_to_pyarrow() -> None:
    assert utc_timestamps(AWARE[:7], TIMESTAMP) is None
    array = utc_timestamps(AWARE[:8], TIMESTAMP)
    assert array is not None
    assert array.equals(pa.array(AWARE[:8], TIMESTAMP))


def test_utc_timestamps_want_microsecond_timestamps() -> None:
    with pytest.raises(ValueError, match="microsecond"):
        utc_timestamps(AWARE, pa.timestamp("ns", tz="UTC"))


# -- whole batches -------------------------------------------------------------------------------
def events() -> list[UsageEvent]:
    """Every kind of column value: nulls, offsets, naive times, received_at set or not."""
    rng = random.Random(3)
    made = []
    for n in range(300):
        at = AWARE[n % len(AWARE)] if n % 5 else datetime(2026, 3, 1, 12, n % 60, n % 60, n)
        made.append(
            UsageEvent(
                event_id=uuid7(datetime(2026, 3, 1, tzinfo=UTC)),
                event_type=rng.choice(("track_played", "search_performed", "track_uploaded")),
                event_version=1 + n % 2,
                occurred_at=at,
                actor_type="user",
                source="tests",
                actor_id=None if n % 3 else f"user-{n}",
                received_at=None if n % 4 else AWARE[n % 3],
                track_id=uuid.UUID(int=rng.getrandbits(128)) if n % 7 else None,
                share_id=uuid.UUID(int=n) if n == 17 else None,
                position_ms=n * 1000 if n % 2 else None,
                properties={"n": n, "id": uuid.UUID(int=n)} if n % 6 == 0 else {},
            )
        )
    return made


def test_a_batch_holds_the_values_to_row_gives() -> None:
    made = events()
    batch = _to_batch(made, RECEIVED)
    batch.validate(full=True)
    rows = [to_row(e, RECEIVED) for e in made]
    expected = pa.Table.from_pylist(
        [{k: v for k, v in row.items() if k != "dt"} for row in rows], schema=_BATCH_SCHEMA
    )
    assert pa.Table.from_batches([batch]).equals(expected)


def test_a_send_of_few_events_builds_the_batch_a_large_send_builds() -> None:
    # Given every kind of value, and the batch a large send builds (column by column)
    made = events()
    assert len(made) >= _FEW
    whole = _to_batch(made, RECEIVED)
    # When the same events come a few at a time (built row by row)
    start = 0
    for size in [1, 2, _FEW - 1, 5, 1, 17, 3] * 20:
        part = made[start : start + size]
        if not part:
            break
        batch = _to_batch(part, RECEIVED)
        # Then each small batch is, value for value and type for type, that slice of it
        batch.validate(full=True)
        assert batch.schema.equals(_BATCH_SCHEMA)
        assert batch.equals(whole.slice(start, len(part)))
        start += len(part)
    assert start == len(made)


@pytest.mark.parametrize("count", [1, _FEW])
def test_a_send_lacking_a_required_column_is_refused_however_small(count: int) -> None:
    made = events()[:count]
    made[-1].source = None  # type: ignore[assignment]
    with pytest.raises(ValueError, match="source is required; 1 events lack it"):
        _to_batch(made, RECEIVED)


def test_a_batch_reads_naive_times_as_local_time_as_to_row_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        naive = [datetime(2026, 3, 1, 21, 30, n) for n in range(3)]
        made = [
            UsageEvent(
                event_id=uuid7(at),
                event_type="track_played",
                event_version=1,
                occurred_at=at,
                actor_type="user",
                source="tests",
                received_at=at if n else None,
            )
            for n, at in enumerate(naive)
        ]
        batch = _to_batch(made, RECEIVED)
        assert batch["occurred_at"].to_pylist() == [
            to_row(e, RECEIVED)["occurred_at"] for e in made
        ]
        assert batch["occurred_at"][0].as_py() == datetime(2026, 3, 2, 2, 30, tzinfo=UTC)
        assert batch["received_at"].to_pylist() == [RECEIVED, *batch["occurred_at"].to_pylist()[1:]]
    finally:
        monkeypatch.undo()
        time.tzset()


def test_partitions_are_each_dt_and_event_type_with_the_rows_in_order() -> None:
    made = events()
    table = pa.Table.from_batches([_to_batch(made, RECEIVED)])
    expected: dict[str, list[str]] = {}
    for e in made:
        key = f"events/dt={e.dt}/event_type={e.event_type}"
        expected.setdefault(key, []).append(str(e.event_id))
    parts = list(_partitions(table))
    assert [prefix for prefix, _ in parts] == sorted(expected)
    for prefix, rows in parts:
        assert rows.column_names == [f.name for f in _BATCH_SCHEMA][1:]
        assert rows["event_id"].to_pylist() == expected[prefix]


def test_partitions_of_no_rows_are_none() -> None:
    assert list(_partitions(_BATCH_SCHEMA.empty_table())) == []


# -- ids -----------------------------------------------------------------------------------------
def test_uuid7_ids_are_plain_uuids() -> None:
    made = uuid7(datetime(2026, 1, 1, tzinfo=UTC))
    same = uuid.UUID(int=made.int)
    assert type(made) is uuid.UUID
    assert made == same and hash(made) == hash(same) and str(made) == str(same)
    assert made.is_safe is uuid.SafeUUID.unknown
    assert pickle.loads(pickle.dumps(made)) == made  # noqa: S301 (made just above)
    with pytest.raises(TypeError):
        made.int = 5  # type: ignore[misc]


def test_uuid7_random_bits_are_random_and_version_and_variant_fixed() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    ids = [uuid7(start + timedelta(milliseconds=n)) for n in range(5000)]  # several refills
    assert all((i.version, i.variant) == (7, uuid.RFC_4122) for i in ids)
    assert [i.int >> 80 for i in ids] == [micros(start) // 1000 + n for n in range(5000)]
    rand_a = {(i.int >> 64) & 0xFFF for i in ids}
    rand_b = {i.int & ((1 << 62) - 1) for i in ids}
    assert len(rand_a) > 2500 and len(rand_b) == 5000  # of 4096 and 2**62
    # Every random bit takes both values.
    for bit in [*range(62), *range(64, 76)]:
        assert 0 < sum((i.int >> bit) & 1 for i in ids) < 5000, bit
