"""The static dashboard over all marts: ``write_dashboard(warehouse, out_dir)``.

One self-contained page, ``<out_dir>/index.html`` (plotly.js inline, once), with a section per
area and a link to each at the top:

- Activity (``mart_user_activity_daily``): daily, weekly and 28-day active users, new users.
- Retention (``mart_retention_weekly``): a heat map of weekly cohorts.
- Track popularity (``mart_track_popularity_daily`` with titles from ``dim_tracks``): the most
  played tracks of the last 28 days and the daily plays of the top five.
- Search (``mart_search_terms``): the most searched queries, what found nothing, and the daily
  zero-result rate.
- Catalogue (``mart_catalog_growth``): uploads and deletions per day, storage, formats.
- Pitches (``fct_pitch_funnel``): the funnel across every pitch, and conversion pitch by pitch.

A mart with no rows (or not built) gives its section a "no data yet" note instead of charts.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from dashboards.charts import (
    BUILD_COMMAND,
    FUNNEL_STEPS,
    PALETTE,
    Chart,
    Warehouse,
    chart,
    count,
    day,
    distinct,
    duration,
    label,
    open_warehouse,
    percent,
    render,
    short_day,
    short_id,
    size,
    style,
    write_page,
)
from dashboards.report import funnel_chart

__all__ = ["DAILY_MARTS", "write_dashboard"]

WINDOW_DAYS = 28
PITCHES_LISTED = 25
INDEX = "index.html"
DAILY_MARTS = (
    "mart_user_activity_daily",
    "mart_track_popularity_daily",
    "mart_search_terms",
    "mart_catalog_growth",
)


@dataclass
class Table:
    caption: str
    columns: list[tuple[str, bool]]  # heading, numeric
    rows: list[list[str]]


@dataclass
class Section:
    id: str
    title: str
    lead: str
    kpis: list[tuple[str, str]] = field(default_factory=list)
    charts: list[tuple[Chart, str | None]] = field(default_factory=list)  # chart, note
    tables: list[Table] = field(default_factory=list)
    empty: str | None = None


def _missing(warehouse: Warehouse, mart: str, what: str) -> str | None:
    """The "no data yet" note of a section, or None when its mart has rows."""
    if not warehouse.has(mart):
        return (
            f"No data yet: the {mart} mart is not in the warehouse. "
            f"Run `{BUILD_COMMAND}` to build it."
        )
    if warehouse.count(mart) == 0:
        return (
            f"No data yet: {what} appear here once there is activity in the lake and "
            f"`{BUILD_COMMAND}` has run."
        )
    return None


def _date_axis(figure: Any, y_title: str, *, x_title: str = "Day (UTC)") -> None:
    figure.update_xaxes(title_text=x_title)
    figure.update_yaxes(title_text=y_title, rangemode="tozero")


# -- activity -------------------------------------------------------------------------------------
def _activity(warehouse: Warehouse) -> Section:
    section = Section(
        "activity",
        "Activity",
        "Users active each day (DAU), in the 7 days (WAU) and the 28 days (MAU) ending that day. "
        "A user is active on a day they did anything in the product.",
    )
    if section_empty := _missing(warehouse, "mart_user_activity_daily", "active users"):
        section.empty = section_empty
        return section
    import plotly.graph_objects as go  # type: ignore[import-untyped]

    rows = warehouse.rows(
        "select dt, dau, wau, mau, new_users, dau_over_mau from mart_user_activity_daily"
        " order by dt"
    )
    days = [r["dt"] for r in rows]
    figure = go.Figure()
    figure.add_bar(
        x=days,
        y=[r["new_users"] for r in rows],
        name="New users",
        marker={"color": "#c9d2dc"},
        hovertemplate="%{x|%d %b %Y}: %{y} new users<extra></extra>",
    )
    for name, key, colour in (
        ("DAU", "dau", PALETTE[0]),
        ("WAU", "wau", PALETTE[1]),
        ("MAU", "mau", PALETTE[2]),
    ):
        figure.add_scatter(
            x=days,
            y=[r[key] for r in rows],
            name=name,
            mode="lines",
            line={"color": colour, "width": 2.5},
            hovertemplate=f"%{{x|%d %b %Y}}: %{{y}} ({name})<extra></extra>",
        )
    style(figure)
    _date_axis(figure, "Users")
    section.charts.append((chart("chart-activity", "Active users per day", figure), None))
    latest = rows[-1]
    week = rows[-7:]
    section.kpis = [
        (f"DAU on {short_day(latest['dt'])}", count(latest["dau"])),
        ("WAU (7 days)", count(latest["wau"])),
        ("MAU (28 days)", count(latest["mau"])),
        ("Stickiness (DAU / MAU)", percent(latest["dau_over_mau"])),
        ("New users, last 7 days", count(sum(r["new_users"] or 0 for r in week))),
    ]
    return section


# -- retention ------------------------------------------------------------------------------------
def _retention(warehouse: Warehouse) -> Section:
    section = Section(
        "retention",
        "Retention",
        "Users grouped by the week (Monday to Sunday) they were first active: the share of each "
        "group active again 1, 2, 3 … weeks later. The latest week is still in progress.",
    )
    if section_empty := _missing(warehouse, "mart_retention_weekly", "retention cohorts"):
        section.empty = section_empty
        return section
    import plotly.graph_objects as go

    rows = warehouse.rows(
        "select cohort_week, weeks_since_first, cohort_users, active_users, retention_rate"
        " from mart_retention_weekly order by cohort_week, weeks_since_first"
    )
    cohorts = sorted({r["cohort_week"] for r in rows})
    weeks = max(r["weeks_since_first"] for r in rows) + 1
    sizes = {r["cohort_week"]: r["cohort_users"] for r in rows}
    z: list[list[float | None]] = [[None] * weeks for _ in cohorts]
    text: list[list[str]] = [[""] * weeks for _ in cohorts]
    hover: list[list[str]] = [[""] * weeks for _ in cohorts]
    for r in rows:
        i, j = cohorts.index(r["cohort_week"]), r["weeks_since_first"]
        rate = r["retention_rate"]
        z[i][j] = None if rate is None else round(100 * rate, 1)
        text[i][j] = percent(rate)
        hover[i][j] = (
            f"Cohort of {short_day(r['cohort_week'])} ({r['cohort_users']} users)<br>"
            f"Week {j}: {r['active_users']} active ({percent(rate)})"
        )
    figure = go.Figure(
        go.Heatmap(
            z=z,
            x=[f"Week {j}" for j in range(weeks)],
            y=[f"{short_day(c)} ({sizes[c]} users)" for c in cohorts],
            text=text,
            texttemplate="%{text}",
            hovertext=hover,
            hoverinfo="text",
            colorscale="Blues",
            zmin=0,
            zmax=100,
            xgap=2,
            ygap=2,
            colorbar={"title": {"text": "Retained"}, "ticksuffix": "%"},
        )
    )
    style(figure, height=max(280, 90 + 38 * len(cohorts)), legend=False)
    figure.update_layout(margin={"l": 170, "r": 24, "t": 16, "b": 56})
    figure.update_xaxes(title_text="Weeks since first active", side="bottom")
    figure.update_yaxes(title_text="Cohort (first active week)", autorange="reversed")
    section.charts.append((chart("chart-retention", "Weekly retention by cohort", figure), None))
    week1 = [r for r in rows if r["weeks_since_first"] == 1]
    if week1:
        section.kpis.append(
            (
                "Week-1 retention (all cohorts)",
                percent(
                    sum(r["active_users"] for r in week1), sum(r["cohort_users"] for r in week1)
                ),
            )
        )
    section.kpis.append(("Cohorts", count(len(cohorts))))
    section.kpis.append(("Users in them", count(sum(sizes.values()))))
    return section


# -- track popularity -----------------------------------------------------------------------------
def _tracks(warehouse: Warehouse) -> Section:
    section = Section(
        "tracks",
        "Track popularity",
        f"The most played tracks over the last {WINDOW_DAYS} days, in the library (streams) and "
        "in pitches (plays by recipients).",
    )
    if section_empty := _missing(warehouse, "mart_track_popularity_daily", "track plays"):
        section.empty = section_empty
        return section
    import plotly.graph_objects as go

    latest: date = warehouse.value("select max(dt) from mart_track_popularity_daily")
    since = latest - timedelta(days=WINDOW_DAYS - 1)
    title = "d.title" if warehouse.has("dim_tracks") else "cast(null as varchar)"
    joined = "left join dim_tracks d using (track_id)" if warehouse.has("dim_tracks") else ""
    top = warehouse.rows(
        f"""
        select p.track_id, any_value({title}) as title,
            cast(sum(p.plays) as bigint) as plays,
            cast(sum(p.streams) as bigint) as streams,
            cast(sum(p.pitch_plays) as bigint) as pitch_plays,
            cast(sum(p.listened_ms) as bigint) as listened_ms,
            cast(sum(p.downloads + p.pitch_downloads) as bigint) as downloads,
            cast(sum(p.shortlists) as bigint) as shortlists,
            cast(sum(p.playlist_adds) as bigint) as playlist_adds
        from mart_track_popularity_daily p {joined}
        where p.dt >= ?
        group by p.track_id
        order by plays desc, listened_ms desc, p.track_id
        limit 10
        """,
        [since],
    )
    if not top or not any(t["plays"] for t in top):
        section.empty = f"No plays in the last {WINDOW_DAYS} days (up to {day(latest)})."
        return section
    names = _track_names(top)
    figure = go.Figure()
    for key, name, colour in (
        ("streams", "Library streams", PALETTE[0]),
        ("pitch_plays", "Pitch plays", PALETTE[3]),
    ):
        figure.add_bar(
            y=[names[t["track_id"]] for t in top],
            x=[t[key] for t in top],
            name=name,
            orientation="h",
            marker={"color": colour},
            hovertemplate=f"%{{y}}: %{{x}} {name.lower()}<extra></extra>",
        )
    style(figure, height=max(300, 80 + 34 * len(top)))
    figure.update_layout(
        barmode="stack", legend_traceorder="normal", margin={"l": 160, "r": 24, "t": 24, "b": 56}
    )
    figure.update_xaxes(title_text=f"Plays, last {WINDOW_DAYS} days")
    figure.update_yaxes(title_text="Track", autorange="reversed")
    section.charts.append(
        (chart("chart-top-tracks", f"Most played tracks, last {WINDOW_DAYS} days", figure), None)
    )

    leaders = [t["track_id"] for t in top[:5]]
    daily = warehouse.rows(
        "select track_id, dt, cast(plays as bigint) as plays from mart_track_popularity_daily"
        f" where dt >= ? and track_id in ({', '.join('?' for _ in leaders)}) order by dt",
        [since, *leaders],
    )
    plays: dict[str, dict[date, int]] = defaultdict(dict)
    for r in daily:
        plays[r["track_id"]][r["dt"]] = r["plays"]
    days = [since + timedelta(days=n) for n in range(WINDOW_DAYS)]
    trend = go.Figure()
    for track_id in leaders:
        trend.add_scatter(
            x=days,
            y=[plays[track_id].get(d, 0) for d in days],
            name=names[track_id],
            mode="lines+markers",
            marker={"size": 4},
            hovertemplate=f"{names[track_id]}<br>%{{x|%d %b %Y}}: %{{y}} plays<extra></extra>",
        )
    style(trend)
    _date_axis(trend, "Plays")
    section.charts.append(
        (chart("chart-track-trend", "Daily plays of the five most played tracks", trend), None)
    )
    section.tables.append(
        Table(
            f"Top tracks, last {WINDOW_DAYS} days",
            [
                ("Track", False),
                ("Plays", True),
                ("Listened", True),
                ("Downloads", True),
                ("Shortlisted", True),
                ("Playlist adds", True),
            ],
            [
                [
                    _track_title(t),
                    count(t["plays"]),
                    duration(t["listened_ms"]),
                    count(t["downloads"]),
                    count(t["shortlists"]),
                    count(t["playlist_adds"]),
                ]
                for t in top
            ],
        )
    )
    section.kpis = [
        (f"Plays, last {WINDOW_DAYS} days", count(_sum_since(warehouse, "plays", since))),
        (
            "Listening, last 28 days",
            duration(_sum_since(warehouse, "listened_ms", since)),
        ),
        ("Most played", _track_title(top[0])),
    ]
    return section


def _sum_since(warehouse: Warehouse, column: str, since: date) -> int:
    return int(
        warehouse.value(
            f"select coalesce(sum({column}), 0) from mart_track_popularity_daily where dt >= ?",
            [since],
        )
    )


def _track_title(row: dict[str, Any]) -> str:
    return str(row["title"]) if row["title"] else f"Track {short_id(row['track_id'])}"


def _track_names(rows: list[dict[str, Any]]) -> dict[str, str]:
    """Plot labels, told apart when two tracks share a title."""
    ids = [r["track_id"] for r in rows]
    names = distinct([_track_title(r) for r in rows], ids)
    return {track_id: label(name) for track_id, name in zip(ids, names, strict=True)}


# -- search ---------------------------------------------------------------------------------------
def _query(text: str) -> str:
    return text if text else "(no text: filters only)"


def _search(warehouse: Warehouse) -> Section:
    section = Section(
        "search",
        "Search",
        f"What people search for over the last {WINDOW_DAYS} days (queries compared lower-cased, "
        "spaces collapsed) and how often a search finds nothing.",
    )
    if section_empty := _missing(warehouse, "mart_search_terms", "searches"):
        section.empty = section_empty
        return section
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots  # type: ignore[import-untyped]

    latest: date = warehouse.value("select max(dt) from mart_search_terms")
    since = latest - timedelta(days=WINDOW_DAYS - 1)
    totals = warehouse.rows(
        """
        select query,
            cast(sum(searches) as bigint) as searches,
            cast(sum(zero_result_searches) as bigint) as zero
        from mart_search_terms where dt >= ?
        group by query
        """,
        [since],
    )
    top = sorted(totals, key=lambda r: (-r["searches"], r["query"]))[:15]
    figure = go.Figure()
    for name, values, colour in (
        ("Found results", [r["searches"] - r["zero"] for r in top], PALETTE[0]),
        ("Found nothing", [r["zero"] for r in top], PALETTE[5]),
    ):
        figure.add_bar(
            y=[label(_query(r["query"])) for r in top],
            x=values,
            name=name,
            orientation="h",
            marker={"color": colour},
            hovertemplate=f"%{{y}}: %{{x}} searches ({name.lower()})<extra></extra>",
        )
    style(figure, height=max(300, 80 + 28 * len(top)))
    figure.update_layout(
        barmode="stack", legend_traceorder="normal", margin={"l": 170, "r": 24, "t": 24, "b": 56}
    )
    figure.update_xaxes(title_text=f"Searches, last {WINDOW_DAYS} days")
    figure.update_yaxes(title_text="Query", autorange="reversed")
    section.charts.append(
        (chart("chart-top-queries", f"Top queries, last {WINDOW_DAYS} days", figure), None)
    )

    daily = warehouse.rows(
        """
        select dt, cast(sum(searches) as bigint) as searches,
            cast(sum(zero_result_searches) as bigint) as zero
        from mart_search_terms where dt >= ? group by dt order by dt
        """,
        [since],
    )
    rate = make_subplots(specs=[[{"secondary_y": True}]])
    rate.add_bar(
        x=[r["dt"] for r in daily],
        y=[r["searches"] for r in daily],
        name="Searches",
        marker={"color": "#9ecae1"},
        hovertemplate="%{x|%d %b %Y}: %{y} searches<extra></extra>",
        secondary_y=False,
    )
    rate.add_scatter(
        x=[r["dt"] for r in daily],
        y=[100 * r["zero"] / r["searches"] if r["searches"] else None for r in daily],
        name="Zero-result rate",
        mode="lines+markers",
        line={"color": PALETTE[5], "width": 2.5},
        hovertemplate="%{x|%d %b %Y}: %{y:.1f}% found nothing<extra></extra>",
        secondary_y=True,
    )
    style(rate)
    rate.update_xaxes(title_text="Day (UTC)")
    rate.update_yaxes(title_text="Searches", rangemode="tozero", secondary_y=False)
    rate.update_yaxes(
        title_text="Found nothing (%)",
        rangemode="tozero",
        ticksuffix="%",
        tickformat=".0f",
        tickmode="auto",
        showgrid=False,
        secondary_y=True,
    )
    section.charts.append(
        (chart("chart-zero-results", "Searches and zero-result rate per day", rate), None)
    )
    misses = sorted(
        (r for r in totals if r["zero"]), key=lambda r: (-r["zero"], -r["searches"], r["query"])
    )[:10]
    section.tables.append(
        Table(
            f"Queries that most often find nothing, last {WINDOW_DAYS} days",
            [("Query", False), ("Searches", True), ("Found nothing", True), ("Rate", True)],
            [
                [
                    _query(r["query"]),
                    count(r["searches"]),
                    count(r["zero"]),
                    percent(r["zero"], r["searches"]),
                ]
                for r in misses
            ],
        )
    )
    searches = sum(r["searches"] for r in totals)
    zero = sum(r["zero"] for r in totals)
    section.kpis = [
        (f"Searches, last {WINDOW_DAYS} days", count(searches)),
        ("Zero-result rate", percent(zero, searches, digits=1)),
        ("Distinct queries", count(len(totals))),
    ]
    return section


# -- catalogue ------------------------------------------------------------------------------------
def _format(container: str, codec: str) -> str:
    return container if container == codec else f"{container} ({codec})"


def _catalogue(warehouse: Warehouse) -> Section:
    section = Section(
        "catalogue",
        "Catalogue",
        "Tracks uploaded and deleted each day, by file format, and what the catalogue holds "
        "(counting the uploads recorded in the lake).",
    )
    if section_empty := _missing(warehouse, "mart_catalog_growth", "uploads"):
        section.empty = section_empty
        return section
    import plotly.graph_objects as go

    rows = warehouse.rows(
        """
        select dt, container, codec,
            cast(uploads as bigint) as uploads, cast(deletions as bigint) as deletions,
            cast(uploaded_bytes as bigint) as uploaded_bytes,
            cast(tracks_stored as bigint) as tracks_stored,
            cast(bytes_stored as bigint) as bytes_stored
        from mart_catalog_growth order by dt, container, codec
        """
    )
    formats = sorted({_format(r["container"], r["codec"]) for r in rows})
    first, last = rows[0]["dt"], rows[-1]["dt"]
    days = [first + timedelta(days=n) for n in range((last - first).days + 1)]
    by_day: dict[tuple[str, date], dict[str, Any]] = {
        (_format(r["container"], r["codec"]), r["dt"]): r for r in rows
    }
    colours = {f: PALETTE[i % len(PALETTE)] for i, f in enumerate(formats)}

    uploads = go.Figure()
    for fmt in formats:
        uploads.add_bar(
            x=days,
            y=[by_day.get((fmt, d), {}).get("uploads", 0) for d in days],
            name=f"{fmt} uploads",
            marker={"color": colours[fmt]},
            hovertemplate=f"%{{x|%d %b %Y}}: %{{y}} {label(fmt)} uploads<extra></extra>",
        )
    uploads.add_bar(
        x=days,
        y=[-sum(by_day.get((f, d), {}).get("deletions", 0) for f in formats) for d in days],
        name="Deletions",
        marker={"color": "#9aa5b1"},
        hovertemplate="%{x|%d %b %Y}: %{y} (deleted)<extra></extra>",
    )
    style(uploads)
    uploads.update_layout(barmode="relative")
    uploads.update_xaxes(title_text="Day (UTC)")
    uploads.update_yaxes(title_text="Tracks (deletions below 0)")
    section.charts.append(
        (chart("chart-uploads", "Uploads and deletions per day, by format", uploads), None)
    )

    # tracks_stored and bytes_stored: at the end of a day with a change, so carried forward.
    stored: dict[str, list[tuple[int, int]]] = {}
    for fmt in formats:
        current, series_ = (0, 0), []
        for d in days:
            if (row := by_day.get((fmt, d))) is not None:
                current = (row["tracks_stored"], row["bytes_stored"])
            series_.append(current)
        stored[fmt] = series_
    storage = go.Figure()
    for fmt in formats:
        storage.add_scatter(
            x=days,
            y=[b / 1e9 for _, b in stored[fmt]],
            name=fmt,
            mode="lines",
            stackgroup="storage",
            line={"color": colours[fmt], "width": 1},
            hovertemplate=f"%{{x|%d %b %Y}}: %{{y:.2f}} GB of {label(fmt)}<extra></extra>",
        )
    style(storage)
    _date_axis(storage, "Storage (GB)")
    section.charts.append((chart("chart-storage", "Storage by format", storage), None))

    latest = {fmt: stored[fmt][-1] for fmt in formats}
    donut = go.Figure(
        go.Pie(
            labels=[label(f) for f in formats],
            values=[latest[f][0] for f in formats],
            hole=0.5,
            marker={"colors": [colours[f] for f in formats]},
            sort=False,
            textinfo="label+percent",
            hovertemplate="%{label}: %{value} tracks (%{percent})<extra></extra>",
        )
    )
    style(donut, height=340)
    section.charts.append(
        (chart("chart-formats", f"Tracks stored by format on {short_day(last)}", donut), None)
    )
    since = last - timedelta(days=WINDOW_DAYS - 1)
    section.kpis = [
        ("Tracks stored", count(sum(t for t, _ in latest.values()))),
        ("Storage", size(sum(b for _, b in latest.values()))),
        (
            f"Uploads, last {WINDOW_DAYS} days",
            count(sum(r["uploads"] for r in rows if r["dt"] >= since)),
        ),
        (
            f"Deletions, last {WINDOW_DAYS} days",
            count(sum(r["deletions"] for r in rows if r["dt"] >= since)),
        ),
    ]
    return section


# -- pitches --------------------------------------------------------------------------------------
def _pitches(warehouse: Warehouse) -> Section:
    section = Section(
        "pitches",
        "Pitches",
        "How far recipients go with the pitches they are sent: sent → opened → played → "
        "downloaded → shortlisted (a step counts once every step before it was reached).",
    )
    if section_empty := _missing(warehouse, "fct_pitch_funnel", "pitches"):
        section.empty = section_empty
        return section
    import plotly.graph_objects as go

    pitches = warehouse.rows(
        """
        select pitch_id, max(pitch_title) as title, min(sent_at) as first_sent,
            count(*) as recipients,
            count(*) filter (where is_sent) as sent,
            count(*) filter (where is_opened) as opened,
            count(*) filter (where is_played) as played,
            count(*) filter (where is_downloaded) as downloaded,
            count(*) filter (where is_shortlisted) as shortlisted,
            median(seconds_sent_to_opened) as median_to_open
        from fct_pitch_funnel
        group by pitch_id
        order by first_sent desc nulls last, pitch_id
        """
    )
    steps = [(s, sum(p[s] for p in pitches)) for s in FUNNEL_STEPS]
    if steps[0][1]:
        section.charts.append(
            (
                funnel_chart(steps, "chart-pitch-funnel"),
                f"All recipients of all {len(pitches)} pitches.",
            )
        )
    sent = [p for p in pitches if p["sent"]][:12]
    if sent:
        names = _pitch_names(sent)
        figure = go.Figure()
        for i, step in enumerate(FUNNEL_STEPS[1:]):
            figure.add_bar(
                x=[names[p["pitch_id"]] for p in sent],
                y=[100 * p[step] / p["sent"] for p in sent],
                name=step.capitalize(),
                marker={"color": (PALETTE[4], PALETTE[2], PALETTE[1], PALETTE[3])[i]},
                customdata=[[p[step], p["sent"]] for p in sent],
                hovertemplate=(
                    f"%{{x}}<br>{step.capitalize()}: %{{customdata[0]}} of %{{customdata[1]}}"
                    " (%{y:.0f}%)<extra></extra>"
                ),
            )
        style(figure, height=400)
        figure.update_layout(barmode="group", margin={"l": 60, "r": 24, "t": 24, "b": 110})
        figure.update_xaxes(title_text="Pitch (latest first)", tickangle=-25)
        figure.update_yaxes(
            title_text="Of recipients sent the link (%)", range=[0, 100], ticksuffix="%"
        )
        section.charts.append(
            (chart("chart-pitch-conversion", "Conversion by pitch (latest 12)", figure), None)
        )
    listed = pitches[:PITCHES_LISTED]
    caption = "Pitches, latest first"
    if len(listed) < len(pitches):
        caption += f" (the latest {len(listed)} of {len(pitches)})"
    section.tables.append(
        Table(
            caption,
            [
                ("Pitch", False),
                ("First sent", False),
                ("Recipients", True),
                ("Opened", True),
                ("Played", True),
                ("Downloaded", True),
                ("Shortlisted", True),
                ("Median time to open", True),
            ],
            [
                [
                    p["title"] or f"Pitch {short_id(p['pitch_id'])}",
                    short_day(p["first_sent"]),
                    f"{p['sent']} of {p['recipients']}"
                    if p["sent"] != p["recipients"]
                    else str(p["recipients"]),
                    *(
                        f"{p[s]} ({percent(p[s], p['sent'])})"
                        for s in ("opened", "played", "downloaded", "shortlisted")
                    ),
                    _hours(p["median_to_open"]),
                ]
                for p in listed
            ],
        )
    )
    total_sent = steps[0][1]
    section.kpis = [
        ("Pitches", count(len(pitches))),
        ("Recipients sent a link", count(total_sent)),
        ("Opened", percent(steps[1][1], total_sent)),
        ("Reached the shortlist", percent(steps[4][1], total_sent)),
    ]
    return section


def _pitch_names(rows: list[dict[str, Any]]) -> dict[str, str]:
    ids = [p["pitch_id"] for p in rows]
    names = distinct(
        [
            f"{p['title'] or 'Pitch ' + short_id(p['pitch_id'])} ({short_day(p['first_sent'])})"
            for p in rows
        ],
        ids,
    )
    return {pitch_id: label(name) for pitch_id, name in zip(ids, names, strict=True)}


def _hours(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    hours = seconds / 3600
    if hours < 1:
        return f"{round(seconds / 60)} min"
    if hours < 48:
        return f"{hours:.1f} h"
    return f"{hours / 24:.1f} days"


# -- the page -------------------------------------------------------------------------------------
def _data_as_of(warehouse: Warehouse) -> date | None:
    """The latest day with events in any mart."""
    days: list[date] = []
    for mart in DAILY_MARTS:
        if warehouse.has(mart) and (latest := warehouse.value(f"select max(dt) from {mart}")):
            days.append(latest)
    if warehouse.has("fct_pitch_engagement"):
        latest_activity = warehouse.value(
            "select max(greatest(sent_at, first_opened_at, last_activity_at))"
            " from fct_pitch_engagement"
        )
        if isinstance(latest_activity, datetime):
            days.append(latest_activity.date())
    return max(days, default=None)


def write_dashboard(warehouse: Path, out_dir: Path) -> Path:
    """Write the dashboard over the marts in ``warehouse`` to ``out_dir/index.html`` and return
    that path. Marts without rows give "no data yet" notes; ``dashboards.charts.WarehouseError``
    when the warehouse cannot be read (``WarehouseNotBuiltError`` when there is none)."""
    with open_warehouse(warehouse) as opened:
        sections = [
            _activity(opened),
            _retention(opened),
            _tracks(opened),
            _search(opened),
            _catalogue(opened),
            _pitches(opened),
        ]
        as_of = _data_as_of(opened)
        built_at = opened.built_at()
    has_charts = any(s.charts for s in sections)
    page = render(
        "dashboard.html",
        {
            "page_title": "Product analytics",
            "sections": sections,
            "as_of": as_of,
            "built_at": built_at,
            "build_command": BUILD_COMMAND,
        },
        charts=has_charts,
    )
    return write_page(out_dir / INDEX, page)
