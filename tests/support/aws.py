"""moto in server mode: real boto3 calls over HTTP to a local endpoint."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator

import pytest

REGION = "us-east-1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


FIREHOSE_ROLE = "arn:aws:iam::123456789012:role/musicsync-firehose"


def create_event_stream(endpoint: str, bucket: str) -> str:
    """A Firehose delivery stream into ``bucket``, configured as in AWS (moto delivers at once)."""
    import boto3

    from ingest.events.firehose import extended_s3_destination

    name = f"usage-events-{uuid.uuid4().hex[:8]}"
    boto3.client("firehose", region_name=REGION, endpoint_url=endpoint).create_delivery_stream(
        DeliveryStreamName=name,
        DeliveryStreamType="DirectPut",
        ExtendedS3DestinationConfiguration=extended_s3_destination(
            f"arn:aws:s3:::{bucket}", FIREHOSE_ROLE, region=REGION
        ),
    )
    return name
