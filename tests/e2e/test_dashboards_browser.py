"""The pitch report and the dashboard in a real browser: they open from file:// URLs without a
network, log no errors, draw every chart, and a screenshot of each shows a chart, not a blank.

Headless Chromium from Debian's packages (/usr/bin/chromium), driven by Playwright; the pages
are written from the small fixture warehouse (``tests.support.warehouse``). Any request that
leaves the page's own file is refused and fails the test. Screenshots are decoded here (zlib
and struct: no imaging library needed) and kept under the test's temporary directory.
"""

from __future__ import annotations

import struct
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Route

from dashboards.report import write_pitch_report
from dashboards.site import write_dashboard
from tests.support.browser import chromium
from tests.support.warehouse import SUMMER, build_warehouse

pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("browser")]

REPORT_CHARTS = ("funnel", "heatmap")
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
# A chart's screenshot: far more colours than a blank or a one-colour box (anti-aliased text
# and bars give hundreds), and no colour covering nearly all of it.
MIN_COLOURS = 40
MAX_SHARE_OF_ONE_COLOUR = 0.97


# -- PNG ------------------------------------------------------------------------------------------
def png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and the RGB of every pixel of an 8-bit RGB or RGBA, non-interlaced PNG
    (what Chromium writes)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, bytearray(), None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
    assert header is not None, "no IHDR"
    width, height, depth, colour, _, _, interlace = header
    assert depth == 8 and colour in (2, 6) and interlace == 0, header
    bpp = 3 if colour == 2 else 4
    stride = width * bpp
    raw = zlib.decompress(bytes(idat))
    assert len(raw) == height * (stride + 1)
    pixels: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind = raw[start]
        line = bytearray(raw[start + 1 : start + 1 + stride])
        if kind == 1:  # Sub
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 0xFF
        elif kind == 2:  # Up
            line = bytearray((a + b) & 0xFF for a, b in zip(line, prev, strict=True))
        elif kind == 3:  # Average
            for i in range(stride):
                left = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((left + prev[i]) >> 1)) & 0xFF
        elif kind == 4:  # Paeth
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b = prev[i]
                c = prev[i - bpp] if i >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        else:
            assert kind == 0, f"unknown PNG filter {kind}"
        row = bytes(line)
        pixels += [row[i : i + 3] for i in range(0, stride, bpp)]
        prev = line
    return width, height, pixels


def assert_not_blank(png: bytes, what: str) -> None:
    width, height, pixels = png_pixels(png)
    assert width > 100 and height > 100, (what, width, height)
    colours = Counter(pixels)
    commonest, n = colours.most_common(1)[0]
    assert len(colours) >= MIN_COLOURS, f"{what}: only {len(colours)} colours"
    share = n / len(pixels)
    assert share <= MAX_SHARE_OF_ONE_COLOUR, f"{what}: {share:.1%} is #{commonest.hex()}"


def test_png_decoder_reads_every_filter() -> None:
    """The decoder against a PNG written here with each of the five filters."""
    width, height, bpp = 5, 5, 3
    image = [
        bytes((x * 40 + y, y * 50, (x * y * 13) % 256)) for y in range(height) for x in range(width)
    ]
    rows = [b"".join(image[y * width : (y + 1) * width]) for y in range(height)]
    encoded = bytearray()
    prev = bytes(width * bpp)
    for y, row in enumerate(rows):
        kind = y  # 0 None, 1 Sub, 2 Up, 3 Average, 4 Paeth
        out = bytearray()
        for i, value in enumerate(row):
            a = row[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            p = a + b - c
            paeth = min((abs(p - a), 0, a), (abs(p - b), 1, b), (abs(p - c), 2, c))[2]
            predictor = (0, a, b, (a + b) >> 1, paeth)[kind]
            out.append((value - predictor) & 0xFF)
        encoded += bytes([kind]) + out
        prev = row

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(bytes(encoded)))
        + chunk(b"IEND", b"")
    )
    assert png_pixels(png) == (width, height, image)


# -- the browser ----------------------------------------------------------------------------------
@dataclass
class Visit:
    """What happened while a page was open."""

    errors: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("dashboards-browser")
    warehouse = build_warehouse(root / "warehouse.duckdb")
    return {
        "report": write_pitch_report(warehouse, SUMMER, root / "report" / "summer.html"),
        "dashboard": write_dashboard(warehouse, root / "site"),
        "empty": write_dashboard(
            build_warehouse(root / "empty.duckdb", empty=True), root / "empty-site"
        ),
    }


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


