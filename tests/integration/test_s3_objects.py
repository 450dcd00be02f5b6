"""The S3 object store and the library's upload flow in the ``aws`` profile, against moto."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from starlette.testclient import TestClient

from musicsync.asgi import create_app
from musicsync.devidp import DevIdentityProvider
from services.core import wiring
from services.core.clock import SystemClock
from services.core.objects.port import CompletedPart
from services.core.objects.s3 import S3ObjectStore
from services.core.settings import Settings
from services.gateway.openapi import merged_openapi
from tests.support.audio_files import make_audio
from tests.support.aws import REGION, create_event_stream

pytestmark = pytest.mark.integration
MIB = 1024 * 1024


@pytest.fixture
def bucket(moto_endpoint: str) -> str:
    name = f"musicsync-test-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", region_name=REGION, endpoint_url=moto_endpoint).create_bucket(Bucket=name)
    return name


@pytest.fixture
def store(bucket: str, moto_endpoint: str) -> S3ObjectStore:
    return S3ObjectStore(
        bucket,
        SystemClock(),
        region=REGION,
        endpoint_url=moto_endpoint,
        multipart_threshold=6 * MIB,
        part_size=5 * MIB,
    )


def _later() -> datetime:
    return datetime.now(UTC) + timedelta(minutes=10)


def test_single_put_upload_then_stream_download_and_delete(store: S3ObjectStore) -> None:
    data = bytes(range(256)) * 4096
    target = store.prepare_upload("tracks/u/1", len(data), "audio/wav", _later())
    assert target.parts == [] and target.url is not None
    assert httpx.put(target.url, content=data, headers=target.headers).status_code == 200

    assert store.size("tracks/u/1") == len(data)
    with store.local_copy("tracks/u/1") as path:
        assert path.read_bytes() == data
    url = store.media_url(
        "tracks/u/1", content_type="audio/wav", expires_at=_later(), download_filename="Zoë.wav"
    )
    got = httpx.get(url, headers={"Range": "bytes=0-9"})
    assert got.status_code == 206 and got.content == data[:10]
    assert got.headers["content-disposition"].endswith("filename*=UTF-8''Zo%C3%AB.wav")
    store.delete("tracks/u/1")
    assert store.size("tracks/u/1") is None


def test_large_upload_goes_up_in_parts_and_is_assembled(store: S3ObjectStore) -> None:
    data = b"\x01" * (5 * MIB) + b"\x02" * (5 * MIB) + b"\x03" * 1000
    target = store.prepare_upload("tracks/u/2", len(data), None, _later())
    assert target.url is None and target.multipart_id
    assert [p.size for p in target.parts] == [5 * MIB, 5 * MIB, 1000]
    done, offset = [], 0
    for part in target.parts:
        sent = httpx.put(part.url, content=data[offset : offset + part.size])
        assert sent.status_code == 200
        done.append(CompletedPart(part.part_number, sent.headers["ETag"]))
        offset += part.size
    store.finish_upload("tracks/u/2", target.multipart_id, done)
    assert store.size("tracks/u/2") == len(data)


def test_aborting_a_multipart_upload_leaves_no_object(store: S3ObjectStore) -> None:
    target = store.prepare_upload("tracks/u/3", 7 * MIB, None, _later())
    store.abort_upload("tracks/u/3", target.multipart_id)
    assert store.size("tracks/u/3") is None


@pytest.fixture
def aws_stack(
    bucket: str, moto_endpoint: str, database_url: str, data_dir: Path
) -> Iterator[tuple[TestClient, str]]:
    idp = DevIdentityProvider(data_dir, SystemClock())
    settings = Settings(
        profile="aws",
        data_dir=data_dir,
        database_url=database_url,
        s3_bucket=bucket,
        lake_bucket=bucket,
        firehose_stream=create_event_stream(moto_endpoint, bucket),
        aws_endpoint_url=moto_endpoint,
        trusted_issuers=[idp.trusted_issuer()],
        multipart_threshold_bytes=6 * MIB,
        multipart_part_bytes=5 * MIB,
    )
    deps = wiring.build(settings)
    wiring.install(deps)
    app = create_app(
        objects=None,
        jwks=idp.jwks,
        ready=dict,
        openapi=merged_openapi,
        dashboards=settings.dashboard_dir,
    )
    try:
        with TestClient(app) as client:
            yield client, idp.mint(f"aws-{uuid.uuid4().hex[:6]}")
    finally:
        wiring.install(None)
        deps.close()


def test_upload_flow_in_the_aws_profile_goes_straight_to_s3(
    aws_stack: tuple[TestClient, str], bucket: str, moto_endpoint: str, tmp_path: Path
) -> None:
    # Given the aws profile (S3 through moto) and a real audio file
    client, token = aws_stack
    auth = {"Authorization": f"Bearer {token}"}
    path = make_audio("flac", tmp_path / "s3.flac", tags={"title": "Over S3"})

    # When the client uploads it to the presigned URL and completes
    started = client.post(
        "/v1/uploads", json={"filename": path.name, "size": path.stat().st_size}, headers=auth
    ).json()
    assert started["url"].startswith("http://127.0.0.1")
    assert httpx.put(started["url"], content=path.read_bytes()).status_code == 200
    done = client.post(f"/v1/uploads/{started['upload_id']}/complete", headers=auth)

    # Then the track exists, and its download URL is a presigned S3 GET of the same bytes
    assert done.status_code == 201, done.text
    assert done.json()["title"] == "Over S3"
    link = client.get(f"/v1/tracks/{done.json()['id']}/download", headers=auth).json()
    got = httpx.get(link["url"])
    assert got.content == path.read_bytes()
    assert "attachment" in got.headers["content-disposition"]

    # And the usage events went through Firehose into the lake bucket
    delivered = _firehose_records(bucket, moto_endpoint)
    assert [r["event_type"] for r in delivered] == [
        "track_upload_started",
        "track_uploaded",
        "track_downloaded",
    ]
    assert delivered[1]["track_id"] == done.json()["id"]


def _firehose_records(bucket: str, endpoint: str) -> list[dict[str, Any]]:
    """The NDJSON records moto's Firehose wrote to the bucket, in the order they were made."""
    s3 = boto3.client("s3", region_name=REGION, endpoint_url=endpoint)
    objects = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    records = []
    for obj in objects:
        if obj["Key"].startswith("tracks/"):
            continue
        body = s3.get_object(Bucket=bucket, Key=obj["Key"])["Body"].read().decode()
        records += [json.loads(line) for line in body.splitlines() if line.strip()]
    return sorted(records, key=lambda r: str(r["event_id"]))  # UUIDv7: time order


