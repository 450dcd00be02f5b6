"""Opaque cursors for keyset pagination."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from services.core.errors import ProblemError


def encode_cursor(state: dict[str, Any]) -> str:
    raw = json.dumps(state, separators=(",", ":"), default=str).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, *, scope: str) -> dict[str, Any]:
    """The cursor's state; it must have been made for the same ``scope`` (sort and filters)."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        state = json.loads(raw)
    except (binascii.Error, ValueError) as exc:
        raise invalid_cursor() from exc
    if not isinstance(state, dict) or state.get("scope") != scope:
        raise invalid_cursor()
    return state


def invalid_cursor() -> ProblemError:
    return ProblemError(
        400,
        "invalid_cursor",
        "Invalid cursor",
        "The cursor is not one this listing issued, or the sort or filters changed: "
        "start again without a cursor.",
    )
