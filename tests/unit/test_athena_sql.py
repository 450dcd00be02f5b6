"""The dbt project compiled for the ``aws`` target is SQL that Athena's engine (Trino) accepts.

No AWS here: the project is compiled offline (``dbt compile --no-populate-cache`` with dummy
credentials; var ``compile_offline`` tells the incremental models which way to compile instead
of asking the warehouse), once as a first build and once as an incremental run, and every
compiled model and data test is checked:

- it parses with sqlglot's Trino dialect, errors raised (QUALIFY, for one, does not parse);
- it has no DuckDB-only syntax sqlglot would let through: ``::`` casts, ``GROUP BY ALL``,
  ``SELECT * EXCLUDE/REPLACE``;
- every function it calls is a Trino function (an allowlist from Trino's documentation), so a
  DuckDB function (``epoch_us``, ``json_extract_string``, ``list_value``, ...) fails;
- every type it casts to is a Trino type (not ``string``, ``hugeint``, ...).

A model that DuckDB runs and Athena would refuse fails here: dialect differences belong in the
dispatched macros (``dbt/macros/cross_db``).
"""

from __future__ import annotations

import pytest
import sqlglot
from sqlglot import exp
from sqlglot.dialects.trino import Trino
from sqlglot.errors import ErrorLevel, ParseError
from sqlglot.tokenizer_core import TokenType

from musicsync.analytics import project_dir

pytestmark = [
    pytest.mark.unit,
    # dbt-athena's own macros hold regular expressions Jinja's lexer warns about.
    pytest.mark.filterwarnings("ignore:invalid escape sequence:DeprecationWarning"),
]

# Trino's functions (https://trino.io/docs/current/functions/list.html), those a model could
# reasonably call; add one here only after checking Trino has it.
TRINO_FUNCTIONS = frozenset(
    """
    abs acos all_match any_match approx_distinct approx_most_frequent approx_percentile
    approx_set arbitrary array_agg array_distinct array_except array_intersect array_join
    array_max array_min array_position array_remove array_sort array_union arrays_overlap asin
    at_timezone atan atan2 avg bitwise_and bitwise_and_agg bitwise_or bitwise_or_agg bool_and
    bool_or cardinality cast cbrt ceil ceiling checksum chr codepoint coalesce combinations
    concat concat_ws contains contains_sequence corr cos cosh count count_if covar_pop
    covar_samp cume_dist date date_add date_diff date_format date_parse date_trunc day
    day_of_month day_of_week day_of_year degrees dense_rank e element_at every exp extract
    filter first_value flatten floor format format_datetime format_number from_base from_hex
    from_iso8601_date from_iso8601_timestamp from_unixtime from_utf8 geometric_mean greatest
    grouping hamming_distance histogram hour human_readable_seconds if is_finite is_infinite
    is_nan json_array_contains json_array_get json_array_length json_extract
    json_extract_scalar json_format json_parse json_query json_size json_value kurtosis lag
    last_day_of_month last_value lead least length levenshtein_distance listagg ln log log10
    log2 lower lpad ltrim map map_agg map_concat map_entries map_filter map_keys map_values max
    max_by md5 merge millisecond min min_by minute mod month multimap_agg nan none_match
    normalize now nth_value ntile nullif parse_datetime parse_duration percent_rank pi position
    pow power quarter radians rand random rank reduce regexp_count regexp_extract
    regexp_extract_all regexp_like regexp_position regexp_replace regexp_split regr_intercept
    regr_slope repeat replace reverse round row row_number rpad rtrim second sequence sha1
    sha256 sha512 shuffle sign sin skewness slice split split_part split_to_map sqrt
    starts_with stddev stddev_pop stddev_samp strpos substr substring sum tan tanh
    timezone_hour timezone_minute to_base to_hex to_iso8601 to_milliseconds to_unixtime to_utf8
    transform transform_keys transform_values translate trim trim_array truncate try try_cast
    typeof unnest upper url_decode url_encode url_extract_host url_extract_parameter
    url_extract_path uuid var_pop var_samp variance week week_of_year width_bucket
    with_timezone word_stem year year_of_week yow zip zip_with
    """.split()  # noqa: SIM905 - a list of words, read as one
)
# Words a parenthesis follows that are no function calls.
_NOT_CALLS = frozenset(
    """
    all and any as between by case cube distinct else end except exists filter from grouping in
    intersect interval is join lateral like not on or over partition rollup select sets some
    table then union using values when where window with within
    """.split()  # noqa: SIM905 - a list of words, read as one
)
# Types Trino knows (sqlglot's names for them after parsing Trino SQL).
_TRINO_TYPES = frozenset(
    {
        exp.DataType.Type.ARRAY,
        exp.DataType.Type.BIGINT,
        exp.DataType.Type.BOOLEAN,
        exp.DataType.Type.CHAR,
        exp.DataType.Type.DATE,
        exp.DataType.Type.DECIMAL,
        exp.DataType.Type.DOUBLE,
        exp.DataType.Type.FLOAT,
        exp.DataType.Type.INT,
        exp.DataType.Type.INTERVAL,
        exp.DataType.Type.JSON,
        exp.DataType.Type.MAP,
        exp.DataType.Type.SMALLINT,
        exp.DataType.Type.STRUCT,
        exp.DataType.Type.TIME,
        exp.DataType.Type.TIMESTAMP,
        exp.DataType.Type.TIMESTAMPTZ,
        exp.DataType.Type.TINYINT,
        exp.DataType.Type.UUID,
        exp.DataType.Type.VARBINARY,
        exp.DataType.Type.VARCHAR,
    }
)
_TRINO = Trino()
_QUOTED = frozenset({TokenType.IDENTIFIER, TokenType.STRING})


