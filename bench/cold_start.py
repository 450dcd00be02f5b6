"""Cold start: importing a Lambda handler costs at most 1.5x its framework's own import time.

Run from the repository root: ``.venv/bin/python -m bench.cold_start``.

Part 1 (the target). Each handler module of ``services.gateway.routes.SERVICE_MODULES`` and the
baseline (``aws_lambda_powertools.event_handler``, ``pydantic`` and ``psycopg``, imported in one
statement) is imported in a fresh interpreter, timed with ``time.perf_counter()`` around the
import statement alone (interpreter start-up excluded). Runs are interleaved (baseline, handler,
baseline, ...) after one unmeasured warm-up run of each (bytecode cache, page cache); the median
and p90 of each are reported, and the ratio of medians is judged against 1.5.

Part 2 (information, no target). The first invocation as a new Lambda container pays it: in a
fresh interpreter, import the handler, build the dependencies (settings, connection pool, token
verifier) against a real, migrated embedded PostgreSQL, and handle one ``GET /v1/me`` API Gateway
v2 event; a second event shows the warm cost for comparison.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import uuid
from dataclasses import dataclass

from bench._support import (
    PYTHON,
    ROOT,
    OtherCpu,
    Row,
    child_env,
    exit_code,
    fmt_ms,
    log,
    median,
    percentile,
    print_table,
    run_main,
    temp_dir,
)

TARGET_RATIO = 1.5
BASELINE = "aws_lambda_powertools.event_handler, pydantic, psycopg"

_TIMED_IMPORT = """\
import time
_t0 = time.perf_counter()
import {modules}
print(time.perf_counter() - _t0)
"""

# The first invocation, as a new Lambda container runs it. The event is read before the clock
# starts; everything the handler, the dependencies and the first request need is inside it.
_FIRST_INVOCATION = """\
import json, sys, time
with open(sys.argv[1]) as f:
    event = json.load(f)

class Context:
    function_name = "musicsync-bench"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:local:000000000000:function:musicsync-bench"
    memory_limit_in_mb = 1024

    def __init__(self, request_id):
        self.aws_request_id = request_id

    def get_remaining_time_in_millis(self):
        return 30_000

