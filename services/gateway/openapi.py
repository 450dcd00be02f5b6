"""One OpenAPI document for the whole API, merged from every service's resolver."""

from __future__ import annotations

import importlib
import json
from functools import cache
from typing import Any

from services.gateway.routes import SERVICE_MODULES


@cache
def merged_openapi() -> dict[str, Any]:
    from aws_lambda_powertools.event_handler.openapi.merge import OpenAPIMerge
    from aws_lambda_powertools.event_handler.openapi.models import (
        HTTPBearer,
    )

    merge = OpenAPIMerge(
        title="musicsync API",
        version="1",
        description="Music library, playlists, sharing and pitching. Errors are RFC 9457 "
        "problem details with a stable `code`.",
        security_schemes={"bearer": HTTPBearer(bearerFormat="JWT")},
        security=[{"bearer": []}],
        on_conflict="error",
    )
    for module in SERVICE_MODULES:
        merge.add_schema(importlib.import_module(module).app.get_openapi_schema())
    # Round-trip through JSON so the document holds only plain JSON values.
    doc: dict[str, Any] = json.loads(merge.get_openapi_json_schema())
    return doc
