"""Local object store: a folder, with HMAC-signed expiring URLs served by the local stack."""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode

from services.core.clock import Clock
from services.core.errors import ProblemError
from services.core.objects.port import CompletedPart, UploadTarget, check_key

OBJECTS_ROUTE = "/objects/"


@dataclass(frozen=True)
class SignedRequest:
    """What a verified URL allows: the operation, the object, and its limits."""

    op: str  # "put" | "get"
    key: str
    max_bytes: int | None
    content_type: str | None
    download_filename: str | None


class LocalObjectStore:
    def __init__(self, root: Path, secret: bytes, public_url: str, clock: Clock) -> None:
        self.root = root
        self._secret = secret
        self._public_url = public_url.rstrip("/")
        self._clock = clock
        root.mkdir(parents=True, exist_ok=True)

    # -- the port --------------------------------------------------------------------------
    def prepare_upload(
        self, key: str, size: int, content_type: str | None, expires_at: datetime
    ) -> UploadTarget:
        params = {"op": "put", "max": str(size)}
        url = self._signed_url(key, params, expires_at)
        # The slot is what lets the URL write: gone once the upload is promoted or dropped, so
        # a reused upload URL cannot replace checked bytes or leave bytes nobody tracks.
        slot = self._slot(key)
        slot.parent.mkdir(parents=True, exist_ok=True)
        slot.touch()
        headers = {"Content-Type": content_type} if content_type else {}
        return UploadTarget(method="PUT", url=url, headers=headers)

    def finish_upload(
        self, key: str, multipart_id: str | None, parts: Sequence[CompletedPart]
    ) -> None:
        return None

    def abort_upload(self, key: str, multipart_id: str | None) -> None:
        self._slot(key).unlink(missing_ok=True)
        self.delete(key)

    def promote(self, upload_key: str, key: str) -> None:
        target = self.path_for(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        self._slot(upload_key).unlink(missing_ok=True)
        self.path_for(upload_key).replace(target)

    def size(self, key: str) -> int | None:
        try:
            return self.path_for(key).stat().st_size
        except FileNotFoundError:
            return None

    @contextmanager
    def local_copy(self, key: str) -> Iterator[Path]:
        yield self.path_for(key)

    def delete(self, key: str) -> None:
        self.path_for(key).unlink(missing_ok=True)

    def media_url(
        self,
        key: str,
        *,
        content_type: str,
        expires_at: datetime,
        download_filename: str | None = None,
    ) -> str:
        params = {"op": "get", "type": content_type}
        if download_filename is not None:
            params["dl"] = download_filename
        return self._signed_url(key, params, expires_at)

    # -- serving (used by the local stack's /objects route) -----------------------------------
    def path_for(self, key: str) -> Path:
        return self.root / check_key(key)

    def accepts_upload(self, key: str) -> bool:
        """True while the upload at ``key`` is open (neither promoted nor dropped)."""
        return self._slot(key).exists()

    def _slot(self, key: str) -> Path:
        return self.root / ".slots" / check_key(key)

    def verify(self, key: str, query: dict[str, str]) -> SignedRequest:
        """Check a request's signature and expiry; raise a 403 problem otherwise."""
        try:
            check_key(key)
            expires = int(query["exp"])
            given = query["sig"]
        except (KeyError, ValueError) as exc:
            raise _forbidden("url_invalid", "This link is malformed.") from exc
        params = {k: v for k, v in query.items() if k != "sig"}
        if not hmac.compare_digest(given, self._sign(key, params)):
            raise _forbidden("url_signature_invalid", "This link's signature is not valid.")
        if self._clock.now().timestamp() > expires:
            raise _forbidden("url_expired", "This link has expired: ask for a new one.")
        op = params.get("op", "")
        return SignedRequest(
            op=op,
            key=key,
            max_bytes=int(params["max"]) if "max" in params else None,
            content_type=params.get("type"),
            download_filename=params.get("dl"),
        )

    def _signed_url(self, key: str, params: dict[str, str], expires_at: datetime) -> str:
        check_key(key)
        params = {**params, "exp": str(int(expires_at.astimezone(UTC).timestamp()))}
        params["sig"] = self._sign(key, params)
        return f"{self._public_url}{OBJECTS_ROUTE}{key}?{urlencode(params)}"

    def _sign(self, key: str, params: dict[str, str]) -> str:
        # Percent-encoded: no value can forge a separator, whatever characters it holds.
        canonical = f"{key}\n{urlencode(sorted(params.items()))}"
        return hmac.new(self._secret, canonical.encode(), hashlib.sha256).hexdigest()

    def atomic_writer(self, key: str) -> tuple[Path, Path]:
        """A temporary path to write into and the final path to rename it to."""
        final = self.path_for(key)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(f".{final.name}.{os.getpid()}.{os.urandom(4).hex()}.part")
        return tmp, final


def _forbidden(code: str, detail: str) -> ProblemError:
    return ProblemError(403, code, "Link not valid", detail)
