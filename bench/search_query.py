"""Search latency on 100,000 tracks in tantivy: p95 < 20 ms for typo-tolerant free text + two
filters + facets, with the access-control clause, for a user who may see 10,000 of them.

Run from the repository root: ``.venv/bin/python -m bench.search_query [--queries N]``.

The tracks are synthetic but deterministic (a fixed seed): titles, artists and albums of real
English words with a Zipf-like spread, 25 genres, 20 moods, 60 tags, 24 keys, BPM, durations,
years. 1,000 users own them, some are shared; the measured user sees exactly 10,000. Each
query takes one or two words of a track the user may see, puts a typo in one (a substitution,
a transposition, a missing or an extra letter), and filters on two genres and a BPM range
around the track's. The measured call is ``TantivyIndex.search``, all of it: the query, the
reader reload, the page, the total, the facet counts (genre, mood, key), the documents and
their highlights. It runs in this process, on a warm index (100 queries of warm-up first).
"""

from __future__ import annotations

import argparse
import random
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench._support import (
    OtherCpu,
    Row,
    exit_code,
    log,
    percentile,
    print_table,
    run_main,
    temp_dir,
)
from services.core.search.model import Range, SearchQuery, TrackDocument, Upsert

TARGET_P95_MS = 20.0
TRACKS = 100_000
VISIBLE = 10_000
USERS = 1_000
SEED = 20_240_601
BATCH = 5_000
# The user whose searches are measured.
VIEWER = uuid.UUID("00000000-0000-4000-8000-00000000beef")


def _words(text: str) -> list[str]:
    return text.split()


WORDS = _words("""
love heart night day time life world baby girl boy dream fire light rain sun moon star sky
blue red gold black white green summer winter city road home way soul mind eyes hand kiss
dance song music rhythm beat party fever shadow ghost angel devil heaven paradise ocean river
sea wave storm thunder lightning wind cloud snow ice stone rose flower garden forest mountain
valley desert island train car highway street avenue bridge window door wall house room bed
mirror picture memory story secret promise lie truth trouble danger freedom glory honor pride
crazy wild sweet bitter lonely broken golden silver electric cosmic midnight morning evening
tonight tomorrow yesterday forever always never maybe someday somewhere nowhere everywhere
running falling flying dreaming waiting calling crying dancing singing burning shining fading
rising breaking chasing holding losing finding leaving coming going staying turning talking
walking driving riding living dying loving hating feeling believing praying wishing hoping
remember forget forgive surrender escape return begin ending rescue wonder whisper scream
silence echo thunderstruck velvet satin diamond crystal neon chrome paper glass iron steel
sugar honey candy cherry lemon orange peach apple wine whiskey coffee smoke dust ashes bones
blood tears kisses lovers strangers friends enemies heroes kings queens princes soldiers
sailors cowboys rebels outlaws gypsies dreamers believers sinners saints children mothers
fathers sisters brothers daughters sons wolves tigers lions eagles ravens doves butterflies
horses dragons serpents spiders monkeys elephants whales dolphins sharks hearts souls minds
alive awake asleep alone together apart again away back down high low deep far near inside
outside under over beyond between behind above below across around through without within
first last only every other little big small great tiny giant young old new modern ancient
happy sad angry calm quiet loud slow fast soft hard cold hot warm cool dark bright heavy
free lost found gone here there home echoes reflections horizons seasons colors shapes
numbers letters words voices faces places spaces traces chances choices changes ranges
mercy grace faith hope charity patience courage wisdom beauty chaos order balance harmony
magic mystery miracle destiny fortune karma spirit energy gravity motion emotion passion
tension pressure pleasure treasure measure adventure nature future picture culture rapture
""")
FIRST_NAMES = _words("""
james john robert michael william david richard joseph thomas charles mary patricia jennifer
linda elizabeth barbara susan jessica sarah karen nancy lisa betty margaret sandra ashley
emily emma olivia ava sophia isabella mia charlotte amelia harper evelyn abigail ella scarlett
grace chloe victoria riley aria lily aurora zoey nora hannah luna leo liam noah oliver elijah
lucas mason logan ethan aiden jackson sebastian mateo henry owen samuel dylan caleb isaac
nathan julian aaron adrian miles marvin nina aretha otis etta ray billie ella louis duke
""")
LAST_NAMES = _words("""
smith johnson williams brown jones garcia miller davis rodriguez martinez hernandez lopez
gonzalez wilson anderson taylor moore jackson martin lee perez thompson white harris sanchez
clark ramirez lewis robinson walker young allen king wright scott torres nguyen hill flores
green adams nelson baker hall rivera campbell mitchell carter roberts gomez phillips evans
turner diaz parker cruz edwards collins reyes stewart morris morales murphy cook rogers
gutierrez ortiz morgan cooper peterson bailey reed kelly howard ramos kim cox ward richardson
watson brooks chavez wood james bennett gray mendoza ruiz hughes price alvarez castillo
""")
BAND_NOUNS = _words("""
kings queens wolves ravens tigers lions riders rebels strangers lovers dreamers ghosts
angels saints sinners brothers sisters machines engines rockets comets planets satellites
shadows echoes mirrors diamonds crystals flowers roses thorns stones bullets arrows hearts
""")
GENRES = _words("""
rock pop jazz blues soul funk disco house techno trance ambient classical country folk
reggae hip-hop rap metal punk indie electronic latin gospel lo-fi soundtrack
""")
MOODS = _words("""
happy sad calm energetic melancholic dreamy angry hopeful romantic dark uplifting nostalgic
tense playful epic chill dramatic mysterious peaceful confident
""")
TAGS = _words("""
acoustic live remix cover instrumental vocal piano guitar synth strings brass drums bass
orchestral choir female male duet upbeat downtempo slow fast dance workout study sleep focus
party summer winter night morning road-trip cinematic trailer advertising corporate film tv
game vintage retro modern minimal epic emotional happy sad dark bright warm cold loop stem
clean explicit radio-edit extended demo unplugged anthem ballad groove
""")
KEYS = [f"{n} {m}" for n in _words("C C# D Eb E F F# G Ab A Bb B") for m in ("major", "minor")]