def test_a_file_refused_after_its_parts_were_assembled_leaves_no_object_in_s3(
    aws_stack: tuple[TestClient, str], bucket: str, moto_endpoint: str, tmp_path: Path
) -> None:
    # Given an 11 MiB file that is not audio, sent to S3 in parts
    client, token = aws_stack
    auth = {"Authorization": f"Bearer {token}"}
    data = b"not audio at all " * (11 * MIB // 17)
    started = client.post(
        "/v1/uploads", json={"filename": "big.wav", "size": len(data)}, headers=auth
    ).json()
    parts, offset = [], 0
    for part in started["parts"]:
        sent = httpx.put(part["url"], content=data[offset : offset + part["size"]])
        parts.append({"part_number": part["part_number"], "etag": sent.headers["ETag"]})
        offset += part["size"]

    # When the upload is completed (S3 assembles the parts, then the audio check refuses it)
    done = client.post(
        f"/v1/uploads/{started['upload_id']}/complete", json={"parts": parts}, headers=auth
    )

    # Then the answer is the refusal, not a server error, and no bytes stay behind
    assert done.status_code == 415, done.text
    assert done.json()["code"] == "not_audio"
    s3 = boto3.client("s3", region_name=REGION, endpoint_url=moto_endpoint)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert not [k for k in keys if k.startswith(("uploads/", "tracks/"))]