def athena_problems(sql: str) -> list[str]:
    """Why Athena (Trino) would refuse ``sql``; empty when it would accept it."""
    words = [t for t in _TRINO.tokenize(sql) if t.token_type not in _QUOTED]
    if any(t.text.lower() == "qualify" for t in words):
        return ["QUALIFY (Athena has none: filter a row_number() subquery)"]
    try:
        tree = sqlglot.parse_one(sql, read="trino", error_level=ErrorLevel.RAISE)
    except ParseError as error:
        return [f"not Trino SQL: {str(error).splitlines()[0]}"]
    problems = []
    for group in tree.find_all(exp.Group):
        if group.args.get("all"):
            problems.append("GROUP BY ALL (name the columns)")
    for star in tree.find_all(exp.Star):
        if any(v for k, v in star.args.items() if k.rstrip("_") in ("except", "replace", "rename")):
            problems.append("SELECT * EXCLUDE/REPLACE (DuckDB only: list the columns)")
    for data_type in tree.find_all(exp.DataType):
        if data_type.this not in _TRINO_TYPES:
            problems.append(f"type {data_type.sql('duckdb')} (not a Trino type)")
    tokens = _TRINO.tokenize(sql)
    for index, token in enumerate(tokens):
        if token.token_type == TokenType.DCOLON:
            problems.append(":: cast (write cast(x as type))")
        following = tokens[index + 1] if index + 1 < len(tokens) else None
        if following is None or following.token_type != TokenType.L_PAREN:
            continue
        previous = tokens[index - 1] if index else None
        name = token.text.lower()
        if (
            token.token_type in (TokenType.IDENTIFIER, TokenType.STRING)  # quoted names
            or not name.isidentifier()
            or name in _NOT_CALLS
            or (previous is not None and previous.token_type == TokenType.ALIAS)  # t (a, b)
        ):
            continue
        if name not in TRINO_FUNCTIONS:
            problems.append(f"{name}() is not a Trino function")
    return problems


