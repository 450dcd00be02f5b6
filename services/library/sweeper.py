"""Scheduled Lambda (EventBridge, every few minutes): clean up uploads that were never completed."""

from __future__ import annotations

from typing import Any

from services.library.logic import library


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, int]:
    return {"expired": library().expire_uploads()}
