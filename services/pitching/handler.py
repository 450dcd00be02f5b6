"""Pitching service Lambda: pitches for their owners, and the recipient page behind each link.

`/v1/pitches...` needs a signed-in owner; `/p/...` is the capability link: no sign-in, the
token is the credential. The link's pages answer in HTML (errors too: a browser shows them);
its JSON routes answer problem details like every other route.
"""

import uuid
from collections.abc import Callable
from functools import cache
from typing import Annotated, Any
from urllib.parse import parse_qs, urlsplit

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.depends import Depends
from aws_lambda_powertools.event_handler.openapi.params import Body, Header, Query
from aws_lambda_powertools.shared.cookies import Cookie, SameSite
from aws_lambda_powertools.utilities.typing import LambdaContext

from ingest.events.client import MAX_BODY_BYTES, EventsIn, EventsResult
from ingest.events.emitter import Emitter
from services.core.errors import ProblemError
from services.core.http import (
    CORRELATION_HEADER,
    check_body_size,
    create_resolver,
    current_events,
    current_principal,
    etag,
    expected_version,
    json_response,
)
from services.core.principal import Principal
from services.core.ratelimit import RateLimited
from services.pitching import pages
from services.pitching.links import SESSION_COOKIE, Sessions
from services.pitching.models import (
    FeedbackIn,
    FeedbackOut,
    PitchCreate,
    PitchOut,
    PitchPage,
    PitchPatch,
    RecipientOut,
    RecipientsIn,
    RecipientsOut,
)
from services.pitching.owner import Pitches
from services.pitching.page_cache import PageCache
from services.pitching.recipient import Link, LinkGone, LinkUnknown, Recipients

# Pitch creation carries up to 200 recipients; the link's event route keeps the collector's
# 64 KiB limit (checked in the route).
app = create_resolver("pitching", public_prefixes=("/p/",), max_body_bytes=512 * 1024)
Caller = Annotated[Principal, Depends(current_principal)]
Events = Annotated[Emitter, Depends(current_events)]


def _pitches(events: Events) -> Pitches:
    from services.core.wiring import dependencies

    deps = dependencies()
    return Pitches(deps.pool, deps.clock, deps.settings, events)


def _recipients(events: Events) -> Recipients:
    from services.core.wiring import dependencies

    deps = dependencies()
    sessions = Sessions(deps.signing_secret, deps.settings.pitch_session_hours * 3600)
    return Recipients(
        deps.pool,
        deps.clock,
        deps.settings,
        deps.objects,
        events,
        deps.redis,
        sessions,
        _page_cache(deps.settings.pitch_page_cache_mib),
    )


@cache
def _page_cache(mib: int) -> PageCache:
    return PageCache(max_chars=mib * 1024 * 1024)


Owner = Annotated[Pitches, Depends(_pitches)]
Access = Annotated[Recipients, Depends(_recipients)]


# -- owners -------------------------------------------------------------------------------------


@app.post("/v1/pitches", summary="Pitch a playlist: one link per recipient, shown only now")
def create_pitch(
    caller: Caller, owner: Owner, request: Annotated[PitchCreate, Body()]
) -> Response[PitchOut]:
    pitch = owner.create(caller, request)
    return json_response(pitch, 201, etag(pitch.version))


@app.get("/v1/pitches", summary="Your pitches, newest first")
def list_pitches(
    caller: Caller,
    owner: Owner,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
    cursor: Annotated[str | None, Query(max_length=1000)] = None,
) -> PitchPage:
    return owner.list_pitches(caller, limit=limit, cursor=cursor)


@app.get("/v1/pitches/<pitch_id>", summary="A pitch, with what each recipient did")
def get_pitch(caller: Caller, owner: Owner, pitch_id: uuid.UUID) -> Response[PitchOut]:
    pitch = owner.get(caller, pitch_id)
    return json_response(pitch, headers=etag(pitch.version))


