"""The pitch engagement report and the dashboard, written from a small DuckDB warehouse holding
the marts' tables (``tests.support.warehouse``: no dbt, no lake).

The summary sentences are checked word for word against the figures the fixture was made with
(its docstring tabulates the "Summer campaign picks" pitch recipient by recipient).
"""

from __future__ import annotations

import json
import re
import shutil
import uuid
from html.parser import HTMLParser
from pathlib import Path

import duckdb
import pytest
import yaml  # type: ignore[import-untyped]

from dashboards.charts import WarehouseError, WarehouseNotBuiltError, distinct, short_id
from dashboards.report import PitchNotFoundError, write_pitch_report
from dashboards.site import write_dashboard
from tests.support.stack import StackHarness
from tests.support.warehouse import (
    AUTUMN,
    GAME_JAM,
    MARTS,
    PITCHES,
    SUMMER,
    TRACKS,
    UNKNOWN_PITCH,
    build_warehouse,
    mart_rows,
)

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
MARTS_DIR = REPO / "dbt" / "models" / "marts"
DASHBOARD_CHARTS = (
    "chart-activity",
    "chart-retention",
    "chart-top-tracks",
    "chart-track-trend",
    "chart-top-queries",
    "chart-zero-results",
    "chart-uploads",
    "chart-storage",
    "chart-formats",
    "chart-pitch-funnel",
    "chart-pitch-conversion",
)
SECTIONS = ("activity", "retention", "tracks", "search", "catalogue", "pitches")


