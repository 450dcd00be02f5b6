"""Bulk import: every audio file under some paths goes through the public upload API."""

from __future__ import annotations

import mimetypes
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

AUDIO_SUFFIXES = frozenset(
    {
        ".mp3",
        ".wav",
        ".bwf",
        ".flac",
        ".aif",
        ".aiff",
        ".aifc",
        ".m4a",
        ".mp4",
        ".ogg",
        ".oga",
        ".opus",
    }
)
_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class ImportResult:
    path: Path
    track_id: str | None = None
    code: str | None = None
    detail: str | None = None

    @property
    def ok(self) -> bool:
        return self.track_id is not None


def find_audio(paths: Iterable[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found.extend(
                p
                for p in sorted(path.rglob("*"))
                if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES
            )
        elif path.is_file():
            found.append(path)
    return found


class Importer:
    def __init__(self, base_url: str, token: str, *, timeout: float = 300.0) -> None:
        self._api = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
        )
        # Upload URLs are pre-signed: they must not carry our bearer token elsewhere.
        self._raw = httpx.Client(timeout=timeout)

    def close(self) -> None:
        self._api.close()
        self._raw.close()

    def import_file(self, path: Path, progress: Callable[[int], None]) -> ImportResult:
        try:
            return self._import(path, progress)
        except httpx.HTTPError as exc:
            return ImportResult(path, code="network_error", detail=str(exc))
        except OSError as exc:
            return ImportResult(path, code="unreadable_file", detail=str(exc))

    def _import(self, path: Path, progress: Callable[[int], None]) -> ImportResult:
        size = path.stat().st_size
        content_type = mimetypes.guess_type(path.name)[0]
        body: dict[str, Any] = {"filename": path.name, "size": size}
        if content_type:
            body["content_type"] = content_type
        started = self._api.post("/v1/uploads", json=body)
        if started.status_code != 201:
            return _failure(path, started)
        upload = started.json()
        parts: list[dict[str, Any]] = []
        if upload["parts"]:
            offset = 0
            for part in upload["parts"]:
                sent = self._raw.put(
                    part["url"],
                    content=_read(path, offset, part["size"], progress),
                    headers={"Content-Length": str(part["size"])},
                )
                if sent.status_code >= 300:
                    return _failure(path, sent)
                parts.append({"part_number": part["part_number"], "etag": sent.headers["ETag"]})
                offset += part["size"]
        else:
            sent = self._raw.put(
                upload["url"],
                content=_read(path, 0, size, progress),
                headers={**upload["headers"], "Content-Length": str(size)},
            )
            if sent.status_code >= 300:
                return _failure(path, sent)
        done = self._api.post(f"/v1/uploads/{upload['upload_id']}/complete", json={"parts": parts})
        if done.status_code != 201:
            return _failure(path, done)
        return ImportResult(path, track_id=done.json()["id"])

    def run(
        self, files: list[Path], *, jobs: int, progress: Callable[[int], None]
    ) -> list[ImportResult]:
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            return list(pool.map(lambda p: self.import_file(p, progress), files))


def _read(path: Path, offset: int, length: int, progress: Callable[[int], None]) -> Iterator[bytes]:
    with path.open("rb") as f:
        f.seek(offset)
        remaining = length
        while remaining > 0:
            block = f.read(min(_CHUNK, remaining))
            if not block:
                break
            remaining -= len(block)
            progress(len(block))
            yield block


def _failure(path: Path, response: httpx.Response) -> ImportResult:
    try:
        problem = response.json()
        return ImportResult(path, code=problem.get("code"), detail=problem.get("detail"))
    except ValueError:
        return ImportResult(path, code=f"http_{response.status_code}", detail=response.text[:200])
