"""Request and response bodies of the sharing API."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

ShareObjectType = Literal["track", "playlist"]
Direction = Literal["incoming", "outgoing"]
ShareStatus = Literal["active", "pending"]

# RFC 5321 caps a path at 256 octets, so an address at 254. Deliverability is the identity
# provider's business; this only refuses what cannot be an address.
MAX_EMAIL_LENGTH = 254
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s.]+(\.[^@\s.]+)+$")


def normalise_email(value: str) -> str:
    """The address as shares store it: trimmed and lowercase; ValueError if not an address."""
    address = value.strip().lower()
    if len(address) > MAX_EMAIL_LENGTH:
        raise ValueError(f"an email address has at most {MAX_EMAIL_LENGTH} characters")
    if not _EMAIL.match(address):
        raise ValueError("not an email address")
    return address


class ShareCreate(BaseModel):
    """Share an object you own with one user, named by user id or by email address."""

    model_config = ConfigDict(extra="forbid")

    object_type: ShareObjectType
    object_id: uuid.UUID
    permission: Annotated[str, StringConstraints(min_length=1, max_length=32)] = Field(
        description="track: view, stream or download; playlist: view or edit."
    )
    grantee_email: Annotated[str, StringConstraints(max_length=MAX_EMAIL_LENGTH + 64)] | None = (
        Field(
            default=None,
            description="The address to share with. A verified account with it gets the share "
            "now (the earliest created, if several); otherwise the share waits, pending, until "
            "that address first signs in verified.",
        )
    )
    grantee_user_id: uuid.UUID | None = None

    @field_validator("grantee_email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        return None if value is None else normalise_email(value)

    @model_validator(mode="after")
    def _one_grantee(self) -> Self:
        if (self.grantee_email is None) == (self.grantee_user_id is None):
            raise ValueError("give exactly one of grantee_email and grantee_user_id")
        return self


class ShareOwnerOut(BaseModel):
    id: uuid.UUID
    name: str | None


class ShareGranteeOut(BaseModel):
    user_id: uuid.UUID | None = Field(description="Null while the share is pending.")
    email: str | None = Field(
        description="The address the owner shared with; null when shared by user id."
    )
    name: str | None


class ShareOut(BaseModel):
    id: uuid.UUID
    object_type: ShareObjectType
    object_id: uuid.UUID
    object_title: str
    owner: ShareOwnerOut
    grantee: ShareGranteeOut
    permission: str
    status: ShareStatus = Field(
        description="active: the grantee has it; pending: waiting for the address to sign in."
    )
    version: int
    created_at: datetime
    updated_at: datetime


class SharePage(BaseModel):
    items: list[ShareOut]
    next_cursor: str | None
