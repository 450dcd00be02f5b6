"""The signed-in caller, as every route sees it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass


@dataclass(frozen=True)
class Principal:
    user_id: uuid.UUID
    issuer: str
    subject: str
    email: str | None
    name: str | None
