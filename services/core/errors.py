"""Problem details (RFC 9457) with a stable machine-readable ``code``."""

from __future__ import annotations

import json
from typing import Any

PROBLEM_CONTENT_TYPE = "application/problem+json"


class ProblemError(Exception):
    """An error that a client caused or can act on; becomes a problem-details response."""

    def __init__(
        self,
        status: int,
        code: str,
        title: str,
        detail: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra

    def body(self, instance: str | None = None) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "type": f"https://musicsync.dev/problems/{self.code}",
            "title": self.title,
            "status": self.status,
            "code": self.code,
        }
        if self.detail:
            doc["detail"] = self.detail
        if instance:
            doc["instance"] = instance
        doc.update(self.extra)
        return doc

    def json(self, instance: str | None = None) -> str:
        return json.dumps(self.body(instance), default=str)


class NotFound(ProblemError):
    def __init__(self, code: str, what: str, **extra: Any) -> None:
        super().__init__(
            404,
            code,
            f"{what} not found",
            f"No {what.lower()} with that id is visible to you.",
            **extra,
        )


class AuthenticationError(ProblemError):
    """401: the credentials are missing or were rejected; ``detail`` says why."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(
            401,
            code,
            "Authentication required",
            detail,
            headers={
                "WWW-Authenticate": f'Bearer error="invalid_token", error_description="{detail}"'
            },
        )
