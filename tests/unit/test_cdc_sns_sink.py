"""The SNS sink: PublishBatch in tens, and what was not delivered (failed entries, failed
calls, entries SNS did not confirm) reported back so the publisher leaves them unpublished.

A real boto3 SNS client with botocore's Stubber in front of it: no network.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from ingest.cdc.outbox import ChangeMessage
from ingest.cdc.sns import SnsSink

pytestmark = pytest.mark.unit

TOPIC = "arn:aws:sns:us-east-1:123456789012:musicsync-changes"


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Stubber]]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    sns = boto3.client("sns", region_name="us-east-1")
    with Stubber(sns) as stubber:
        yield sns, stubber
        stubber.assert_no_pending_responses()


def messages(n: int) -> list[ChangeMessage]:
    return [ChangeMessage(i + 1, "track", uuid.uuid4(), 1, "upsert") for i in range(n)]


def expect(stubber: Stubber, batch: list[ChangeMessage], failed: dict[int, str]) -> None:
    stubber.add_response(
        "publish_batch",
        {
            "Successful": [
                {"Id": str(m.outbox_id), "MessageId": str(uuid.uuid4())}
                for m in batch
                if m.outbox_id not in failed
            ],
            "Failed": [
                {"Id": str(i), "Code": code, "SenderFault": False} for i, code in failed.items()
            ],
        },
        {
            "TopicArn": TOPIC,
            "PublishBatchRequestEntries": [
                {
                    "Id": str(m.outbox_id),
                    "Message": m.to_json(),
                    "MessageAttributes": {
                        "aggregate_type": {"DataType": "String", "StringValue": "track"}
                    },
                }
                for m in batch
            ],
        },
    )


def test_batches_of_ten_and_failed_entries_reported(client: tuple[Any, Stubber]) -> None:
    sns, stubber = client
    sent = messages(23)
    expect(stubber, sent[:10], {})
    expect(stubber, sent[10:20], {12: "InternalError", 17: "Throttled"})
    expect(stubber, sent[20:], {})
    assert SnsSink(TOPIC, client=sns).send(sent) == {12: "InternalError", 17: "Throttled"}
    assert json.loads(sent[0].to_json())["outbox_id"] == 1


def test_a_failed_call_fails_its_batch_only(client: tuple[Any, Stubber]) -> None:
    sns, stubber = client
    sent = messages(12)
    stubber.add_client_error("publish_batch", "ThrottledException", http_status_code=400)
    expect(stubber, sent[10:], {})
    failed = SnsSink(TOPIC, client=sns).send(sent)
    assert failed == {m.outbox_id: "ThrottledException" for m in sent[:10]}


def test_an_entry_neither_confirmed_nor_failed_is_not_delivered(
    client: tuple[Any, Stubber],
) -> None:
    sns, stubber = client
    sent = messages(2)
    stubber.add_response(
        "publish_batch",
        {"Successful": [{"Id": "1", "MessageId": "m"}], "Failed": []},
    )
    assert SnsSink(TOPIC, client=sns).send(sent) == {2: "unconfirmed"}
