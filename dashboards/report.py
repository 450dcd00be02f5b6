"""The pitch engagement report: one self-contained HTML file about one pitch.

``write_pitch_report(warehouse, pitch_id, out)`` reads the pitch's rows of ``fct_pitch_funnel``
(pitch x recipient) and ``fct_pitch_engagement`` (pitch x recipient x track) and writes:

- the pitch's facts: title, when it was sent, recipients, tracks;
- a short written summary a product manager can forward, generated from the figures;
- the funnel, sent -> opened -> played -> downloaded -> shortlisted, as the funnel mart defines
  it (a step counts once every step before it was reached), with counts and conversion;
- a table of recipients: what each opened, played, listened to, downloaded, shortlisted and
  said;
- a heat map of tracks x recipients: how far into each track each recipient listened, with
  downloads and shortlisting marked.

The marts carry a recipient's company, not their name (names stay out of the lake), so a
recipient shows as their company, with the start of their id where two share a company, or as
"Recipient <id>" without one.
"""

from __future__ import annotations

import statistics
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from dashboards.charts import (
    BUILD_COMMAND,
    FUNNEL_STEPS,
    PALETTE,
    Chart,
    Warehouse,
    chart,
    day,
    distinct,
    duration,
    label,
    open_warehouse,
    percent,
    plural,
    render,
    series,
    short_id,
    style,
    write_page,
)

__all__ = ["PitchNotFoundError", "PitchReport", "load_pitch", "summarise", "write_pitch_report"]

OPENED_PROMPTLY_SECONDS = 2 * 24 * 3600  # "opened within 2 days"
# What the report reads of the marts (a column renamed in dbt fails here by name).
_FUNNEL_COLUMNS = (
    "recipient_id",
    "pitch_title",
    "recipient_company",
    "sent_at",
    "opened_at",
    *(f"is_{step}" for step in FUNNEL_STEPS),
    "furthest_step",
    "seconds_sent_to_opened",
    "opens",
    "plays",
    "listened_ms",
    "downloads",
    "shortlisted_tracks",
    "comment_count",
)
_ENGAGEMENT_COLUMNS = (
    "recipient_id",
    "track_id",
    "pitch_title",
    "recipient_company",
    "track_position",
    "track_title",
    "duration_ms",
    "sent_at",
    "first_opened_at",
    "plays",
    "listened_ms",
    "furthest_position_share",
    "completed",
    "skipped_plays",
    "downloads",
    "shortlisted",
    "comment_count",
    "last_activity_at",
)
_STEP_RANK = {step: rank for rank, step in enumerate(("not sent", *FUNNEL_STEPS))}


class PitchNotFoundError(ValueError):
    """The warehouse has no rows for the pitch."""

    def __init__(self, pitch_id: uuid.UUID, warehouse: Path, pitches: int) -> None:
        self.pitch_id = pitch_id
        self.warehouse = warehouse
        self.pitches = pitches
        if pitches == 0:
            message = (
                f"pitch {pitch_id} is not in the analytics warehouse ({warehouse}): its pitch "
                f"marts are empty. Run `{BUILD_COMMAND}` to build them from the events."
            )
        else:
            message = (
                f"pitch {pitch_id} is not in the analytics warehouse ({warehouse}), which holds "
                f"{plural(pitches, 'other pitch', 'other pitches')}. Check the id; if the pitch "
                f"was sent since the last build, run `{BUILD_COMMAND}` first."
            )
        super().__init__(message)


# -- the figures ----------------------------------------------------------------------------------
@dataclass
class Cell:
    """One recipient and one track."""

    plays: int = 0
    listened_ms: int = 0
    share: float | None = None  # furthest position reached, share of the track
    completed: bool = False
    skipped_plays: int = 0
    downloads: int = 0
    shortlisted: bool = False
    comments: int = 0


@dataclass
class Recipient:
    id: str
    company: str | None
    label: str = ""
    sent_at: datetime | None = None
    opened_at: datetime | None = None
    seconds_to_open: float | None = None
    furthest_step: str = "not sent"
    opens: int = 0
    plays: int = 0
    listened_ms: int = 0
    downloads: int = 0
    shortlisted_tracks: int = 0
    comments: int = 0
    # Funnel steps as the mart reaches them (each needs the ones before).
    reached: dict[str, bool] = field(default_factory=dict)

    @property
    def step_label(self) -> str:
        return self.furthest_step.capitalize()