# -- the checker itself -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("sql", "problem"),
    [
        ("select a from t qualify row_number() over (partition by a order by b) = 1", "QUALIFY"),
        ("select epoch_us(occurred_at) from t", "epoch_us()"),
        ("select json_extract_string(properties, '$.query') from t", "json_extract_string()"),
        ("select list_value(1, 2) from t", "list_value()"),
        ("select array_to_string(artists, ', ') from t", "array_to_string()"),
        ("select timezone('UTC', occurred_at) from t", "timezone()"),
        ("select x::bigint from t", ":: cast"),
        ("select cast(x as string) from t", "type"),
        ("select cast(x as hugeint) from t", "type"),
        ("select a, count(*) from t group by all", "GROUP BY ALL"),
        ("select * exclude (a) from t", "EXCLUDE"),
    ],
)
def test_duckdb_only_sql_is_caught(sql: str, problem: str) -> None:
    found = athena_problems(sql)
    assert any(problem in p for p in found), found


def test_trino_sql_passes() -> None:
    sql = """
        with spine as (
            select date_day
            from unnest(sequence(date '2025-03-01', date '2025-03-07', interval '1' day))
                as spine (date_day)
        )
        select
            date_add('day', -6, date_day) as week_ago,
            date_diff('millisecond', timestamp '2025-03-01', cast(date_day as timestamp)) / 1e3,
            json_extract_scalar('{"a": 1}', '$.a'),
            regexp_replace(lower(trim(' A  b ')), '\\s+', ' '),
            array_join(array['a', 'b'], ', '),
            cardinality(array['a']),
            try_cast('1' as bigint),
            row_number() over (partition by date_day order by date_day desc) as n,
            count(distinct date_day)
        from spine
        where true
        group by date_day
    """
    assert athena_problems(sql) == []


# -- the project ---------------------------------------------------------------------------------
@pytest.fixture(scope="module", params=["full", "incremental"])
def compiled(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    """Every model and data test compiled for the aws target, by path: as a first build or as
    an incremental run."""
    from dbt.cli.main import dbtRunner

    mode: str = request.param
    target = tmp_path_factory.mktemp(f"athena-{mode}")
    project = project_dir()
    args = [
        "compile",
        "--project-dir", str(project),
        "--profiles-dir", str(project),
        "--target", "aws",
        "--target-path", str(target / "target"),
        "--log-path", str(target / "logs"),
        "--no-populate-cache",
        "--exclude", "resource_type:unit_test",  # unit tests run on DuckDB only
        "--vars", f"{{compile_offline: {mode}}}",
        "--log-level", "none",
        "--no-send-anonymous-usage-stats",
        "--no-version-check",
    ]  # fmt: skip
    environment = {
        "MUSICSYNC_DBT_TARGET": "aws",
        "MUSICSYNC_ATHENA_S3_STAGING_DIR": "s3://athena-results.invalid/staging/",
        "MUSICSYNC_WAREHOUSE": str(target / "unused.duckdb"),
        "MUSICSYNC_LAKE_DIR": str(target / "lake"),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "DO_NOT_TRACK": "1",
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, value in environment.items():
            patch.setenv(name, value)
        result = dbtRunner().invoke(args)
    assert result.success, f"dbt compile for aws failed: {result.exception}"
    root = target / "target" / "compiled" / "musicsync"
    sql = {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*.sql"))}
    assert sql, "nothing was compiled"
    return sql


def test_every_model_compiles_for_athena(compiled: dict[str, str]) -> None:
    models = {p for p in compiled if p.startswith("models/") and ".yml/" not in p}
    expected = {
        p.relative_to(project_dir()).as_posix() for p in project_dir().glob("models/**/*.sql")
    }
    assert models == expected


def test_every_compiled_model_and_test_is_athena_sql(compiled: dict[str, str]) -> None:
    refused = {path: athena_problems(sql) for path, sql in compiled.items()}
    refused = {path: problems for path, problems in refused.items() if problems}
    assert not refused, "\n".join(f"{path}: {'; '.join(p)}" for path, p in refused.items())
