"""The embedded search index (``local`` profile): tantivy on disk.

Layout under ``path``::

    CURRENT               the live generation's name; replaced atomically (os.replace)
    gen-000001/ ...       one tantivy index per generation (the live one and the one before)
    write.lock            flock: one write (or a swap) at a time, across processes
    rebuild.lock          flock held by the running rebuild (a dead one's is free again)
    REBUILD               while a rebuild runs: the generation it builds
    gen-000002.journal    while it runs: the changes written to the live generation meanwhile

Any process may search; every search checks ``CURRENT`` and reloads the reader, so it sees
commits and swaps made by other processes. The process that writes (the indexer) keeps
tantivy's writer (and its lock) between writes, so merges run in the background; ``close``
releases it. A second process that writes waits for that lock (``writer_wait`` seconds).

Documents: the text fields (``ms_text``: letters and digits, lowercased, accents folded) for
matching; character trigrams of title and artists (``ms_grams``) that only score, so that a
typo-tolerant match on a short, close value ranks above one on a long or far one; lowercased
keyword fields for filters and facets; numeric fast fields; one sort key per sort that is
unique (the sort value, then the id) so pagination is keyset; the JSON document (stored).
A delete is a tombstone document (id, version, when) without viewers, so no query finds it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import math
import os
import re
import shutil
import threading
import time
import unicodedata
import uuid
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import tantivy
from tantivy import FieldType, Filter, Occur, Order, Query, TextAnalyzerBuilder, Tokenizer

from services.core.search.common import (
    apply_in_order,
    change_from_json,
    change_id,
    change_json,
    decode_cursor,
    document_from_source,
    document_source,
    edit_distance,
    encode_cursor,
    epoch_micros,
    query_fingerprint,
    render_marks,
)
from services.core.search.model import (
    FACETS,
    FIELD_BOOSTS,
    HIGHLIGHT_FIELDS,
    TEXT_FIELDS,
    Change,
    Delete,
    Hit,
    InvalidCursor,
    RebuildInProgress,
    SearchIndexError,
    SearchQuery,
    SearchResult,
    TrackDocument,
    Upsert,
    fuzzy_distance,
    normalize_keyword,
    query_words,
)

log = logging.getLogger(__name__)

CURRENT = "CURRENT"
WRITE_LOCK = "write.lock"
REBUILD_LOCK = "rebuild.lock"
REBUILD_MARKER = "REBUILD"
GENERATION_PREFIX = "gen-"
# How long a deletion's tombstone outlives a rebuild: the longest an SQS message can live.
TOMBSTONE_RETENTION = timedelta(days=14)

TEXT_TOKENIZER = "ms_text"
GRAMS_TOKENIZER = "ms_grams"
GRAM_FIELDS: dict[str, str] = {"title": "title_grams", "artists": "artists_grams"}
KEYWORD_FIELDS: dict[str, str] = {
    "genre": "genre_kw",
    "mood": "mood_kw",
    "key": "key_kw",
    "tags": "tags_kw",
}
SORT_FIELDS: dict[str, str] = {
    "newest": "sort_newest",
    "title": "sort_title",
    "duration": "sort_duration",
    "relevance": "id",  # without free text every score is equal: then the id decides
}
# Weights of a word's clauses, times the field's boost: an exact word scores BM25 (length
# aware); a typo or a prefix match scores a constant; trigrams add a little similarity.
EXACT_WEIGHT = 1.0
FUZZY_WEIGHT = 1.0
PREFIX_WEIGHT = 1.0
GRAMS_WEIGHT = 0.5
# Extra hits fetched beyond a page so that a cursor finds its place after small changes.
PAGE_SLACK = 16
FACET_SIZE = 1000
_MAX_NEWEST = 10**19 - 1
_WORD = re.compile(r"[^\W_]+")


def _text_analyzer() -> tantivy.TextAnalyzer:
    return (
        TextAnalyzerBuilder(Tokenizer.simple())
        .filter(Filter.remove_long(64))
        .filter(Filter.lowercase())
        .filter(Filter.ascii_fold())
        .build()
    )


def _grams_analyzer() -> tantivy.TextAnalyzer:
    return (
        TextAnalyzerBuilder(Tokenizer.ngram(3, 3, False))
        .filter(Filter.lowercase())
        .filter(Filter.ascii_fold())
        .build()
    )


def _schema() -> tantivy.Schema:
    b = tantivy.SchemaBuilder()
    b.add_text_field("id", tokenizer_name="raw", fast=True, index_option="basic")
    b.add_unsigned_field("id_hi", fast=True)
    b.add_unsigned_field("id_lo", fast=True)
    b.add_integer_field("version", fast=True)
    b.add_integer_field("deleted", indexed=True, fast=True)
    b.add_integer_field("deleted_at", fast=True)
    b.add_text_field("viewers", tokenizer_name="raw", index_option="basic")
    for name in TEXT_FIELDS:
        b.add_text_field(name, tokenizer_name=TEXT_TOKENIZER, index_option="freq")
    for name in GRAM_FIELDS.values():
        b.add_text_field(name, tokenizer_name=GRAMS_TOKENIZER, index_option="freq")
    for name in KEYWORD_FIELDS.values():
        b.add_text_field(name, tokenizer_name="raw", fast=name != "tags_kw", index_option="basic")
    for name in ("sort_newest", "sort_title", "sort_duration"):
        b.add_text_field(name, tokenizer_name="raw", fast=True, index_option="basic")
    b.add_float_field("bpm", fast=True)
    b.add_integer_field("duration_ms", fast=True)
    b.add_integer_field("year", fast=True)
    b.add_integer_field("created_at", fast=True)
    b.add_integer_field("instrumental", indexed=True)
    b.add_bytes_field("source", stored=True)
    return b.build()


SCHEMA = _schema()
_TEXT = _text_analyzer()
_GRAMS = _grams_analyzer()


def _open_tantivy(directory: Path) -> tantivy.Index:
    """The index in ``directory`` (created if missing), with our tokenizers, reloaded by hand."""
    directory.mkdir(parents=True, exist_ok=True)
    index = tantivy.Index(SCHEMA, path=str(directory), reuse=True)
    index.register_tokenizer(TEXT_TOKENIZER, _text_analyzer())
    index.register_tokenizer(GRAMS_TOKENIZER, _grams_analyzer())
    index.config_reader(reload_policy="manual")
    return index


def _reload(index: tantivy.Index) -> None:
    """See the last commit of any process. A merge of the writer may remove a segment between
    reading the index metadata and opening the segment: then try again."""
    for attempt in range(5):
        try:
            index.reload()
            return
        except (ValueError, OSError):
            if attempt == 4:
                raise
            time.sleep(0.01 * (attempt + 1))


@contextlib.contextmanager
def _flock(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` across processes (and threads: each holds its own fd)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _rebuild_running(path: Path) -> bool:
    """Whether a process holds the rebuild lock (a rebuild whose process died holds none)."""
    fd = os.open(path / REBUILD_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with tmp.open("w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _generation_name(number: int) -> str:
    return f"{GENERATION_PREFIX}{number:06d}"


def _generation_number(name: str) -> int | None:
    if not name.startswith(GENERATION_PREFIX):
        return None
    digits = name[len(GENERATION_PREFIX) :]
    return int(digits) if digits.isdigit() else None


# -- documents -----------------------------------------------------------------------------------
def _id_halves(track: uuid.UUID) -> tuple[int, int]:
    return track.int >> 64, track.int & 0xFFFF_FFFF_FFFF_FFFF


def _text(value: str) -> str:
    return unicodedata.normalize("NFC", value).replace("\x00", " ")


def _live_document(doc: TrackDocument, version: int) -> tantivy.Document:
    track = str(doc.id)
    hi, lo = _id_halves(doc.id)
    d = tantivy.Document()
    d.add_text("id", track)
    d.add_unsigned("id_hi", hi)
    d.add_unsigned("id_lo", lo)
    d.add_integer("version", version)
    d.add_integer("deleted", 0)
    for viewer in doc.viewers:
        d.add_text("viewers", str(viewer))
    title = _text(doc.title)
    artists = [_text(a) for a in doc.artists]
    d.add_text("title", title)
    d.add_text("title_grams", title)
    for artist in artists:
        d.add_text("artists", artist)
        d.add_text("artists_grams", artist)
    if doc.album:
        d.add_text("album", _text(doc.album))
    for tag in doc.tags:
        d.add_text("tags", _text(tag))
        d.add_text("tags_kw", normalize_keyword(tag))
    for name, value in (("genre", doc.genre), ("mood", doc.mood)):
        if value:
            d.add_text(name, _text(value))
            d.add_text(KEYWORD_FIELDS[name], normalize_keyword(value))
    if doc.key:
        d.add_text("key_kw", normalize_keyword(doc.key))
    created = None if doc.created_at is None else epoch_micros(doc.created_at)
    newest = _MAX_NEWEST if created is None else _MAX_NEWEST - created
    d.add_text("sort_newest", f"{newest:019d}|{track}")
    d.add_text("sort_title", f"{normalize_keyword(title)}\x01{track}")
    d.add_text("sort_duration", f"{max(doc.duration_ms, 0):015d}|{track}")
    if doc.bpm is not None:
        d.add_float("bpm", float(doc.bpm))
    d.add_integer("duration_ms", doc.duration_ms)
    if doc.year is not None:
        d.add_integer("year", doc.year)
    if created is not None:
        d.add_integer("created_at", created)
    if doc.instrumental is not None:
        d.add_integer("instrumental", int(doc.instrumental))
    d.add_bytes("source", json.dumps(document_source(doc), separators=(",", ":")).encode())
    return d


def _tombstone(track: uuid.UUID, version: int, deleted_at: int) -> tantivy.Document:
    hi, lo = _id_halves(track)
    d = tantivy.Document()
    d.add_text("id", str(track))
    d.add_unsigned("id_hi", hi)
    d.add_unsigned("id_lo", lo)
    d.add_integer("version", version)
    d.add_integer("deleted", 1)
    d.add_integer("deleted_at", deleted_at)
    return d


def _document(change: Change, now_micros: int) -> tantivy.Document:
    if isinstance(change, Upsert):
        return _live_document(change.document, change.version)
    return _tombstone(change.id, change.version, now_micros)


def _now_micros() -> int:
    return epoch_micros(datetime.now(UTC))


def _ids_of(searcher: tantivy.Searcher, addresses: list[tantivy.DocAddress]) -> list[int]:
    """The ids (as 128-bit integers, which order like the id strings) of these hits."""
    if not addresses:
        return []
    his = searcher.fast_field_values("id_hi", addresses)
    los = searcher.fast_field_values("id_lo", addresses)
    return [(int(h or 0) << 64) | int(lo or 0) for h, lo in zip(his, los, strict=True)]


def _held_versions(
    searcher: tantivy.Searcher, tracks: Sequence[uuid.UUID]
) -> dict[uuid.UUID, int | None]:
    """The versions the index holds for these tracks (tombstones included)."""
    held: dict[uuid.UUID, int | None] = dict.fromkeys(tracks)
    if not tracks:
        return held
    query = Query.term_set_query(SCHEMA, "id", [str(t) for t in tracks])
    found = searcher.search(query, limit=2 * len(tracks) + 8, count=False).hits
    addresses = [address for _, address in found]
    versions = searcher.fast_field_values("version", addresses)
    for ident, version in zip(_ids_of(searcher, addresses), versions, strict=True):
        track = uuid.UUID(int=ident)
        if version is not None:
            previous = held.get(track)
            held[track] = int(version) if previous is None else max(previous, int(version))
    return held


# -- queries -------------------------------------------------------------------------------------
def _analyzed_words(text: str) -> list[str]:
    words: list[str] = []
    for word in query_words(text):
        words.extend(_TEXT.analyze(word))
    return words


def _word_query(word: str, last: bool) -> Query:
    """One word: it must match in some text field (exactly, with typos, or as a prefix if it
    is the last one); trigrams of title and artists only add to the score."""
    distance = fuzzy_distance(word)
    matches: list[tuple[Occur, Query]] = []
    for name in TEXT_FIELDS:
        boost = FIELD_BOOSTS[name]
        exact = Query.term_query(SCHEMA, name, word)
        matches.append((Occur.Should, Query.boost_query(exact, boost * EXACT_WEIGHT)))
        if last:
            prefix = Query.fuzzy_term_query(SCHEMA, name, word, distance, True, True)
            matches.append((Occur.Should, Query.boost_query(prefix, boost * PREFIX_WEIGHT)))
        elif distance:
            fuzzy = Query.fuzzy_term_query(SCHEMA, name, word, distance, True, False)
            matches.append((Occur.Should, Query.boost_query(fuzzy, boost * FUZZY_WEIGHT)))
    query = Query.boolean_query(matches)
    grams = _GRAMS.analyze(word)
    if not grams:
        return query
    similar = [
        (
            Occur.Should,
            Query.boost_query(
                Query.term_query(SCHEMA, field, gram),
                FIELD_BOOSTS[name] * GRAMS_WEIGHT / len(grams),
            ),
        )
        for name, field in GRAM_FIELDS.items()
        for gram in dict.fromkeys(grams)
    ]
    return Query.boolean_query([(Occur.Must, query), (Occur.Should, Query.boolean_query(similar))])


def _int_bounds(low: float | None, high: float | None) -> tuple[int | None, int | None]:
    return (
        None if low is None else math.ceil(low),
        None if high is None else math.floor(high),
    )


def _filters(query: SearchQuery) -> list[Query]:
    """Access control and the filters: each must match (OR within one)."""
    clauses = [Query.term_query(SCHEMA, "viewers", str(query.viewer))]
    for field, values in (
        ("genre_kw", query.genres),
        ("mood_kw", query.moods),
        ("tags_kw", query.tags),
        ("key_kw", query.keys),
    ):
        if values:
            normalized = sorted({normalize_keyword(v) for v in values})
            clauses.append(Query.term_set_query(SCHEMA, field, normalized))
    if query.instrumental is not None:
        clauses.append(Query.term_query(SCHEMA, "instrumental", int(query.instrumental)))
    if query.bpm.low is not None or query.bpm.high is not None:
        low = None if query.bpm.low is None else float(query.bpm.low)
        high = None if query.bpm.high is None else float(query.bpm.high)
        clauses.append(Query.range_query(SCHEMA, "bpm", FieldType.Float, low, high))
    for field, bounds in (("duration_ms", query.duration_ms), ("year", query.year)):
        if bounds.low is None and bounds.high is None:
            continue
        low_i, high_i = _int_bounds(bounds.low, bounds.high)
        clauses.append(Query.range_query(SCHEMA, field, FieldType.Integer, low_i, high_i))
    return clauses


def build_query(query: SearchQuery) -> tuple[Query, list[str]]:
    """The tantivy query for a search (filters score nothing) and its analyzed words."""
    filters = Query.const_score_query(
        Query.boolean_query([(Occur.Must, clause) for clause in _filters(query)]), 0.0
    )
    words = _analyzed_words(query.text)
    if not words:
        return filters, words
    text = [(Occur.Must, _word_query(w, i == len(words) - 1)) for i, w in enumerate(words)]
    return Query.boolean_query([(Occur.Must, filters), *text]), words


# -- highlights ----------------------------------------------------------------------------------
def _word_matches(token: str, words: Sequence[str]) -> bool:
    """Whether an analyzed token of a field matches one of the query's words as the query
    does: exactly, within the word's edit distance, or (the last word) as a prefix."""
    for i, word in enumerate(words):
        last = i == len(words) - 1
        distance = fuzzy_distance(word)
        if token == word or (last and token.startswith(word)):
            return True
        if not distance:
            continue
        if last:
            if edit_distance(word, token, prefix=True) <= distance:
                return True
        elif abs(len(token) - len(word)) <= distance and edit_distance(word, token) <= distance:
            return True
    return False