@dataclass
class Track:
    id: str
    title: str | None
    position: int | None
    duration_ms: int | None
    label: str = ""
    cells: dict[str, Cell] = field(default_factory=dict)  # by recipient id

    def by(self, what: str) -> int:
        """Recipients who played / downloaded / shortlisted it."""
        if what == "played":
            return sum(1 for c in self.cells.values() if c.plays > 0)
        if what == "downloaded":
            return sum(1 for c in self.cells.values() if c.downloads > 0)
        if what == "shortlisted":
            return sum(1 for c in self.cells.values() if c.shortlisted)
        raise ValueError(what)

    @property
    def listened_ms(self) -> int:
        return sum(c.listened_ms for c in self.cells.values())


@dataclass
class PitchReport:
    """Everything the report shows about one pitch."""

    pitch_id: uuid.UUID
    title: str
    recipients: list[Recipient]
    tracks: list[Track]
    as_of: datetime | None
    built_at: datetime

    @property
    def sent(self) -> list[Recipient]:
        return [r for r in self.recipients if r.sent_at is not None]

    @property
    def first_sent(self) -> datetime | None:
        return min((r.sent_at for r in self.sent if r.sent_at), default=None)

    @property
    def last_sent(self) -> datetime | None:
        return max((r.sent_at for r in self.sent if r.sent_at), default=None)

    def funnel(self) -> list[tuple[str, int]]:
        """Recipients at each step (as the funnel mart reaches them)."""
        return [(s, sum(1 for r in self.recipients if r.reached.get(s))) for s in FUNNEL_STEPS]

    def did(self, what: str) -> int:
        """Recipients who played / downloaded / shortlisted any track (whatever they did
        before)."""
        if what == "played":
            return sum(1 for r in self.recipients if r.plays > 0)
        if what == "downloaded":
            return sum(1 for r in self.recipients if r.downloads > 0)
        if what == "shortlisted":
            return sum(1 for r in self.recipients if r.shortlisted_tracks > 0)
        raise ValueError(what)

    @property
    def opened_promptly(self) -> int:
        return sum(
            1
            for r in self.recipients
            if r.reached.get("opened")
            and r.seconds_to_open is not None
            and r.seconds_to_open <= OPENED_PROMPTLY_SECONDS
        )

    @property
    def median_seconds_to_open(self) -> float | None:
        waits = [r.seconds_to_open for r in self.recipients if r.seconds_to_open is not None]
        return statistics.median(waits) if waits else None

    @property
    def in_pitch(self) -> list[Track]:
        return [t for t in self.tracks if t.position is not None]

    @property
    def skipped_plays(self) -> int:
        return sum(c.skipped_plays for t in self.tracks for c in t.cells.values())

    @property
    def listened_ms(self) -> int:
        return sum(r.listened_ms for r in self.recipients)

    @property
    def comments(self) -> int:
        return sum(r.comments for r in self.recipients)


def _int(value: Any) -> int:
    return int(value or 0)