def open_page(browser: Browser, path: Path) -> tuple[Page, Visit]:
    visit = Visit()
    context = browser.new_context(viewport={"width": 1280, "height": 900}, offline=True)
    page = context.new_page()

    def on_console(message: ConsoleMessage) -> None:
        if message.type in ("error", "assert"):
            visit.errors.append(f"console {message.type}: {message.text} ({message.location})")

    def on_route(route: Route) -> None:
        url = route.request.url
        if url.startswith(("file:", "data:", "blob:")):
            route.continue_()
        else:
            visit.refused.append(url)
            route.abort()

    page.on("console", on_console)
    page.on("pageerror", lambda error: visit.errors.append(f"page error: {error}"))
    page.route("**/*", on_route)
    page.goto(path.as_uri(), wait_until="load")
    return page, visit


def wait_for_charts(page: Page, chart_ids: tuple[str, ...]) -> None:
    page.wait_for_function(
        "ids => ids.every(id => document.querySelector(`#${id} .main-svg`))",
        arg=list(chart_ids),
        timeout=30_000,
    )


def check_charts(page: Page, chart_ids: tuple[str, ...], shots: Path) -> None:
    assert page.locator(".js-plotly-plot").count() == len(chart_ids)
    for chart_id in chart_ids:
        chart = page.locator(f"#{chart_id}")
        assert chart.locator(".main-svg").count() >= 1, f"{chart_id} was not drawn"
        box = chart.bounding_box()
        assert box is not None and box["width"] > 200 and box["height"] > 150, (chart_id, box)
        chart.scroll_into_view_if_needed()
        png = chart.screenshot(path=shots / f"{chart_id}.png", animations="disabled")
        assert_not_blank(png, chart_id)


def test_report_opens_and_draws_its_charts(
    browser: Browser, pages: dict[str, Path], tmp_path: Path
) -> None:
    page, visit = open_page(browser, pages["report"])
    try:
        wait_for_charts(page, REPORT_CHARTS)
        check_charts(page, REPORT_CHARTS, tmp_path)
        assert page.title() == "Summer campaign picks: pitch engagement · musicsync"
        funnel_labels = page.locator("#funnel text").all_text_contents()
        assert "8 (100% of sent)" in funnel_labels and "1 (13% of sent)" in funnel_labels
        assert page.locator("#heatmap .heatmaplayer image, #heatmap .hm").count() >= 1
        heat_text = page.locator("#heatmap text").all_text_contents()
        assert "100% ↓ ★" in heat_text and "Harbour Lights" in heat_text
        assert page.locator("#summary li").count() == 7
        assert page.locator("#recipient-table tbody tr").count() == 8
        page_shot = page.screenshot(path=tmp_path / "report.png", full_page=False)
        assert_not_blank(page_shot, "the report's first screen")
        assert visit.errors == [] and visit.refused == []
    finally:
        page.context.close()


def test_dashboard_opens_and_draws_every_chart(
    browser: Browser, pages: dict[str, Path], tmp_path: Path
) -> None:
    page, visit = open_page(browser, pages["dashboard"])
    try:
        wait_for_charts(page, DASHBOARD_CHARTS)
        check_charts(page, DASHBOARD_CHARTS, tmp_path)
        assert page.locator("#as-of").inner_text().startswith("Data as of 30 March 2025")
        for section in ("activity", "retention", "tracks", "search", "catalogue", "pitches"):
            assert page.locator(f"nav a[href='#{section}']").count() == 1
            assert page.locator(f"section#{section} .empty").count() == 0
        axis_titles = page.locator("#chart-activity .g-xtitle, #chart-activity .g-ytitle")
        assert axis_titles.all_text_contents() == ["Day (UTC)", "Users"]
        page.locator("nav a[href='#retention']").click()
        assert visit.errors == [] and visit.refused == []
    finally:
        page.context.close()


def test_empty_dashboard_opens_with_notes(browser: Browser, pages: dict[str, Path]) -> None:
    page, visit = open_page(browser, pages["empty"])
    try:
        assert page.locator(".js-plotly-plot").count() == 0
        assert page.locator("p.empty").count() == 6
        assert page.locator("#as-of").inner_text() == "No data yet: the warehouse holds no events."
        assert visit.errors == [] and visit.refused == []
    finally:
        page.context.close()
