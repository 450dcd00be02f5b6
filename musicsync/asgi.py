"""The local stack's HTTP face: an API Gateway stand-in, object URLs and the dev IdP."""

from __future__ import annotations

import asyncio
import html
import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from musicsync.apigw import request_event, response_from_result
from services.core.errors import PROBLEM_CONTENT_TYPE, ProblemError
from services.core.http import CORRELATION_HEADER
from services.core.objects.local import OBJECTS_ROUTE, LocalObjectStore
from services.core.objects.port import content_disposition
from services.gateway import routes

log = logging.getLogger("musicsync.gateway")
MAX_PROXY_BODY = 10 * 1024 * 1024  # API Gateway's payload limit


class LambdaContextStub:
    """The few attributes powertools reads from a Lambda context."""

    function_name = "musicsync-local"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:local:000000000000:function:musicsync-local"
    memory_limit_in_mb = 1024

    def __init__(self, request_id: str) -> None:
        self.aws_request_id = request_id

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


def problem_response(exc: ProblemError, instance: str | None = None) -> Response:
    return Response(
        exc.json(instance),
        status_code=exc.status,
        media_type=PROBLEM_CONTENT_TYPE,
        headers=exc.headers,
    )


def create_app(
    *,
    objects: LocalObjectStore | None,
    jwks: Callable[[], dict[str, Any]],
    ready: Callable[[], dict[str, Any]],
    openapi: Callable[[], dict[str, Any]],
    dashboards: Path,
    on_shutdown: Callable[[], None] | None = None,
) -> Starlette:
    """``ready`` returns health details and raises when the stack cannot serve yet;
    ``on_shutdown`` runs once the server has stopped taking requests (flush, close)."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        if on_shutdown is not None:
            on_shutdown()

    async def healthz(request: Request) -> Response:
        try:
            details = await run_in_threadpool(ready)
        except Exception:  # any failure means "not ready"; the detail goes to the log only
            log.warning("health check failed", exc_info=True)
            return JSONResponse({"status": "unavailable"}, status_code=503)
        return JSONResponse({"status": "ok", **details})

    async def openapi_json(request: Request) -> Response:
        return JSONResponse(openapi())

    async def docs(request: Request) -> Response:
        return HTMLResponse(render_docs(openapi()))

    async def jwks_json(request: Request) -> Response:
        return JSONResponse(jwks(), headers={"Cache-Control": "public, max-age=300"})

    async def objects_route(request: Request) -> Response:
        if objects is None:
            return problem_response(ProblemError(404, "route_not_found", "No such route"))
        key = request.url.path[len(OBJECTS_ROUTE) :]
        try:
            signed = objects.verify(key, dict(request.query_params))
            if request.method == "PUT" and signed.op == "put":
                if not objects.accepts_upload(key):
                    raise ProblemError(
                        409,
                        "upload_closed",
                        "Upload closed",
                        "This upload was completed or dropped: start a new upload.",
                    )
                return await _receive(objects, key, signed.max_bytes, request)
            if request.method in ("GET", "HEAD") and signed.op == "get":
                return await _serve(objects, key, signed.content_type, signed.download_filename)
            raise ProblemError(
                403, "url_wrong_method", "Link not valid", "Wrong method for this link."
            )
        except ProblemError as exc:
            return problem_response(exc, request.url.path)

    async def proxy(request: Request) -> Response:
        path = request.url.path
        correlation_id = request.headers.get(CORRELATION_HEADER) or str(uuid.uuid4())
        module = routes.module_for(path)
        if module is None:
            return problem_response(ProblemError(404, "route_not_found", "No such route"), path)
        body = await request.body()
        if len(body) > MAX_PROXY_BODY:
            return problem_response(
                ProblemError(413, "body_too_large", "Request body too large", "At most 10 MiB."),
                path,
            )
        headers = [(k, v) for k, v in request.headers.items() if k != CORRELATION_HEADER]
        headers.append((CORRELATION_HEADER, correlation_id))
        event = request_event(
            method=request.method,
            path=path,
            raw_query=request.url.query,
            headers=headers,
            body=body,
            source_ip=request.client.host if request.client else "127.0.0.1",
            request_id=correlation_id,
            host=request.url.hostname or "localhost",
        )
        result = await asyncio.get_running_loop().run_in_executor(
            _lambda_container(), routes.handler(module), event, LambdaContextStub(correlation_id)
        )
        out = response_from_result(result)
        response = Response(out.body, status_code=out.status)
        for name, value in out.headers:
            response.headers.append(name, value)
        response.headers[CORRELATION_HEADER] = correlation_id
        return response

    methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
    return Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/openapi.json", openapi_json, methods=["GET"]),
            Route("/docs", docs, methods=["GET"]),
            Route("/.well-known/jwks.json", jwks_json, methods=["GET"]),
            Route(OBJECTS_ROUTE + "{key:path}", objects_route, methods=["GET", "HEAD", "PUT"]),
            # `musicsync dashboard`'s pages: each carries plotly.js inline (~5 MB), so gzip.
            Mount(
                "/dashboards",
                app=GZipMiddleware(StaticFiles(directory=dashboards, html=True, check_dir=False)),
            ),
            Route("/{path:path}", proxy, methods=methods),
        ],
        lifespan=lifespan,
    )


_container: ThreadPoolExecutor | None = None


def _lambda_container() -> ThreadPoolExecutor:
    """One thread runs every service's handler, one event at a time, as one Lambda container.

    powertools keeps the current event in class attributes (``BaseRouter.current_event``)
    that every resolver of the process shares: two handlers running at once, even of two
    services, would read each other's requests (paths, cookies, client addresses).
    """
    global _container
    if _container is None:
        _container = ThreadPoolExecutor(1, thread_name_prefix="lambda")
    return _container


async def _receive(
    objects: LocalObjectStore, key: str, max_bytes: int | None, request: Request
) -> Response:
    """Stream the body to a temporary file, then rename: a cut transfer leaves nothing behind."""
    tmp, final = objects.atomic_writer(key)
    received = 0
    try:
        async with await anyio.open_file(tmp, "wb") as out:
            async for chunk in request.stream():
                received += len(chunk)
                if max_bytes is not None and received > max_bytes:
                    raise ProblemError(
                        413,
                        "upload_too_large",
                        "More bytes than announced",
                        f"The upload announced {max_bytes} bytes.",
                    )
                await out.write(chunk)
        tmp.replace(final)
    finally:
        if tmp.exists():
            tmp.unlink()
    return Response(status_code=200, headers={"ETag": f'"{received}"'})


async def _serve(
    objects: LocalObjectStore, key: str, content_type: str | None, download_filename: str | None
) -> Response:
    path: Path = objects.path_for(key)
    if not path.exists():
        raise ProblemError(404, "object_not_found", "Not found", "The audio is no longer there.")
    headers = {"Cache-Control": "private, max-age=300", "X-Content-Type-Options": "nosniff"}
    if download_filename is not None:
        headers["Content-Disposition"] = content_disposition(download_filename)
    return FileResponse(path, media_type=content_type, headers=headers)


def render_docs(spec: dict[str, Any]) -> str:
    """A readable, offline API page rendered from the OpenAPI document."""
    rows = []
    for path, operations in sorted(spec.get("paths", {}).items()):
        for method, op in operations.items():
            rows.append(
                f"<tr><td><code>{html.escape(method.upper())}</code></td>"
                f"<td><code>{html.escape(path)}</code></td>"
                f"<td>{html.escape(op.get('summary', ''))}</td></tr>"
            )
    title = html.escape(spec.get("info", {}).get("title", "API"))
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>"
        "<style>body{font-family:system-ui,sans-serif;margin:2rem}td{padding:.3rem 1rem}"
        "tr:nth-child(even){background:#f4f4f4}</style></head><body>"
        f"<h1>{title}</h1><p>Machine-readable: <a href='/openapi.json'>/openapi.json</a>. "
        "Every error is <code>application/problem+json</code> with a stable <code>code</code>."
        "</p><table><tr><th>Method</th><th>Path</th><th>What</th></tr>"
        f"{''.join(rows)}</table><details><summary>Full document</summary><pre>"
        f"{html.escape(json.dumps(spec, indent=2))}</pre></details></body></html>"
    )