@app.patch("/v1/pitches/<pitch_id>", summary="Change a pitch's expiry, downloads, password, text")
def update_pitch(
    caller: Caller,
    owner: Owner,
    pitch_id: uuid.UUID,
    patch: Annotated[PitchPatch, Body()],
    if_match: Annotated[str | None, Header(alias="if-match")] = None,
) -> Response[PitchOut]:
    pitch = owner.update(caller, pitch_id, patch, expected_version(if_match, "pitch"))
    return json_response(pitch, headers=etag(pitch.version))


@app.post("/v1/pitches/<pitch_id>/recipients", summary="Add recipients (their links shown now)")
def add_recipients(
    caller: Caller, owner: Owner, pitch_id: uuid.UUID, request: Annotated[RecipientsIn, Body()]
) -> Response[RecipientsOut]:
    added = owner.add_recipients(caller, pitch_id, request.recipients)
    return json_response(RecipientsOut(recipients=added), 201)


@app.delete("/v1/pitches/<pitch_id>/recipients/<recipient_id>", summary="Revoke one link")
def revoke_recipient(
    caller: Caller, owner: Owner, pitch_id: uuid.UUID, recipient_id: uuid.UUID
) -> Response[None]:
    owner.revoke_recipient(caller, pitch_id, recipient_id)
    return Response(204)


@app.post(
    "/v1/pitches/<pitch_id>/recipients/<recipient_id>/link",
    summary="Issue a new link for a recipient (the old one stops working)",
)
def reissue_link(
    caller: Caller, owner: Owner, pitch_id: uuid.UUID, recipient_id: uuid.UUID
) -> RecipientOut:
    return owner.reissue_link(caller, pitch_id, recipient_id)


@app.post("/v1/pitches/<pitch_id>/revoke", summary="Revoke every link of a pitch")
def revoke_pitch(caller: Caller, owner: Owner, pitch_id: uuid.UUID) -> PitchOut:
    return owner.revoke(caller, pitch_id)


# -- recipients (the capability link) ------------------------------------------------------------


def _client_address() -> str:
    return str(app.current_event.request_context.http.source_ip or "unknown")


def _session_cookie() -> str | None:
    for cookie in app.current_event.cookies or []:
        name, _, value = cookie.partition("=")
        if name.strip() == SESSION_COOKIE:
            return value.strip()
    return None


def _base_path(token: str) -> str:
    return f"/p/{token}"


@cache
def _media_origin() -> str:
    """Where audio URLs point (the local server, or the S3 bucket): the page's media-src."""
    from datetime import UTC, datetime, timedelta

    from services.core.wiring import dependencies

    deps = dependencies()
    probe = deps.objects.media_url(
        "csp/probe",
        content_type="audio/mpeg",
        expires_at=datetime.now(UTC) + timedelta(minutes=1),
        download_filename=None,
    )
    parts = urlsplit(probe)
    return f"{parts.scheme}://{parts.netloc}"


def _page_headers() -> dict[str, str]:
    return {
        "Content-Security-Policy": (
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            f"media-src 'self' {_media_origin()}; connect-src 'self'; form-action 'self'; "
            "base-uri 'none'; frame-ancestors 'none'"
        ),
        "Referrer-Policy": "no-referrer",
        "X-Robots-Tag": "noindex, nofollow",
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-store",
    }


def _html(body: str, status: int = 200, cookies: list[Cookie] | None = None) -> Response[str]:
    return Response(status, "text/html; charset=utf-8", body, _page_headers(), cookies)


def _html_errors(action: Callable[[], Response[Any]]) -> Response[Any]:
    """Run a navigation route; a dead, unknown or throttled link is a page, not JSON."""
    try:
        return action()
    except LinkGone as gone:
        return _html(pages.render_gone(gone.reason), 410)
    except LinkUnknown:
        return _html(pages.render_not_found(), 404)
    except RateLimited as limited:
        response = _html(pages.render_rate_limited(limited.extra["retry_after"]), 429)
        response.headers["Retry-After"] = limited.headers["Retry-After"]
        return response


