"""How fast track documents go into a fresh tantivy generation (index only, no database).

Run from the repository root: ``.venv/bin/python -m bench.search_reindex_index [--tracks N]``.

The issue's target, at least 5,000 tracks/s for a full reindex from the database into tantivy,
is measured end to end elsewhere (database read + this); this benchmark measures this side
alone, so that the two figures can be told apart: ``begin_rebuild`` -> ``add`` in batches of
5,000 (documents built in this process, as the reindex does) -> ``commit_swap`` (commit,
merges, pointer swap), on the same deterministic synthetic tracks as ``bench.search_query``.
The target row is the issue's end-to-end figure: index-only must stay well above it.
"""

from __future__ import annotations

import argparse
import time

from bench._support import OtherCpu, Row, exit_code, log, print_table, run_main, temp_dir
from bench.search_query import TRACKS, VIEWER, batches, synthetic_tracks
from services.core.search.model import SearchQuery

TARGET_TRACKS_PER_SECOND = 5_000.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--tracks", type=int, default=TRACKS)
    args = parser.parse_args()
    from services.core.search.tantivy_index import TantivyIndex

    log(f"generating {args.tracks:,} tracks")
    tracks = synthetic_tracks(args.tracks, visible=min(10_000, args.tracks))
    with temp_dir("msbench-reindex-") as tmp:
        index = TantivyIndex(tmp / "index")
        index.search(SearchQuery(viewer=VIEWER))  # the live (empty) generation
        with OtherCpu() as other:
            started = time.perf_counter()
            with index.begin_rebuild() as rebuild:
                for batch in batches(tracks):
                    rebuild.add(batch)
                added = time.perf_counter()
                rebuild.commit_swap()
            finished = time.perf_counter()
        total = index.search(SearchQuery(viewer=VIEWER)).total
        size = sum(f.stat().st_size for f in (tmp / "index").rglob("*") if f.is_file())
        index.close()
    seconds = finished - started
    rate = args.tracks / seconds
    rows = [
        Row("tracks", f"{args.tracks:,}"),
        Row("add (documents built and queued)", f"{added - started:.2f} s"),
        Row("commit_swap (commit, merges, swap)", f"{finished - added:.2f} s"),
        Row(
            "index-only throughput",
            f"{rate:,.0f} tracks/s",
            f">= {TARGET_TRACKS_PER_SECOND:,.0f} tracks/s (end to end)",
            rate >= TARGET_TRACKS_PER_SECOND,
        ),
        Row("searchable after the swap (by the benchmark user)", f"{total:,}"),
        Row("index size on disk", f"{size / 1024 / 1024:.1f} MiB"),
        other.row(),
    ]
    print_table("search reindex: documents into a new tantivy generation", rows)
    return exit_code(rows)


if __name__ == "__main__":
    run_main(main)
