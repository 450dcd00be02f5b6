"""The Parquet schema of event files, derived from the envelope's columns, and fast conversions
of the envelope's Python values to its Arrow columns."""

from __future__ import annotations

import operator
import uuid
from _json import encode_basestring_ascii, make_encoder
from array import array
from collections.abc import Sequence
from datetime import UTC, datetime
from itertools import repeat
from typing import Any

import pyarrow as pa

from ingest.events.envelope import COLUMNS, PARTITION_COLUMNS, ColumnKind

_ARROW_TYPES: dict[ColumnKind, pa.DataType] = {
    "uuid": pa.string(),
    "string": pa.string(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "int": pa.int64(),
    "json": pa.string(),
}


def file_schema() -> pa.Schema:
    """Columns inside each Parquet file (the partition columns are in its path)."""
    return pa.schema(
        [pa.field(c.name, _ARROW_TYPES[c.kind], nullable=not c.required) for c in COLUMNS]
    )


def partition_schema() -> pa.Schema:
    return pa.schema([pa.field(c.name, _ARROW_TYPES[c.kind]) for c in PARTITION_COLUMNS])


# -- fast conversions ------------------------------------------------------------------------------
# pyarrow converts Python objects one by one through generic paths: ``str(uuid)`` runs in Python
# (0.6 us an id) and an aware datetime asks its tzinfo for the offset (0.25 us). These do the same
# for whole columns with C-level loops; each returns None for values it does not handle (then
# the caller takes the generic path, which gives the same values or raises as before).

_UUID_CHARS = 36
_INT = operator.attrgetter("int")
_UUID_TYPES = frozenset({uuid.UUID})
_NULLABLE_UUID_TYPES = frozenset({uuid.UUID, type(None)})
_MAX_STRING_BYTES = 2**31 - 1  # a string array's int32 offsets
# The ids' 16 bytes each, as hex with a dash after every 2 bytes, are 40 characters an id:
# "xxxx-xxxx-xxxx-xxxx-xxxx-xxxx-xxxx-xxxx-". The canonical text (8-4-4-4-12) is that without
# the dashes at these places, which are marked with a NUL and then deleted.
_HEX_ROW = 40
_EXTRA_DASHES = (4, 29, 34, 39)
# Below this many values with a null among them, str() each is faster (the masking below has a
# fixed cost of some 9 us).
_FEW_WITH_NULLS = 32
_offsets = array("i", [0])  # 0, 36, 72, ...: shared, only ever replaced by a longer one


def _fixed_offsets(count: int) -> memoryview:
    """The offsets of ``count`` strings of 36 bytes each."""
    global _offsets
    offsets = _offsets
    if len(offsets) <= count:
        size = min(max(count + 1, 2 * len(offsets)), _MAX_STRING_BYTES // _UUID_CHARS + 1)
        offsets = _offsets = array("i", range(0, size * _UUID_CHARS, _UUID_CHARS))
    return memoryview(offsets)[: count + 1]


def uuid_strings(values: Sequence[Any]) -> pa.Array | None:
    """UUIDs (or None) as a string array of their canonical text (``str(uuid)``); None when a
    value is not exactly a ``uuid.UUID`` or None."""
    types = set(map(type, values))
    if types <= _UUID_TYPES:
        return _canonical_text(list(map(_INT, values)))
    if not types <= _NULLABLE_UUID_TYPES:
        return None
    if len(values) < _FEW_WITH_NULLS:
        return pa.array([None if v is None else str(v) for v in values], pa.string())
    present = pa.array(list(map(operator.is_not, values, repeat(None))), pa.bool_())
    ints = list(map(_INT, filter(None, values)))  # a UUID is always true
    if not ints:
        return pa.nulls(len(values), pa.string())
    text = _canonical_text(ints)
    if text is None:
        return None
    # The ids in the places of the present values, nulls elsewhere. (Imported here: the
    # schema's importers need not pay pyarrow.compute's 45 ms.)
    import pyarrow.compute as pc

    return pc.replace_with_mask(pa.nulls(len(values), pa.string()), present, text)


def _canonical_text(ints: list[int]) -> pa.Array | None:
    """The UUIDs with these 128-bit values, as text; None if too many for one string array."""
    count = len(ints)
    if count * _UUID_CHARS > _MAX_STRING_BYTES:
        return None
    if not count:
        return pa.array([], pa.string())
    # The whole column in a few C calls: 0.1 us an id, against 0.6 us for str(uuid).
    raw = b"".join(map(int.to_bytes, ints, repeat(16)))  # big-endian, as UUID.bytes
    text = bytearray(raw.hex("-", 2), "ascii")
    text.append(ord("-"))
    marks = bytes(count)
    for position in _EXTRA_DASHES:
        text[position::_HEX_ROW] = marks
    data = pa.py_buffer(text.translate(None, b"\0"))
    return pa.StringArray.from_buffers(count, pa.py_buffer(_fixed_offsets(count)), data)


def json_texts(values: Sequence[Any]) -> pa.Array:
    """Mappings as a string array of JSON text, None for empty ones: what ``to_row`` gives,
    ``json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)``.

    That is ``json.JSONEncoder.encode``, which for each value sets up the C encoder anew and
    builds a closure (0.8 of its 1.3 us); here one C encoder serves the whole column (a column
    is converted by one thread: its circular-reference markers are its own).
    """
    encode = make_encoder({}, str, encode_basestring_ascii, None, ":", ",", True, False, True)
    join = "".join
    return pa.array([join(encode(value, 0)) if value else None for value in values], pa.string())


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECONDS = pa.duration("us")
_DATETIME_TYPES = frozenset({datetime})
_FEW_TIMESTAMPS = 8  # below this many, pyarrow's own conversion is faster


def utc_timestamps(values: Sequence[Any], arrow_type: pa.DataType) -> pa.Array | None:
    """Aware datetimes as an array of ``arrow_type`` (a ``us`` timestamp): the instants, exact
    to the microsecond whatever their UTC offset; None when a value is not exactly an aware
    ``datetime`` (a naive one, None, a subclass), or for fewer than 8 values (pyarrow's own
    conversion is faster then).

    pyarrow asks each datetime's tzinfo for its offset, through Python (0.25 us a value); the
    difference from the epoch is a timedelta, which pyarrow reads from its fields in C (0.06 us
    for both steps).
    """
    if not (pa.types.is_timestamp(arrow_type) and arrow_type.unit == "us"):
        raise ValueError(f"not a microsecond timestamp type: {arrow_type}")
    if len(values) < _FEW_TIMESTAMPS:
        return None
    if not set(map(type, values)) <= _DATETIME_TYPES:
        return None
    try:
        since_epoch = list(map(operator.sub, values, repeat(_EPOCH)))
    except TypeError:  # a naive datetime (no tzinfo, or one without an offset)
        return None
    return pa.array(since_epoch, _MICROSECONDS).view(arrow_type)