def highlight(value: str, words: Sequence[str]) -> str | None:
    """``value`` HTML-escaped with the words that match the query marked; None if none does."""
    text = unicodedata.normalize("NFC", value)
    spans = []
    for match in _WORD.finditer(text):
        tokens = _TEXT.analyze(match.group())
        if tokens and _word_matches(tokens[0], words):
            spans.append((match.start(), match.end()))
    return render_marks(text, spans) if spans else None


def _highlights(doc: TrackDocument, words: Sequence[str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    values: dict[str, Sequence[str]] = {
        "title": [doc.title],
        "artists": doc.artists,
        "album": [doc.album] if doc.album else [],
    }
    for name in HIGHLIGHT_FIELDS:
        fragments = [f for v in values[name] if (f := highlight(v, words)) is not None]
        if fragments:
            found[name] = fragments
    return found


# -- the index -----------------------------------------------------------------------------------
class _Open:
    """One generation opened in this process: its index and (when this process writes) its
    writer."""

    def __init__(self, name: str, index: tantivy.Index) -> None:
        self.name = name
        self.index = index
        self.writer: tantivy.IndexWriter | None = None

    def drop_writer(self) -> None:
        writer, self.writer = self.writer, None
        del writer  # tantivy releases its lock when the writer is dropped


class TantivyIndex:
    """``SearchIndex`` over tantivy generations under ``path`` (see the module documentation)."""

    adapter = "tantivy"

    def __init__(
        self,
        path: Path,
        *,
        writer_heap_bytes: int = 64_000_000,
        writer_wait_seconds: float = 30.0,
        rebuild_heap_bytes: int = 400_000_000,
        rebuild_threads: int | None = None,
    ) -> None:
        self.path = Path(path)
        self._writer_heap = writer_heap_bytes
        self._writer_wait = writer_wait_seconds
        self._rebuild_heap = rebuild_heap_bytes
        # This (Python) thread turns documents into tantivy's; leave it a core of its own.
        self._rebuild_threads = rebuild_threads or max(1, min(4, (os.cpu_count() or 2) - 1))
        self._lock = threading.RLock()
        self._open: _Open | None = None

    # -- generations -----------------------------------------------------------------------------
    def _read_current(self) -> str | None:
        try:
            return (self.path / CURRENT).read_text().strip() or None
        except FileNotFoundError:
            return None

    def _current(self) -> str:
        """The live generation, created (empty) on first use."""
        name = self._read_current()
        if name is not None:
            return name
        self.path.mkdir(parents=True, exist_ok=True)
        with _flock(self.path / WRITE_LOCK):
            return self._current_locked()

    def _current_locked(self) -> str:
        name = self._read_current()
        if name is None:
            name = _generation_name(1)
            _open_tantivy(self.path / name)
            _write_atomically(self.path / CURRENT, name + "\n")
        return name

    def _opened(self, name: str) -> _Open:
        """This process's handle on generation ``name`` (switching to it if it is new)."""
        with self._lock:
            if self._open is None or self._open.name != name:
                if self._open is not None:
                    self._open.drop_writer()
                self._open = _Open(name, _open_tantivy(self.path / name))
                return self._open
            return self._open

    def _try_writer(self, opened: _Open) -> tantivy.IndexWriter | None:
        """This process's writer of the generation; None while another one holds tantivy's
        lock."""
        if opened.writer is None:
            try:
                opened.writer = opened.index.writer(self._writer_heap, 1)
            except ValueError as exc:
                if "LockBusy" in str(exc):
                    return None
                raise SearchIndexError(f"cannot open {self.path / opened.name}: {exc}") from exc
        return opened.writer

    def generations(self) -> list[str]:
        """The generation directories present, oldest first."""
        if not self.path.exists():
            return []
        found = [
            (number, p.name)
            for p in self.path.iterdir()
            if p.is_dir() and (number := _generation_number(p.name)) is not None
        ]
        return [name for _, name in sorted(found)]

    def current_generation(self) -> str:
        return self._current()

    # -- writes ----------------------------------------------------------------------------------
    def write(self, changes: Sequence[Change]) -> int:
        if not changes:
            return 0
        self._current()
        deadline = time.monotonic() + self._writer_wait
        while True:
            with self._lock, _flock(self.path / WRITE_LOCK):
                opened = self._opened(self._current_locked())
                writer = self._try_writer(opened)
                if writer is not None:
                    return self._write(opened, writer, changes)
            # Another process holds tantivy's writer: wait for it without the write lock.
            if time.monotonic() > deadline:
                raise SearchIndexError(
                    f"another process holds the writer of {self.path / opened.name} (LockBusy): "
                    "one process writes an index"
                )
            time.sleep(0.05)

    def _write(self, opened: _Open, writer: tantivy.IndexWriter, changes: Sequence[Change]) -> int:
        _reload(opened.index)
        tracks = list(dict.fromkeys(change_id(c) for c in changes))
        held = _held_versions(opened.index.searcher(), tracks)
        applied, _ = apply_in_order(changes, held)
        if applied.final:
            now = _now_micros()
            for track, change in applied.final.items():
                writer.delete_documents_by_term("id", str(track))
                writer.add_document(_document(change, now))
            writer.commit()
            self._journal(opened.name, list(applied.final.values()))
        _reload(opened.index)
        return applied.count

    def _journal(self, live: str, changes: Sequence[Change]) -> None:
        """While a rebuild runs, the changes applied to the live generation, for the new one
        (the caller holds the write lock)."""
        marker = self.path / REBUILD_MARKER
        if not changes or not marker.exists():
            return
        if not _rebuild_running(self.path):
            self._clean_stale_rebuild(live)
            return
        building = json.loads(marker.read_text())["generation"]
        if building == live:
            return
        with (self.path / f"{building}.journal").open("a") as f:
            f.write("".join(change_json(c) + "\n" for c in changes))
            f.flush()
            os.fsync(f.fileno())

    def version(self, track_id: uuid.UUID) -> int | None:
        searcher = self._searcher()
        return _held_versions(searcher, [track_id])[track_id]

    def close(self) -> None:
        with self._lock:
            if self._open is not None:
                self._open.drop_writer()
            self._open = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- searches --------------------------------------------------------------------------------
    def _searcher(self) -> tantivy.Searcher:
        opened = self._opened(self._current())
        _reload(opened.index)
        return opened.index.searcher()

    def search(self, query: SearchQuery) -> SearchResult:
        fingerprint = query_fingerprint(query, self.adapter)
        limit = max(1, query.limit)
        tantivy_query, words = build_query(query)
        by_score = query.sort == "relevance" and bool(words)
        position = None
        if query.cursor is not None:
            position = _position(decode_cursor(query.cursor, fingerprint), by_score)
        searcher = self._searcher()
        if by_score:
            page, total, after = _page_by_score(searcher, tantivy_query, limit, position)
        else:
            field = SORT_FIELDS[query.sort]
            page, total, after = _page_by_key(searcher, tantivy_query, field, limit, position)
        hits = []
        for score, address in page:
            source = searcher.doc(address).get_first("source")
            if source is None:
                raise SearchIndexError("a searchable document without its source")
            doc = document_from_source(json.loads(source))
            hits.append(Hit(doc, score, _highlights(doc, words) if words else {}))
        return SearchResult(
            hits=hits,
            total=total,
            facets=_facets(searcher, tantivy_query),
            next_cursor=None if after is None else encode_cursor(fingerprint, after),
        )

    # -- rebuilds --------------------------------------------------------------------------------
    def begin_rebuild(self) -> TantivyRebuild:
        self.path.mkdir(parents=True, exist_ok=True)
        lock_fd = os.open(self.path / REBUILD_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        for attempt in range(10):  # a writer checking for a dead rebuild holds it a moment
            try:
                fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError as exc:
                if attempt == 9:
                    os.close(lock_fd)
                    raise RebuildInProgress(f"a rebuild of {self.path} is running") from exc
                time.sleep(0.02)
        try:
            with _flock(self.path / WRITE_LOCK):
                live = self._current_locked()
                self._clean_stale_rebuild(live)
                numbers = [_generation_number(n) or 0 for n in self.generations()]
                name = _generation_name(max(numbers, default=0) + 1)
                index = _open_tantivy(self.path / name)
                (self.path / f"{name}.journal").write_bytes(b"")
                _write_atomically(
                    self.path / REBUILD_MARKER,
                    json.dumps({"generation": name, "pid": os.getpid()}),
                )
            writer = index.writer(self._rebuild_heap, self._rebuild_threads)
        except BaseException:
            os.close(lock_fd)
            raise
        log.info("search index rebuild started: %s (live %s)", name, live)
        return TantivyRebuild(self, name, index, writer, lock_fd)

    def _clean_stale_rebuild(self, live: str) -> None:
        """A rebuild whose process died left its marker, journal and generation: remove them
        (the caller holds the write lock and knows that no process holds the rebuild lock)."""
        marker = self.path / REBUILD_MARKER
        if not marker.exists():
            return
        stale = json.loads(marker.read_text())["generation"]
        log.warning("removing the unfinished rebuild %s of %s", stale, self.path)
        if stale != live:
            shutil.rmtree(self.path / stale, ignore_errors=True)
        (self.path / f"{stale}.journal").unlink(missing_ok=True)
        marker.unlink()

    def _remove_old_generations(self, keep: Iterable[str]) -> None:
        kept = set(keep)
        for name in self.generations():
            if name not in kept:
                shutil.rmtree(self.path / name, ignore_errors=True)


def _count(result: tantivy.SearchResult) -> int:
    """How many documents matched (the stubs do not declare ``count``)."""
    return int(getattr(result, "count", None) or 0)


def _position(state: Mapping[str, Any], by_score: bool) -> dict[str, Any]:
    """A cursor's position, checked: keyset (sort key, or score and id) and a hint (offset)."""
    try:
        offset = int(state["o"])
        if offset < 0:
            raise ValueError(offset)
        if by_score:
            score = float(state["s"])
            if not math.isfinite(score):
                raise ValueError(score)
            return {"o": offset, "s": score, "id": uuid.UUID(str(state["id"])).int}
        key = state["k"]
        if not isinstance(key, str):
            raise TypeError(key)
        return {"o": offset, "k": key}
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidCursor("the cursor does not fit this query") from exc


def _page_by_key(
    searcher: tantivy.Searcher,
    query: Query,
    field: str,
    limit: int,
    position: Mapping[str, Any] | None,
) -> tuple[list[tuple[float, tantivy.DocAddress]], int, dict[str, Any] | None]:
    """A page in ascending order of a unique string sort key, after the cursor's key."""
    after: str | None = None if position is None else str(position["k"])
    wanted = (0 if position is None else int(position["o"])) + limit + PAGE_SLACK + 1
    total = 0
    first = True
    while True:
        result = searcher.search(
            query, limit=wanted, count=first, order_by_field=field, order=Order.Asc
        )
        if first:
            total = _count(result)
            first = False
        hits = result.hits
        keys = [str(key) for key, _ in hits]
        start = 0 if after is None else bisect_right(keys, after)
        if len(hits) == wanted and start + limit + 1 > len(hits):
            wanted *= 2
            continue
        break
    page = hits[start : start + limit]
    more = len(hits) > start + limit
    after_page = {"k": keys[start + limit - 1], "o": start + limit} if more else None
    return [(0.0, address) for _, address in page], total, after_page


def _page_by_score(
    searcher: tantivy.Searcher,
    query: Query,
    limit: int,
    position: Mapping[str, Any] | None,
) -> tuple[list[tuple[float, tantivy.DocAddress]], int, dict[str, Any] | None]:
    """A page by score (descending), ties by id, after the cursor's (score, id). tantivy
    breaks ties by its own order, so whole groups of equal scores are fetched and re-sorted."""
    after: tuple[float, int] | None = None
    if position is not None:
        after = (-float(position["s"]), int(position["id"]))
    wanted = (0 if position is None else int(position["o"])) + limit + PAGE_SLACK + 1
    total = 0
    first = True
    while True:
        result = searcher.search(query, limit=wanted, count=first)
        if first:
            total = _count(result)
            first = False
        hits = result.hits
        full = len(hits) == wanted
        if full:
            # The group of the lowest fetched score may go on past the fetched hits.
            lowest = hits[-1][0]
            complete = [h for h in hits if h[0] > lowest]
        else:
            complete = list(hits)
        ids = _ids_of(searcher, [address for _, address in complete])
        rows = zip(complete, ids, strict=True)
        ranked = sorted(
            ((-float(score), ident, address) for (score, address), ident in rows),
            key=lambda r: (r[0], r[1]),
        )
        keys = [(r[0], r[1]) for r in ranked]
        start = 0 if after is None else bisect_right(keys, after)
        if full and start + limit + 1 > len(ranked):
            wanted *= 2
            continue
        break
    page = ranked[start : start + limit]
    more = len(ranked) > start + limit
    after_page = None
    if more:
        score, ident, _ = page[-1]
        after_page = {"s": -score, "id": str(uuid.UUID(int=ident)), "o": start + limit}
    return [(-score, address) for score, _, address in page], total, after_page


def _facets(searcher: tantivy.Searcher, query: Query) -> dict[str, dict[str, int]]:
    spec = {name: {"terms": {"field": KEYWORD_FIELDS[name], "size": FACET_SIZE}} for name in FACETS}
    result = searcher.aggregate(query, spec)
    facets: dict[str, dict[str, int]] = {}
    for name in FACETS:
        buckets = result.get(name, {}).get("buckets", [])
        ordered = sorted(buckets, key=lambda b: (-int(b["doc_count"]), str(b["key"])))
        facets[name] = {str(b["key"]): int(b["doc_count"]) for b in ordered}
    return facets


class TantivyRebuild:
    """A new generation being filled; see ``SearchIndex.begin_rebuild``."""

    def __init__(
        self,
        owner: TantivyIndex,
        name: str,
        index: tantivy.Index,
        writer: tantivy.IndexWriter,
        lock_fd: int,
    ) -> None:
        self._owner = owner
        self._name = name
        self._index = index
        self._writer: tantivy.IndexWriter | None = writer
        self._lock_fd: int | None = lock_fd
        self._versions: dict[uuid.UUID, int] = {}
        self._journal_offset = 0
        self._finished = False

    @property
    def generation(self) -> str:
        return self._name

    @property
    def _path(self) -> Path:
        return self._owner.path

    def _live_writer(self) -> tantivy.IndexWriter:
        if self._writer is None:
            raise SearchIndexError(f"the rebuild {self._name} is finished")
        return self._writer

    def add(self, upserts: Iterable[Upsert]) -> int:
        writer = self._live_writer()
        versions = self._versions
        taken = 0
        for upsert in upserts:
            track = upsert.document.id
            held = versions.get(track)
            if held is not None:
                if upsert.version <= held:
                    continue
                writer.delete_documents_by_term("id", str(track))
            writer.add_document(_live_document(upsert.document, upsert.version))
            versions[track] = upsert.version
            taken += 1
        return taken

    def apply(self, changes: Sequence[Change]) -> int:
        writer = self._live_writer()
        applied, latest = apply_in_order(changes, self._versions)
        now = _now_micros()
        for track, change in applied.final.items():
            if track in self._versions:
                writer.delete_documents_by_term("id", str(track))
            writer.add_document(_document(change, now))
        self._versions.update(latest)
        return applied.count

    def _carry_tombstones(self, live: str) -> int:
        """Deletions the live generation remembers (within the retention) go on remembering."""
        directory = self._path / live
        if not directory.exists():
            return 0
        index = _open_tantivy(directory)
        _reload(index)
        searcher = index.searcher()
        cutoff = epoch_micros(datetime.now(UTC) - TOMBSTONE_RETENTION)
        query = Query.boolean_query(
            [
                (Occur.Must, Query.term_query(SCHEMA, "deleted", 1)),
                (
                    Occur.Must,
                    Query.range_query(SCHEMA, "deleted_at", FieldType.Integer, cutoff, None),
                ),
            ]
        )
        count = _count(searcher.search(query, limit=1, count=True))
        if not count:
            return 0
        hits = searcher.search(query, limit=int(count), count=False).hits
        addresses = [address for _, address in hits]
        versions = searcher.fast_field_values("version", addresses)
        ids = _ids_of(searcher, addresses)
        deletes: list[Change] = [
            Delete(uuid.UUID(int=ident), int(version))
            for ident, version in zip(ids, versions, strict=True)
            if version is not None
        ]
        return self.apply(deletes)

    def _replay_journal(self) -> int:
        path = self._path / f"{self._name}.journal"
        with path.open("rb") as f:
            f.seek(self._journal_offset)
            data = f.read()
        complete = data[: data.rfind(b"\n") + 1]
        self._journal_offset += len(complete)
        changes = [change_from_json(line) for line in complete.decode().splitlines() if line]
        return self.apply(changes) if changes else 0

    def commit_swap(self) -> str:
        writer = self._live_writer()
        live = self._owner._current()
        # Most of the work before taking the write lock (writes wait only for the tail):
        # tombstones, the journal so far, a commit, the merges.
        self._carry_tombstones(live)
        self._replay_journal()
        writer.commit()
        writer.wait_merging_threads()  # finishes the merges and drops the writer (its lock)
        self._writer = None
        with _flock(self._path / WRITE_LOCK):
            if self._journal_tail():
                self._writer = self._index.writer(self._owner._writer_heap, 1)
                self._replay_journal()
                self._writer.commit()
                self._writer = None
            live = self._owner._current_locked()
            _write_atomically(self._path / CURRENT, self._name + "\n")
            (self._path / REBUILD_MARKER).unlink(missing_ok=True)
            (self._path / f"{self._name}.journal").unlink(missing_ok=True)
        self._finished = True
        self._owner._remove_old_generations(keep=(live, self._name))
        self._release()
        log.info("search index swapped to %s (was %s)", self._name, live)
        return self._name

    def _journal_tail(self) -> bool:
        path = self._path / f"{self._name}.journal"
        return path.exists() and path.stat().st_size > self._journal_offset

    def abort(self) -> None:
        if self._finished:
            return
        self._finished = True
        writer, self._writer = self._writer, None
        del writer
        with _flock(self._path / WRITE_LOCK):
            marker = self._path / REBUILD_MARKER
            if marker.exists() and json.loads(marker.read_text())["generation"] == self._name:
                marker.unlink()
            (self._path / f"{self._name}.journal").unlink(missing_ok=True)
            if self._owner._read_current() != self._name:
                shutil.rmtree(self._path / self._name, ignore_errors=True)
        self._release()
        log.info("search index rebuild %s aborted", self._name)

    def _release(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.abort()
