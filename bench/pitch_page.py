"""GET /p/{token}, the recipient's page of a 50-track pitch: p99 < 30 ms at 16 clients.

Run from the repository root: ``.venv/bin/python -m bench.pitch_page [--profile FILE]``.

It starts ``musicsync up`` (embedded PostgreSQL and Redis) on a free port with the pitch link
rate limits raised to 10,000,000 a minute (``MUSICSYNC_PITCH_REQUESTS_PER_MINUTE`` and
``MUSICSYNC_PITCH_LINK_REQUESTS_PER_MINUTE``): every request comes from 127.0.0.1 and uses one
link, which the default limits (300 and 600 a minute) would otherwise turn into 429s. The two
Redis counters are still incremented on every request, as in production. It uploads 50 distinct
0.2 s WAVs, puts them in a playlist, pitches it to one recipient, then loads the recipient's
link with 16 keep-alive connections: 3 s of warm-up, then 15 s measured. Each page view counts
both rate limits in Redis, then one statement reads the link and the digest of the page's rows
and inserts one ``pitch_opened`` row into ``pitch_interactions`` (the write is part of what is
measured); the page itself comes from the per-process cache once rendered, and the event goes
to the local lake. The table also says how the connections were shared out over the serving
processes. The load generator is ``wrk`` when installed (one thread), else an asyncio raw
HTTP/1.1 client.
``--profile FILE`` adds a separate 10 s loaded run during which ``py-spy`` samples the serving
processes, and prints where their time goes (it does not affect the measured figures).
"""

from __future__ import annotations

import argparse
import threading

import httpx

from bench._support import (
    GATEWAY_STAGES,
    PITCH_LIMITS_RAISED,
    HttpLoad,
    Row,
    Stack,
    StackCpu,
    add_load_options,
    api_client,
    exit_code,
    expect,
    http_load,
    load_options,
    load_rows,
    log,
    playlist_of_tones,
    print_table,
    py_spy_recording,
    recipients,
    run_main,
    single_connection_row,
    summarize_stacks,
    temp_dir,
)

TARGET_P99_MS = 30.0
CONNECTIONS = 16
TRACKS = 50

# Inclusive shares worth knowing for this route: (label, function name as py-spy shows it).
_STAGES = (
    *GATEWAY_STAGES,
    ("      the route function pitch_page", "pitch_page"),
    ("        Recipients.open (rate limits + the one statement)", "Recipients.open"),
    ("          check_rates (Redis: one script call, both limits)", "check_rates"),
    ("          link_by_token_hash (link, page digest, open insert)", "link_by_token_hash"),
    ("        Recipients.page (the cached page, the open's event)", "Recipients.page"),
    ("          page_tracks (only when the cache misses)", "page_tracks"),
    ("          render_pitch (only when the cache misses)", "render_pitch"),
    ("          Emitter.make (the pitch_opened event)", "Emitter.make"),
    ("    after the response: Emitter.flush (to the lake)", "Emitter.flush"),
    ("  psycopg Cursor.execute (all queries)", "Cursor.execute"),
    ("  pool checkout/return", "ConnectionPool.connection"),
)


def _opens(api_get: dict[str, object]) -> int:
    recipients_out = api_get["recipients"]
    assert isinstance(recipients_out, list)
    engagement = recipients_out[0]["engagement"]
    return int(engagement["opens"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    add_load_options(parser, connections=CONNECTIONS)
    parser.add_argument("--tracks", type=int, default=TRACKS, help="tracks in the pitch")
    args = parser.parse_args(argv)
    warmup, duration, client = load_options(parser, args)

    with temp_dir() as tmp, Stack(env=PITCH_LIMITS_RAISED) as stack:
        api = api_client(stack, stack.token("bench-pitch-page"))
        log(f"uploading {args.tracks} tracks and building the playlist")
        playlist_id, _ = playlist_of_tones(api, tmp, args.tracks)
        pitch = expect(
            api.post(
                "/v1/pitches",
                json={
                    "playlist_id": playlist_id,
                    "title": "Bench pitch",
                    "message": "Fifty short tones.\n\nListen at your leisure.",
                    "allow_download": False,
                    "recipients": recipients(1),
                },
            ),
            201,
        )
        link: str = pitch["recipients"][0]["link"]
        if not link.startswith(f"{stack.url}/p/"):
            raise RuntimeError(f"unexpected link {link!r} (stack at {stack.url})")
        page = httpx.get(link, timeout=30)  # no credentials: the token is the credential
        if page.status_code != 200 or not page.headers["content-type"].startswith("text/html"):
            raise RuntimeError(f"GET {link}: {page.status_code} {page.text[:500]}")
        missing = [t["title"] for t in pitch["tracks"] if t["title"] not in page.text]
        if len(pitch["tracks"]) != args.tracks or missing:
            raise RuntimeError(f"the page lacks tracks: {missing[:5]} ({len(pitch['tracks'])})")
        log(
            f"one page view, one client: {page.elapsed.total_seconds() * 1000:.1f} ms, "
            f"{len(page.content)} bytes"
        )

        servers = stack.embedded_servers()
        log(f"load: {client}, {args.connections} connections, {warmup:.0f} s warm-up")
        if warmup > 0:
            http_load(link, client=client, warmup=0.0, seconds=warmup, connections=args.connections)
        opens_before = _opens(expect(api.get(f"/v1/pitches/{pitch['id']}"), 200))
        log(f"measuring {duration:.0f} s")
        spread: list[int] = []
        # Read while the load runs: how the connections were shared out over the workers.
        sampler = threading.Timer(1.0, lambda: spread.extend(stack.connections_per_worker()))
        with StackCpu(stack, servers) as cpu:
            sampler.start()
            result: HttpLoad = http_load(
                link, client=client, warmup=0.0, seconds=duration, connections=args.connections
            )
        sampler.join()
        opens_after = _opens(expect(api.get(f"/v1/pitches/{pitch['id']}"), 200))

        rows = [
            Row("requests/s", f"{result.rps:.0f}"),
            *load_rows(result, TARGET_P99_MS),
            Row("response size", f"{result.response_bytes / 1024:.1f} KiB (wrk: with headers)"),
            Row(
                "pitch_opened rows written meanwhile",
                f"{opens_after - opens_before} (every view is one insert)",
            ),
            *cpu.rows(result),
            Row(
                "connections per serving process",
                # wrk's, and the script's own API client's
                " / ".join(str(n) for n in spread if n) or "-",
            ),
        ]
        log("one connection, 5 s: the service time without queueing")
        single = http_load(link, client=client, warmup=1.0, seconds=5.0, connections=1)
        rows.append(single_connection_row(single))
        print_table(
            f"GET /p/{{token}} ({args.tracks}-track pitch): {args.connections} connections, "
            f"{duration:.0f} s after {warmup:.0f} s warm-up, client {result.client}; "
            "pitch rate limits raised to 10,000,000/min",
            rows,
        )
        if args.profile is not None:
            out = args.profile.resolve()
            with py_spy_recording(stack, 10.0, out):
                http_load(link, client=client, warmup=0.0, seconds=10.0, connections=16)
            print(f"\n== where the serving processes' time goes (py-spy, raw stacks in {out}) ==")
            summarize_stacks(out, _STAGES)
        api.close()
    return exit_code(rows)


if __name__ == "__main__":
    run_main(main)
