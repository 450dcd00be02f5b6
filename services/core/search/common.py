"""What both index adapters share: documents as JSON, versioned application of changes,
cursors bound to their query, and highlight fragments."""

from __future__ import annotations

import base64
import binascii
import hashlib
import html
import json
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from services.core.search.model import (
    Change,
    Delete,
    InvalidCursor,
    SearchQuery,
    TrackDocument,
    Upsert,
)


# -- documents -----------------------------------------------------------------------------------
def document_source(doc: TrackDocument) -> dict[str, Any]:
    """The document as JSON (what an index stores and gives back)."""
    return {
        "id": str(doc.id),
        "owner_id": str(doc.owner_id),
        "viewers": sorted(str(v) for v in doc.viewers),
        "title": doc.title,
        "artists": list(doc.artists),
        "album": doc.album,
        "genre": doc.genre,
        "mood": doc.mood,
        "tags": list(doc.tags),
        "key": doc.key,
        "instrumental": doc.instrumental,
        "bpm": doc.bpm,
        "duration_ms": doc.duration_ms,
        "year": doc.year,
        "created_at": None if doc.created_at is None else doc.created_at.isoformat(),
    }


def document_from_source(source: Mapping[str, Any]) -> TrackDocument:
    created = source.get("created_at")
    bpm = source.get("bpm")
    return TrackDocument(
        id=uuid.UUID(source["id"]),
        owner_id=uuid.UUID(source["owner_id"]),
        viewers=frozenset(uuid.UUID(v) for v in source.get("viewers") or ()),
        title=source["title"],
        artists=tuple(source.get("artists") or ()),
        album=source.get("album"),
        genre=source.get("genre"),
        mood=source.get("mood"),
        tags=tuple(source.get("tags") or ()),
        key=source.get("key"),
        instrumental=source.get("instrumental"),
        bpm=None if bpm is None else float(bpm),
        duration_ms=int(source.get("duration_ms") or 0),
        year=source.get("year"),
        created_at=None if created is None else datetime.fromisoformat(created),
    )


def epoch_micros(when: datetime) -> int:
    """Microseconds since the epoch (a naive time is taken as UTC)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    delta = when - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def change_json(change: Change) -> str:
    """One line of a journal of changes."""
    if isinstance(change, Upsert):
        return json.dumps({"v": change.version, "doc": document_source(change.document)})
    return json.dumps({"v": change.version, "delete": str(change.id)})


def change_from_json(line: str) -> Change:
    data = json.loads(line)
    if "delete" in data:
        return Delete(uuid.UUID(data["delete"]), int(data["v"]))
    return Upsert(document_from_source(data["doc"]), int(data["v"]))


def change_id(change: Change) -> uuid.UUID:
    return change.document.id if isinstance(change, Upsert) else change.id


@dataclass(frozen=True)
class Applied:
    """The outcome of applying changes in order against known versions."""

    count: int
    # Per track, the change that wins (the last one applied).
    final: dict[uuid.UUID, Change]


def apply_in_order(
    changes: Iterable[Change], held: Mapping[uuid.UUID, int | None]
) -> tuple[Applied, dict[uuid.UUID, int]]:
    """Apply ``changes`` one after the other against the versions the index ``held``: a change
    counts when its version is above the latest one for its track. Returns the outcome and the
    versions afterwards (for the tracks that changed)."""
    latest: dict[uuid.UUID, int] = {}
    final: dict[uuid.UUID, Change] = {}
    count = 0
    for change in changes:
        track = change_id(change)
        current = latest.get(track, held.get(track))
        if current is not None and change.version <= current:
            continue
        latest[track] = change.version
        final[track] = change
        count += 1
    return Applied(count, final), latest


# -- cursors -------------------------------------------------------------------------------------
def query_fingerprint(query: SearchQuery, adapter: str) -> str:
    """What a cursor is bound to: the adapter and everything in the query but limit and cursor."""
    state = {
        "adapter": adapter,
        "viewer": str(query.viewer),
        "text": query.text,
        "genres": list(query.genres),
        "moods": list(query.moods),
        "tags": list(query.tags),
        "keys": list(query.keys),
        "instrumental": query.instrumental,
        "bpm": [query.bpm.low, query.bpm.high],
        "duration_ms": [query.duration_ms.low, query.duration_ms.high],
        "year": [query.year.low, query.year.high],
        "sort": query.sort,
    }
    raw = json.dumps(state, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(raw).hexdigest()[:24]


def encode_cursor(fingerprint: str, position: Mapping[str, Any]) -> str:
    raw = json.dumps({"q": fingerprint, **position}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, fingerprint: str) -> dict[str, Any]:
    """The position a cursor holds; InvalidCursor unless it was made for this query."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        state = json.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise InvalidCursor("not a cursor") from exc
    if not isinstance(state, dict) or state.get("q") != fingerprint:
        raise InvalidCursor("the cursor belongs to another query")
    return state


# -- highlights ----------------------------------------------------------------------------------
MARK_OPEN, MARK_CLOSE = "<mark>", "</mark>"
Span = tuple[int, int]


def render_marks(text: str, spans: Iterable[Span]) -> str:
    """``text`` HTML-escaped with each span wrapped in <mark>...</mark> (overlaps merged)."""
    merged: list[list[int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    out: list[str] = []
    at = 0
    for start, end in merged:
        out.append(html.escape(text[at:start], quote=False))
        out.append(MARK_OPEN + html.escape(text[start:end], quote=False) + MARK_CLOSE)
        at = end
    out.append(html.escape(text[at:], quote=False))
    return "".join(out)


_MARK_SPLIT = re.compile(f"({re.escape(MARK_OPEN)}|{re.escape(MARK_CLOSE)})")


def parse_marks(fragment: str) -> tuple[str, list[Span]]:
    """The plain text of an HTML-escaped fragment and its marked spans (inverse of
    ``render_marks``)."""
    text: list[str] = []
    spans: list[Span] = []
    length = 0
    opened: int | None = None
    for part in _MARK_SPLIT.split(fragment):
        if part == MARK_OPEN:
            opened = length
        elif part == MARK_CLOSE:
            if opened is not None:
                spans.append((opened, length))
            opened = None
        elif part:
            plain = html.unescape(part)
            text.append(plain)
            length += len(plain)
    return "".join(text), spans


def merge_fragments(groups: Sequence[Sequence[str]]) -> list[str]:
    """Fragments of the same values highlighted separately (e.g. a field and its prefix
    sub-field), merged: one fragment per distinct text, with the union of the marks."""
    spans: dict[str, list[Span]] = {}
    for fragments in groups:
        for fragment in fragments:
            text, marks = parse_marks(fragment)
            spans.setdefault(text, []).extend(marks)
    return [render_marks(text, marks) for text, marks in spans.items() if marks]


def edit_distance(a: str, b: str, *, prefix: bool = False) -> int:
    """Optimal string alignment distance (a transposition is one edit) between ``a`` and
    ``b``; with ``prefix``, between ``a`` and the closest prefix of ``b``."""
    previous2: list[int] | None = None
    previous = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        row = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            row[j] = min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + cost)
            if (
                previous2 is not None
                and i > 1
                and j > 1
                and a[i - 1] == b[j - 2]
                and a[i - 2] == b[j - 1]
            ):
                row[j] = min(row[j], previous2[j - 2] + 1)
        previous2, previous = previous, row
    return min(previous) if prefix else previous[-1]