def load_pitch(warehouse: Warehouse, pitch_id: uuid.UUID) -> PitchReport:
    """The pitch's figures; ``PitchNotFoundError`` when the marts have no row of it."""
    funnel: list[dict[str, Any]] = []
    engagement: list[dict[str, Any]] = []
    key = str(pitch_id)
    if warehouse.has("fct_pitch_funnel"):
        funnel = warehouse.rows(
            f"select {', '.join(_FUNNEL_COLUMNS)} from fct_pitch_funnel where pitch_id = ?"
            " order by recipient_id",
            [key],
        )
    if warehouse.has("fct_pitch_engagement"):
        engagement = warehouse.rows(
            f"select {', '.join(_ENGAGEMENT_COLUMNS)} from fct_pitch_engagement"
            " where pitch_id = ? order by recipient_id, track_position nulls last, track_id",
            [key],
        )
    if not funnel and not engagement:
        pitches = 0
        if warehouse.has("fct_pitch_funnel"):
            pitches = int(warehouse.value("select count(distinct pitch_id) from fct_pitch_funnel"))
        raise PitchNotFoundError(pitch_id, warehouse.path, pitches)

    recipients: dict[str, Recipient] = {}
    for row in funnel:
        recipients[row["recipient_id"]] = Recipient(
            id=row["recipient_id"],
            company=row["recipient_company"],
            sent_at=row["sent_at"],
            opened_at=row["opened_at"],
            seconds_to_open=row["seconds_sent_to_opened"],
            furthest_step=row["furthest_step"] or "not sent",
            opens=_int(row["opens"]),
            plays=_int(row["plays"]),
            listened_ms=_int(row["listened_ms"]),
            downloads=_int(row["downloads"]),
            shortlisted_tracks=_int(row["shortlisted_tracks"]),
            comments=_int(row["comment_count"]),
            reached={step: bool(row[f"is_{step}"]) for step in FUNNEL_STEPS},
        )
    tracks: dict[str, Track] = {}
    for row in engagement:
        recipient = recipients.get(row["recipient_id"])
        if recipient is None:  # named by the events only: the funnel mart should have it too
            recipient = recipients[row["recipient_id"]] = Recipient(
                id=row["recipient_id"], company=row["recipient_company"], sent_at=row["sent_at"]
            )
        track = tracks.get(row["track_id"])
        if track is None:
            track = tracks[row["track_id"]] = Track(
                id=row["track_id"],
                title=row["track_title"],
                position=row["track_position"],
                duration_ms=row["duration_ms"],
            )
        track.cells[recipient.id] = Cell(
            plays=_int(row["plays"]),
            listened_ms=_int(row["listened_ms"]),
            share=row["furthest_position_share"],
            completed=bool(row["completed"]),
            skipped_plays=_int(row["skipped_plays"]),
            downloads=_int(row["downloads"]),
            shortlisted=bool(row["shortlisted"]),
            comments=_int(row["comment_count"]),
        )
    _name_recipients(list(recipients.values()))
    names = distinct(
        [t.title or f"Deleted track {short_id(t.id)}" for t in tracks.values()],
        list(tracks),
    )
    for track, name in zip(tracks.values(), names, strict=True):
        track.label = name
    title = next(
        (r["pitch_title"] for r in (*funnel, *engagement) if r["pitch_title"]),
        f"Pitch {short_id(key)}",
    )
    as_of = max(
        (
            stamp
            for row in (*funnel, *engagement)
            for name in ("sent_at", "opened_at", "first_opened_at", "last_activity_at")
            if (stamp := row.get(name)) is not None
        ),
        default=None,
    )
    return PitchReport(
        pitch_id=pitch_id,
        title=title,
        recipients=sorted(
            recipients.values(),
            key=lambda r: (
                -_STEP_RANK.get(r.furthest_step, 0),
                r.opened_at or datetime.max,
                r.label.casefold(),
            ),
        ),
        tracks=sorted(
            tracks.values(),
            key=lambda t: (t.position is None, t.position or 0, t.label.casefold()),
        ),
        as_of=as_of,
        built_at=warehouse.built_at(),
    )


def _name_recipients(recipients: list[Recipient]) -> None:
    """Company names; with the short form of the id where two share one, or for a recipient
    without."""
    labels = distinct(
        [r.company or f"Recipient {short_id(r.id)}" for r in recipients],
        [r.id for r in recipients],
    )
    for recipient, text in zip(recipients, labels, strict=True):
        recipient.label = text


# -- the written summary --------------------------------------------------------------------------
def _quoted(text: str) -> str:
    return f"'{text}'"


