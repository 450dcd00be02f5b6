"""The authorization check adds at most one database round trip per request: counted.

Run from the repository root: ``.venv/bin/python -m bench.authz_round_trips [--show-statements]``.

It starts ``musicsync up`` (embedded PostgreSQL and Redis) on a free port, with the periodic
sweeps pushed out to once an hour (``MUSICSYNC_SWEEP_SECONDS=3600``) so that nothing but the
requests under test talks to the database. It then turns on PostgreSQL's own statement log on
that server (``ALTER SYSTEM SET log_statement = 'all'`` and a ``log_line_prefix`` with the
backend pid and application name, then ``pg_reload_conf()``): every statement any client sends
is written to the server's log, whichever process sent it. Two users are set up: an owner with
tracks, a playlist, a pitch and shares, and a grantee. Each route is called 5 times (after
3 unmeasured rounds that warm every serving process's caches: the user directory, prepared
statements), one request at a time on a fresh connection. Around each request the benchmark
writes a marker into the log from its own connection (``SELECT 'msbench:...'``, application
``msbench``); the statements between two markers are the request's. A statement is an
authorization statement when it is one of the queries of ``services.core.authz`` (``levels``,
``levels_by_type``): it selects a ``level`` column for objects named by id (``... AS level
... = ANY(...)``). A data query that carries the caller's level along with rows it reads anyway
(a playlist's entries with ``TRACK_LEVEL_SQL``) adds no round trip and is not one. Target:
exactly one per request.
"""

from __future__ import annotations

import argparse
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import psycopg

from bench._support import (
    Row,
    Stack,
    api_client,
    exit_code,
    expect,
    log,
    playlist_of_tones,
    print_table,
    recipients,
    run_main,
    temp_dir,
    upload,
    write_tone_wav,
)

REPEATS = 5
WARMUP_ROUNDS = 3
APP = "msbench"
_PREFIX = "MSB|"
# One log entry: "MSB|<pid>|<application>|LOG:  statement: ..." (or "execute <name>: ...").
_ENTRY = re.compile(r"^MSB\|(\d+)\|([^|]*)\|(\w+):  (.*)$")
_STATEMENT = re.compile(r"^(?:statement|execute [^:]+): (.*)$", re.DOTALL)
_AUTHZ = re.compile(r"\bAS level\b.*= ANY\(", re.DOTALL)
_AUTHZ_OBJECT = re.compile(r"FROM (tracks t|playlists p|pitches|shares) WHERE")


@dataclass(frozen=True)
class Route:
    label: str
    method: str
    path: str
    user: str  # "owner", "grantee" or "recipient" (a pitch link: no sign-in)
    status: int
    body: dict[str, Any] | None = None
    checked: bool = True  # False: information only (a capability link has no authz query)


@dataclass
class Counted:
    route: Route
    totals: list[int] = field(default_factory=list)
    authz: list[int] = field(default_factory=list)
    kinds: Counter[str] = field(default_factory=Counter)
    example: list[str] = field(default_factory=list)


def database_url(stack: Stack) -> str:
    """The embedded PostgreSQL of ``stack`` (its socket directory, from postmaster.pid)."""
    lines = (stack.data_dir / "postgres" / "postmaster.pid").read_text().splitlines()
    socket_dir = lines[4].strip()
    return f"postgresql://postgres@/postgres?host={socket_dir}"


def statement_log(stack: Stack) -> Path:
    return stack.data_dir / "postgres" / "log"


def _log_entries(text: str) -> list[tuple[str, str, str]]:
    """(application, level, message) of each log entry; continuation lines are joined."""
    entries: list[tuple[str, str, str]] = []
    for line in text.splitlines():
        match = _ENTRY.match(line)
        if match:
            entries.append((match.group(2), match.group(3), match.group(4)))
        elif entries:
            app, level, message = entries[-1]
            entries[-1] = (app, level, f"{message}\n{line}")
    return entries


def _statements_between(text: str, start: str, end: str) -> list[str]:
    """The statements others sent between our markers ``start`` and ``end``."""
    inside = False
    found: list[str] = []
    for app, level, message in _log_entries(text):
        if app == APP:
            if start in message:
                inside = True
            elif end in message:
                return found
            continue
        if inside and level == "LOG":
            statement = _STATEMENT.match(message)
            if statement:
                found.append(statement.group(1).strip())
    raise RuntimeError(f"markers {start!r}/{end!r} not found in the statement log")


