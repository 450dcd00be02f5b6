"""Request and response bodies of the library API."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
Tag = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)]


class UploadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    filename: Annotated[str, StringConstraints(min_length=1, max_length=255)]
    size: int = Field(gt=0, description="Exact size of the file in bytes.")
    content_type: str | None = Field(default=None, max_length=100)


class UploadPartOut(BaseModel):
    part_number: int
    url: str
    size: int


class UploadOut(BaseModel):
    upload_id: uuid.UUID
    method: str
    url: str | None = Field(description="Where to send the whole file; null for multipart.")
    headers: dict[str, str]
    expires_at: datetime
    parts: list[UploadPartOut] = Field(
        default_factory=list, description="Multipart only: one PUT per part, in order."
    )


class CompletedPartIn(BaseModel):
    part_number: int = Field(ge=1, le=10_000)
    etag: Annotated[str, StringConstraints(min_length=1, max_length=200)]


class CompleteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    parts: list[CompletedPartIn] = Field(default_factory=list, max_length=10_000)


class TrackOut(BaseModel):
    id: uuid.UUID
    owner_id: uuid.UUID
    permission: Literal["owner", "download", "stream", "view"] = Field(
        description="What you may do: own it, or a share's permission (view < stream < download)."
    )
    title: str
    artists: list[str]
    album: str | None
    year: int | None
    genre: str | None
    mood: str | None
    tags: list[str]
    instrumental: bool | None
    isrc: str | None
    bpm: float | None
    musical_key: str | None
    duration_ms: int
    bitrate: int | None
    sample_rate: int | None
    channels: int | None
    container: str
    codec: str
    content_type: str
    size_bytes: int
    sha256: str
    original_filename: str
    version: int
    created_at: datetime
    updated_at: datetime


class TrackPage(BaseModel):
    items: list[TrackOut]
    next_cursor: str | None


class TrackPatch(BaseModel):
    """Only these fields are editable; a field sent as null is cleared (title cannot be)."""

    model_config = ConfigDict(extra="forbid")

    title: Text | None = None
    artists: list[Text] | None = Field(default=None, max_length=50)
    album: Text | None = None
    year: int | None = Field(default=None, ge=1000, le=2200)
    genre: Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)] | None = None
    mood: Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)] | None = None
    tags: list[Tag] | None = Field(default=None, max_length=30)
    instrumental: bool | None = None
    isrc: Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}[A-Z0-9]{3}[0-9]{7}$")] | None = None
    bpm: float | None = Field(default=None, gt=0, le=999)
    musical_key: Annotated[str, StringConstraints(strip_whitespace=True, max_length=16)] | None = (
        None
    )


class MediaUrlOut(BaseModel):
    url: str
    expires_at: datetime
    content_type: str
    filename: str | None = None


class MeOut(BaseModel):
    id: uuid.UUID
    email: str | None
    name: str | None
    issuer: str
    subject: str


TrackScope = Literal["owned", "shared", "all"]
SortKey = Literal["created", "-created", "title", "-title", "duration", "-duration"]
