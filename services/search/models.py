"""Bodies of the search API."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field


class SearchTrack(BaseModel):
    id: uuid.UUID
    owner_id: uuid.UUID
    title: str
    artists: list[str]
    album: str | None
    genre: str | None
    mood: str | None
    tags: list[str]
    key: str | None
    instrumental: bool | None
    bpm: float | None
    duration_ms: int
    year: int | None
    created_at: datetime | None


class SearchHit(BaseModel):
    track: SearchTrack
    score: float
    highlights: dict[str, list[str]] = Field(
        description="Field -> fragments, the matched words in <mark></mark> (HTML-escaped)."
    )


class SearchOut(BaseModel):
    hits: list[SearchHit]
    total: int = Field(description="Every match you may see, not only this page.")
    facets: dict[str, dict[str, int]] = Field(
        description="genre, mood and key -> value -> count, over every match you may see."
    )
    next_cursor: str | None