def _open(access: Recipients, token: str, *, for_page: bool = False) -> Link:
    return access.open(token, _client_address(), for_page=for_page)


@app.get("/p/assets/<name>", summary="The pitch page's stylesheet and script")
def pitch_asset(name: str) -> Response[bytes]:
    found = pages.asset(name)
    if found is None:
        raise ProblemError(404, "route_not_found", "No such route")
    body, content_type = found
    headers = {"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"}
    return Response(200, content_type, body, headers)


@app.get("/p/<token>", summary="The recipient's pitch page (HTML)", include_in_schema=True)
def pitch_page(access: Access, token: str) -> Response[str]:
    def render() -> Response[str]:
        link = _open(access, token, for_page=True)
        if not access.unlocked(link, _session_cookie()):
            return _html(pages.render_password(_base_path(token), None))
        return _html(access.page(link, _base_path(token)))

    return _html_errors(render)


@app.post("/p/<token>/unlock", summary="Send the pitch's password (form post)")
def unlock(access: Access, token: str) -> Response[str]:
    def attempt() -> Response[str]:
        link = _open(access, token)
        form = parse_qs(app.current_event.decoded_body or "", max_num_fields=5)
        password = (form.get("password") or [""])[0]
        try:
            value = access.unlock(link, password)
        except ProblemError as refused:
            if refused.code != "wrong_password":
                raise
            page = pages.render_password(_base_path(token), "That password is not right.")
            return _html(page, 401)
        from services.core.wiring import dependencies

        cookie = Cookie(
            SESSION_COOKIE,
            value,
            path=_base_path(token),
            secure=dependencies().settings.public_url.startswith("https:"),
            http_only=True,
            max_age=access.sessions.ttl_seconds,
            same_site=SameSite.LAX_MODE,
        )
        response = _html("", 303, [cookie])
        response.headers["Location"] = _base_path(token)
        return response

    return _html_errors(attempt)


def _media(access: Access, token: str, track_id: uuid.UUID, download: bool) -> Response[Any]:
    def redirect() -> Response[Any]:
        link = _open(access, token)
        access.require_unlocked(link, _session_cookie())
        url = access.media_url(link, track_id, download=download)
        return Response(302, None, "", {"Location": url, "Cache-Control": "no-store"})

    return _html_errors(redirect)


@app.get("/p/<token>/tracks/<track_id>/stream", summary="Play a pitch track (redirect)")
def pitch_stream(access: Access, token: str, track_id: uuid.UUID) -> Response[Any]:
    return _media(access, token, track_id, download=False)


@app.get("/p/<token>/tracks/<track_id>/download", summary="Download a pitch track (redirect)")
def pitch_download(access: Access, token: str, track_id: uuid.UUID) -> Response[Any]:
    return _media(access, token, track_id, download=True)


@app.post(
    "/p/<token>/events",
    summary="The recipient page's player events (at most 100 a call, 64 KiB)",
    responses={202: {"description": "Each event accepted or refused with its reason"}},
)
def pitch_events(
    access: Access, token: str, body: Annotated[EventsIn, Body()]
) -> Response[EventsResult]:
    check_body_size(app.current_event.raw_event, MAX_BODY_BYTES)
    link = _open(access, token)
    access.require_unlocked(link, _session_cookie())
    correlation_id = app.current_event.headers.get(CORRELATION_HEADER)
    result = access.report(link, body.events, correlation_id)
    if not result.accepted:
        raise ProblemError(
            422,
            "events_rejected",
            "No event accepted",
            "Every event was refused; each one's reason is in 'rejected'.",
            rejected=[r.model_dump(mode="json") for r in result.rejected],
        )
    return Response(202, "application/json", body=result)


@app.post("/p/<token>/feedback", summary="Shortlist a pitch track, or comment on it")
def pitch_feedback(
    access: Access, token: str, request: Annotated[FeedbackIn, Body()]
) -> FeedbackOut:
    link = _open(access, token)
    access.require_unlocked(link, _session_cookie())
    return access.feedback(link, request)


def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
