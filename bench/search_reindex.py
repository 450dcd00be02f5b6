"""Full reindex from the database into tantivy: >= 5,000 tracks/s.

Run from the repository root: ``.venv/bin/python -m bench.search_reindex [--tracks N]``.

An embedded PostgreSQL (pgserver) in a temporary folder gets the schema (migrations) and, as
benchmark input, ``--tracks`` track rows (default 100,000) over 200 owners, with shares and
playlist shares so that documents carry several viewers, written with COPY. What is timed is
``ingest.indexer.reindex.reindex``, the code behind ``musicsync search reindex``: every document
read from one snapshot with its viewers (``authz.TRACK_VIEWERS_SQL``) and version, written into
a new tantivy generation, committed and swapped in. The index is then searched once to check
that every track is there.
"""

from __future__ import annotations

import argparse
import random
import uuid
from datetime import UTC, datetime, timedelta

from bench._support import Row, exit_code, log, print_table, run_main, temp_dir

TARGET_PER_SECOND = 5_000.0
WORDS = [
    "midnight",
    "harbour",
    "velvet",
    "neon",
    "summer",
    "rain",
    "ocean",
    "echo",
    "golden",
    "city",
    "lights",
    "river",
    "dream",
    "fire",
    "northern",
    "drive",
    "slow",
    "dance",
    "wild",
    "heart",
    "storm",
    "glass",
    "silver",
    "road",
    "paper",
    "moon",
    "electric",
]
GENRES = ("Ambient", "Techno", "Jazz", "Folk", "Hip Hop", "Classical", "Rock", "Soul")
MOODS = ("Uplifting", "Dark", "Dreamy", "Tense", "Calm", "Playful")


def _populate(url: str, tracks: int, rng: random.Random) -> None:
    import psycopg

    now = datetime.now(UTC)
    users = [uuid.uuid4() for _ in range(200)]
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        with cur.copy("COPY users (id, issuer, subject, created_at, updated_at) FROM STDIN") as cp:
            for n, user in enumerate(users):
                cp.write_row((user, "bench", f"user-{n}", now, now))
        track_ids = []
        columns = (
            "id, owner_id, object_key, original_filename, title, artists, album, genre, mood, "
            "tags, bpm, duration_ms, container, codec, content_type, file_extension, size_bytes, "
            "sha256, created_at, updated_at"
        )
        with cur.copy(f"COPY tracks ({columns}) FROM STDIN") as cp:
            for n in range(tracks):
                track_id = uuid.uuid4()
                track_ids.append((track_id, users[n % len(users)]))
                created = now - timedelta(minutes=n)
                cp.write_row(
                    (
                        track_id,
                        users[n % len(users)],
                        f"tracks/{track_id}",
                        f"{n}.wav",
                        " ".join(rng.sample(WORDS, 3)).title(),
                        [rng.choice(WORDS).title()],
                        rng.choice(WORDS).title(),
                        rng.choice(GENRES),
                        rng.choice(MOODS),
                        rng.sample(WORDS, 2),
                        rng.randint(60, 180),
                        rng.randint(60_000, 300_000),
                        "wav",
                        "pcm_s16le",
                        "audio/wav",
                        ".wav",
                        1_000_000,
                        f"{n:064x}",
                        created,
                        created,
                    )
                )
        # Every tenth track shared directly with another user.
        with cur.copy(
            "COPY shares (id, owner_id, object_type, track_id, grantee_id, permission, "
            "created_at, updated_at) FROM STDIN"
        ) as cp:
            for n, (track_id, owner) in enumerate(track_ids[::10]):
                grantee = users[(n * 7 + 1) % len(users)]
                if grantee != owner:
                    cp.write_row(
                        (uuid.uuid4(), owner, "track", track_id, grantee, "stream", now, now)
                    )
        conn.commit()
        cur.execute("ANALYZE")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, default=100_000)
    args = parser.parse_args()

    from ingest.indexer.reindex import reindex
    from musicsync.runtime import start_servers
    from services.core import migrate
    from services.core.db import open_pool
    from services.core.search.model import SearchQuery
    from services.core.search.tantivy_index import TantivyIndex

    rows: list[Row] = []
    with temp_dir("msbench-reindex-") as tmp:
        servers = start_servers(tmp / "pg", database_url=None, redis_url=None, with_redis=False)
        try:
            migrate.upgrade(servers.database_url)
            log(f"writing {args.tracks:,} tracks (benchmark input)")
            _populate(servers.database_url, args.tracks, random.Random(7))
            pool = open_pool(servers.database_url, max_size=2)
            index = TantivyIndex(tmp / "search")
            try:
                log("reindexing")
                result = reindex(pool, index)
                probe = index.search(SearchQuery(viewer=uuid.uuid4(), limit=1))
            finally:
                index.close()
                pool.close()
        finally:
            servers.stop()
    rows.append(
        Row(
            f"reindex {result.tracks:,} tracks, database -> tantivy, swapped in",
            f"{result.per_second:,.0f} tracks/s ({result.seconds:.1f} s)",
            f">= {TARGET_PER_SECOND:,.0f} tracks/s",
            result.per_second >= TARGET_PER_SECOND and result.tracks == args.tracks,
        )
    )
    rows.append(Row("a stranger's search finds nothing (access control)", f"{probe.total} hits"))
    print_table("Full reindex", rows)
    return exit_code(rows)


if __name__ == "__main__":
    run_main(main)
