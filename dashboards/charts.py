"""What the pitch report and the dashboard share: reading the warehouse, plotting, formatting and
writing self-contained pages.

The marts are tables in the ``main`` schema of the DuckDB file ``musicsync analytics build``
leaves (``musicsync.analytics.warehouse_path``). It is opened read-only, so a page can be
written while nothing else writes the warehouse; a build in progress holds it and is reported
as such.

Charts are plotly figures turned into ``<div>`` elements without plotly.js; each page carries
plotly.js once, inline, in its ``<head>``, so a page reads without a network connection. Text
that comes from the data (titles, companies, queries) is escaped twice over: by Jinja2 in the
page, and for plotly's own pseudo-HTML in labels and hover text (``label``).
"""

from __future__ import annotations

import html
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from functools import cache
from pathlib import Path
from typing import Any

import duckdb
import jinja2
from markupsafe import Markup

BUILD_COMMAND = "musicsync analytics build"
# Colours shared by every chart (colour-blind safe; Okabe-Ito order).
PALETTE = (
    "#0072B2",
    "#E69F00",
    "#009E73",
    "#CC79A7",
    "#56B4E9",
    "#D55E00",
    "#F0E442",
    "#000000",
)
FUNNEL_STEPS = ("sent", "opened", "played", "downloaded", "shortlisted")
_FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"
_CONFIG = {"displaylogo": False, "responsive": True, "modeBarButtonsToRemove": ["select2d"]}


# -- the warehouse --------------------------------------------------------------------------------
class WarehouseError(Exception):
    """The warehouse cannot be read; the message says why and what to run."""


class WarehouseNotBuiltError(WarehouseError, FileNotFoundError):
    """There is no warehouse file yet."""


@dataclass
class Warehouse:
    """A read-only connection to the warehouse and the marts it holds."""

    path: Path
    connection: duckdb.DuckDBPyConnection
    tables: frozenset[str]

    def has(self, table: str) -> bool:
        return table in self.tables

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """The rows of a query, as dicts keyed by column name."""
        cursor = self.connection.execute(sql, list(params))
        names = [d[0] for d in cursor.description or ()]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def value(self, sql: str, params: Sequence[Any] = ()) -> Any:
        row = self.connection.execute(sql, list(params)).fetchone()
        return None if row is None else row[0]

    def count(self, table: str) -> int:
        """Rows in a mart; 0 when the mart is not in the warehouse."""
        if not self.has(table):
            return 0
        return int(self.value(f'select count(*) from "{table}"'))

    def built_at(self) -> datetime:
        return datetime.fromtimestamp(self.path.stat().st_mtime, tz=UTC)


@contextmanager
def open_warehouse(path: Path) -> Iterator[Warehouse]:
    """Open the warehouse read-only; ``WarehouseNotBuiltError`` when there is none,
    ``WarehouseError`` when it cannot be opened (a build holding it, a damaged file)."""
    if not path.is_file():
        raise WarehouseNotBuiltError(
            f"there is no analytics warehouse at {path}: run `{BUILD_COMMAND}` first"
        )
    try:
        connection = duckdb.connect(str(path), read_only=True)
    except duckdb.Error as exc:
        raise WarehouseError(
            f"the analytics warehouse at {path} cannot be opened ({exc}); if "
            f"`{BUILD_COMMAND}` is running, try again when it has finished"
        ) from exc
    try:
        tables = frozenset(
            name
            for (name,) in connection.execute(
                "select table_name from information_schema.tables"
                " where table_schema = 'main' and table_catalog = current_database()"
            ).fetchall()
        )
        yield Warehouse(path, connection, tables)
    finally:
        connection.close()


# -- formatting -----------------------------------------------------------------------------------
def label(text: str) -> str:
    """Data text for a plotly label or hover text: plotly reads a little HTML (``<b>``, ``<a>``,
    entities) in them, so the text is escaped to show as typed."""
    return html.escape(text, quote=False)


def short_id(value: str) -> str:
    """The last 8 hex digits of a UUID, to tell recipients and tracks apart on a page (the
    first ones of a UUIDv7 are its time, shared by ids made together)."""
    return value.replace("-", "")[-8:]