t0 = time.perf_counter()
import {module} as handler
t1 = time.perf_counter()
from services.core.wiring import dependencies
deps = dependencies()
t2 = time.perf_counter()
first = handler.lambda_handler(event, Context("first"))
t3 = time.perf_counter()
second = handler.lambda_handler(event, Context("second"))
t4 = time.perf_counter()
deps.close()
print(json.dumps({{
    "import": t1 - t0, "dependencies": t2 - t1, "first_event": t3 - t2, "second_event": t4 - t3,
    "status": first["statusCode"], "status2": second["statusCode"], "body": first.get("body"),
}}))
"""


def _run(code: str, *args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [PYTHON, "-c", code, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env or child_env(),
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"child failed ({done.returncode}):\n{done.stderr}")
    return done.stdout.strip().splitlines()[-1]


def timed_import(modules: str) -> float:
    return float(_run(_TIMED_IMPORT.format(modules=modules)))


@dataclass(frozen=True)
class Stats:
    median: float
    p90: float
    low: float
    high: float

    @classmethod
    def of(cls, values: list[float]) -> Stats:
        ordered = sorted(values)
        return cls(median(ordered), percentile(ordered, 90), ordered[0], ordered[-1])


def added_imports(module: str, top: int = 12) -> tuple[float, list[tuple[str, float, float]]]:
    """What importing ``module`` costs on top of the baseline, by module (``-X importtime``).

    The baseline is imported first; only the imports after it are counted. Returns the total
    self time and the ``top`` modules as (name, self seconds, cumulative seconds).
    """
    code = f"import {BASELINE}\nimport sys\nsys.stderr.write('--mark--\\n')\nimport {module}\n"
    done = subprocess.run(
        [PYTHON, "-X", "importtime", "-c", code],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=child_env(),
        timeout=120,
        check=True,
    )
    lines = done.stderr.split("--mark--", 1)[-1].splitlines()
    found: list[tuple[str, float, float]] = []
    for line in lines:
        if not line.startswith("import time:"):
            continue
        parts = line.removeprefix("import time:").split("|")
        try:
            self_us, cumulative_us = float(parts[0]), float(parts[1])
        except ValueError:
            continue  # the header line
        found.append((parts[2].strip(), self_us / 1e6, cumulative_us / 1e6))
    total = sum(self_s for _, self_s, _ in found)
    return total, sorted(found, key=lambda item: -item[1])[:top]


def measure_imports(modules: tuple[str, ...], runs: int) -> list[Row]:
    log(f"warm-up imports: {BASELINE}; {', '.join(modules)}")
    timed_import(BASELINE)
    for module in modules:
        timed_import(module)
    samples: dict[str, list[float]] = {name: [] for name in (BASELINE, *modules)}
    log(f"{runs} interleaved runs of each, each in a fresh interpreter")
    with OtherCpu() as other:
        for _ in range(runs):
            for name in samples:
                samples[name].append(timed_import(name))
    base = Stats.of(samples[BASELINE])
    rows = [
        Row(
            f"import {BASELINE}: median / p90",
            f"{fmt_ms(base.median)} / {fmt_ms(base.p90)}",
        )
    ]
    for module in modules:
        stats = Stats.of(samples[module])
        ratio = stats.median / base.median
        rows.append(
            Row(f"import {module}: median / p90", f"{fmt_ms(stats.median)} / {fmt_ms(stats.p90)}")
        )
        rows.append(
            Row(
                f"ratio of medians {module} / baseline",
                f"{ratio:.2f}x",
                f"<= {TARGET_RATIO}x",
                ratio <= TARGET_RATIO,
            )
        )
    rows.append(Row("runs per import (after 1 warm-up)", str(runs)))
    rows.append(other.row())
    return rows


def measure_first_invocation(module: str, runs: int) -> list[Row]:
    from musicsync.apigw import request_event
    from musicsync.devidp import DevIdentityProvider
    from musicsync.runtime import start_servers
    from services.core import migrate
    from services.core.clock import SystemClock

    with temp_dir() as tmp:
        log("starting embedded PostgreSQL and applying migrations")
        servers = start_servers(tmp / "data", database_url=None, redis_url=None, with_redis=False)
        try:
            migrate.upgrade(servers.database_url)
            idp = DevIdentityProvider(tmp / "data", SystemClock())
            issuers = json.dumps([idp.trusted_issuer().model_dump(mode="json")])
            token = idp.mint("bench-cold-start")
            event = request_event(
                method="GET",
                path="/v1/me",
                raw_query="",
                headers=[
                    ("host", "api.example.com"),
                    ("authorization", f"Bearer {token}"),
                    ("accept", "application/json"),
                    ("user-agent", "musicsync-bench"),
                ],
                body=b"",
                source_ip="127.0.0.1",
                request_id=str(uuid.uuid4()),
                host="api.example.com",
            )
            event_file = tmp / "event.json"
            event_file.write_text(json.dumps(event))
            env = child_env(
                MUSICSYNC_DATA_DIR=str(tmp / "data"),
                DATABASE_URL=servers.database_url,
                MUSICSYNC_TRUSTED_ISSUERS=issuers,
            )
            code = _FIRST_INVOCATION.format(module=module)
            # One unmeasured run: it provisions the user, as an earlier container would have.
            log(f"first invocation of {module}: 1 unmeasured + {runs} measured fresh interpreters")
            results = []
            for n in range(runs + 1):
                result = json.loads(_run(code, str(event_file), env=env))
                if result["status"] != 200 or result["status2"] != 200:
                    raise RuntimeError(f"GET /v1/me failed: {result}")
                if n:
                    results.append(result)
        finally:
            servers.stop()

    def stat(key: str) -> Stats:
        return Stats.of([float(r[key]) for r in results])

    total = Stats.of([float(r["import"] + r["dependencies"] + r["first_event"]) for r in results])
    rows = []
    for key, label in (
        ("import", "import the handler"),
        ("dependencies", "build dependencies (settings, pool, verifier)"),
        ("first_event", "first GET /v1/me event"),
    ):
        s = stat(key)
        rows.append(Row(f"  {label}: median (min-max)", _spread(s)))
    rows.insert(0, Row("first invocation total: median (min-max)", _spread(total)))
    second = stat("second_event")
    rows.append(Row("  for comparison, the second event: median", fmt_ms(second.median)))
    rows.append(Row("runs (fresh interpreters, after 1 unmeasured)", str(runs)))
    return rows


def _spread(s: Stats) -> str:
    return f"{fmt_ms(s.median)} ({s.low * 1000:.0f}-{s.high * 1000:.0f} ms)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Cold start of the Lambda handlers.")
    parser.add_argument("--runs", type=int, default=20, help="measured imports of each (15-100)")
    parser.add_argument(
        "--invocations", type=int, default=7, help="measured first invocations (1-30)"
    )
    args = parser.parse_args(argv)
    runs = min(max(args.runs, 15), 100)
    invocations = min(max(args.invocations, 1), 30)

    from services.gateway.routes import SERVICE_MODULES

    import_rows = measure_imports(SERVICE_MODULES, runs)
    print_table("Cold start: import time in a fresh interpreter (target)", import_rows)
    for module in SERVICE_MODULES:
        total, largest = added_imports(module)
        print(
            f"`import {module}` after the baseline: {total * 1000:.0f} ms of imports "
            "(one `python -X importtime` run, which inflates times; largest by self time):"
        )
        print(f"  {'self':>8}  {'cumul.':>8}  module")
        for name, self_s, cumulative_s in largest:
            print(f"  {self_s * 1000:6.1f}ms  {cumulative_s * 1000:6.1f}ms  {name}")
        print(flush=True)

    first_rows: list[Row] = []
    for module in SERVICE_MODULES:
        first_rows += measure_first_invocation(module, invocations)
    print_table(
        "Cold start: first invocation (import + dependencies + one GET /v1/me), information",
        first_rows,
    )
    return exit_code(import_rows)


if __name__ == "__main__":
    run_main(main)
