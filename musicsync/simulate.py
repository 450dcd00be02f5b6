"""The activity simulator: weeks of believable use of the real product, under a simulated clock.

``simulate`` opens the embedded stack with a ``ManualClock`` and drives it the way its clients
would, over HTTP through the local API gateway (in-process: httpx's ASGI transport, no sockets):
rights holders sign in with tokens from the dev identity provider, upload real (small, generated)
WAV files, tag them, search, listen to their tracks, build playlists, share with colleagues and
pitch playlists to music supervisors; the supervisors open their pitch links (unlocking the
password ones), play, seek, skip, complete, download, shortlist and comment, as the pitch page's
script reports it. Nothing here writes to the lake: every usage event is the product's own, made
by the handler (or the expiry sweeper) that serves the action. (Signing in is a token from the
dev identity provider and the app's first ``GET /v1/me``; nothing in the product emits
``user_signed_in`` yet, so the simulator does not either.)

Tracks last from half a minute to four minutes, as cues and songs do (players report progress
every 10 s and the pitch page refuses positions past a track's end), yet are small: 8-bit mono
WAVs at 1 kHz (``musicsync.audio_samples``), about 1 KB a second.

Time. The clock starts at 00:00 UTC of the first day and only moves forward. Every actor's
work is a task (a generator yielding how many seconds it waits before its next step: think
time, upload time, ten seconds of listening); one scheduler runs whichever task is due next and
moves the clock to its time, so users and recipients interleave as they would. Days have a
working rhythm in each actor's time zone (a morning and an afternoon peak, quiet nights, slow
weekends); users join over the period (so retention cohorts exist) and keep coming back at
their own rate (some stay keen, some drift away). Tokens are minted at the simulated time and
re-minted when a session would outlive them; the scheduled jobs (upload clean-up, pitch expiry)
run every 15 simulated minutes, as EventBridge would run them.

Determinism. Every choice comes from random generators seeded by ``seed`` (one per actor), and
no choice depends on what varies between runs (ids, search hits, wall time), so the same seed
gives the same actions and the same number of events of each type; ids, event ids and the
random part of names (a run tag, so runs sharing a database never collide) differ.

Rate limits keep their defaults: each actor has a client address of its own and acts at a
human pace in simulated time (the limits count per simulated minute), far below every limit.
The pitch page's script sends progress reports 2 s after they happen; the simulated page sends
them in batches of up to six (a minute of listening) and at every play, pause, skip and end, to
keep the number of requests down. The events, their times and their content are the same.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import math
import random
import secrets
import time
import uuid
from collections import Counter
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import httpx

from ingest.events.catalogue import CATALOGUE
from musicsync.audio_samples import tone_wav
from musicsync.stack import LocalStack, local_settings, open_stack
from services.core.clock import ManualClock

log = logging.getLogger("musicsync.simulate")

# A task: yields the seconds it waits before its next step.
Task = Generator[float, None, None]

PROGRESS_EVERY_MS = 10_000  # the players' progress period (pitch.js, the app's player)
REPORT_BATCH = 6  # progress reports the simulated players hold before sending
SWEEP_EVERY = timedelta(minutes=15)
TOKEN_TTL_SECONDS = 12 * 3600
# A session starts with a fresh token when the current one has less than this left.
TOKEN_MARGIN = timedelta(hours=2)
AUDIO_PROBE = "bytes=0-8191"  # what the player's first range request asks for

Ending = Literal["skip", "pause", "leave"]
Behaviour = Literal["skip", "sample", "full", "pause"]


@dataclass
class SimulationSummary:
    """What a run did: actions by kind, usage events by type, and the simulated time it covered.

    ``start``/``end`` bound the simulated period (00:00 UTC of the first day, of the day after
    the last); ``first_at``/``last_at`` are the simulated times of the first and last action.
    ``actions`` counts what the simulated people did (``session``, ``upload``, ``search``,
    ``pitch``, ``link_open``, ``track_play``...), ``requests`` the HTTP requests they made.
    ``events`` counts the usage events that reached the lake in this run, by type, read from the
    lake's files once the stack has closed (empty until then). ``errors`` counts answers the
    simulator did not expect (by action, status and problem code); a healthy run has none.
    """

    users: int
    days: int
    seed: int
    start: datetime
    end: datetime
    first_at: datetime | None = None
    last_at: datetime | None = None
    days_done: int = 0
    users_joined: int = 0
    pitches: int = 0
    recipients: int = 0
    requests: int = 0
    actions: Counter[str] = field(default_factory=Counter)
    events: dict[str, int] = field(default_factory=dict)
    errors: Counter[str] = field(default_factory=Counter)
    wall_seconds: float = 0.0

    @property
    def total_actions(self) -> int:
        return sum(self.actions.values())

    @property
    def total_events(self) -> int:
        return sum(self.events.values())


def simulate(
    data_dir: Path,
    *,
    users: int,
    days: int,
    seed: int,
    start: date | None = None,
    on_day: Callable[..., None] | None = None,
    database_url: str | None = None,
) -> SimulationSummary:
    """Simulate ``users`` people using the product for ``days`` days, into ``data_dir``.

    Opens the local stack on ``data_dir`` (its embedded PostgreSQL and Redis, or ``database_url``
    / the environment's ``DATABASE_URL`` and ``REDIS_URL``), with a ``ManualClock`` at 00:00 UTC
    of ``start`` (default: ``days`` days before today), runs the days, and closes the stack,
    which flushes the lake. ``on_day(day_index, days, summary)`` is called after each simulated
    day (``day_index`` from 0); ``summary.events`` is filled when the run ends.
    """
    if users < 1 or days < 1:
        raise ValueError("simulate at least one user for at least one day")
    began = time.perf_counter()
    first_day = start or (datetime.now(UTC).date() - timedelta(days=days))
    start_at = datetime(first_day.year, first_day.month, first_day.day, tzinfo=UTC)
    summary = SimulationSummary(
        users=users, days=days, seed=seed, start=start_at, end=start_at + timedelta(days=days)
    )
    clock = ManualClock(start_at)
    overrides: dict[str, Any] = {
        "profile": "local",
        # The stack's own sweeper thread runs on wall-clock seconds; the simulation runs the
        # same jobs itself, on the simulated clock (SWEEP_EVERY).
        "sweep_seconds": 10.0**9,
    }
    if database_url is not None:
        overrides["database_url"] = database_url
    settings = local_settings(data_dir, **overrides)
    events_dir = settings.lake_dir / "events"
    with open_stack(settings, clock) as stack:
        before = set(_lake_files(events_dir))
        world = _World(stack, clock, summary, users=users, seed=seed)
        try:
            world.run(days, on_day)
        finally:
            world.close()
    summary.events = _count_events(set(_lake_files(events_dir)) - before)
    summary.wall_seconds = time.perf_counter() - began
    return summary


# -- the lake, read back (counting only) -----------------------------------------------------------


def _lake_files(events_dir: Path) -> Iterator[Path]:
    return events_dir.glob("dt=*/event_type=*/*.parquet")


def _count_events(files: set[Path]) -> dict[str, int]:
    import pyarrow.parquet as pq

    counts: Counter[str] = Counter()
    for path in files:
        event_type = path.parent.name.removeprefix("event_type=")
        counts[event_type] += pq.read_metadata(path).num_rows
    return dict(sorted(counts.items()))


# -- in-process HTTP -----------------------------------------------------------------------------


class _Browser:
    """One client (a user's app, a recipient's browser) with an address of its own, calling the
    gateway's ASGI app in-process; requests run one at a time on the simulator's event loop."""

    def __init__(
        self,
        app: Any,
        loop: asyncio.AbstractEventLoop,
        base_url: str,
        address: str,
        summary: SimulationSummary,
    ) -> None:
        self._summary = summary
        transport = httpx.ASGITransport(app=app, client=(address, 50_000))
        self._client = httpx.AsyncClient(
            transport=transport, base_url=base_url, trust_env=False, timeout=60
        )
        self._loop = loop

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        self._summary.requests += 1
        response: httpx.Response = self._loop.run_until_complete(
            self._client.request(method, _local(url), **kwargs)
        )
        return response

    def forget_cookies(self) -> None:
        self._client.cookies.clear()

    def close(self) -> None:
        self._loop.run_until_complete(self._client.aclose())


def _local(url: str) -> str:
    """An absolute URL of the stack (links, signed media URLs) as a path on it."""
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


# -- the people and their things ------------------------------------------------------------------


@dataclass(frozen=True)
class _Company:
    name: str
    domain: str
    utc_offset: int


@dataclass
class _Track:
    id: str
    title: str
    duration_ms: int
    key: str
    seconds: float
    pinned: bool = False  # in a playlist, a share or a pitch: never deleted
    tags: dict[str, Any] = field(default_factory=dict)  # what its owner set (search words)


@dataclass
class _Playlist:
    id: str
    title: str
    entries: list[tuple[str, str]] = field(default_factory=list)  # (entry id, track id)
    pinned: bool = False


@dataclass
class _Incoming:
    share_id: str
    object_type: Literal["track", "playlist"]
    object_id: str
    permission: str
    opened: bool = False
    track: _Track | None = None


@dataclass
class _Outgoing:
    share_id: str
    external: bool


@dataclass
class _Persona:
    name: str
    activity: float  # chance of coming on a weekday, early on
    floor: float  # the share of that activity that lasts
    half_life_days: float  # how fast the rest fades
    intents: tuple[int, int]  # things done in a session


_PERSONAS = (
    (_Persona("power", 0.85, 0.85, 60.0, (3, 6)), 0.2),
    (_Persona("regular", 0.55, 0.5, 14.0, (2, 5)), 0.45),
    (_Persona("casual", 0.35, 0.15, 6.0, (1, 3)), 0.35),
)


@dataclass
class _User:
    index: int
    name: str
    username: str
    email: str
    company: _Company
    persona: _Persona
    join_day: int
    artists: list[str]
    contacts: list[_Supervisor]
    rng: random.Random
    browser: _Browser | None = None
    token: str | None = None
    token_expires: datetime | None = None
    joined: bool = False
    files: int = 0
    session_id: str = ""
    tracks: list[_Track] = field(default_factory=list)
    playlists: list[_Playlist] = field(default_factory=list)
    pitches: list[_Pitch] = field(default_factory=list)
    inbox: list[_Incoming] = field(default_factory=list)
    outgoing: list[_Outgoing] = field(default_factory=list)

    def headers(self, **extra: str) -> dict[str, str]:
        assert self.token is not None
        return {"Authorization": f"Bearer {self.token}", **extra}


@dataclass
class _Supervisor:
    index: int
    name: str
    email: str
    company: _Company
    responsiveness: float  # chance of opening a pitch at all
    patience: float  # 0..1: how much of a track they hear
    delay_hours: float  # typical time before opening a pitch
    returns: float  # chance of coming back to a pitch
    downloads: float  # chance of downloading a track they like
    browser: _Browser | None = None


@dataclass
class _PitchTrack:
    id: str
    duration_ms: int


@dataclass
class _Pitch:
    id: str
    number: int
    owner: _User
    tracks: list[_PitchTrack]
    allow_download: bool
    password: str | None
    expires_at: datetime
    revoked: bool = False
    recipients: list[_Recipient] = field(default_factory=list)

    def active(self, now: datetime) -> bool:
        return not self.revoked and self.expires_at > now


@dataclass
class _Recipient:
    id: str
    pitch: _Pitch
    supervisor: _Supervisor
    link: str  # the link's path, /p/<token>
    rng: random.Random
    cookie: str | None = None
    scheduled: bool = False  # a visit is planned
    visits: int = 0
    heard: dict[str, Behaviour] = field(default_factory=dict)
    completed: set[str] = field(default_factory=set)
    shortlisted: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class _PlayerKinds:
    """The event types a player reports (None: that player does not report it)."""

    progress: str
    completed: str
    played: str | None = None
    paused: str | None = None
    skipped: str | None = None
    seeked: str | None = None


_RECIPIENT_PLAYER = _PlayerKinds(
    progress="pitch_track_progress",
    completed="pitch_track_completed",
    played="pitch_track_played",
    paused="pitch_track_paused",
    skipped="pitch_track_skipped",
    seeked="pitch_track_seeked",
)
_USER_PLAYER = _PlayerKinds(
    progress="track_playback_progress", completed="track_playback_completed"
)


class _Player:
    """The client side of usage events: queued as they happen, sent in small batches."""

    def __init__(
        self,
        clock: ManualClock,
        kinds: _PlayerKinds,
        session_id: str,
        send: Callable[[list[dict[str, Any]]], None],
    ) -> None:
        self.clock = clock
        self.kinds = kinds
        self._send = send
        self._session = session_id
        self._queue: list[dict[str, Any]] = []

    def report(
        self,
        event_type: str,
        track_id: str,
        position_ms: int,
        *,
        urgent: bool,
        listened_ms: int | None = None,
        properties: dict[str, Any] | None = None,
    ) -> None:
        event: dict[str, Any] = {
            "event_type": event_type,
            "event_id": str(uuid.uuid4()),
            "event_version": CATALOGUE[event_type].version,
            "occurred_at": self.clock.now().isoformat(),
            "session_id": self._session,
            "track_id": track_id,
            "position_ms": position_ms,
        }
        if listened_ms is not None:
            event["listened_ms"] = listened_ms
        if properties:
            event["properties"] = properties
        self._queue.append(event)
        if urgent or len(self._queue) >= REPORT_BATCH:
            self.flush()

    def flush(self) -> None:
        if self._queue:
            batch, self._queue = self._queue, []
            self._send(batch)


# -- what the people say and name ------------------------------------------------------------

_FIRST = (
    "Alice",
    "Bruno",
    "Chloe",
    "Dmitri",
    "Elena",
    "Farid",
    "Greta",
    "Hugo",
    "Ines",
    "Jonas",
    "Kemi",
    "Liam",
    "Maya",
    "Nikolai",
    "Olivia",
    "Pablo",
    "Quinn",
    "Rosa",
    "Samir",
    "Tara",
    "Ugo",
    "Vera",
    "Wes",
    "Xenia",
    "Yusuf",
    "Zoe",
    "Amara",
    "Ben",
    "Clara",
    "Diego",
    "Eva",
    "Finn",
)
_LAST = (
    "Moreno",
    "Lindqvist",
    "Okafor",
    "Petrov",
    "Nakamura",
    "Schmidt",
    "Dubois",
    "Kowalski",
    "Haddad",
    "Rossi",
    "Byrne",
    "Silva",
    "Fischer",
    "Novak",
    "Reyes",
    "Jensen",
    "Adeyemi",
    "Costa",
    "Walsh",
    "Larsen",
    "Mendes",
    "Ito",
    "Brennan",
    "Varga",
)
_RIGHTS_HOLDERS = (
    _Company("Northlight Music", "northlight.test", 0),
    _Company("Blue Harbour Publishing", "blueharbour.test", 0),
    _Company("Kestrel Records", "kestrel.test", 1),
    _Company("Tideline Audio", "tideline.test", -5),
    _Company("Paper Lantern Songs", "paperlantern.test", -8),
    _Company("Iron Fern Music", "ironfern.test", 1),
    _Company("Saltmarsh Sync", "saltmarsh.test", -5),
    _Company("Copperline Publishing", "copperline.test", 0),
)
_BUYERS = (
    _Company("Netflix", "netflix.test", -8),
    _Company("BBC Studios", "bbcstudios.test", 0),
    _Company("Ogilvy", "ogilvy.test", -5),
    _Company("A24", "a24.test", -5),
    _Company("Ubisoft", "ubisoft.test", 1),
    _Company("Wieden+Kennedy", "wk.test", -8),
    _Company("Channel 4", "channel4.test", 0),
    _Company("Saatchi & Saatchi", "saatchi.test", 0),
    _Company("HBO", "hbo.test", -5),
    _Company("Red Bull Media House", "redbull.test", 1),
)
_ARTISTS = (
    "Mara Lind",
    "The Quiet Ones",
    "Solenne",
    "Harbor Lights",
    "Kid Atlas",
    "Velvet Static",
    "Juno Vale",
    "Low Orbit",
    "Amber Fields",
    "North of Nine",
    "Cass Moreau",
    "Paper Tigers",
    "Ola Brandt",
    "Glasshouse",
    "The Night Shift",
    "Rui Tavares",
    "Echo Park Trio",
    "Sable",
)
_TITLE_WORDS = (
    "Neon",
    "Velvet",
    "Golden",
    "Silent",
    "Electric",
    "Broken",
    "Midnight",
    "Crystal",
    "Wild",
    "Hollow",
    "Bright",
    "Distant",
    "Paper",
    "Iron",
    "Silver",
    "Burning",
    "Frozen",
    "Gentle",
    "Restless",
    "Falling",
)
_TITLE_NOUNS = (
    "Harbor",
    "Skyline",
    "Horizon",
    "Echoes",
    "Pulse",
    "Tide",
    "Lanterns",
    "Engines",
    "Meadow",
    "Circuit",
    "Shadows",
    "Avenue",
    "Rivers",
    "Signal",
    "Embers",
    "Voyage",
    "Mirrors",
    "Canyon",
    "Satellite",
    "Garden",
)
_GENRES = (
    "Cinematic",
    "Electronic",
    "Hip Hop",
    "Indie Rock",
    "Pop",
    "Jazz",
    "Ambient",
    "Folk",
    "Orchestral",
    "Funk",
)
_MOODS = (
    "Uplifting",
    "Dark",
    "Tense",
    "Melancholic",
    "Playful",
    "Epic",
    "Chill",
    "Romantic",
    "Energetic",
    "Dreamy",
)
_TAGS = (
    "trailer",
    "advert",
    "sports",
    "piano",
    "strings",
    "synth",
    "guitar",
    "build",
    "sting",
    "drums",
    "female vocal",
    "male vocal",
    "whistle",
    "claps",
    "drone",
    "percussion",
    "lo-fi",
    "retro",
    "heroic",
    "suspense",
)
_KEYS = ("C", "Am", "G", "Em", "D", "Bm", "F", "Dm", "A", "F#m", "E", "C#m", "Bb", "Gm")
_NO_MATCH = (
    "polka accordion",
    "yodel",
    "bagpipe metal",
    "kazoo",
    "gregorian chant",
    "sea shanty dubstep",
    "zxqv",
    "theremin waltz",
    "didgeridoo",
    "barbershop quartet",
)
_PLAYLIST_TITLES = (
    "Trailer picks",
    "Tense underscore",
    "Summer campaign",
    "Upbeat indie for ads",
    "Dark cinematic",
    "Piano moments",
    "Sports promo",
    "Holiday spot",
    "Documentary beds",
    "Brand film shortlist",
    "Game launch",
    "Late night drama",
)
_PITCH_MESSAGES = (
    "A few cues for the brief we discussed. All one-stop, cleared worldwide.",
    "Fresh from the studio: I think the second one fits your opening scene.",
    "Following up on your brief: tense, modern, with a build. Stems available.",
    "Some options for the campaign. Happy to send alternates or cut-downs.",
    "New releases from our roster that fit the mood board you sent.",
)
_GOOD_COMMENTS = (
    "Love the build at the end.",
    "Could work for the trailer cut.",
    "Great energy, sending it to the director.",
    "Do you have stems for this one?",
    "Is there a 30 s edit?",
    "Perfect mood for the opening scene.",
)
_MEH_COMMENTS = (
    "Not quite right for this brief.",
    "A bit too dark for us.",
    "Tempo is too slow for the edit.",
)
# The share of sessions that start in each local hour: a morning and an afternoon peak.
_HOUR_WEIGHTS = (
    0.02, 0.01, 0.01, 0.01, 0.01, 0.03, 0.08, 0.2, 0.6, 1.0, 1.0, 0.9,
    0.55, 0.7, 0.95, 0.95, 0.85, 0.6, 0.35, 0.25, 0.25, 0.2, 0.1, 0.05,
)  # fmt: skip
_WEEKDAY_FACTOR = (1.0, 1.0, 1.0, 0.95, 0.8, 0.25, 0.2)


def _rng(*parts: object) -> random.Random:
    """The random generator of one actor: seeded by the run's seed and the actor's name."""
    return random.Random(":".join(map(str, parts)))  # noqa: S311 - behaviour, not secrets


def _slug(text: str) -> str:
    return "".join(c for c in text.lower() if c.isalnum() or c == ".")


def _weighted(rng: random.Random, options: Sequence[tuple[Any, float]]) -> Any:
    total = sum(weight for _, weight in options)
    pick = rng.uniform(0, total)
    for value, weight in options:
        pick -= weight
        if pick <= 0:
            return value
    return options[-1][0]


# -- the scheduler ---------------------------------------------------------------------------------


class _Scheduler:
    """Runs tasks in simulated time: always the one due first, the clock moved to its time."""

    def __init__(self, clock: ManualClock, on_error: Callable[[str, BaseException], None]) -> None:
        self._clock = clock
        self._heap: list[tuple[datetime, int, str, Task]] = []
        self._order = itertools.count()
        self._on_error = on_error

    def at(self, when: datetime, name: str, task: Task) -> None:
        heapq.heappush(self._heap, (when, next(self._order), name, task))

    def run_until(self, until: datetime) -> None:
        while self._heap and self._heap[0][0] < until:
            when, _, name, task = heapq.heappop(self._heap)
            self._move_to(when)
            try:
                wait = next(task)
            except StopIteration:
                continue
            except Exception as error:  # a broken task ends; the run goes on
                self._on_error(name, error)
                continue
            self.at(self._clock.now() + timedelta(seconds=max(0.0, wait)), name, task)
        self._move_to(until)

    def close(self) -> None:
        for _, _, _, task in self._heap:
            task.close()
        self._heap.clear()

    def _move_to(self, when: datetime) -> None:
        now = self._clock.now()
        if when > now:
            self._clock.advance(when - now)


# -- the world -------------------------------------------------------------------------------------


class _World:
    def __init__(
        self,
        stack: LocalStack,
        clock: ManualClock,
        summary: SimulationSummary,
        *,
        users: int,
        seed: int,
    ) -> None:
        self.stack = stack
        self.clock = clock
        self.summary = summary
        self.seed = seed
        self.base_url = stack.settings.public_url
        self.loop = asyncio.new_event_loop()
        self.scheduler = _Scheduler(clock, self._task_failed)
        # Names carry a random run tag (not from the seed): runs sharing a database never meet.
        self.run_tag = secrets.token_hex(3)
        rng = _rng(seed, "world")
        self.supervisors = [
            self._supervisor(n, _rng(seed, "supervisor", n)) for n in range(max(6, users // 2 + 4))
        ]
        self.users = self._users(users, rng)
        self.browsers: list[_Browser] = []

    # -- setup ---------------------------------------------------------------------------------
    def _supervisor(self, n: int, rng: random.Random) -> _Supervisor:
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        company = _BUYERS[n % len(_BUYERS)]
        return _Supervisor(
            index=n,
            name=f"{first} {last}",
            email=f"{_slug(first)}.{_slug(last)}{n}@{company.domain}",
            company=company,
            responsiveness=rng.uniform(0.55, 0.95),
            patience=rng.uniform(0.15, 0.9),
            delay_hours=rng.uniform(2, 30),
            returns=rng.uniform(0.1, 0.5),
            downloads=rng.uniform(0.2, 0.8),
        )

    def _users(self, count: int, rng: random.Random) -> list[_User]:
        days = self.summary.days
        # About 40% are there from the first day; the others join over the period.
        founders = max(1, math.ceil(count * 0.4))
        joins = [0] * founders + sorted(
            rng.randrange(1, days) if days > 1 else 0 for _ in range(count - founders)
        )
        companies: list[_Company] = []
        while len(companies) < count:  # teams of two to four colleagues
            companies += [_RIGHTS_HOLDERS[len(companies) % len(_RIGHTS_HOLDERS)]] * rng.randint(
                2, 4
            )
        people = []
        for n in range(count):
            user_rng = _rng(self.seed, "user", n)
            first, last = rng.choice(_FIRST), rng.choice(_LAST)
            company = companies[n]
            persona = _weighted(rng, _PERSONAS)
            username = f"sim-{self.run_tag}-{n:03d}"
            people.append(
                _User(
                    index=n,
                    name=f"{first} {last}",
                    username=username,
                    email=f"{_slug(first)}.{_slug(last)}.{self.run_tag}{n}@{company.domain}",
                    company=company,
                    persona=persona,
                    join_day=joins[n],
                    artists=rng.sample(_ARTISTS, rng.randint(1, 3)),
                    contacts=rng.sample(
                        self.supervisors, min(len(self.supervisors), rng.randint(3, 6))
                    ),
                    rng=user_rng,
                )
            )
        return people

    def _browser(self, address: str) -> _Browser:
        browser = _Browser(self.stack.app, self.loop, self.base_url, address, self.summary)
        self.browsers.append(browser)
        return browser

    # -- the run -------------------------------------------------------------------------------
    def run(self, days: int, on_day: Callable[..., None] | None) -> None:
        start = self.summary.start
        self.scheduler.at(start, "sweeper", self._sweeper())
        for day in range(days):
            day_start = start + timedelta(days=day)
            self._plan_day(day, day_start)
            self.scheduler.run_until(day_start + timedelta(days=1))
            self.summary.days_done = day + 1
            if on_day is not None:
                on_day(day, days, self.summary)

    def close(self) -> None:
        self.scheduler.close()
        for browser in self.browsers:
            browser.close()
        self.loop.close()

    def _plan_day(self, day: int, day_start: datetime) -> None:
        weekday = day_start.weekday()
        for user in self.users:
            if user.join_day > day:
                continue
            rng = user.rng
            if user.join_day == day:
                sessions = 1 + (rng.random() < 0.5)
            else:
                persona = user.persona
                age = day - user.join_day
                keen = persona.floor + (1 - persona.floor) * math.exp(-age / persona.half_life_days)
                if rng.random() >= persona.activity * keen * _WEEKDAY_FACTOR[weekday]:
                    continue
                sessions = 1 + (rng.random() < persona.activity * 0.5) + (rng.random() < 0.1)
            times = sorted(
                self._session_time(rng, day_start, user.company.utc_offset) for _ in range(sessions)
            )
            for n, when in enumerate(times):
                first = user.join_day == day and n == 0
                self.scheduler.at(when, f"user {user.index}", self._session(user, first=first))

    def _session_time(self, rng: random.Random, day_start: datetime, utc_offset: int) -> datetime:
        hour = _weighted(rng, list(enumerate(_HOUR_WEIGHTS)))
        minutes = ((hour - utc_offset) % 24) * 60 + rng.uniform(0, 59)
        return day_start + timedelta(minutes=minutes)

    def _working_time(self, rng: random.Random, when: datetime, utc_offset: int) -> datetime:
        """``when``, or the next working hours (9:00-18:00 local) when it falls outside them;
        weekends mostly wait for Monday."""
        local = when + timedelta(hours=utc_offset)
        morning = local.replace(hour=9, minute=0, second=0, microsecond=0)
        if local.weekday() >= 5 and rng.random() < 0.75:
            local = morning + timedelta(days=7 - local.weekday(), minutes=rng.uniform(0, 240))
        elif local.hour < 8:
            local = morning + timedelta(minutes=rng.uniform(0, 180))
        elif local.hour >= 19:
            local = morning + timedelta(days=1, minutes=rng.uniform(0, 180))
        return local - timedelta(hours=utc_offset)

    def _sweeper(self) -> Task:
        """The scheduled jobs (EventBridge in aws), on the simulated clock."""
        from services.library.sweeper import sweep as sweep_uploads
        from services.pitching.sweeper import sweep as sweep_pitches

        while True:
            sweep_uploads()
            sweep_pitches()
            yield SWEEP_EVERY.total_seconds()

    # -- bookkeeping ---------------------------------------------------------------------------
    def act(self, action: str) -> None:
        now = self.clock.now()
        self.summary.actions[action] += 1
        if self.summary.first_at is None:
            self.summary.first_at = now
        self.summary.last_at = now

    def _task_failed(self, name: str, error: BaseException) -> None:
        self.summary.errors[f"{name}: {type(error).__name__}"] += 1
        log.error("simulated %s failed", name, exc_info=error)

    def _expect(self, what: str, response: httpx.Response, *statuses: int) -> httpx.Response | None:
        if response.status_code in statuses:
            return response
        code = ""
        if response.headers.get("content-type", "").startswith("application/problem+json"):
            code = " " + str(response.json().get("code"))
        self.summary.errors[f"{what}: {response.status_code}{code}"] += 1
        log.warning("%s: unexpected %s: %s", what, response.status_code, response.text[:300])
        return None

    def _call(
        self, user: _User, what: str, method: str, path: str, *statuses: int, **kwargs: Any
    ) -> httpx.Response | None:
        assert user.browser is not None
        headers = user.headers(**kwargs.pop("headers", {}))
        response = user.browser.request(method, path, headers=headers, **kwargs)
        return self._expect(what, response, *statuses)

    # -- a user's session ----------------------------------------------------------------------
    def _session(self, user: _User, *, first: bool) -> Task:
        rng = user.rng
        self.act("session")
        self._sign_in(user)
        yield rng.uniform(3, 20)
        if first:
            for _ in range(rng.randint(3, 8)):
                yield from self._upload(user)
                yield rng.uniform(2, 15)
            if rng.random() < 0.6:
                yield from self._new_playlist(user)
            if rng.random() < 0.3:
                yield from self._search(user)
            return
        low, high = user.persona.intents
        for _ in range(rng.randint(low, high)):
            intent = self._intent(user)
            yield from intent(user)
            yield rng.uniform(5, 60)

    def _sign_in(self, user: _User) -> None:
        """A new token when the user has none or it would run out during the session."""
        now = self.clock.now()
        if user.browser is None:
            octet = user.index % 250 + 1
            user.browser = self._browser(
                f"10.{user.index // 250}.{octet}.{(user.index * 7) % 250 + 1}"
            )
        if (
            user.token is None
            or user.token_expires is None
            or user.token_expires - now < TOKEN_MARGIN
        ):
            user.token = self.stack.idp.mint(
                user.username, email=user.email, name=user.name, ttl_seconds=TOKEN_TTL_SECONDS
            )
            user.token_expires = now + timedelta(seconds=TOKEN_TTL_SECONDS)
            user.session_id = str(uuid.uuid4())
            self.act("sign_in")
        if not user.joined:
            user.joined = True
            self.summary.users_joined += 1
        # The app's first call: who am I (the first one provisions the account).
        self._call(user, "me", "GET", "/v1/me", 200)

    def _intent(self, user: _User) -> Callable[[_User], Task]:
        options: list[tuple[Callable[[_User], Task], float]] = [
            (self._search, 3.0),
            (self._upload_more, 0.8),
        ]
        if user.tracks:
            options += [
                (self._listen_own, 2.5),
                (self._edit_track, 1.2),
                (self._share, 0.6),
                (self._download_own, 0.3),
            ]
        if len(user.tracks) >= 2:
            options.append((self._playlists, 1.5))
        if any(len(p.entries) >= 2 for p in user.playlists):
            options.append((self._pitch, 1.5))
        if user.pitches:
            options.append((self._check_pitches, 2.0))
        if any(not item.opened for item in user.inbox):
            options.append((self._open_shared, 3.0))
        if any(item.opened and item.track is not None for item in user.inbox):
            options.append((self._listen_shared, 0.5))
        if sum(not t.pinned for t in user.tracks) > 3 and len(user.tracks) > 6:
            options.append((self._delete_track, 0.1))
        if any(not p.pinned for p in user.playlists):
            options.append((self._delete_playlist, 0.05))
        if any(share.external for share in user.outgoing):
            options.append((self._revoke_share, 0.1))
        intent: Callable[[_User], Task] = _weighted(user.rng, options)
        return intent

    # uploads and metadata
    def _upload_more(self, user: _User) -> Task:
        for _ in range(user.rng.randint(1, 3)):
            yield from self._upload(user)
            yield user.rng.uniform(2, 15)

    def _upload(self, user: _User) -> Task:
        rng = user.rng
        roll = rng.random()
        if roll < 0.03:  # started, then forgotten: the sweeper rejects it when its URL expires
            size = rng.randint(200_000, 9_000_000)
            self._call(
                user,
                "upload",
                "POST",
                "/v1/uploads",
                201,
                json={"filename": "Untitled.wav", "size": size},
            )
            self.act("upload_abandoned")
            return
        if roll < 0.06 and user.tracks:  # the same file again
            existing = rng.choice(user.tracks)
            data = tone_wav(existing.key, existing.seconds)
            yield from self._send_file(
                user, f"{existing.title} (final).wav", data, 409, "upload_duplicate"
            )
            return
        if roll < 0.08:  # not audio at all
            data = b"%PDF-1.4\n% cue sheet\n" + bytes(rng.randrange(256) for _ in range(2000))
            yield from self._send_file(user, "Cue sheet.pdf", data, 415, "upload_not_audio")
            return
        title = f"{rng.choice(_TITLE_WORDS)} {rng.choice(_TITLE_NOUNS)}"
        if rng.random() < 0.15:
            title += rng.choice((" (Instrumental)", " (30s Edit)", " (Alt Mix)"))
        seconds = rng.choice((rng.uniform(30, 75), rng.uniform(90, 150), rng.uniform(150, 230)))
        key = f"{self.seed}/{user.index}/{user.files}"
        user.files += 1
        data = tone_wav(key, seconds)
        track = yield from self._send_file(user, f"{title}.wav", data, 201, "upload")
        if track is None:
            return
        added = _Track(track["id"], title, int(track["duration_ms"]), key, seconds)
        user.tracks.append(added)
        if rng.random() < 0.85:  # tagged by hand soon after
            yield rng.uniform(5, 40)
            patch = {
                "artists": [rng.choice(user.artists)],
                "genre": rng.choice(_GENRES),
                "mood": rng.choice(_MOODS),
                "tags": rng.sample(_TAGS, rng.randint(1, 4)),
                "bpm": rng.choice((70, 84, 90, 96, 100, 110, 120, 124, 128, 140)),
                "musical_key": rng.choice(_KEYS),
                "instrumental": rng.random() < 0.6,
            }
            headers = {"If-Match": f'"{track["version"]}"'}
            if self._call(
                user, "tag", "PATCH", f"/v1/tracks/{track['id']}", 200, json=patch, headers=headers
            ):
                added.tags.update(patch)
                self.act("tag_track")

    def _send_file(
        self, user: _User, filename: str, data: bytes, completes: int, action: str
    ) -> Generator[float, None, dict[str, Any] | None]:
        started = self._call(
            user,
            "upload",
            "POST",
            "/v1/uploads",
            201,
            json={"filename": filename, "size": len(data)},
        )
        if started is None:
            return None
        target = started.json()
        # The transfer: a few megabytes a second.
        yield len(data) / user.rng.uniform(1e6, 4e6) + user.rng.uniform(0.5, 2)
        assert user.browser is not None
        sent = user.browser.request("PUT", target["url"], content=data, headers=target["headers"])
        if self._expect("upload bytes", sent, 200) is None:
            return None
        done = self._call(
            user,
            "upload",
            "POST",
            f"/v1/uploads/{target['upload_id']}/complete",
            completes,
            json={},
        )
        if done is None:
            return None
        self.act(action)
        body: dict[str, Any] = done.json()
        return body

    def _edit_track(self, user: _User) -> Task:
        rng = user.rng
        track = rng.choice(user.tracks)
        read = self._call(user, "edit", "GET", f"/v1/tracks/{track.id}", 200)
        if read is None:
            return
        yield rng.uniform(5, 30)
        changes: list[dict[str, Any]] = [
            {"mood": rng.choice(_MOODS)},
            {"genre": rng.choice(_GENRES)},
            {"bpm": rng.choice((72, 88, 95, 105, 118, 126, 132))},
            {"tags": rng.sample(_TAGS, rng.randint(2, 5))},
            {"musical_key": rng.choice(_KEYS)},
        ]
        patch: dict[str, Any] = {}
        for change in rng.sample(changes, rng.randint(1, 2)):
            patch.update(change)
        headers = {"If-Match": read.headers["etag"]}
        if self._call(
            user, "edit", "PATCH", f"/v1/tracks/{track.id}", 200, json=patch, headers=headers
        ):
            track.tags.update(patch)
            self.act("edit_track")

    def _delete_track(self, user: _User) -> Task:
        track = user.rng.choice([t for t in user.tracks if not t.pinned])
        if self._call(user, "delete track", "DELETE", f"/v1/tracks/{track.id}", 204):
            user.tracks.remove(track)
            self.act("track_delete")
        yield user.rng.uniform(1, 5)

    # search
    def _search(self, user: _User) -> Task:
        rng = user.rng
        for _ in range(rng.randint(1, 3)):
            params, no_match = self._query(user)
            if self._call(user, "search", "GET", "/v1/search", 200, params=params):
                self.act("search_no_match" if no_match else "search")
            yield rng.uniform(4, 25)

    def _query(self, user: _User) -> tuple[dict[str, Any], bool]:
        """What a user types: mostly words of tracks they know, sometimes a genre to browse,
        a word that may or may not be there, or something nobody has."""
        rng = user.rng
        roll = rng.random()
        if roll < 0.12:
            return {"q": rng.choice(_NO_MATCH)}, True
        known = [t for t in user.tracks if "artists" in t.tags]  # tagged after upload
        if roll < 0.22:
            # Browsing a genre. With the genre's name as text: a search without any text
            # (filters only) fails today (search_performed needs properties.query).
            genre = rng.choice(known).tags["genre"] if known else rng.choice(_GENRES)
            return {"q": genre.lower(), "genre": genre, "sort": "newest"}, False
        params: dict[str, Any]
        if roll < 0.35 or not known:  # a word from the vocabulary, there or not
            vocabulary = rng.choice((_MOODS, _TAGS, _GENRES))
            return {"q": rng.choice(vocabulary).lower()}, False
        track = rng.choice(known)
        fields = {
            "title": rng.choice(track.title.split()).strip("()").lower(),
            "artist": track.tags["artists"][0],
            "mood": track.tags["mood"].lower(),
            "genre": track.tags["genre"].lower(),
            "tag": rng.choice(track.tags["tags"]),
        }
        first, second = rng.sample(sorted(fields), 2)
        text = fields[first] if rng.random() < 0.75 else f"{fields[first]} {fields[second]}"
        if rng.random() < 0.2 and len(text) > 5:  # still typing: the last word is a prefix
            text = text[: rng.randint(4, len(text) - 1)]
        elif rng.random() < 0.08 and len(text) > 5:  # a typo
            cut = rng.randrange(1, len(text) - 1)
            text = text[:cut] + text[cut + 1 :]
        params = {"q": text}
        if rng.random() < 0.15:
            bpm = float(track.tags["bpm"])
            params.update(bpm_min=int(bpm // 10 * 10), bpm_max=int(bpm // 10 * 10 + 20))
        elif rng.random() < 0.1:
            params["mood"] = track.tags["mood"]
        return params, False

    # listening (the app's player, reporting through the collector)
    def _user_player(self, user: _User) -> _Player:
        def send(batch: list[dict[str, Any]]) -> None:
            self._call(user, "player events", "POST", "/v1/events", 202, json={"events": batch})

        return _Player(self.clock, _USER_PLAYER, user.session_id, send)

    def _listen_own(self, user: _User) -> Task:
        rng = user.rng
        player = self._user_player(user)
        for track in rng.sample(user.tracks, min(len(user.tracks), rng.randint(1, 3))):
            yield from self._play_as_user(user, player, track)
            yield rng.uniform(2, 15)
        player.flush()

    def _play_as_user(self, user: _User, player: _Player, track: _Track) -> Task:
        rng = user.rng
        stream = self._call(user, "stream", "GET", f"/v1/tracks/{track.id}/stream", 200)
        if stream is None:
            return
        assert user.browser is not None
        audio = user.browser.request("GET", stream.json()["url"], headers={"Range": AUDIO_PROBE})
        if self._expect("audio", audio, 206) is None:
            return
        self.act("listen")
        if rng.random() < 0.35:
            plan = [("play", track.duration_ms)]
        else:
            plan = [("play", rng.randint(8_000, 90_000))]
        completed = yield from self._listen(player, track.id, track.duration_ms, plan, "leave")
        if completed:
            self.act("listen_complete")

    def _download_own(self, user: _User) -> Task:
        track = user.rng.choice(user.tracks)
        got = self._call(user, "download", "GET", f"/v1/tracks/{track.id}/download", 200)
        if got is not None:
            assert user.browser is not None
            if self._expect("download file", user.browser.request("GET", got.json()["url"]), 200):
                self.act("download")
        yield user.rng.uniform(1, 6)

    # playlists
    def _playlists(self, user: _User) -> Task:
        rng = user.rng
        if not user.playlists or (len(user.playlists) < 6 and rng.random() < 0.3):
            yield from self._new_playlist(user)
            return
        playlist = rng.choice(user.playlists)
        roll = rng.random()
        if roll < 0.6 or len(playlist.entries) < 3:
            yield from self._add_tracks(user, playlist, rng.randint(1, 3))
        elif roll < 0.75:
            entry_id, _ = rng.choice(playlist.entries)
            path = f"/v1/playlists/{playlist.id}/tracks/{entry_id}"
            if self._call(user, "playlist remove", "DELETE", path, 204):
                playlist.entries = [e for e in playlist.entries if e[0] != entry_id]
                self.act("playlist_remove")
        elif roll < 0.9:
            yield from self._reorder(user, playlist)
        else:
            title = f"{rng.choice(_PLAYLIST_TITLES)} v{rng.randint(2, 4)}"
            path = f"/v1/playlists/{playlist.id}"
            if self._call(user, "playlist rename", "PATCH", path, 200, json={"title": title}):
                playlist.title = title
                self.act("playlist_rename")
        yield rng.uniform(2, 10)

    def _new_playlist(self, user: _User) -> Task:
        rng = user.rng
        if len(user.tracks) < 2:
            return
        title = rng.choice(_PLAYLIST_TITLES)
        body = {"title": title, "description": f"{user.company.name}: {title.lower()}"}
        made = self._call(user, "playlist create", "POST", "/v1/playlists", 201, json=body)
        if made is None:
            return
        playlist = _Playlist(made.json()["id"], title)
        user.playlists.append(playlist)
        self.act("playlist_create")
        yield rng.uniform(3, 15)
        yield from self._add_tracks(user, playlist, rng.randint(3, 8))

    def _add_tracks(self, user: _User, playlist: _Playlist, count: int) -> Task:
        rng = user.rng
        present = {track_id for _, track_id in playlist.entries}
        choices = [t for t in user.tracks if t.id not in present]
        for track in rng.sample(choices, min(count, len(choices))):
            path = f"/v1/playlists/{playlist.id}/tracks"
            added = self._call(user, "playlist add", "POST", path, 201, json={"track_id": track.id})
            if added is not None:
                playlist.entries.append((added.json()["entry"]["id"], track.id))
                track.pinned = True
                self.act("playlist_add")
            yield rng.uniform(2, 12)

    def _reorder(self, user: _User, playlist: _Playlist) -> Task:
        read = self._call(user, "playlist read", "GET", f"/v1/playlists/{playlist.id}", 200)
        if read is None:
            return
        body = read.json()
        entry_ids = [entry["id"] for entry in body["entries"]]
        yield user.rng.uniform(5, 20)
        user.rng.shuffle(entry_ids)
        order = {"entry_ids": entry_ids, "version": body["version"]}
        if self._call(
            user, "playlist reorder", "PUT", f"/v1/playlists/{playlist.id}/order", 200, json=order
        ):
            by_id = dict(playlist.entries)
            playlist.entries = [(e, by_id[e]) for e in entry_ids if e in by_id]
            self.act("playlist_reorder")

    def _delete_playlist(self, user: _User) -> Task:
        playlist = user.rng.choice([p for p in user.playlists if not p.pinned])
        if self._call(user, "playlist delete", "DELETE", f"/v1/playlists/{playlist.id}", 204):
            user.playlists.remove(playlist)
            self.act("playlist_delete")
        yield user.rng.uniform(1, 5)

    # sharing
    def _share(self, user: _User) -> Task:
        rng = user.rng
        colleagues = [u for u in self.users if u.company == user.company and u is not user]
        playlists = [p for p in user.playlists if p.entries]
        if playlists and rng.random() < 0.35:
            playlist = rng.choice(playlists)
            object_type: Literal["track", "playlist"] = "playlist"
            object_id, track = playlist.id, None
            permission = _weighted(rng, [("view", 0.7), ("edit", 0.3)])
            playlist.pinned = True
        else:
            track = rng.choice(user.tracks)
            object_type, object_id = "track", track.id
            permission = _weighted(rng, [("view", 0.15), ("stream", 0.5), ("download", 0.35)])
            track.pinned = True
        grantee = rng.choice(colleagues) if colleagues and rng.random() < 0.8 else None
        if grantee is None:  # someone outside who never signs up: the share stays pending
            first, last = rng.choice(_FIRST), rng.choice(_LAST)
            email = f"{_slug(first)}.{_slug(last)}.{self.run_tag}@partner-label.test"
        else:
            email = grantee.email
        body = {
            "object_type": object_type,
            "object_id": object_id,
            "permission": permission,
            "grantee_email": email,
        }
        made = self._call(user, "share", "POST", "/v1/shares", 200, 201, json=body)
        if made is not None:
            share_id = made.json()["id"]
            self.act("share")
            user.outgoing.append(_Outgoing(share_id, external=grantee is None))
            if grantee is not None and all(i.share_id != share_id for i in grantee.inbox):
                grantee.inbox.append(
                    _Incoming(share_id, object_type, object_id, permission, track=track)
                )
        yield rng.uniform(2, 10)

    def _revoke_share(self, user: _User) -> Task:
        share = user.rng.choice([s for s in user.outgoing if s.external])
        if self._call(user, "share revoke", "DELETE", f"/v1/shares/{share.share_id}", 204):
            user.outgoing.remove(share)
            self.act("share_revoke")
        yield user.rng.uniform(1, 5)

    def _open_shared(self, user: _User) -> Task:
        rng = user.rng
        if (
            self._call(user, "shares", "GET", "/v1/shares", 200, params={"direction": "incoming"})
            is None
        ):
            return
        yield rng.uniform(2, 10)
        player = self._user_player(user)
        for item in [i for i in user.inbox if not i.opened][: rng.randint(1, 2)]:
            path = f"/v1/{item.object_type}s/{item.object_id}"
            read = self._call(user, "open shared", "GET", path, 200)
            if read is None:
                continue
            item.opened = True
            event = {
                "event_type": "share_opened",
                "event_id": str(uuid.uuid4()),
                "event_version": CATALOGUE["share_opened"].version,
                "occurred_at": self.clock.now().isoformat(),
                "session_id": user.session_id,
                "share_id": item.share_id,
                f"{item.object_type}_id": item.object_id,
            }
            if self._call(
                user, "share opened", "POST", "/v1/events", 202, json={"events": [event]}
            ):
                self.act("share_open")
            yield rng.uniform(3, 15)
            if item.track is not None and item.permission != "view" and rng.random() < 0.7:
                yield from self._play_as_user(user, player, item.track)
            elif item.object_type == "playlist" and rng.random() < 0.5:
                entries = [e["track"] for e in read.json()["entries"] if e["available"]]
                for entry in entries[: rng.randint(1, 2)]:
                    shared = _Track(entry["id"], entry["title"], int(entry["duration_ms"]), "", 0)
                    yield from self._play_as_user(user, player, shared)
                    yield rng.uniform(2, 8)
        player.flush()

    def _listen_shared(self, user: _User) -> Task:
        item = user.rng.choice([i for i in user.inbox if i.opened and i.track is not None])
        if item.track is None or item.permission == "view":
            return
        player = self._user_player(user)
        yield from self._play_as_user(user, player, item.track)
        player.flush()

    # pitching
    def _pitch(self, user: _User) -> Task:
        rng = user.rng
        playlist = rng.choice([p for p in user.playlists if len(p.entries) >= 2])
        supervisors = rng.sample(
            user.contacts, min(len(user.contacts), rng.choice((1, 1, 2, 2, 3, 4)))
        )
        now = self.clock.now()
        body: dict[str, Any] = {
            "playlist_id": playlist.id,
            "title": f"{playlist.title} for {supervisors[0].company.name}",
            "message": rng.choice(_PITCH_MESSAGES),
            "allow_download": rng.random() < 0.55,
            "recipients": [
                {"name": s.name, "email": s.email, "company": s.company.name} for s in supervisors
            ],
        }
        expiry = rng.random()
        if expiry < 0.15:  # a short window: some of these expire during the run
            body["expires_at"] = (now + timedelta(days=rng.uniform(2, 6))).isoformat()
        elif expiry < 0.3:
            body["expires_at"] = (now + timedelta(days=60)).isoformat()
        if rng.random() < 0.2:
            body["password"] = f"{_slug(rng.choice(_TITLE_NOUNS))}-{rng.randint(100, 999)}"
        made = self._call(user, "pitch", "POST", "/v1/pitches", 201, json=body)
        if made is None:
            return
        answer = made.json()
        playlist.pinned = True
        pitch = _Pitch(
            id=answer["id"],
            number=self.summary.pitches,
            owner=user,
            tracks=[_PitchTrack(t["id"], int(t["duration_ms"])) for t in answer["tracks"]],
            allow_download=answer["allow_download"],
            password=body.get("password"),
            expires_at=datetime.fromisoformat(answer["expires_at"]),
        )
        user.pitches.append(pitch)
        self.act("pitch")
        self.summary.pitches += 1
        by_email = {s.email: s for s in supervisors}
        for recipient in answer["recipients"]:
            self._add_recipient(pitch, by_email[recipient["email"]], recipient)
        yield rng.uniform(5, 30)

    def _add_recipient(
        self, pitch: _Pitch, supervisor: _Supervisor, answer: dict[str, Any]
    ) -> None:
        rng = _rng(self.seed, "recipient", pitch.number, supervisor.index)
        recipient = _Recipient(answer["id"], pitch, supervisor, _local(answer["link"]), rng)
        pitch.recipients.append(recipient)
        self.summary.recipients += 1
        if rng.random() < supervisor.responsiveness:  # the others never open it
            self._plan_visit(recipient)

    def _plan_visit(self, r: _Recipient) -> None:
        """The recipient's first visit, some hours after the link reached them."""
        supervisor = r.supervisor
        delay = timedelta(
            hours=r.rng.expovariate(1 / supervisor.delay_hours) + r.rng.uniform(0.05, 0.5)
        )
        when = self._working_time(r.rng, self.clock.now() + delay, supervisor.company.utc_offset)
        self.scheduler.at(when, f"recipient {supervisor.index}", self._visit(r))
        r.scheduled = True

    def _check_pitches(self, user: _User) -> Task:
        rng = user.rng
        if self._call(user, "pitches", "GET", "/v1/pitches", 200) is None:
            return
        yield rng.uniform(2, 8)
        pitch = rng.choice(user.pitches[-3:])
        if self._call(user, "pitch view", "GET", f"/v1/pitches/{pitch.id}", 200) is None:
            return
        self.act("pitch_view")
        yield rng.uniform(10, 60)
        now = self.clock.now()
        if not pitch.active(now):
            return
        roll = rng.random()
        if pitch.expires_at - now < timedelta(days=3) and roll < 0.5:
            expires_at = (pitch.expires_at + timedelta(days=14)).isoformat()
            changed = self._call(
                user,
                "pitch extend",
                "PATCH",
                f"/v1/pitches/{pitch.id}",
                200,
                json={"expires_at": expires_at},
            )
            if changed is not None:
                pitch.expires_at = datetime.fromisoformat(changed.json()["expires_at"])
                self.act("pitch_extend")
        elif roll < 0.06:
            others = [
                s for s in user.contacts if all(r.supervisor is not s for r in pitch.recipients)
            ]
            if others:
                supervisor = rng.choice(others)
                body = {
                    "recipients": [
                        {
                            "name": supervisor.name,
                            "email": supervisor.email,
                            "company": supervisor.company.name,
                        }
                    ]
                }
                added = self._call(
                    user, "pitch add", "POST", f"/v1/pitches/{pitch.id}/recipients", 201, json=body
                )
                if added is not None:
                    self._add_recipient(pitch, supervisor, added.json()["recipients"][0])
                    self.act("pitch_add_recipient")
        elif roll < 0.1:
            silent = [r for r in pitch.recipients if r.visits == 0]
            if silent:
                recipient = rng.choice(silent)
                path = f"/v1/pitches/{pitch.id}/recipients/{recipient.id}/link"
                reissued = self._call(user, "pitch reissue", "POST", path, 200)
                if reissued is not None:
                    recipient.link = _local(reissued.json()["link"])
                    self.act("pitch_reissue_link")
                    if not recipient.scheduled and recipient.rng.random() < 0.5:
                        self._plan_visit(recipient)  # the reminder worked
        elif roll < 0.12 and self._call(
            user, "pitch revoke", "POST", f"/v1/pitches/{pitch.id}/revoke", 200
        ):
            pitch.revoked = True
            self.act("pitch_revoke")

    # -- a recipient's visit to their pitch link -------------------------------------------------
    def _recipient_call(
        self, r: _Recipient, what: str, method: str, path: str, *statuses: int, **kwargs: Any
    ) -> httpx.Response | None:
        supervisor = r.supervisor
        if supervisor.browser is None:
            supervisor.browser = self._browser(f"203.0.113.{supervisor.index % 250 + 1}")
        headers = dict(kwargs.pop("headers", {}))
        if r.cookie is not None:
            headers["Cookie"] = r.cookie
        response = supervisor.browser.request(method, path, headers=headers, **kwargs)
        return self._expect(what, response, *statuses)

    def _visit(self, r: _Recipient) -> Task:
        rng = r.rng
        first = r.visits == 0
        opened = yield from self._open_link(r)
        if not opened:
            return
        r.visits += 1
        yield rng.uniform(5, 45)  # reading the message
        tracks = self._visit_tracks(r, first=first)

        def send(batch: list[dict[str, Any]]) -> None:
            # 410: the link expired (or was revoked) while the page was open
            self._recipient_call(
                r, "pitch events", "POST", f"{r.link}/events", 202, 410, json={"events": batch}
            )

        # One page load, one session (as pitch.js makes it)
        player = _Player(self.clock, _RECIPIENT_PLAYER, str(uuid.uuid4()), send)
        for n, track in enumerate(tracks):
            if not self._pitch_media(r, track, download=False):
                break
            behaviour = self._behaviour(r)
            plan, ending = self._plan(rng, behaviour, track.duration_ms)
            if n == len(tracks) - 1 and ending == "skip":
                ending = "leave"  # the last one: they close the page while it plays
            self.act("track_play")
            completed = yield from self._listen(player, track.id, track.duration_ms, plan, ending)
            self.act("track_complete" if completed else f"track_{ending}")
            r.heard[track.id] = behaviour
            if completed:
                r.completed.add(track.id)
            yield rng.uniform(2, 15)
            yield from self._react(r, track, behaviour, completed)
        player.flush()
        if r.visits < 3 and rng.random() < r.supervisor.returns:
            later = self.clock.now() + timedelta(days=rng.uniform(0.5, 4))
            when = self._working_time(rng, later, r.supervisor.company.utc_offset)
            self.scheduler.at(when, f"recipient {r.supervisor.index}", self._visit(r))

    def _open_link(self, r: _Recipient) -> Generator[float, None, bool]:
        rng = r.rng
        page = self._recipient_call(r, "pitch page", "GET", r.link, 200, 410)
        if page is None:
            return False
        if page.status_code != 200:
            self.act("link_gone")
            return False
        if 'name="password"' in page.text:
            if r.pitch.password is None:
                self.summary.errors["pitch page: asks for a password the pitch has not"] += 1
                return False
            if rng.random() < 0.1:
                form = {"password": r.pitch.password.upper()}
                if self._recipient_call(r, "unlock", "POST", f"{r.link}/unlock", 401, data=form):
                    self.act("link_wrong_password")
                yield rng.uniform(5, 20)
            form = {"password": r.pitch.password}
            unlocked = self._recipient_call(r, "unlock", "POST", f"{r.link}/unlock", 303, data=form)
            if unlocked is None:
                return False
            r.cookie = unlocked.headers["set-cookie"].split(";", 1)[0]
            assert r.supervisor.browser is not None
            r.supervisor.browser.forget_cookies()  # the cookie is sent by hand, per link
            self.act("link_unlock")
            yield rng.uniform(1, 3)
            page = self._recipient_call(r, "pitch page", "GET", r.link, 200)
            if page is None or 'name="password"' in page.text:
                return False
        self.act("link_open")
        return True

    def _visit_tracks(self, r: _Recipient, *, first: bool) -> list[_PitchTrack]:
        rng = r.rng
        tracks = r.pitch.tracks
        if first:
            chosen = []
            for track in tracks:  # top to bottom, until attention runs out
                chosen.append(track)
                if rng.random() < 0.35 * (1 - r.supervisor.patience):
                    break
            return chosen
        liked = [t for t in tracks if t.id in r.shortlisted or t.id in r.completed]
        unheard = [t for t in tracks if t.id not in r.heard]
        picks = rng.sample(liked, min(len(liked), rng.randint(1, 2))) if liked else []
        if unheard and (not picks or rng.random() < 0.4):
            picks.append(rng.choice(unheard))
        return picks or [rng.choice(tracks)]

    def _behaviour(self, r: _Recipient) -> Behaviour:
        patience = r.supervisor.patience
        behaviour: Behaviour = _weighted(
            r.rng,
            [("skip", 1.2 - patience), ("sample", 0.5), ("full", 0.3 + patience), ("pause", 0.2)],
        )
        return behaviour

    def _plan(
        self, rng: random.Random, behaviour: Behaviour, duration_ms: int
    ) -> tuple[list[tuple[str, int]], Ending]:
        if behaviour == "skip":
            return [("play", rng.randint(3_000, 25_000))], "skip"
        if behaviour == "sample":
            target = int(duration_ms * rng.uniform(0.4, 0.75))
            plan = [
                ("play", rng.randint(8_000, 30_000)),
                ("seek", target),
                ("play", rng.randint(10_000, 40_000)),
            ]
            return plan, rng.choice(("skip", "pause"))
        if behaviour == "full":
            return [("play", duration_ms)], "leave"
        return [("play", rng.randint(20_000, 90_000))], "pause"

    def _pitch_media(self, r: _Recipient, track: _PitchTrack, *, download: bool) -> bool:
        kind = "download" if download else "stream"
        path = f"{r.link}/tracks/{track.id}/{kind}"
        redirect = self._recipient_call(r, f"pitch {kind}", "GET", path, 302, 410)
        if redirect is None or redirect.status_code == 410:
            return False
        headers = {} if download else {"Range": AUDIO_PROBE}
        media = self._recipient_call(
            r,
            "audio",
            "GET",
            redirect.headers["location"],
            200 if download else 206,
            headers=headers,
        )
        return media is not None

    def _react(
        self, r: _Recipient, track: _PitchTrack, behaviour: Behaviour, completed: bool
    ) -> Task:
        rng = r.rng
        liking = {"full": 0.45, "sample": 0.15, "pause": 0.05, "skip": 0.02}[behaviour]
        if completed:
            liking = max(liking, 0.45)
        feedback: dict[str, Any] = {}
        if track.id in r.shortlisted and rng.random() < 0.08:
            feedback["shortlisted"] = False
        elif track.id not in r.shortlisted and rng.random() < liking:
            feedback["shortlisted"] = True
        if rng.random() < (0.25 if feedback.get("shortlisted") else 0.04):
            good = feedback.get("shortlisted") or completed
            feedback["comment"] = rng.choice(_GOOD_COMMENTS if good else _MEH_COMMENTS)
        if feedback:
            body = {"track_id": track.id, **feedback}
            done = self._recipient_call(
                r, "feedback", "POST", f"{r.link}/feedback", 200, 410, json=body
            )
            if done is not None and done.status_code == 200:
                if feedback.get("shortlisted") is True:
                    r.shortlisted.add(track.id)
                    self.act("shortlist")
                elif feedback.get("shortlisted") is False:
                    r.shortlisted.discard(track.id)
                    self.act("unshortlist")
                if "comment" in feedback:
                    self.act("comment")
            yield rng.uniform(3, 20)
        wants = track.id in r.shortlisted or completed
        if r.pitch.allow_download and wants and rng.random() < r.supervisor.downloads:
            if self._pitch_media(r, track, download=True):
                self.act("track_download")
            yield rng.uniform(2, 10)

    # -- listening -------------------------------------------------------------------------------
    def _listen(
        self,
        player: _Player,
        track_id: str,
        duration_ms: int,
        plan: Sequence[tuple[str, int]],
        ending: Ending,
    ) -> Generator[float, None, bool]:
        """Play a track as the player would report it: ``plan`` is ("play", ms) and ("seek",
        position) steps; then it ends (skip, pause, leave) unless it reached its end first.
        Returns whether it played to the end."""
        kinds = player.kinds
        position = 0
        since_report = 0
        if kinds.played is not None:
            player.report(kinds.played, track_id, 0, urgent=True)
        for step, amount in plan:
            if step == "seek":
                target = max(0, min(amount, duration_ms - 1_000))
                if kinds.seeked is not None:
                    self.act("track_seek")
                    properties = {"from_ms": position}
                    player.report(
                        kinds.seeked, track_id, target, urgent=False, properties=properties
                    )
                position = target
                continue
            remaining = amount
            while remaining > 0 and position < duration_ms:
                chunk = min(remaining, PROGRESS_EVERY_MS - since_report, duration_ms - position)
                yield chunk / 1000
                position += chunk
                since_report += chunk
                remaining -= chunk
                if position < duration_ms and since_report >= PROGRESS_EVERY_MS:
                    player.report(
                        kinds.progress, track_id, position, urgent=False, listened_ms=since_report
                    )
                    since_report = 0
            if position >= duration_ms:
                break
        if position >= duration_ms:
            player.report(
                kinds.completed, track_id, duration_ms, urgent=True, listened_ms=since_report
            )
            return True
        closing = {"skip": kinds.skipped, "pause": kinds.paused}.get(ending)
        if closing is not None:
            player.report(closing, track_id, position, urgent=True, listened_ms=since_report)
        elif since_report > 0:
            player.report(
                kinds.progress, track_id, position, urgent=False, listened_ms=since_report
            )
        return False