def distinct(labels: Sequence[str], ids: Sequence[str]) -> list[str]:
    """The labels, each made unique by the short form of its id where others share it (or the
    whole id where even that is shared): a plot's category axis merges equal labels."""
    result = list(labels)
    for form in (short_id, str):
        seen: dict[str, int] = {}
        for text in result:
            seen[text] = seen.get(text, 0) + 1
        result = [
            f"{labels[i]} ({form(ids[i])})" if seen[text] > 1 else text
            for i, text in enumerate(result)
        ]
    return result


def day(value: date | datetime | None) -> str:
    """``3 March 2025``."""
    if value is None:
        return "—"
    return f"{value.day} {value:%B %Y}"


def short_day(value: date | datetime | None) -> str:
    """``3 Mar 2025``."""
    if value is None:
        return "—"
    return f"{value.day} {value:%b %Y}"


def moment(value: datetime | None) -> str:
    """``3 Mar 2025, 09:00`` (UTC)."""
    if value is None:
        return "—"
    return f"{short_day(value)}, {value:%H:%M}"


def duration(milliseconds: float | None) -> str:
    """A listening time: ``0 s``, ``45 s``, ``3 min 20 s``, ``1 h 05 min``."""
    seconds = round((milliseconds or 0) / 1000)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s" if seconds else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def count(number: float | None) -> str:
    """``1,234``."""
    return f"{round(number or 0):,}"


def percent(part: float | None, whole: float | None = 1.0, *, digits: int = 0) -> str:
    """``63%`` for 5 of 8 (halves round up, as people round; ``—`` when the whole is 0 or
    unknown)."""
    if part is None or not whole:
        return "—"
    share = Decimal(repr(100 * part / whole))
    return f"{share.quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)}%"


def size(nbytes: float | None) -> str:
    """``1.5 GB`` (decimal units, as storage is billed)."""
    value = float(nbytes or 0)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(value) < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def plural(number: int, one: str, many: str | None = None) -> str:
    """``1 recipient``, ``3 recipients``."""
    return f"{number} {one if number == 1 else (many or one + 's')}"


def series(items: Sequence[str], conjunction: str = "and") -> str:
    """``a``, ``a and b``, ``a, b and c`` (or ``a, b or c``)."""
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + f" {conjunction} " + items[-1]


# -- charts ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Chart:
    """A rendered chart: its element id and its HTML (a div and the script that draws it)."""

    id: str
    title: str
    html: Markup


def style(figure: Any, *, height: int = 380, legend: bool = True) -> Any:
    """The look every chart shares: white background, the palette, readable fonts."""
    figure.update_layout(
        template="plotly_white",
        colorway=list(PALETTE),
        font={"family": _FONT, "size": 13, "color": "#1f2933"},
        margin={"l": 60, "r": 24, "t": 24, "b": 56},
        height=height,
        showlegend=legend,
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 0},
        hoverlabel={"font": {"family": _FONT}},
    )
    return figure


def chart(chart_id: str, title: str, figure: Any) -> Chart:
    """A figure as a ``<div>`` without plotly.js (the page carries it once)."""
    markup = figure.to_html(
        full_html=False,
        include_plotlyjs=False,
        include_mathjax=False,
        div_id=chart_id,
        config=_CONFIG,
    )
    return Chart(chart_id, title, Markup(markup))  # noqa: S704 - plotly's own output


@cache
def plotly_js() -> Markup:
    """plotly.js, to inline once per page."""
    from plotly.offline import get_plotlyjs  # type: ignore[import-untyped]

    return Markup(get_plotlyjs())  # noqa: S704 - the library's own bundle


# -- pages ----------------------------------------------------------------------------------------
@cache
def _templates() -> jinja2.Environment:
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("dashboards", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(
        day=day,
        short_day=short_day,
        moment=moment,
        duration=duration,
        count=count,
        percent=percent,
        size=size,
        short_id=short_id,
    )
    return environment


def render(template: str, context: Mapping[str, Any], *, charts: bool = True) -> str:
    """A page from ``templates/<template>``; with plotly.js inline when it has charts."""
    page = _templates().get_template(template)
    return page.render(**context, plotly_js=plotly_js() if charts else None)


def write_page(path: Path, text: str) -> Path:
    """Write a page whole or not at all (a reader never sees half a page)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
        Path(temporary).chmod(0o644)
        Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path
