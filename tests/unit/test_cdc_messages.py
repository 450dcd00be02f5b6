"""Change messages: their JSON, and reading them back from SQS bodies (raw SNS delivery or the
SNS envelope); anything else is a poison message."""

from __future__ import annotations

import json
import uuid

import pytest

from ingest.cdc.outbox import ChangeMessage, MalformedMessage, parse_body

pytestmark = pytest.mark.unit

MESSAGE = ChangeMessage(42, "track", uuid.UUID("3f0c8a52-1d2e-4c41-9d3b-0a6c4e9f7b11"), 7, "delete")


def test_the_body_is_the_json_of_the_message() -> None:
    assert json.loads(MESSAGE.to_json()) == {
        "aggregate_type": "track",
        "aggregate_id": "3f0c8a52-1d2e-4c41-9d3b-0a6c4e9f7b11",
        "version": 7,
        "operation": "delete",
        "outbox_id": 42,
    }
    assert parse_body(MESSAGE.to_json()) == MESSAGE


def test_the_sns_envelope_is_unwrapped() -> None:
    envelope = {
        "Type": "Notification",
        "MessageId": str(uuid.uuid4()),
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:musicsync-changes",
        "Message": MESSAGE.to_json(),
        "Timestamp": "2026-06-01T12:00:00.000Z",
        "SignatureVersion": "1",
    }
    assert parse_body(json.dumps(envelope)) == MESSAGE


def test_a_message_without_an_outbox_id_is_accepted() -> None:
    body = json.loads(MESSAGE.to_json())
    del body["outbox_id"]
    assert parse_body(json.dumps(body)).outbox_id == 0


@pytest.mark.parametrize(
    "body",
    [
        "",
        "not json",
        "[1, 2]",
        "null",
        '{"aggregate_type": "track"}',
        json.dumps({**json.loads(MESSAGE.to_json()), "aggregate_id": "nope"}),
        json.dumps({**json.loads(MESSAGE.to_json()), "aggregate_id": None}),
        json.dumps({**json.loads(MESSAGE.to_json()), "version": "7"}),
        json.dumps({**json.loads(MESSAGE.to_json()), "version": -1}),
        json.dumps({**json.loads(MESSAGE.to_json()), "version": True}),
        json.dumps({**json.loads(MESSAGE.to_json()), "operation": "merge"}),
        json.dumps({**json.loads(MESSAGE.to_json()), "aggregate_type": 3}),
        json.dumps({**json.loads(MESSAGE.to_json()), "outbox_id": "42"}),
        json.dumps({"Type": "Notification", "Message": "not json"}),
        json.dumps({"Type": "Notification"}),
    ],
)
def test_anything_else_is_malformed(body: str) -> None:
    with pytest.raises(MalformedMessage):
        parse_body(body)
