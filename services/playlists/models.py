"""Request and response bodies of the playlists API.

Every name starts with ``Playlist``: the gateway merges all services' OpenAPI components into
one document by name, so a shared name would silently replace another service's schema.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

MAX_ENTRIES = 500

Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Description = Annotated[str, StringConstraints(max_length=5000)]
PlaylistPermission = Literal["owner", "edit", "view"]
PlaylistScope = Literal["owned", "shared", "all"]


class PlaylistCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Title
    description: Description = ""


class PlaylistPatch(BaseModel):
    """Only the fields sent change; neither may be null (send "" to clear the description)."""

    model_config = ConfigDict(extra="forbid")

    title: Title | None = None
    description: Description | None = None

    @model_validator(mode="after")
    def _no_nulls(self) -> Self:
        for name in self.model_fields_set:
            if getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self

    def changes(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in sorted(self.model_fields_set)}


class PlaylistEntryAdd(BaseModel):
    model_config = ConfigDict(extra="forbid")

    track_id: uuid.UUID
    position: int | None = Field(
        default=None,
        ge=0,
        description="0-based index the entry takes (0..number of entries); default: the end.",
    )


class PlaylistOrder(BaseModel):
    model_config = ConfigDict(extra="forbid")

    entry_ids: list[uuid.UUID] = Field(
        max_length=MAX_ENTRIES, description="Every entry of the playlist, in the new order."
    )
    version: int | None = Field(
        default=None,
        ge=1,
        description="The version the order was made from (or send it as If-Match).",
    )


class PlaylistEntryTrack(BaseModel):
    id: uuid.UUID
    title: str
    artists: list[str]
    album: str | None
    duration_ms: int
    permission: Literal["owner", "download", "stream", "view"]


class PlaylistEntryOut(BaseModel):
    id: uuid.UUID = Field(description="The entry's id (one track may be in several entries).")
    position: int = Field(description="0-based index in the playlist's order.")
    added_at: datetime
    track: PlaylistEntryTrack | None = Field(
        description="The track, or null when you may not see it (e.g. its share was revoked)."
    )
    available: bool


class PlaylistSummary(BaseModel):
    id: uuid.UUID
    owner_id: uuid.UUID
    title: str
    description: str
    track_count: int
    permission: PlaylistPermission
    version: int
    created_at: datetime
    updated_at: datetime


class PlaylistOut(PlaylistSummary):
    entries: list[PlaylistEntryOut]


class PlaylistPage(BaseModel):
    items: list[PlaylistSummary]
    next_cursor: str | None


class PlaylistEntryAdded(BaseModel):
    entry: PlaylistEntryOut
    playlist_version: int