def _one_line(statement: str, width: int = 110) -> str:
    flat = " ".join(statement.split())
    return flat if len(flat) <= width else flat[: width - 3] + "..."


def _authz_kind(statement: str) -> str:
    """What an authorization statement asks about: 'tracks', or 'playlists+tracks' for one
    query over several types."""
    found = [kind.split()[0] for kind in _AUTHZ_OBJECT.findall(statement)]
    return "+".join(dict.fromkeys(found)) or "?"


def _fresh(stack: Stack, token: str | None) -> httpx.Client:
    """A client that opens a new connection per request: requests spread over the workers."""
    return httpx.Client(
        base_url=stack.url,
        headers={"Authorization": f"Bearer {token}"} if token else {},
        timeout=60.0,
        limits=httpx.Limits(max_keepalive_connections=0),
    )


def _call(client: httpx.Client, route: Route) -> None:
    response = client.request(route.method, route.path, json=route.body)
    if response.status_code != route.status:
        raise RuntimeError(
            f"{route.label}: {response.status_code} (expected {route.status}) {response.text}"
        )


def _setup(stack: Stack, tmp: Path) -> tuple[list[Route], dict[str, str | None]]:
    """Two users, their objects and shares; the routes to count, and each user's token."""
    owner_token, grantee_token = stack.token("bench-authz-owner"), stack.token("bench-authz-in")
    tokens: dict[str, str | None] = {
        "owner": owner_token,
        "grantee": grantee_token,
        "recipient": None,
    }
    owner = api_client(stack, owner_token)
    grantee = api_client(stack, grantee_token)
    grantee_id = expect(grantee.get("/v1/me"), 200)["id"]
    playlist_id, track_ids = playlist_of_tones(owner, tmp, 3, title="Authz playlist")
    track_id = track_ids[0]
    # Not in the playlist, not shared: the grantee may not see it.
    private_id = upload(owner, write_tone_wav(tmp / "private.wav", 99)).track_id
    expect(
        owner.post(
            "/v1/shares",
            json={
                "object_type": "track",
                "object_id": track_id,
                "grantee_user_id": grantee_id,
                "permission": "stream",
            },
        ),
        201,
    )
    playlist_share = expect(
        owner.post(
            "/v1/shares",
            json={
                "object_type": "playlist",
                "object_id": playlist_id,
                "grantee_user_id": grantee_id,
                "permission": "view",
            },
        ),
        201,
    )
    pitch = expect(
        owner.post(
            "/v1/pitches",
            json={
                "playlist_id": playlist_id,
                "title": "Authz pitch",
                "recipients": recipients(2, tag="authz"),
            },
        ),
        201,
    )
    scratch = expect(owner.post("/v1/playlists", json={"title": "Scratch"}), 201)["id"]
    owner.close()
    grantee.close()
    routes = [
        Route("GET /v1/tracks/{id}, owner", "GET", f"/v1/tracks/{track_id}", "owner", 200),
        Route(
            "GET /v1/tracks/{id}, grantee (stream share)",
            "GET",
            f"/v1/tracks/{track_id}",
            "grantee",
            200,
        ),
        Route(
            "GET /v1/tracks/{id}/stream, owner",
            "GET",
            f"/v1/tracks/{track_id}/stream",
            "owner",
            200,
        ),
        Route(
            "GET /v1/tracks/{id}/stream, grantee",
            "GET",
            f"/v1/tracks/{track_id}/stream",
            "grantee",
            200,
        ),
        Route(
            "GET /v1/playlists/{id} (3 tracks), owner",
            "GET",
            f"/v1/playlists/{playlist_id}",
            "owner",
            200,
        ),
        Route(
            "GET /v1/playlists/{id} (3 tracks), grantee (view share)",
            "GET",
            f"/v1/playlists/{playlist_id}",
            "grantee",
            200,
        ),
        Route("GET /v1/pitches/{id}, owner", "GET", f"/v1/pitches/{pitch['id']}", "owner", 200),
        Route(
            "GET /v1/shares/{id}, grantee",
            "GET",
            f"/v1/shares/{playlist_share['id']}",
            "grantee",
            200,
        ),
        Route(
            "GET /v1/tracks/{id}, a stranger's track (404)",
            "GET",
            f"/v1/tracks/{private_id}",
            "grantee",
            404,
        ),
        Route(
            "GET /p/{token}, the recipient (3-track pitch page)",
            "GET",
            urlsplit(pitch["recipients"][0]["link"]).path,
            "recipient",
            200,
            checked=False,
        ),
        # Writes, for comparison: each call adds an entry / creates a pitch.
        Route(
            "POST /v1/playlists/{id}/tracks, owner",
            "POST",
            f"/v1/playlists/{scratch}/tracks",
            "owner",
            201,
            {"track_id": track_id},
        ),
        Route(
            "POST /v1/pitches (3 tracks, 1 recipient), owner",
            "POST",
            "/v1/pitches",
            "owner",
            201,
            {"playlist_id": playlist_id, "title": "Again", "recipients": recipients(1)},
        ),
    ]
    return routes, tokens


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeats", type=int, default=REPEATS, help="measured calls per route")
    parser.add_argument(
        "--show-statements", action="store_true", help="print each route's statements once"
    )
    args = parser.parse_args(argv)
    repeats = min(max(args.repeats, 1), 50)

    with (
        temp_dir() as tmp,
        Stack(env={"MUSICSYNC_SWEEP_SECONDS": "3600"}) as stack,
        psycopg.connect(database_url(stack), autocommit=True, application_name=APP) as marker,
    ):
        routes, tokens = _setup(stack, tmp)
        log("turning on log_statement = 'all' on the stack's PostgreSQL")
        marker.execute("ALTER SYSTEM SET log_statement = 'all'")
        marker.execute(f"ALTER SYSTEM SET log_line_prefix = '{_PREFIX}%p|%a|'")
        marker.execute("SELECT pg_reload_conf()")
        time.sleep(0.5)
        clients = {user: _fresh(stack, token) for user, token in tokens.items()}
        # Idle backends apply the new settings before their next command, so the first round
        # may be partly unlogged; the warm-up rounds also fill each worker's caches.
        for _ in range(WARMUP_ROUNDS):
            for route in routes:
                _call(clients[route.user], route)
        log_file = statement_log(stack)
        counted = [Counted(route) for route in routes]
        for n in range(repeats):
            for i, entry in enumerate(counted):
                start, end = f"msbench:start:{n}:{i}", f"msbench:end:{n}:{i}"
                marker.execute(f"SELECT '{start}'")
                _call(clients[entry.route.user], entry.route)
                marker.execute(f"SELECT '{end}'")
        time.sleep(0.3)  # let the server write its last lines
        text = log_file.read_text(errors="replace")
        for n in range(repeats):
            for i, entry in enumerate(counted):
                statements = _statements_between(
                    text, f"msbench:start:{n}:{i}", f"msbench:end:{n}:{i}"
                )
                authz = [s for s in statements if _AUTHZ.search(s)]
                entry.totals.append(len(statements))
                entry.authz.append(len(authz))
                entry.kinds.update(_authz_kind(s) for s in authz)
                if n == repeats - 1:
                    entry.example = statements
        marker.execute("ALTER SYSTEM RESET log_statement")
        marker.execute("ALTER SYSTEM RESET log_line_prefix")
        marker.execute("SELECT pg_reload_conf()")
        for client in clients.values():
            client.close()

    rows = []
    for entry in counted:
        lo, hi = min(entry.authz), max(entry.authz)
        authz_count = str(lo) if lo == hi else f"{lo}-{hi}"
        tlo, thi = min(entry.totals), max(entry.totals)
        total = str(tlo) if tlo == thi else f"{tlo}-{thi}"
        per_request = {k: v // repeats for k, v in entry.kinds.items()}
        kinds = ", ".join(f"{v} on {k}" for k, v in sorted(per_request.items()))
        rows.append(
            Row(
                entry.route.label,
                f"{total} statements, {authz_count} authz ({kinds})"
                if kinds
                else f"{total} statements, {authz_count} authz",
                "1 authz" if entry.route.checked else "-",
                lo == hi == 1 if entry.route.checked else None,
            )
        )
    print_table(
        f"Database statements per request (PostgreSQL log_statement=all), {repeats} calls "
        f"per route after {WARMUP_ROUNDS} warm-up rounds",
        rows,
    )
    if args.show_statements:
        for entry in counted:
            print(f"-- {entry.route.label}: {len(entry.example)} statements")
            for statement in entry.example:
                mark = "AUTHZ " if _AUTHZ.search(statement) else "      "
                print(f"   {mark}{_one_line(statement)}")
        print(flush=True)
    return exit_code(rows)


if __name__ == "__main__":
    run_main(main)
