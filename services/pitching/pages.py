"""The recipient pitch page and its sibling pages, rendered on the server (Jinja, autoescaped).

The pages follow a strict Content-Security-Policy: no inline scripts or styles and no event
handler attributes; everything the page's script needs is in ``data-*`` attributes, and the
script and the stylesheet are served by ``asset`` at ``/p/assets/<name>``.

Jinja is imported and its environment built on the first render, not at import: a Lambda cold
start that only serves assets or API routes never pays for it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from jinja2 import Environment

_HERE = Path(__file__).resolve().parent
_TEMPLATES = _HERE / "templates"
_ASSETS = _HERE / "assets"
ASSET_PREFIX = "/p/assets/"
COMMENT_MAX_CHARS = 2000

_CONTENT_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
}


@dataclass(frozen=True)
class PageTrack:
    id: uuid.UUID
    position: int  # 0-based
    title: str
    artists: list[str]
    album: str | None
    duration_ms: int
    shortlisted: bool
    comment: str | None


@dataclass(frozen=True)
class PitchPage:
    base_path: str  # "/p/<token>": every URL of the page is built from it
    title: str
    message: str  # plain text, may have newlines: rendered as paragraphs, escaped
    sender_name: str | None
    recipient_name: str
    expires_at: datetime  # UTC
    allow_download: bool
    tracks: list[PageTrack]


def render_pitch(page: PitchPage) -> str:
    """The pitch itself: header, player, and the track list with feedback controls."""
    return _render(
        "pitch.html",
        page=page,
        paragraphs=paragraphs(page.message),
        expires_iso=_utc(page.expires_at).isoformat().replace("+00:00", "Z"),
        expires_text=format_expiry(page.expires_at),
        comment_max=COMMENT_MAX_CHARS,
    )


def render_password(base_path: str, error: str | None) -> str:
    """The form a password-protected link shows first: POST {base_path}/unlock, "password"."""
    return _render("password.html", base_path=base_path, error=error)


def render_gone(reason: Literal["expired", "revoked"]) -> str:
    """The page an expired or withdrawn link answers with (served with 410)."""
    return _render("gone.html", reason=reason)


def render_not_found() -> str:
    """The page an unknown link answers with (served with 404)."""
    return _render("not_found.html")


def render_rate_limited(retry_after: int) -> str:
    """The page for too many attempts (served with 429 and ``Retry-After``)."""
    return _render("rate_limited.html", wait=format_wait(retry_after))


def asset(name: str) -> tuple[bytes, str] | None:
    """A static file of the page and its content type, or None for any other name."""
    found = _asset_files().get(name)
    if found is None:
        return None
    return _read_asset(found)


# Formatting helpers (public for the tests and the templates).


def paragraphs(message: str) -> list[list[str]]:
    """Plain text as paragraphs (split on blank lines), each a list of its lines."""
    text = message.replace("\r\n", "\n").replace("\r", "\n").strip()
    result: list[list[str]] = []
    for block in text.split("\n\n"):
        lines = [line.strip() for line in block.split("\n") if line.strip()]
        if lines:
            result.append(lines)
    return result


def format_duration(ms: int) -> str:
    """Milliseconds as m:ss (minutes not capped at 59): 61_000 -> "1:01"."""
    seconds = max(0, round(ms / 1000))
    minutes, rest = divmod(seconds, 60)
    return f"{minutes}:{rest:02d}"


def format_expiry(when: datetime) -> str:
    """An unambiguous date for readers anywhere: "5 March 2026, 14:00 UTC"."""
    utc = _utc(when)
    return f"{utc.day} {utc:%B %Y, %H:%M} UTC"


def format_wait(seconds: int) -> str:
    seconds = max(1, seconds)
    if seconds < 60:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = -(-seconds // 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def _utc(when: datetime) -> datetime:
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _render(template: str, **context: Any) -> str:
    page = _environment().get_template(template).render(**context)
    # As ASCII, with character references for the rest: a str with even one other character
    # takes ~70 times longer to encode (100 us for a 50-track page, on every view of a cached
    # page), and the browser reads "&#233;" as "é" in text, attributes and <textarea>.
    return page.encode("ascii", "xmlcharrefreplace").decode("ascii")


@cache
def _environment() -> Environment:
    from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

    env = Environment(
        loader=FileSystemLoader(_TEMPLATES),
        autoescape=select_autoescape(["html"], default_for_string=True, default=True),
        undefined=StrictUndefined,
        # Templates never change while a process runs: no stat() per render.
        auto_reload=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["asset_url"] = _asset_url
    env.filters["duration"] = format_duration
    return env


def _asset_url(name: str) -> str:
    if name not in _asset_files():
        raise ValueError(f"no asset named {name!r}")
    return ASSET_PREFIX + name


@cache
def _asset_files() -> dict[str, Path]:
    """The servable files: regular files directly in assets/ with a known type, by name.

    Looking names up in this listing (never joining a request's name onto a path) is what
    keeps "../pages.py", "%2e%2e/x" or absolute paths out.
    """
    if not _ASSETS.is_dir():
        return {}
    return {
        path.name: path
        for path in _ASSETS.iterdir()
        if path.is_file() and not path.name.startswith(".") and path.suffix in _CONTENT_TYPES
    }


@cache
def _read_asset(path: Path) -> tuple[bytes, str]:
    return path.read_bytes(), _CONTENT_TYPES[path.suffix]