def _zipf(rng: random.Random, items: Sequence[str], k: int, weights: Sequence[float]) -> list[str]:
    return rng.choices(items, weights=weights, k=k)


def synthetic_tracks(
    count: int = TRACKS, *, visible: int = VISIBLE, seed: int = SEED
) -> list[TrackDocument]:
    """``count`` tracks, ``visible`` of which list VIEWER among their viewers; deterministic."""
    rng = random.Random(seed)
    weights = [1.0 / (rank + 1) ** 0.8 for rank in range(len(WORDS))]
    users = [uuid.UUID(int=rng.getrandbits(128), version=4) for _ in range(USERS)]
    seen_by_viewer = set(rng.sample(range(count), visible))
    epoch = datetime(2023, 1, 1, tzinfo=UTC)
    artists_pool = []
    for _ in range(8_000):
        roll = rng.random()
        if roll < 0.6:
            artists_pool.append(f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}".title())
        elif roll < 0.85:
            artists_pool.append(f"The {rng.choice(BAND_NOUNS)}".title())
        else:
            artists_pool.append(" ".join(_zipf(rng, WORDS, 2, weights)).title())
    tracks = []
    for n in range(count):
        owner = rng.choice(users)
        viewers = {owner, *rng.sample(users, rng.choice((0, 0, 0, 1, 2)))}
        if n in seen_by_viewer:
            viewers.add(VIEWER)
        tracks.append(
            TrackDocument(
                id=uuid.UUID(int=rng.getrandbits(128), version=4),
                owner_id=owner,
                viewers=frozenset(viewers),
                title=" ".join(_zipf(rng, WORDS, rng.choice((1, 2, 2, 3, 3, 4)), weights)).title(),
                artists=tuple(rng.sample(artists_pool, rng.choice((1, 1, 1, 2)))),
                album=" ".join(_zipf(rng, WORDS, rng.choice((1, 2, 3)), weights)).title()
                if rng.random() < 0.8
                else None,
                genre=rng.choice(GENRES),
                mood=rng.choice(MOODS),
                tags=tuple(rng.sample(TAGS, rng.choice((0, 1, 2, 3, 4)))),
                key=rng.choice(KEYS),
                instrumental=rng.random() < 0.3,
                bpm=float(rng.randrange(120, 360)) / 2,
                duration_ms=rng.randrange(90_000, 480_000),
                year=rng.randrange(1955, 2026),
                created_at=epoch + timedelta(seconds=rng.randrange(0, 3 * 365 * 86_400)),
            )
        )
    return tracks


def batches(tracks: Sequence[TrackDocument], size: int = BATCH) -> Iterator[list[Upsert]]:
    for start in range(0, len(tracks), size):
        yield [Upsert(doc, 1) for doc in tracks[start : start + size]]


