"""Request and response bodies of the pitching API (owners) and the pitch link (recipients)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

MAX_RECIPIENTS = 200
MAX_COMMENT = 2000
_EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("needs a UTC offset, e.g. 'Z'")
    return value


Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Message = Annotated[str, StringConstraints(max_length=5000)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Email = Annotated[
    str,
    StringConstraints(strip_whitespace=True, to_lower=True, max_length=254, pattern=_EMAIL),
]
Password = Annotated[str, StringConstraints(min_length=6, max_length=200)]
Instant = Annotated[datetime, AfterValidator(_aware)]
Comment = Annotated[str, StringConstraints(strip_whitespace=True, max_length=MAX_COMMENT)]
PitchStatus = Literal["active", "expired", "revoked"]


class RecipientIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    email: Email
    company: Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)] | None = None


class PitchCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    playlist_id: uuid.UUID
    title: Title
    message: Message = ""
    expires_at: Instant | None = Field(
        default=None, description="When the links stop working; default 30 days, at most 1 year."
    )
    allow_download: bool = False
    password: Password | None = Field(
        default=None, description="Asked once per browser before the page opens."
    )
    recipients: list[RecipientIn] = Field(min_length=1, max_length=MAX_RECIPIENTS)


class PitchPatch(BaseModel):
    """Fields sent are changed; ``password: null`` removes the password."""

    model_config = ConfigDict(extra="forbid")

    title: Title | None = None
    message: Message | None = None
    expires_at: Instant | None = None
    allow_download: bool | None = None
    password: Password | None = None


class RecipientsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    recipients: list[RecipientIn] = Field(min_length=1, max_length=MAX_RECIPIENTS)


class TrackEngagement(BaseModel):
    track_id: uuid.UUID
    title: str | None = Field(description="Null when the track has since been deleted.")
    plays: int
    listened_ms: int
    furthest_ms: int | None = Field(description="The furthest position reached by listening.")
    completed: bool
    downloads: int
    shortlisted: bool
    comment: str | None


class Engagement(BaseModel):
    opened: bool
    opens: int
    first_opened_at: datetime | None
    last_opened_at: datetime | None
    last_activity_at: datetime | None
    plays: int
    listened_ms: int
    downloads: int
    shortlisted: int
    tracks: list[TrackEngagement] = Field(description="Only the tracks the recipient touched.")


class RecipientOut(BaseModel):
    id: uuid.UUID
    name: str
    email: str
    company: str | None
    status: PitchStatus
    link_issued_at: datetime
    revoked_at: datetime | None
    link: str | None = Field(
        default=None, description="Only in the answer that issues it: it is never shown again."
    )
    engagement: Engagement | None = None


class PitchTrackOut(BaseModel):
    id: uuid.UUID
    position: int
    title: str
    artists: list[str]
    duration_ms: int


class PitchOut(BaseModel):
    id: uuid.UUID
    playlist_id: uuid.UUID | None
    title: str
    message: str
    status: PitchStatus
    allow_download: bool
    has_password: bool
    expires_at: datetime
    revoked_at: datetime | None
    version: int
    created_at: datetime
    updated_at: datetime
    tracks: list[PitchTrackOut]
    recipients: list[RecipientOut]


class PitchSummary(BaseModel):
    id: uuid.UUID
    playlist_id: uuid.UUID | None
    title: str
    status: PitchStatus
    allow_download: bool
    has_password: bool
    expires_at: datetime
    track_count: int
    recipient_count: int
    opened_count: int
    created_at: datetime


class PitchPage(BaseModel):
    items: list[PitchSummary]
    next_cursor: str | None


class RecipientsOut(BaseModel):
    recipients: list[RecipientOut]


class FeedbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    track_id: uuid.UUID
    shortlisted: bool | None = None
    comment: Comment | None = Field(default=None, description="An empty comment clears it.")


class FeedbackOut(BaseModel):
    track_id: uuid.UUID
    shortlisted: bool
    comment: str | None
