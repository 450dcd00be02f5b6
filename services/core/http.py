"""What every service's HTTP handler shares: the resolver, error mapping, and the caller.

No ``from __future__ import annotations`` here: powertools resolves the type hints of every
``Depends`` function on every request, and string annotations cost an ``eval`` each time.
"""

import logging
from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Request, Response
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.utilities.typing import LambdaContext

from ingest.events.emitter import Emitter
from services.core.errors import PROBLEM_CONTENT_TYPE, ProblemError
from services.core.principal import Principal

CORRELATION_HEADER = "x-correlation-id"
log = logging.getLogger("musicsync.http")


class ServiceResolver(APIGatewayHttpResolver):
    """Authenticates the caller before anything else (validation included) looks at the request.

    Paths under ``public_prefixes`` (e.g. capability links) skip sign-in; every other route
    gets the verified caller from ``current_principal``.
    """

    def __init__(
        self,
        service: str,
        public_prefixes: tuple[str, ...] = (),
        max_body_bytes: int | None = None,
    ) -> None:
        super().__init__(enable_validation=True)
        self.service = service
        self.public_prefixes = public_prefixes
        self.max_body_bytes = max_body_bytes

    def resolve(self, event: Mapping[str, Any], context: LambdaContext) -> dict[str, Any]:
        # Imported on first use: building dependencies (settings, JWT, pool) is first-call work,
        # and importing a handler must not need a configured environment (OpenAPI generation).
        from services.core.wiring import dependencies

        path = str(event.get("rawPath", ""))
        headers = event.get("headers") or {}
        correlation_id = headers.get(CORRELATION_HEADER, "")
        try:
            deps = dependencies()
            if not path.startswith(self.public_prefixes):
                token = deps.verifier.verify_authorization_header(headers.get("authorization"))
                self.context["principal"] = deps.users.provision(token)
            check_body_size(event, self.max_body_bytes)
        except ProblemError as exc:
            return _problem_result(exc, path, correlation_id)
        except Exception:  # the database or the wiring failed before any route ran
            log.exception("request failed before routing", extra={"correlation_id": correlation_id})
            return _problem_result(internal_error(correlation_id), path, correlation_id)
        # The invocation's events are sent once, after the response is decided, whatever it is.
        events = Emitter(
            deps.events,
            deps.clock,
            source=self.service,
            correlation_id=correlation_id or None,
        )
        self.context["events"] = events
        try:
            return super().resolve(event, context)
        finally:
            events.flush()


def check_body_size(event: Mapping[str, Any], max_bytes: int | None) -> None:
    """Refuse an oversized body before anything parses it."""
    body = event.get("body") or ""
    if max_bytes is None or not body:
        return
    size = len(body) * 3 // 4 if event.get("isBase64Encoded") else len(body.encode())
    if size > max_bytes:
        raise ProblemError(
            413,
            "body_too_large",
            "Request body too large",
            f"The body is {size} bytes; at most {max_bytes} are accepted here.",
            max_bytes=max_bytes,
        )


def create_resolver(
    service: str, public_prefixes: tuple[str, ...] = (), max_body_bytes: int | None = None
) -> ServiceResolver:
    """A resolver with validation on, whose every error is a problem-details body."""
    app = ServiceResolver(service, public_prefixes, max_body_bytes)

    def problem(exc: ProblemError) -> Response[str]:
        return Response(
            status_code=exc.status,
            content_type=PROBLEM_CONTENT_TYPE,
            body=exc.json(instance=app.current_event.path),
            headers=exc.headers,
        )

    def _invalid(exc: RequestValidationError) -> Response[str]:
        errors = [
            {"location": list(e.get("loc", ())), "message": e.get("msg", ""), "type": e.get("type")}
            for e in exc.errors()
        ]
        return problem(
            ProblemError(
                422,
                "validation_failed",
                "Request is not valid",
                "; ".join(f"{'.'.join(map(str, e['location']))}: {e['message']}" for e in errors),
                errors=errors,
            )
        )

    def _no_route(exc: NotFoundError) -> Response[str]:
        return problem(ProblemError(404, "route_not_found", "No such route"))

    def _unexpected(exc: Exception) -> Response[str]:
        correlation_id = app.current_event.headers.get(CORRELATION_HEADER, "")
        log.exception("unhandled error", extra={"correlation_id": correlation_id})
        return problem(internal_error(correlation_id))

    app.exception_handler(ProblemError)(problem)
    app.exception_handler(RequestValidationError)(_invalid)
    app.exception_handler(NotFoundError)(_no_route)
    app.exception_handler(Exception)(_unexpected)
    return app


def internal_error(correlation_id: str) -> ProblemError:
    return ProblemError(
        500,
        "internal_error",
        "Internal error",
        "Something went wrong on our side; quote the correlation id when reporting it.",
        correlation_id=correlation_id,
    )


def _problem_result(exc: ProblemError, path: str, correlation_id: str) -> dict[str, Any]:
    """A Lambda proxy result carrying a problem, for errors raised before routing."""
    headers = {"Content-Type": PROBLEM_CONTENT_TYPE, **exc.headers}
    if correlation_id:
        headers[CORRELATION_HEADER] = correlation_id
    return {
        "statusCode": exc.status,
        "headers": headers,
        "body": exc.json(instance=path),
        "isBase64Encoded": False,
    }


def json_response(
    model: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response[Any]:
    """A pydantic model as a JSON response with a status other than the route's default."""
    return Response(status, "application/json", model.model_dump(mode="json"), headers)


def etag(version: int) -> dict[str, str]:
    return {"ETag": f'"{version}"'}


def expected_version(if_match: str | None, what: str) -> int | None:
    """The version an ``If-Match`` header names (None without one); 400 when it is no ETag."""
    if if_match is None:
        return None
    try:
        version = int(if_match.strip().removeprefix("W/").strip('"'))
    except ValueError:
        version = 0
    if version < 1:
        raise ProblemError(
            400, "invalid_if_match", "Invalid If-Match", f"Send the ETag of the {what} you read."
        )
    return version


def current_principal(request: Request) -> Principal:
    """The caller that ``ServiceResolver`` verified (a ``Depends`` for signed-in routes)."""
    principal: Principal = request.context["principal"]
    return principal


def current_events(request: Request) -> Emitter:
    """This invocation's event emitter (a ``Depends``)."""
    events: Emitter = request.context["events"]
    return events
