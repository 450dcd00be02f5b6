"""The object store port: where audio bytes live (S3 in ``aws``, a folder in ``local``)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

from services.core.errors import ProblemError

_KEY = re.compile(r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_.-]+)*$")


def check_key(key: str) -> str:
    if not _KEY.fullmatch(key) or ".." in key:
        raise ValueError(f"invalid object key: {key!r}")
    return key


@dataclass(frozen=True)
class UploadPart:
    part_number: int
    url: str
    size: int


@dataclass(frozen=True)
class UploadTarget:
    """Where and how the client sends the bytes: one PUT, or one PUT per part (multipart)."""

    method: str
    url: str | None
    headers: dict[str, str]
    multipart_id: str | None = None
    parts: list[UploadPart] = field(default_factory=list)


@dataclass(frozen=True)
class CompletedPart:
    part_number: int
    etag: str


class ObjectStore(Protocol):
    def prepare_upload(
        self, key: str, size: int, content_type: str | None, expires_at: datetime
    ) -> UploadTarget: ...

    def finish_upload(
        self, key: str, multipart_id: str | None, parts: Sequence[CompletedPart]
    ) -> None:
        """Assemble a multipart upload; a no-op for single-PUT uploads."""
        ...

    def abort_upload(self, key: str, multipart_id: str | None) -> None:
        """Drop an upload and whatever of it arrived; harmless if already gone or completed."""
        ...

    def promote(self, upload_key: str, key: str) -> None:
        """Move a completed upload's bytes to ``key``; its upload URL can no longer write them."""
        ...

    def size(self, key: str) -> int | None:
        """Bytes stored under ``key``, or None when nothing is there."""
        ...

    def local_copy(self, key: str) -> AbstractContextManager[Path]:
        """A readable local file with the object's bytes (the object itself where possible)."""
        ...

    def delete(self, key: str) -> None: ...

    def media_url(
        self,
        key: str,
        *,
        content_type: str,
        expires_at: datetime,
        download_filename: str | None = None,
    ) -> str:
        """A short-lived GET URL; with ``download_filename`` the response is an attachment."""
        ...


_UNSAFE = re.compile(r'[\x00-\x1f\x7f/\\:*?"<>|]+')


def track_filename(track: Mapping[str, Any]) -> str:
    """A track's download name, 'Artist A & Artist B - Title.ext', safe on every OS."""
    name = track["title"]
    if track["artists"]:
        name = f"{' & '.join(track['artists'])} - {name}"
    name = _UNSAFE.sub("_", name).strip(" .") or "track"
    return f"{name[:200]}{track['file_extension']}"


def content_disposition(filename: str) -> str:
    """``attachment`` with an ASCII fallback and the exact name in RFC 6266 ``filename*``."""
    fallback = "".join(c if 32 <= ord(c) < 127 and c not in '"\\' else "_" for c in filename)
    return f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(filename, safe='')}"


class UploadNotReceived(ProblemError):
    def __init__(self) -> None:
        super().__init__(
            409,
            "upload_not_received",
            "Upload not received",
            "No bytes have arrived for this upload yet: send the file to the upload URL first.",
        )