def typo(rng: random.Random, word: str) -> str:
    """One edit that changes the word: substitute, transpose, drop or add a letter (never the
    first)."""
    while True:
        at = rng.randrange(1, len(word) - 1)
        op = rng.choice(("substitute", "transpose", "drop", "add"))
        letter = rng.choice("abcdefghijklmnopqrstuvwxyz")
        if op == "substitute":
            changed = word[:at] + letter + word[at + 1 :]
        elif op == "transpose":
            changed = word[:at] + word[at + 1] + word[at] + word[at + 2 :]
        elif op == "drop":
            changed = word[:at] + word[at + 1 :]
        else:
            changed = word[:at] + letter + word[at:]
        if changed != word:
            return changed


def make_queries(tracks: Sequence[TrackDocument], count: int, seed: int = 7) -> list[SearchQuery]:
    rng = random.Random(seed)
    mine = [t for t in tracks if VIEWER in t.viewers]
    queries = []
    for _ in range(count):
        target = rng.choice(mine)
        words = [w.lower() for w in f"{target.title} {target.artists[0]}".split()]
        picked = rng.sample(words, min(len(words), rng.choice((1, 2, 2))))
        long_words = [i for i, w in enumerate(picked) if len(w) >= 4]
        if long_words:
            i = rng.choice(long_words)
            picked[i] = typo(rng, picked[i])
        bpm = target.bpm or 120.0
        other = rng.choice(GENRES)
        queries.append(
            SearchQuery(
                viewer=VIEWER,
                text=" ".join(picked),
                genres=tuple(sorted({target.genre or other, other})),
                bpm=Range(bpm - 20, bpm + 20),
                limit=20,
            )
        )
    return queries


def build_index(path: Path, tracks: Sequence[TrackDocument]) -> float:
    """Index the tracks into a new generation; seconds taken."""
    from services.core.search.tantivy_index import TantivyIndex

    index = TantivyIndex(path)
    started = time.perf_counter()
    with index.begin_rebuild() as rebuild:
        for batch in batches(tracks):
            rebuild.add(batch)
        rebuild.commit_swap()
    seconds = time.perf_counter() - started
    index.close()
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--queries", type=int, default=1000, help="measured queries")
    args = parser.parse_args()
    from services.core.search.tantivy_index import TantivyIndex

    log(f"generating {TRACKS:,} tracks ({VISIBLE:,} visible to the measured user)")
    tracks = synthetic_tracks()
    with temp_dir("msbench-search-") as tmp:
        seconds = build_index(tmp / "index", tracks)
        log(f"indexed in {seconds:.1f} s")
        index = TantivyIndex(tmp / "index")
        queries = make_queries(tracks, 100 + args.queries)
        for query in queries[:100]:
            index.search(query)
        latencies: list[float] = []
        found = 0
        with_hits = 0
        with OtherCpu() as other:
            for query in queries[100:]:
                started = time.perf_counter()
                result = index.search(query)
                latencies.append((time.perf_counter() - started) * 1000)
                found += result.total
                with_hits += bool(result.hits)
        # For information: the same words without the filters (more matches to rank and count).
        unfiltered: list[float] = []
        for query in queries[100:600]:
            plain = SearchQuery(viewer=query.viewer, text=query.text)
            started = time.perf_counter()
            index.search(plain)
            unfiltered.append((time.perf_counter() - started) * 1000)
        unfiltered.sort()
        latencies.sort()
        example = queries[100]
        p50, p95, p99 = (percentile(latencies, p) for p in (50, 95, 99))
        rows = [
            Row("tracks indexed / visible to the user", f"{TRACKS:,} / {VISIBLE:,}"),
            Row(
                "example query",
                f"{example.text!r}, genres {list(example.genres)}, "
                f"bpm {example.bpm.low:g}..{example.bpm.high:g}",
            ),
            Row("queries measured (after 100 warm-up)", f"{len(latencies):,}"),
            Row(
                "queries with hits / mean matches", f"{with_hits:,} / {found / len(latencies):.1f}"
            ),
            Row("latency p50", f"{p50:.2f} ms"),
            Row("latency p95", f"{p95:.2f} ms", f"< {TARGET_P95_MS:g} ms", p95 < TARGET_P95_MS),
            Row("latency p99", f"{p99:.2f} ms"),
            Row("latency max", f"{latencies[-1]:.2f} ms"),
            Row(
                "same text without filters: p50 / p95",
                f"{percentile(unfiltered, 50):.2f} / {percentile(unfiltered, 95):.2f} ms",
            ),
            other.row(),
        ]
        index.close()
    print_table("search query: typo-tolerant text + 2 filters + facets (tantivy)", rows)
    return exit_code(rows)


if __name__ == "__main__":
    run_main(main)
