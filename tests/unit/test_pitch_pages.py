"""The recipient pitch page's HTML: escaped, CSP-clean, and saying what each state means."""

from __future__ import annotations

import subprocess
import sys
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from html.parser import HTMLParser

import pytest

from services.pitching import pages
from services.pitching.pages import PageTrack, PitchPage

pytestmark = pytest.mark.unit

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'
BASE = "/p/tok_abc123"


class Element:
    def __init__(self, tag: str, attrs: dict[str, str | None]) -> None:
        self.tag = tag
        self.attrs = attrs


class Collect(HTMLParser):
    """Every start tag with its attributes, and all the text (entities decoded)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[Element] = []
        self.text: list[str] = []
        self.script_bodies: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append(Element(tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append(Element(tag, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.script_bodies.append(data)
        self.text.append(data)

    def find(self, tag: str, **attrs: str) -> list[Element]:
        return [
            e
            for e in self.elements
            if e.tag == tag and all(e.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items())
        ]

    def with_class(self, css_class: str) -> list[Element]:
        return [e for e in self.elements if css_class in (e.attrs.get("class") or "").split()]


def parse(html: str) -> Collect:
    parser = Collect()
    parser.feed(html)
    parser.close()
    return parser


def track(position: int, **changes: object) -> PageTrack:
    base = PageTrack(
        id=uuid.UUID(int=position + 1),
        position=position,
        title=f"Track {position + 1}",
        artists=["Ada Lane", "The Sync Band"],
        album="Cues Vol. 1",
        duration_ms=201_000,
        shortlisted=False,
        comment=None,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def pitch(**changes: object) -> PitchPage:
    base = PitchPage(
        base_path=BASE,
        title="Summer picks",
        message="Hi Jo,\n\nThree cues for the\nsummer campaign.",
        sender_name="Ada Lane",
        recipient_name="Jo Supervisor",
        expires_at=datetime(2026, 3, 5, 14, 0, tzinfo=UTC),
        allow_download=True,
        tracks=[track(0), track(1, shortlisted=True, comment="Great for the chase")],
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def all_pages() -> dict[str, str]:
    return {
        "pitch": pages.render_pitch(pitch()),
        "password": pages.render_password(BASE, "That password is not right."),
        "expired": pages.render_gone("expired"),
        "revoked": pages.render_gone("revoked"),
        "not_found": pages.render_not_found(),
        "rate_limited": pages.render_rate_limited(30),
    }


def test_hostile_titles_messages_and_comments_are_shown_as_text() -> None:
    hostile_track = track(
        0, title=HOSTILE, artists=[HOSTILE], album=HOSTILE, comment=f"</textarea>{HOSTILE}"
    )
    html = pages.render_pitch(
        pitch(
            title=HOSTILE,
            message=HOSTILE,
            sender_name=HOSTILE,
            recipient_name=HOSTILE,
            tracks=[hostile_track],
        )
    )
    doc = parse(html)

    # Only the page's own script element; no injected tag of any kind
    assert [e.attrs.get("src") for e in doc.find("script")] == ["/p/assets/pitch.js"]
    assert doc.find("img") == []
    assert doc.script_bodies == []
    assert "<script>alert" not in html and "</textarea><script" not in html
    # and the text reads exactly as the sender typed it
    text = "".join(doc.text)
    assert HOSTILE in text
    assert f"</textarea>{HOSTILE}" in text
    assert [e.attrs.get("aria-label") for e in doc.with_class("btn-play")] == [f"Play {HOSTILE}"]
    assert [e.attrs.get("data-title") for e in doc.find("li")] == [HOSTILE]


@pytest.mark.parametrize("name", list(all_pages()))
def test_pages_have_no_inline_script_style_or_event_handlers(name: str) -> None:
    doc = parse(all_pages()[name])

    for element in doc.elements:
        handlers = [a for a in element.attrs if a.lower().startswith("on")]
        assert handlers == [], f"<{element.tag}> has {handlers}"
        assert "style" not in element.attrs, f"<{element.tag}> has a style attribute"
        for attr in ("href", "src", "action"):
            value = (element.attrs.get(attr) or "").strip().lower()
            assert not value.startswith("javascript:"), f"<{element.tag} {attr}={value}>"
    assert doc.find("style") == []
    assert doc.script_bodies == []
    for script in doc.find("script"):
        assert (script.attrs.get("src") or "").startswith("/p/assets/")


@pytest.mark.parametrize("name", list(all_pages()))
def test_pages_reference_only_their_own_assets(name: str) -> None:
    doc = parse(all_pages()[name])

    stylesheets = [e.attrs["href"] for e in doc.find("link", rel="stylesheet")]
    scripts = [e.attrs["src"] for e in doc.find("script")]
    assert stylesheets == ["/p/assets/pitch.css"]
    for url in [*stylesheets, *scripts]:
        assert url is not None and url.startswith("/p/assets/")
        assert pages.asset(url.removeprefix("/p/assets/")) is not None
    # No other origin anywhere: no fonts, no CDNs, no analytics
    for element in doc.elements:
        for attr in ("href", "src", "action"):
            value = element.attrs.get(attr)
            if value is not None and value not in ("data:,", "#tracks-heading"):
                same_origin = value.startswith("/") and not value.startswith("//")
                assert same_origin, f"<{element.tag} {attr}={value}>"
    assert doc.find("html")[0].attrs.get("lang") == "en"
    assert doc.find("meta", name="viewport")


def test_the_script_is_loaded_only_where_it_is_needed() -> None:
    rendered = all_pages()
    assert parse(rendered["pitch"]).find("script", src="/p/assets/pitch.js")
    for name in ("password", "expired", "revoked", "not_found", "rate_limited"):
        assert parse(rendered[name]).find("script") == [], name


def test_every_url_of_the_pitch_page_is_built_from_its_base_path() -> None:
    doc = parse(pages.render_pitch(pitch()))

    main = doc.find("main")[0]
    assert main.attrs["data-base-path"] == BASE
    rows = doc.find("li", **{"data_track_id": str(uuid.UUID(int=1))})
    assert rows and rows[0].attrs["data-duration-ms"] == "201000"
    for form in doc.find("form"):
        assert form.attrs["action"] == f"{BASE}/feedback"


def test_download_links_only_when_the_pitch_allows_downloads() -> None:
    allowed = parse(pages.render_pitch(pitch(allow_download=True)))
    refused = parse(pages.render_pitch(pitch(allow_download=False)))

    links = [e.attrs["href"] for e in allowed.with_class("btn-download")]
    assert links == [f"{BASE}/tracks/{uuid.UUID(int=n)}/download" for n in (1, 2)]
    assert refused.with_class("btn-download") == []
    assert not any("/download" in (e.attrs.get("href") or "") for e in refused.elements)


def test_shortlisted_tracks_are_pressed_and_every_control_is_labelled() -> None:
    doc = parse(pages.render_pitch(pitch()))

    shortlist = doc.with_class("btn-shortlist")
    assert [e.attrs["aria-pressed"] for e in shortlist] == ["false", "true"]
    assert [e.attrs["aria-label"] for e in shortlist] == ["Shortlist Track 1", "Shortlist Track 2"]
    play = doc.with_class("btn-play")
    assert [(e.tag, e.attrs["type"], e.attrs["aria-pressed"]) for e in play] == [
        ("button", "button", "false"),
        ("button", "button", "false"),
    ]
    assert [e.attrs["aria-label"] for e in play] == ["Play Track 1", "Play Track 2"]
    # Every textarea has a label, a length limit and the saved comment
    areas = doc.find("textarea")
    labels = {e.attrs["for"] for e in doc.find("label")}
    assert all(a.attrs["id"] in labels and a.attrs["maxlength"] == "2000" for a in areas)
    assert "Great for the chase" in "".join(doc.text)
    # One shared player with visible controls
    audio = doc.find("audio")
    assert len(audio) == 1 and "controls" in audio[0].attrs


def test_the_header_shows_sender_message_paragraphs_expiry_and_durations() -> None:
    html = pages.render_pitch(pitch())
    doc = parse(html)

    text = " ".join("".join(doc.text).split())
    assert "from Ada Lane" in text
    assert "5 March 2026, 14:00 UTC" in text
    assert doc.find("time", datetime="2026-03-05T14:00:00Z")
    assert "<p>Hi Jo,</p>" in html and "<p>Three cues for the<br>summer campaign.</p>" in html
    assert "3:21" in text
    no_sender = " ".join("".join(parse(pages.render_pitch(pitch(sender_name=None))).text).split())
    assert "from " not in no_sender


@pytest.mark.parametrize(
    ("ms", "shown"), [(0, "0:00"), (999, "0:01"), (61_000, "1:01"), (3_723_000, "62:03")]
)
def test_durations_are_minutes_and_seconds(ms: int, shown: str) -> None:
    assert pages.format_duration(ms) == shown


def test_message_paragraphs_split_on_blank_lines() -> None:
    assert pages.paragraphs("a\r\nb\n\n\n c \n\n") == [["a", "b"], ["c"]]
    assert pages.paragraphs("   ") == []


def test_password_page_posts_to_unlock_and_announces_the_error() -> None:
    doc = parse(pages.render_password(BASE, "That password is not right."))

    form = doc.find("form")[0]
    assert (form.attrs["method"], form.attrs["action"]) == ("post", f"{BASE}/unlock")
    field = doc.find("input", name="password")[0]
    assert field.attrs["type"] == "password"
    assert field.attrs["id"] in {e.attrs["for"] for e in doc.find("label")}
    assert field.attrs["aria-invalid"] == "true"
    alert = doc.find("p", role="alert")
    assert alert and alert[0].attrs["id"] == field.attrs["aria-describedby"]
    assert "That password is not right." in "".join(doc.text)

    first_try = parse(pages.render_password(BASE, None))
    assert first_try.find("p", role="alert") == []
    assert "aria-invalid" not in first_try.find("input", name="password")[0].attrs


def test_gone_pages_say_expired_or_withdrawn_and_to_ask_for_a_new_link() -> None:
    expired = " ".join("".join(parse(pages.render_gone("expired")).text).split())
    revoked = " ".join("".join(parse(pages.render_gone("revoked")).text).split())

    assert "expired" in expired and "withdrawn" not in expired
    assert "withdrawn" in revoked and "expired" not in revoked
    for text in (expired, revoked):
        assert "ask the person who sent it" in text and "new link" in text


def test_not_found_and_rate_limited_pages() -> None:
    missing = " ".join("".join(parse(pages.render_not_found()).text).split())
    assert "can't find this link" in missing and "new link" in missing
    assert "30 seconds" in "".join(parse(pages.render_rate_limited(30)).text)
    assert "2 minutes" in "".join(parse(pages.render_rate_limited(61)).text)
    assert "1 second " in "".join(parse(pages.render_rate_limited(0)).text)


def test_assets_are_served_by_name_with_their_type() -> None:
    script = pages.asset("pitch.js")
    style = pages.asset("pitch.css")
    assert script is not None and script[1] == "text/javascript; charset=utf-8"
    assert script[0].lstrip().startswith(b"//") and b"'use strict'" in script[0]
    assert style is not None and style[1] == "text/css; charset=utf-8"


@pytest.mark.parametrize(
    "name",
    [
        "../pages.py",
        "..%2Fpages.py",
        "../templates/pitch.html",
        "/etc/passwd",
        "pitch.js/",
        "./pitch.js",
        "assets/pitch.js",
        "PITCH.JS",
        "",
        ".",
        "..",
        "pitch.js\x00.css",
    ],
)
def test_asset_refuses_anything_but_a_file_in_assets(name: str) -> None:
    assert pages.asset(name) is None


def test_importing_the_module_does_not_import_jinja() -> None:
    code = (
        "import sys; import services.pitching.pages; sys.exit(1 if 'jinja2' in sys.modules else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
