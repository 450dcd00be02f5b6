"""Run every benchmark in sequence and sum up: ``.venv/bin/python -m bench.run_all``.

Each benchmark runs in its own interpreter (as ``python -m bench.NAME``), one after the other,
never in parallel: they share the machine's two cores. The exit code is 0 when every target is
met, 1 when one is missed, 2 when a benchmark broke.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time

from bench._support import ROOT, Row, log, print_table

BENCHMARKS = (
    "cold_start",
    "get_track",
    "upload_completion",
    "memory",
    "firehose_sink",
    "lake_writer",
    "pitch_page",
    "pitch_create",
    "authz_round_trips",
    "search_query",
    "search_reindex_index",
    "search_reindex",
    "search_freshness",
    "dbt_build",
)
TIMEOUT = 600  # seconds per benchmark; each takes well under 3 minutes on 2 cores
_VERDICTS = {0: "all targets met", 1: "target missed", 2: "broke", 130: "interrupted"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("names", nargs="*", help=f"some of {', '.join(BENCHMARKS)} (default: all)")
    names = parser.parse_args(argv).names or list(BENCHMARKS)
    unknown = sorted(set(names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {BENCHMARKS}")
    rows: list[Row] = []
    worst = 0
    for name in names:
        log(f"--- bench.{name} ---")
        started = time.monotonic()
        child = subprocess.Popen([sys.executable, "-m", f"bench.{name}"], cwd=ROOT)
        try:
            code = child.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            log(f"bench.{name} took more than {TIMEOUT} s: stopping it (SIGTERM)")
            child.send_signal(signal.SIGTERM)  # it stops its stack and removes its files
            try:
                child.wait(timeout=120)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
            code = 2
        seconds = time.monotonic() - started
        rows.append(
            Row(
                f"bench.{name}",
                f"{_VERDICTS.get(code, f'exit {code}')} ({seconds:.0f} s)",
                "exit 0",
                code == 0,
            )
        )
        worst = max(worst, 2 if code not in (0, 1) else code)
    print_table("All benchmarks", rows)
    return worst


if __name__ == "__main__":
    sys.exit(main())