# -- reading the pages ----------------------------------------------------------------------------
class Page(HTMLParser):
    """The parts of a page the tests look at: every tag's attributes, the text of elements by
    id, list items and table rows."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.ids: set[str] = set()
        self.items: dict[str, list[str]] = {}  # ul class -> li texts
        self.tables: dict[str, list[list[str]]] = {}  # table id or caption -> body rows
        self.texts: list[str] = []
        self._ul: str | None = None
        self._li: list[str] | None = None
        self._table: list[list[str]] | None = None
        self._table_key: str | None = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self._caption: list[str] | None = None
        self._in_body = False
        self._in_script = False
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        self.tags.append((tag, named))
        if named.get("id"):
            self.ids.add(str(named["id"]))
        if tag == "script":
            self._in_script = True
        elif tag == "ul":
            self._ul = named.get("class")
        elif tag == "li":
            self._li = []
        elif tag == "table":
            self._table, self._table_key = [], named.get("id")
        elif tag == "caption":
            self._caption = []
        elif tag == "tbody":
            self._in_body = True
        elif tag == "tr" and self._in_body:
            self._row = []
        elif tag == "td" and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False
        elif tag == "li" and self._li is not None and self._ul:
            self.items.setdefault(self._ul, []).append(" ".join("".join(self._li).split()))
            self._li = None
        elif tag == "caption" and self._caption is not None:
            self._table_key = self._table_key or "".join(self._caption).strip()
            self._caption = None
        elif tag == "td" and self._cell is not None and self._row is not None:
            self._row.append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None and self._table is not None:
            self._table.append(self._row)
            self._row = None
        elif tag == "tbody":
            self._in_body = False
        elif tag == "table" and self._table is not None:
            self.tables[self._table_key or f"table-{len(self.tables)}"] = self._table
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._in_script:
            return
        self.texts.append(data)
        for part in (self._li, self._cell, self._caption):
            if part is not None:
                part.append(data)

    @property
    def text(self) -> str:
        return " ".join(" ".join(self.texts).split())


def assert_self_contained(text: str) -> None:
    """No script, style sheet, font or image from anywhere but the page itself."""
    page = Page(text)
    for tag, attrs in page.tags:
        for name in ("src", "href", "srcset", "data", "action"):
            value = (attrs.get(name) or "").strip().lower()
            assert not value.startswith(("http://", "https://", "//")), (tag, name, value)
        if tag == "script":
            assert "src" not in attrs, f"an external script: {attrs}"
        if tag == "link":
            assert attrs.get("rel") == "icon" and (attrs.get("href") or "").startswith("data:")
        assert tag not in ("iframe", "img", "object", "embed"), tag
    styles = "".join(re.findall(r"<style>(.*?)</style>", text, flags=re.S))
    assert "@import" not in styles and "url(" not in styles


def plotly_copies(text: str) -> int:
    from plotly.offline import get_plotlyjs  # type: ignore[import-untyped]

    return text.count(get_plotlyjs()[:300])


# -- fixtures -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_warehouse(tmp_path_factory.mktemp("warehouse") / "warehouse.duckdb")


@pytest.fixture(scope="module")
def summer(warehouse: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("report") / "summer.html"
    written = write_pitch_report(warehouse, SUMMER, out)
    return written, written.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def dashboard(warehouse: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    written = write_dashboard(warehouse, tmp_path_factory.mktemp("site") / "dashboard")
    return written, written.read_text(encoding="utf-8")


def recipient_id(pitch: uuid.UUID, key: str) -> str:
    found = next(p for p in PITCHES if p.id == pitch)
    return next(r for r in found.recipients if r.key == key).id(found)


# -- the fixture stays what the marts are ---------------------------------------------------------
def test_fixture_marts_have_the_columns_the_marts_yaml_declares() -> None:
    declared: dict[str, list[str]] = {}
    for path in sorted(MARTS_DIR.rglob("*.yml")):
        for model in yaml.safe_load(path.read_text(encoding="utf-8")).get("models", []):
            declared[model["name"]] = [c["name"] for c in model.get("columns", [])]
    assert declared, f"no mart YAML under {MARTS_DIR}"
    fixture = {table: [name for name, _ in columns] for table, columns in MARTS.items()}
    assert sorted(fixture) == sorted(declared), "the marts and the fixture's tables differ"
    for mart, columns in declared.items():
        assert sorted(fixture[mart]) == sorted(columns), (
            f"{mart}: only in the YAML {sorted(set(columns) - set(fixture[mart]))}, "
            f"only in tests/support/warehouse.py {sorted(set(fixture[mart]) - set(columns))}"
        )


def test_fixture_warehouse_tables_are_the_declared_ones(warehouse: Path) -> None:
    with duckdb.connect(str(warehouse), read_only=True) as connection:
        for table, columns in MARTS.items():
            got = connection.execute(
                "select column_name, data_type from information_schema.columns"
                " where table_schema = 'main' and table_name = ? order by ordinal_position",
                [table],
            ).fetchall()
            assert got == list(columns), table
            (rows,) = connection.execute(f'select count(*) from "{table}"').fetchone() or (0,)
            assert rows > 0, table


# -- the pitch report -----------------------------------------------------------------------------
def test_report_is_one_self_contained_file(summer: tuple[Path, str]) -> None:
    path, text = summer
    assert path.name == "summer.html" and path.is_file()
    assert [p.name for p in path.parent.iterdir()] == ["summer.html"]  # nothing beside it
    assert_self_contained(text)
    assert plotly_copies(text) == 1
    assert text.count("Plotly.newPlot(") == 2


def test_report_has_the_funnel_and_the_heat_map(summer: tuple[Path, str]) -> None:
    _, text = summer
    page = Page(text)
    assert {"funnel", "heatmap", "summary", "recipient-table", "conversion"} <= page.ids
    assert '"type":"funnel"' in text and '"type":"heatmap"' in text


def test_report_states_the_pitch_facts(summer: tuple[Path, str]) -> None:
    page = Page(summer[1])
    assert "<title>Summer campaign picks: pitch engagement · musicsync</title>" in summer[1]
    for fact in (
        "Sent 3 March 2025",
        "Recipients 8",
        "Tracks 3",
        "Median time to open 23 h 30 min",
        "Listening 15 min 25 s",
        f"Pitch id {SUMMER}",
    ):
        assert fact in page.text, fact


SUMMARIES = {
    SUMMER: [
        "'Summer campaign picks' was sent to 8 recipients on 3 March 2025.",
        "5 of 8 recipients opened the pitch, 4 of them within 2 days.",
        "4 played at least one track, 2 downloaded one and 2 shortlisted one.",
        "'Harbour Lights' was played by 4, downloaded by 2 and shortlisted by 2.",
        "Nobody downloaded 'Midnight Run' or 'Paper Boats'.",
        "Recipients listened for 15 min 25 s in total; 2 plays were skipped in the first 30 "
        "seconds.",
        "2 comments were left.",
    ],
    AUTUMN: [
        "'Autumn trailer cues' was sent to 4 recipients on 17 March 2025.",
        "3 of 4 recipients opened the pitch within 2 days.",
        "2 played at least one track, 1 downloaded one and 1 shortlisted one.",
        "'Glass Garden' was played by 1, downloaded by 1 and shortlisted by 1.",
        "Nobody downloaded 'Paper Boats'.",
        "Recipients listened for 7 min 12 s in total; 1 play was skipped in the first 30 seconds.",
    ],
    GAME_JAM: [
        "'Game jam shortlist' was sent to 2 recipients on 24 March 2025; 1 more has not been "
        "sent the link yet.",
        "Nobody has opened it yet.",
    ],
}


@pytest.mark.parametrize("pitch", list(SUMMARIES), ids=["summer", "autumn", "game-jam"])
def test_report_summary_reflects_the_figures(
    warehouse: Path, tmp_path: Path, pitch: uuid.UUID
) -> None:
    text = write_pitch_report(warehouse, pitch, tmp_path / "report.html").read_text()
    assert Page(text).items["summary"] == SUMMARIES[pitch]


def test_report_funnel_counts_and_conversion(summer: tuple[Path, str]) -> None:
    # The funnel mart's steps: r2 shortlisted without downloading, so stops at "played".
    assert Page(summer[1]).tables["conversion"] == [
        ["Sent", "8", "100%", "—"],
        ["Opened", "5", "63%", "63%"],
        ["Played", "4", "50%", "80%"],
        ["Downloaded", "2", "25%", "50%"],
        ["Shortlisted", "1", "13%", "50%"],
    ]
    for text in ("8 (100% of sent)", "5 (63% of sent)", "1 (13% of sent)"):
        assert f'"{text}"' in summer[1]  # the funnel chart's labels


def test_report_recipient_table(summer: tuple[Path, str]) -> None:
    rows = Page(summer[1]).tables["recipient-table"]
    kite = f"Kite Games ({short_id(recipient_id(SUMMER, 'r3'))})"
    kite_unopened = f"Kite Games ({short_id(recipient_id(SUMMER, 'r6'))})"
    nameless = f"Recipient {short_id(recipient_id(SUMMER, 'r7'))}"
    sent = "3 Mar 2025, 09:00"
    # recipient | reached | sent | opened | plays | listened | downloads | shortlisted | comments
    assert [" | ".join(row) for row in rows] == [
        f"Northlight Films | Shortlisted | {sent} | 3 Mar 2025, 10:00 | 2 | 3 min 40 s | 1 | 1 | 1",
        f"Harbour TV | Downloaded | {sent} | 4 Mar 2025, 08:30 | 1 | 15 s | 1 | 0 | 0",
        f"Bluebird Ads | Played | {sent} | 3 Mar 2025, 14:00 | 3 | 6 min 50 s | 0 | 1 | 0",
        f"{kite} | Played | {sent} | 4 Mar 2025, 12:00 | 2 | 4 min 40 s | 0 | 0 | 1",
        f"Oakline Studio | Opened | {sent} | 7 Mar 2025, 16:00 | 0 | 0 s | 0 | 0 | 0",
        f"{kite_unopened} | Sent | {sent} | Not opened | 0 | 0 s | 0 | 0 | 0",
        f"{nameless} | Sent | {sent} | Not opened | 0 | 0 s | 0 | 0 | 0",
        f"Sable & Co | Sent | {sent} | Not opened | 0 | 0 s | 0 | 0 | 0",
    ]
    assert "Sable &amp; Co" in summer[1]


def test_report_heat_map_marks_downloads_and_shortlists(summer: tuple[Path, str]) -> None:
    text = summer[1]
    match = re.search(r'Plotly\.newPlot\(\s*"heatmap",\s*(\[.*?\]),\s*\{', text, flags=re.S)
    assert match, "no heat map"
    (trace,) = json.loads(match.group(1))
    assert trace["y"] == [TRACKS[k].title for k in ("hl", "mr", "pb")]
    assert trace["x"][:3] == ["Northlight Films", "Harbour TV", "Bluebird Ads"]
    assert len(set(trace["x"])) == len(trace["x"]) == 8  # a category axis merges equal labels
    harbour = trace["text"][0]
    assert harbour[:4] == ["100% ↓ ★", "8% ↓", "100% ★", "50%"]
    assert trace["z"][0][:4] == [100.0, 7.5, 100.0, 50.0]
    assert trace["text"][1][0] == "11%"  # Midnight Run, skipped after 20 s of 180
    assert trace["text"][2] == ["", "", "100%", "", "", "", "", ""]


def test_report_escapes_text_from_the_data(warehouse: Path, tmp_path: Path) -> None:
    hostile = tmp_path / "hostile.duckdb"
    shutil.copy(warehouse, hostile)
    with duckdb.connect(str(hostile)) as connection:
        connection.execute(
            "update fct_pitch_engagement set track_title = '</script><script>alert(1)</script>'"
            " where track_id = ?",
            [TRACKS["mr"].id],
        )
        for table in ("fct_pitch_engagement", "fct_pitch_funnel"):
            connection.execute(
                f"update {table} set recipient_company = '<b onmouseover=alert(2)>Evil</b>'"
                " where recipient_id = ?",
                [recipient_id(SUMMER, "r5")],
            )
    text = write_pitch_report(hostile, SUMMER, tmp_path / "r.html").read_text()
    assert "<script>alert(1)" not in text and "<b onmouseover" not in text
    assert "&lt;b onmouseover=alert(2)&gt;Evil&lt;/b&gt;" in text  # the table, as typed
    summary = Page(text).items["summary"]
    assert "Nobody downloaded '</script><script>alert(1)</script>' or 'Paper Boats'." in summary
    assert_self_contained(text)


def test_report_into_a_directory_is_named_after_the_pitch(warehouse: Path, tmp_path: Path) -> None:
    written = write_pitch_report(warehouse, AUTUMN, tmp_path)
    assert written == tmp_path / f"pitch-{AUTUMN}.html" and written.is_file()


def test_unknown_pitch_is_a_clear_error(warehouse: Path, tmp_path: Path) -> None:
    out = tmp_path / "nope.html"
    with pytest.raises(PitchNotFoundError) as raised:
        write_pitch_report(warehouse, UNKNOWN_PITCH, out)
    assert isinstance(raised.value, ValueError)
    message = str(raised.value)
    assert str(UNKNOWN_PITCH) in message and "3 other pitches" in message
    assert "musicsync analytics build" in message
    assert not out.exists()


def test_unknown_pitch_in_empty_marts_says_to_build(tmp_path: Path) -> None:
    empty = build_warehouse(tmp_path / "empty.duckdb", empty=True)
    with pytest.raises(PitchNotFoundError, match="marts are empty") as raised:
        write_pitch_report(empty, SUMMER, tmp_path / "r.html")
    assert str(SUMMER) in str(raised.value)
    assert "Run `musicsync analytics build`" in str(raised.value)


def test_no_warehouse_says_to_build(tmp_path: Path) -> None:
    missing = tmp_path / "analytics" / "warehouse.duckdb"
    with pytest.raises(WarehouseNotBuiltError, match="musicsync analytics build"):
        write_pitch_report(missing, SUMMER, tmp_path / "r.html")
    with pytest.raises(WarehouseNotBuiltError):
        write_dashboard(missing, tmp_path / "site")
    assert not (tmp_path / "site").exists()


def test_a_damaged_warehouse_is_a_clear_error(tmp_path: Path) -> None:
    damaged = tmp_path / "warehouse.duckdb"
    damaged.write_bytes(b"not a database" * 100)
    with pytest.raises(WarehouseError, match="cannot be opened"):
        write_dashboard(damaged, tmp_path / "site")


# -- the dashboard --------------------------------------------------------------------------------
def test_dashboard_is_a_self_contained_page(dashboard: tuple[Path, str]) -> None:
    path, text = dashboard
    assert path.name == "index.html"
    assert sorted(p.name for p in path.parent.iterdir()) == ["index.html"]
    assert_self_contained(text)
    assert plotly_copies(text) == 1
    page = Page(text)
    assert set(SECTIONS) <= page.ids
    assert set(DASHBOARD_CHARTS) <= page.ids
    assert text.count("Plotly.newPlot(") == len(DASHBOARD_CHARTS)
    assert "No data yet" not in page.text


def test_dashboard_states_the_fixture_figures(dashboard: tuple[Path, str]) -> None:
    page = Page(dashboard[1])
    rows = mart_rows()
    latest = max(rows["mart_user_activity_daily"], key=lambda r: r["dt"])
    assert "Data as of 30 March 2025 (the latest day with events in the warehouse)." in page.text
    assert f"DAU on 30 Mar 2025 {latest['dau']}" in page.text
    assert f"WAU (7 days) {latest['wau']}" in page.text
    assert f"MAU (28 days) {latest['mau']}" in page.text
    # pitch | first sent | recipients | opened | played | downloaded | shortlisted | to open
    assert [" | ".join(row) for row in page.tables["Pitches, latest first"]] == [
        "Game jam shortlist | 24 Mar 2025 | 2 of 3 | 0 (0%) | 0 (0%) | 0 (0%) | 0 (0%) | —",
        "Autumn trailer cues | 17 Mar 2025 | 4 | 3 (75%) | 2 (50%) | 1 (25%) | 1 (25%) | 3.0 h",
        "Summer campaign picks | 3 Mar 2025 | 8 | 5 (63%) | 4 (50%) | 2 (25%) | 1 (13%) | 23.5 h",
    ]
    assert "Recipients sent a link 14" in page.text
    misses = page.tables["Queries that most often find nothing, last 28 days"]
    assert {row[0] for row in misses[:2]} == {"ambeint pinao", "xylophnoe"}
    assert all(row[3] == "100%" for row in misses[:2])
    top = page.tables["Top tracks, last 28 days"]
    assert len(top) == len(TRACKS) and {r[0] for r in top} == {t.title for t in TRACKS.values()}
    stored = {}
    for row in rows["mart_catalog_growth"]:  # the latest figures of each format
        stored[(row["container"], row["codec"])] = row["tracks_stored"]
    assert f"Tracks stored {sum(stored.values())}" in page.text


def test_dashboard_of_empty_marts_says_no_data_yet(tmp_path: Path) -> None:
    empty = build_warehouse(tmp_path / "warehouse.duckdb", empty=True)
    text = write_dashboard(empty, tmp_path / "site").read_text()
    page = Page(text)
    assert "No data yet: the warehouse holds no events." in page.text
    notes = [t for t in page.texts if t.startswith("No data yet:")]
    assert len(notes) == 1 + len(SECTIONS), notes
    assert "Plotly.newPlot(" not in text and plotly_copies(text) == 0
    assert_self_contained(text)


def test_dashboard_names_marts_that_were_not_built(tmp_path: Path) -> None:
    partial = build_warehouse(
        tmp_path / "warehouse.duckdb", leave_out=("fct_pitch_funnel", "fct_pitch_engagement")
    )
    text = write_dashboard(partial, tmp_path / "site").read_text()
    page = Page(text)
    assert (
        "No data yet: the fct_pitch_funnel mart is not in the warehouse. "
        "Run `musicsync analytics build` to build it."
    ) in page.text
    assert "chart-activity" in page.ids and "chart-pitch-funnel" not in page.ids
    with pytest.raises(PitchNotFoundError, match="marts are empty"):
        write_pitch_report(partial, SUMMER, tmp_path / "r.html")


def test_pages_are_replaced_whole(warehouse: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    first = write_dashboard(warehouse, site).read_bytes()
    again = write_dashboard(warehouse, site)
    assert again.read_bytes() == first
    assert sorted(p.name for p in site.iterdir()) == ["index.html"]  # no temporary left


def test_summary_when_every_recipient_opened(warehouse: Path, tmp_path: Path) -> None:
    everyone = tmp_path / "opened.duckdb"
    shutil.copy(warehouse, everyone)
    unopened = [recipient_id(SUMMER, key) for key in ("r6", "r7", "r8")]
    with duckdb.connect(str(everyone)) as connection:
        for table in ("fct_pitch_engagement", "fct_pitch_funnel"):
            connection.execute(f"delete from {table} where recipient_id in (?, ?, ?)", unopened)
    text = write_pitch_report(everyone, SUMMER, tmp_path / "r.html").read_text()
    assert Page(text).items["summary"][:2] == [
        "'Summer campaign picks' was sent to 5 recipients on 3 March 2025.",
        "All 5 recipients opened the pitch, 4 of them within 2 days.",
    ]


def test_labels_of_recipients_made_together_stay_apart() -> None:
    # UUIDv7 ids made in the same millisecond share their first digits.
    ids = [
        "01959925-3cde-7c41-a437-dabfbb482ed9",
        "01959925-3cde-7d02-8f11-0c3e5a77b1a4",
        "01959925-3cde-7e55-9a00-5b2f0d9c4e10",
    ]
    assert distinct(["Bluebird Ads", "Bluebird Ads", "Harbour TV"], ids) == [
        "Bluebird Ads (bb482ed9)",
        "Bluebird Ads (5a77b1a4)",
        "Harbour TV",
    ]
    twins = ["00000000-0000-7000-8000-0000aaaa1111", "10000000-0000-7000-8000-0000aaaa1111"]
    assert distinct(["Kite", "Kite"], twins) == [f"Kite ({twins[0]})", f"Kite ({twins[1]})"]


def test_the_local_stack_serves_the_written_dashboard_compressed(harness: StackHarness) -> None:
    # Given a dashboard written where `musicsync dashboard` writes it
    folder = harness.stack.settings.dashboard_dir
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "index.html").write_text("<!doctype html><title>Dashboard</title>" + "x" * 5000)
    # When a browser asks for /dashboards/
    response = harness.client.get("/dashboards/", headers={"Accept-Encoding": "gzip"})
    # Then it gets the page, gzipped
    assert response.status_code == 200
    assert response.headers["content-encoding"] == "gzip"
    assert "<title>Dashboard</title>" in response.text
