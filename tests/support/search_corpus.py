"""A fixed corpus of ~50 tracks for the search index tests (both adapters).

Three users: ALICE owns most tracks; some are shared with BOB; BOB owns a few of his own that
ALICE may not see; CAROL sees two. The corpus holds "Yesterday" by The Beatles and decoys that
a careless ranking would put first: the same title by a tribute band, "Yesterday's News",
"Yesterdays", "Yesterday Once More", "Let It Be" by "Beatles Tribute Band", "Beat It". Numeric
values sit exactly on, and just beside, the bounds the range tests use (BPM 100..120, duration
180,000..240,000 ms, year 1965..1970); some sort values tie so that the id decides.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from services.core.search.model import TrackDocument, Upsert

NAMESPACE = uuid.UUID("6f1c8a52-5d0e-4d7e-9a43-2f5b8e0c1d11")
ALICE = uuid.uuid5(NAMESPACE, "user:alice")
BOB = uuid.uuid5(NAMESPACE, "user:bob")
CAROL = uuid.uuid5(NAMESPACE, "user:carol")
NOBODY = uuid.uuid5(NAMESPACE, "user:nobody")
USERS = {"alice": ALICE, "bob": BOB, "carol": CAROL}

BPM_RANGE = (100.0, 120.0)
DURATION_RANGE = (180_000, 240_000)
YEAR_RANGE = (1965, 1970)

_EPOCH = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)

# slug, title, artists, album, genre, mood, tags, key, instrumental, bpm, duration_ms, year,
# owner, shared with, created (days after _EPOCH)
_ROWS: list[
    tuple[
        str,
        str,
        tuple[str, ...],
        str | None,
        str | None,
        str | None,
        tuple[str, ...],
        str | None,
        bool | None,
        float | None,
        int,
        int | None,
        str,
        tuple[str, ...],
        int,
    ]
] = [
    ("yesterday", "Yesterday", ("The Beatles",), "Help!", "Rock", "Melancholic",
     ("acoustic", "ballad", "classic"), "F major", False, 96.0, 125_000, 1965, "alice", (), 0),
    ("yesterday-tribute", "Yesterday", ("Beatles Tribute Band",), "Tribute Live", "Rock",
     "Melancholic", ("cover", "live"), "F major", False, 97.0, 131_000, 2015, "alice", (), 1),
    ("yesterdays-news", "Yesterday's News", ("Harbor Lights",), "Old Papers", "Pop", "Upbeat",
     ("radio",), "G major", False, 110.0, 201_000, 2009, "alice", ("bob",), 2),
    ("let-it-be-tribute", "Let It Be", ("Beatles Tribute Band",), "Tribute Live", "Rock",
     "Hopeful", ("cover", "live", "piano"), "C major", False, 72.0, 243_000, 2015, "alice",
     (), 3),
    ("yesterday-once-more", "Yesterday Once More", ("Carpenters",), "Now & Then", "Pop",
     "Nostalgic", ("classic",), "E major", False, 92.0, 230_000, 1973, "alice", (), 4),
    ("yesterdays", "Yesterdays", ("Jazz Standards Trio",), "Standards Vol. 2", "Jazz",
     "Melancholic", ("standard", "piano"), "D minor", True, 88.0, 305_000, 1999, "alice",
     (), 5),
    ("beat-it", "Beat It", ("Michael Jackson",), "Thriller", "Pop", "Energetic",
     ("dance", "classic"), "E minor", False, 139.0, 258_000, 1982, "alice", (), 6),
    ("here-comes-the-sun", "Here Comes the Sun", ("The Beatles",), "Abbey Road", "Rock",
     "Happy", ("acoustic", "classic"), "A major", False, 129.0, 185_000, 1969, "alice",
     ("bob",), 7),
    ("hey-jude", "Hey Jude", ("The Beatles",), None, "Rock", "Hopeful", ("classic", "piano"),
     "F major", False, 74.0, 431_000, 1968, "alice", (), 8),
    ("beautiful-day", "Beautiful Day", ("U2",), "All That You Can't Leave Behind", "Rock",
     "Uplifting", ("anthem",), "D major", False, 136.0, 246_000, 2000, "alice", (), 9),
    ("bpm-low-edge", "Low Edge Groove", ("Edge Case Ensemble",), "Bounds", "Electronic",
     "Focused", ("test", "loop"), "C minor", True, 100.0, 180_000, 1965, "alice", (), 10),
    ("bpm-high-edge", "High Edge Groove", ("Edge Case Ensemble",), "Bounds", "Electronic",
     "Focused", ("test", "loop"), "C minor", True, 120.0, 240_000, 1970, "alice", (), 11),
    ("bpm-below", "Just Below Groove", ("Edge Case Ensemble",), "Bounds", "Electronic",
     "Focused", ("test",), "C minor", True, 99.9, 179_999, 1964, "alice", (), 12),
    ("bpm-above", "Just Above Groove", ("Edge Case Ensemble",), "Bounds", "Electronic",
     "Focused", ("test",), "C minor", True, 120.1, 240_001, 1971, "alice", (), 13),
    ("no-bpm", "Free Time Drift", ("Edge Case Ensemble",), "Bounds", "Ambient", "Calm",
     ("test", "drone"), None, True, None, 600_000, None, "alice", (), 14),
    ("midnight-city", "Midnight City", ("M83",), "Hurry Up, We're Dreaming", "Electronic",
     "Dreamy", ("synth", "night"), "E major", False, 105.0, 243_000, 2011, "alice", ("bob",),
     15),
    ("strobe", "Strobe", ("deadmau5",), "For Lack of a Better Name", "Electronic", "Dreamy",
     ("progressive", "synth"), "B minor", True, 128.0, 637_000, 2009, "alice", (), 16),
    ("clair-de-lune", "Clair de Lune", ("Claude Debussy", "Isao Tomita"), "Snowflakes Are Dancing",
     "Classical", "Calm", ("piano", "impressionist"), "D-flat major", True, 66.0, 300_000, 1974,
     "alice", ("carol",), 17),
    ("cafe-del-mar", "Café del Mar", ("Energy 52",), "Café del Mar", "Electronic", "Uplifting",
     ("trance", "balearic"), "A minor", True, 133.0, 442_000, 1993, "alice", (), 18),
    ("so-what", "So What", ("Miles Davis",), "Kind of Blue", "Jazz", "Cool", ("modal", "trumpet"),
     "D minor", True, 136.0, 562_000, 1959, "alice", ("bob",), 19),
    ("take-five", "Take Five", ("The Dave Brubeck Quartet",), "Time Out", "Jazz", "Cool",
     ("saxophone", "odd meter"), "E-flat minor", True, 174.0, 324_000, 1959, "alice", (), 20),
    ("blue-in-green", "Blue in Green", ("Miles Davis", "Bill Evans"), "Kind of Blue", "Jazz",
     "Melancholic", ("modal", "piano"), "D minor", True, 58.0, 337_000, 1959, "alice", (), 21),
    ("bohemian-rhapsody", "Bohemian Rhapsody", ("Queen",), "A Night at the Opera", "Rock",
     "Dramatic", ("opera", "classic"), "B-flat major", False, 72.0, 354_000, 1975, "alice", (),
     22),
    ("rock-and-roll-live", "Rock & Roll <Live>", ("Led Zeppelin",), "How the West Was Won",
     "Rock", "Energetic", ("live", "guitar"), "A major", False, 170.0, 221_000, 1972, "alice",
     (), 23),
    ("stairway", "Stairway to Heaven", ("Led Zeppelin",), "Led Zeppelin IV", "Rock", "Epic",
     ("guitar", "classic"), "A minor", False, 82.0, 482_000, 1971, "alice", (), 24),
    ("lose-yourself", "Lose Yourself", ("Eminem",), "8 Mile", "Hip-Hop", "Intense",
     ("rap", "soundtrack"), "D minor", False, 171.0, 326_000, 2002, "alice", (), 25),
    ("juicy", "Juicy", ("The Notorious B.I.G.",), "Ready to Die", "Hip-Hop", "Confident",
     ("rap",), "C major", False, 95.0, 315_000, 1994, "alice", (), 26),
    ("smells-like", "Smells Like Teen Spirit", ("Nirvana",), "Nevermind", "Rock", "Angry",
     ("grunge", "guitar"), "F minor", False, 117.0, 301_000, 1991, "alice", (), 27),
    ("weightless", "Weightless", ("Marconi Union",), None, "Ambient", "Calm",
     ("relaxing", "drone"), "A-flat major", True, 60.0, 480_000, 2011, "alice", (), 28),
    ("an-ending", "An Ending (Ascent)", ("Brian Eno",), "Apollo", "Ambient", "Calm",
     ("space", "drone"), "G major", True, 62.0, 264_000, 1983, "alice", (), 29),
    ("uptown-funk", "Uptown Funk", ("Mark Ronson", "Bruno Mars"), "Uptown Special", "Funk",
     "Happy", ("dance", "brass"), "D minor", False, 115.0, 270_000, 2014, "alice", (), 30),
    ("get-lucky", "Get Lucky", ("Daft Punk", "Pharrell Williams"), "Random Access Memories",
     "Funk", "Happy", ("dance", "disco"), "F-sharp minor", False, 116.0, 369_000, 2013,
     "alice", (), 31),
    ("around-the-world", "Around the World", ("Daft Punk",), "Homework", "Electronic",
     "Energetic", ("dance", "loop"), "E minor", False, 121.0, 429_000, 1997, "alice", (), 32),
    ("one-more-time", "One More Time", ("Daft Punk",), "Discovery", "Electronic", "Happy",
     ("dance", "disco"), "D major", False, 123.0, 320_000, 2000, "alice", (), 33),
    ("jolene", "Jolene", ("Dolly Parton",), "Jolene", "Country", "Desperate",
     ("guitar", "classic"), "C-sharp minor", False, 111.0, 162_000, 1973, "alice", (), 34),
    ("ring-of-fire", "Ring of Fire", ("Johnny Cash",), None, "Country", "Upbeat",
     ("brass", "classic"), "G major", False, 105.0, 157_000, 1963, "alice", (), 35),
    ("no-woman-no-cry", "No Woman, No Cry", ("Bob Marley & The Wailers",), "Live!", "Reggae",
     "Hopeful", ("live",), "C major", False, 76.0, 428_000, 1975, "alice", (), 36),
    ("three-little-birds", "Three Little Birds", ("Bob Marley & The Wailers",), "Exodus",
     "Reggae", "Happy", ("feel good",), "A major", False, 74.0, 180_000, 1977, "alice", (), 36),
    ("same-duration-a", "Tied Duration A", ("Tie Testers",), "Ties", "Pop", "Neutral",
     ("test",), "C major", False, 110.0, 200_000, 2020, "alice", (), 38),
    ("same-duration-b", "Tied Duration B", ("Tie Testers",), "Ties", "Pop", "Neutral",
     ("test",), "C major", False, 110.0, 200_000, 2020, "alice", (), 38),
    ("same-duration-c", "Tied Duration C", ("Tie Testers",), "Ties", "Pop", "Neutral",
     ("test",), "C major", False, 110.0, 200_000, 2020, "alice", (), 38),
    ("untitled-draft", "untitled draft", (), None, None, None, (), None, None, None, 45_000, None,
     "alice", (), 40),
    ("bob-demo-yesterday", "Yesterday Demo", ("Bob's Garage Band",), "Demos", "Rock", "Rough",
     ("demo",), "F major", False, 98.0, 140_000, 2023, "bob", (), 41),
    ("bob-lofi", "Lofi Study Beats", ("Bob's Garage Band",), "Demos", "Lo-Fi", "Calm",
     ("study", "loop"), "E-flat major", True, 85.0, 150_000, 2023, "bob", (), 42),
    ("bob-shared-with-alice", "Garage Anthem", ("Bob's Garage Band",), "Demos", "Rock",
     "Energetic", ("demo", "anthem"), "E major", False, 140.0, 190_000, 2024, "bob",
     ("alice",), 43),
    ("carol-only", "Carol's Lullaby", ("Carol Singer",), None, "Folk", "Calm", ("lullaby",),
     "G major", False, 60.0, 170_000, 2022, "carol", (), 44),
    ("carol-yesterday", "Secret Yesterday", ("The Beatles",), "Vault", "Rock", "Melancholic", (),
     "F major", False, 96.0, 125_000, 1965, "carol", (), 45),
    ("mood-swing", "Mood Swing", ("Tempo Shift",), "Moods", "Pop", "Happy",
     ("melancholic vibes",), "B major", False, 101.0, 210_000, 2019, "alice", (), 46),
    ("tagged-yesterday", "Memory Lane", ("Retro Collective",), "Throwbacks", "Pop", "Nostalgic",
     ("yesterday", "memories"), "G major", False, 100.5, 215_000, 1968, "alice", (), 47),
    ("album-yesterday", "Track One", ("Sleepy Town",), "Yesterday and Today", "Indie", "Dreamy",
     ("lofi",), "A minor", False, 90.0, 199_000, 2018, "alice", (), 48),
]  # fmt: skip


def _build() -> list[TrackDocument]:
    docs = []
    for row in _ROWS:
        (slug, title, artists, album, genre, mood, tags, key, instrumental, bpm, duration, year,
         owner, shared, day) = row  # fmt: skip
        owner_id = USERS[owner]
        docs.append(
            TrackDocument(
                id=uuid.uuid5(NAMESPACE, f"track:{slug}"),
                owner_id=owner_id,
                viewers=frozenset({owner_id, *(USERS[u] for u in shared)}),
                title=title,
                artists=artists,
                album=album,
                genre=genre,
                mood=mood,
                tags=tags,
                key=key,
                instrumental=instrumental,
                bpm=bpm,
                duration_ms=duration,
                year=year,
                created_at=_EPOCH + timedelta(days=day),
            )
        )
    return docs


TRACKS: list[TrackDocument] = _build()
BY_SLUG: dict[str, TrackDocument] = {row[0]: doc for row, doc in zip(_ROWS, TRACKS, strict=True)}
SLUG: dict[uuid.UUID, str] = {doc.id: slug for slug, doc in BY_SLUG.items()}


def track(slug: str) -> TrackDocument:
    return BY_SLUG[slug]


def upserts(version: int = 1) -> list[Upsert]:
    return [Upsert(doc, version) for doc in TRACKS]


def visible_to(user: uuid.UUID) -> list[TrackDocument]:
    return [doc for doc in TRACKS if user in doc.viewers]


def retitled(slug: str, title: str) -> TrackDocument:
    return replace(BY_SLUG[slug], title=title)