def summarise(report: PitchReport) -> list[str]:
    """A few sentences about the pitch, from its figures, for a product manager to forward."""
    sentences = []
    sent = len(report.sent)
    unsent = len(report.recipients) - sent
    if sent == 0:
        return [
            f"{_quoted(report.title)} has not been sent to any of its "
            f"{plural(len(report.recipients), 'recipient')} yet."
        ]
    first, last = report.first_sent, report.last_sent
    when = (
        f"on {day(first)}"
        if first is None or last is None or first.date() == last.date()
        else f"between {day(first)} and {day(last)}"
    )
    opening = f"{_quoted(report.title)} was sent to {plural(sent, 'recipient')} {when}"
    if unsent:
        opening += f"; {unsent} more {'has' if unsent == 1 else 'have'} not been sent the link yet"
    sentences.append(opening + ".")

    opened = sum(1 for r in report.recipients if r.reached.get("opened"))
    promptly = report.opened_promptly
    if opened == 0:
        sentences.append("Nobody has opened it yet.")
        return sentences
    if opened == sent:
        reach = "The recipient" if sent == 1 else f"All {sent} recipients"
    else:
        reach = f"{opened} of {plural(sent, 'recipient')}"
    reach += " opened the pitch"
    if promptly == opened:
        sentences.append(f"{reach} within 2 days.")
    elif promptly == 0:
        sentences.append(f"{reach}, none of them within 2 days.")
    else:
        sentences.append(f"{reach}, {promptly} of them within 2 days.")

    played = report.did("played")
    if played == 0:
        sentences.append("Nobody has played a track yet.")
        return sentences
    steps = [f"{played} played at least one track"]
    for what in ("downloaded", "shortlisted"):
        if n := report.did(what):
            steps.append(f"{n} {what} one")
    sentences.append(series(steps) + ".")

    tracks = report.in_pitch or report.tracks
    ranked = sorted(
        tracks,
        key=lambda t: (-t.by("shortlisted"), -t.by("downloaded"), -t.by("played"), -t.listened_ms),
    )
    for n, track in enumerate(ranked):
        if track.by("played") == 0 or (n > 0 and track.by("shortlisted") == 0):
            continue
        did = [f"played by {track.by('played')}"]
        did += [f"{what} by {track.by(what)}" for what in ("downloaded", "shortlisted")]
        did = [d for d in did if not d.endswith(" by 0")]
        sentences.append(f"{_quoted(track.label)} was {series(did)}.")
    unplayed = [_quoted(t.label) for t in tracks if t.by("played") == 0]
    if unplayed:
        sentences.append(f"Nobody played {series(unplayed, 'or')}.")
    if report.did("downloaded"):
        undownloaded = [
            _quoted(t.label) for t in tracks if t.by("played") and t.by("downloaded") == 0
        ]
        if undownloaded:
            sentences.append(f"Nobody downloaded {series(undownloaded, 'or')}.")

    listening = f"Recipients listened for {duration(report.listened_ms)} in total"
    if skipped := report.skipped_plays:
        listening += (
            f"; {plural(skipped, 'play')} {'was' if skipped == 1 else 'were'} skipped"
            " in the first 30 seconds"
        )
    sentences.append(listening + ".")
    if comments := report.comments:
        sentences.append(
            f"{plural(comments, 'comment')} {'was' if comments == 1 else 'were'} left."
        )
    return sentences


# -- the charts -----------------------------------------------------------------------------------
def funnel_chart(steps: list[tuple[str, int]], chart_id: str = "funnel") -> Chart:
    """Recipients at each step, with the share of those sent the link and of the step before."""
    import plotly.graph_objects as go  # type: ignore[import-untyped]

    sent = steps[0][1]
    names = [s.capitalize() for s, _ in steps]
    text = [f"{n} ({percent(n, sent)} of sent)" for _, n in steps]
    hover = [
        f"<b>{names[i]}</b><br>{plural(n, 'recipient')}<br>{percent(n, sent)} of those sent the "
        "link" + (f"<br>{percent(n, steps[i - 1][1])} of the step before" if i else "")
        for i, (_, n) in enumerate(steps)
    ]
    figure = go.Figure(
        go.Funnel(
            y=names,
            x=[n for _, n in steps],
            text=text,
            textinfo="text",
            hovertext=hover,
            hoverinfo="text",
            marker={"color": [PALETTE[0], PALETTE[4], PALETTE[2], PALETTE[1], PALETTE[3]]},
            connector={"fillcolor": "#e6ebf0", "line": {"color": "#c9d2dc", "width": 1}},
        )
    )
    style(figure, height=340, legend=False)
    figure.update_layout(margin={"l": 110, "r": 24, "t": 16, "b": 24})
    figure.update_yaxes(title_text="Step")
    return chart(chart_id, "Recipients at each step", figure)


