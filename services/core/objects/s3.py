"""S3 object store: presigned URLs, multipart for large files; the only boto3 user here."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from services.core.clock import Clock
from services.core.objects.port import (
    CompletedPart,
    UploadPart,
    UploadTarget,
    check_key,
    content_disposition,
)


class S3ObjectStore:
    def __init__(
        self,
        bucket: str,
        clock: Clock,
        *,
        region: str,
        endpoint_url: str | None = None,
        multipart_threshold: int = 100 * 1024**2,
        part_size: int = 64 * 1024**2,
    ) -> None:
        import boto3
        from botocore.config import Config

        self._bucket = bucket
        self._clock = clock
        self._threshold = multipart_threshold
        self._part_size = part_size
        self._s3: Any = boto3.client(
            "s3",
            region_name=region,
            endpoint_url=endpoint_url,
            config=Config(
                signature_version="s3v4",
                retries={"mode": "standard"},
                connect_timeout=2,
                read_timeout=30,
            ),
        )

    def _ttl(self, expires_at: datetime) -> int:
        return max(1, int((expires_at - self._clock.now()).total_seconds()))

    def prepare_upload(
        self, key: str, size: int, content_type: str | None, expires_at: datetime
    ) -> UploadTarget:
        check_key(key)
        ttl = self._ttl(expires_at)
        extra = {"ContentType": content_type} if content_type else {}
        headers = {"Content-Type": content_type} if content_type else {}
        if size <= self._threshold:
            url = self._s3.generate_presigned_url(
                "put_object",
                Params={"Bucket": self._bucket, "Key": key, **extra},
                ExpiresIn=ttl,
            )
            return UploadTarget(method="PUT", url=url, headers=headers)
        mpu = self._s3.create_multipart_upload(Bucket=self._bucket, Key=key, **extra)
        parts = []
        for number, offset in enumerate(range(0, size, self._part_size), start=1):
            url = self._s3.generate_presigned_url(
                "upload_part",
                Params={
                    "Bucket": self._bucket,
                    "Key": key,
                    "UploadId": mpu["UploadId"],
                    "PartNumber": number,
                },
                ExpiresIn=ttl,
            )
            parts.append(UploadPart(number, url, min(self._part_size, size - offset)))
        return UploadTarget(
            method="PUT", url=None, headers={}, multipart_id=mpu["UploadId"], parts=parts
        )

    def finish_upload(
        self, key: str, multipart_id: str | None, parts: Sequence[CompletedPart]
    ) -> None:
        if multipart_id is None:
            return
        self._s3.complete_multipart_upload(
            Bucket=self._bucket,
            Key=key,
            UploadId=multipart_id,
            MultipartUpload={
                "Parts": [
                    {"PartNumber": p.part_number, "ETag": p.etag}
                    for p in sorted(parts, key=lambda p: p.part_number)
                ]
            },
        )

    def abort_upload(self, key: str, multipart_id: str | None) -> None:
        from botocore.exceptions import ClientError

        if multipart_id is not None:
            try:
                self._s3.abort_multipart_upload(Bucket=self._bucket, Key=key, UploadId=multipart_id)
            except ClientError as exc:
                # Completed already (a rejection after assembly), or aborted before.
                if exc.response.get("Error", {}).get("Code") != "NoSuchUpload":
                    raise
        self.delete(key)

    def promote(self, upload_key: str, key: str) -> None:
        # A single CopyObject takes up to 5 GiB, over the 2 GiB upload limit. A presigned PUT
        # can still write upload_key until it expires: a lifecycle rule on uploads/ sweeps that.
        self._s3.copy_object(
            Bucket=self._bucket, Key=key, CopySource={"Bucket": self._bucket, "Key": upload_key}
        )
        self.delete(upload_key)

    def size(self, key: str) -> int | None:
        from botocore.exceptions import ClientError

        try:
            head = self._s3.head_object(Bucket=self._bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return int(head["ContentLength"])

    @contextmanager
    def local_copy(self, key: str) -> Iterator[Path]:
        # Lambda's /tmp holds up to 10 GiB; the bytes are streamed, never held in memory.
        with tempfile.NamedTemporaryFile(prefix="musicsync-", suffix=".audio") as tmp:
            self._s3.download_fileobj(self._bucket, key, tmp)
            tmp.flush()
            yield Path(tmp.name)

    def delete(self, key: str) -> None:
        self._s3.delete_object(Bucket=self._bucket, Key=key)

    def media_url(
        self,
        key: str,
        *,
        content_type: str,
        expires_at: datetime,
        download_filename: str | None = None,
    ) -> str:
        params = {"Bucket": self._bucket, "Key": key, "ResponseContentType": content_type}
        if download_filename is not None:
            params["ResponseContentDisposition"] = content_disposition(download_filename)
        url: str = self._s3.generate_presigned_url(
            "get_object", Params=params, ExpiresIn=self._ttl(expires_at)
        )
        return url