def heatmap_chart(report: PitchReport) -> Chart:
    import plotly.graph_objects as go

    z: list[list[float | None]] = []
    marks: list[list[str]] = []
    hover: list[list[str]] = []
    for track in report.tracks:
        z_row, mark_row, hover_row = [], [], []
        for recipient in report.recipients:
            cell = track.cells.get(recipient.id, Cell())
            reached = cell.share if cell.share is not None else (0.0 if cell.plays == 0 else None)
            z_row.append(None if reached is None else round(100 * reached, 1))
            mark = f"{round(100 * reached)}%" if cell.plays and reached is not None else ""
            if cell.plays and reached is None:
                mark = "▶"
            mark += " ↓" if cell.downloads else ""
            mark += " ★" if cell.shortlisted else ""
            mark_row.append(mark.strip())
            hover_row.append(
                "<br>".join(
                    [
                        f"<b>{label(track.label)}</b>",
                        label(recipient.label),
                        f"Reached {percent(reached)} of the track"
                        if reached is not None
                        else "Duration unknown",
                        f"{plural(cell.plays, 'play')}, {duration(cell.listened_ms)} listened",
                        f"Downloaded: {cell.downloads or 'no'}",
                        f"Shortlisted: {'yes' if cell.shortlisted else 'no'}",
                        f"Comments: {cell.comments}",
                    ]
                )
            )
        z.append(z_row)
        marks.append(mark_row)
        hover.append(hover_row)
    figure = go.Figure(
        go.Heatmap(
            z=z,
            x=[label(r.label) for r in report.recipients],
            y=[label(t.label) for t in report.tracks],
            text=marks,
            texttemplate="%{text}",
            textfont={"size": 12},
            hovertext=hover,
            hoverinfo="text",
            colorscale=[[0.0, "#f2f5f8"], [0.001, "#dbe9f6"], [1.0, "#08519c"]],
            zmin=0,
            zmax=100,
            xgap=2,
            ygap=2,
            colorbar={"title": {"text": "Reached<br>(% of track)"}, "ticksuffix": "%"},
        )
    )
    style(figure, height=max(260, 110 + 46 * len(report.tracks)), legend=False)
    figure.update_layout(margin={"l": 150, "r": 24, "t": 16, "b": 110})
    figure.update_xaxes(title_text="Recipient", tickangle=-30, side="bottom")
    figure.update_yaxes(title_text="Track", autorange="reversed")
    return chart("heatmap", "How far each recipient listened to each track", figure)


# -- the page -------------------------------------------------------------------------------------
def _elapsed(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} days {hours} h"


def write_pitch_report(warehouse: Path, pitch_id: uuid.UUID, out: Path) -> Path:
    """Write the pitch engagement report of ``pitch_id`` from the marts in ``warehouse`` to
    ``out`` (a file; an existing directory gets ``pitch-<id>.html``) and return its path.

    Raises ``PitchNotFoundError`` (a ``ValueError``) when the marts have no row of the pitch,
    and ``dashboards.charts.WarehouseError`` when the warehouse cannot be read."""
    with open_warehouse(warehouse) as opened:
        report = load_pitch(opened, pitch_id)
    if out.is_dir():
        out = out / f"pitch-{pitch_id}.html"
    steps = report.funnel()
    sent = steps[0][1]
    conversion = [
        {
            "step": step.capitalize(),
            "recipients": n,
            "of_sent": percent(n, sent),
            "of_previous": "—" if i == 0 else percent(n, steps[i - 1][1]),
        }
        for i, (step, n) in enumerate(steps)
    ]
    charts = [funnel_chart(steps)] if sent else []
    if report.tracks and report.recipients:
        charts.append(heatmap_chart(report))
    removed = len(report.tracks) - len(report.in_pitch)
    facts = [
        ("Sent", _sent_fact(report)),
        (
            "Recipients",
            f"{len(report.recipients)}"
            + (
                f" ({len(report.sent)} sent the link)"
                if len(report.sent) < len(report.recipients)
                else ""
            ),
        ),
        (
            "Tracks",
            f"{len(report.in_pitch)}"
            + (f" (and {removed} no longer in the pitch)" if removed else ""),
        ),
        ("Median time to open", _elapsed(report.median_seconds_to_open)),
        ("Listening", duration(report.listened_ms)),
        ("Pitch id", str(report.pitch_id)),
    ]
    page = render(
        "report.html",
        {
            "page_title": f"{report.title}: pitch engagement",
            "report": report,
            "facts": facts,
            "summary": summarise(report),
            "conversion": conversion,
            "charts": {c.id: c for c in charts},
            "recipients": report.recipients,
            "as_of": report.as_of,
            "built_at": report.built_at,
        },
    )
    return write_page(out, page)


def _sent_fact(report: PitchReport) -> str:
    first, last = report.first_sent, report.last_sent
    if first is None or last is None:
        return "Not sent yet"
    if first.date() == last.date():
        return day(first)
    return f"{day(first)} to {day(last)}"
