"""The indexer Lambda handler's partial batch response, without a database: the messages named
failed are exactly the malformed ones and those ``index_changes`` could not do."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import pytest

from ingest.cdc.outbox import ChangeMessage
from ingest.indexer import handler
from ingest.indexer.core import IndexResult

pytestmark = pytest.mark.unit


def record(body: str) -> dict[str, Any]:
    return {
        "messageId": str(uuid.uuid4()),
        "receiptHandle": "handle",
        "body": body,
        "attributes": {"ApproximateReceiveCount": "1"},
        "messageAttributes": {},
        "md5OfBody": "",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:musicsync-indexer",
        "awsRegion": "us-east-1",
    }


def change(version: int = 1) -> str:
    return ChangeMessage(1, "track", uuid.uuid4(), version, "upsert").to_json()


class Spy:
    def __init__(self, fail: set[int]) -> None:
        self.fail = fail
        self.seen: list[ChangeMessage] = []

    def __call__(self, pool: Any, index: Any, messages: Sequence[ChangeMessage]) -> IndexResult:
        self.seen += messages
        return IndexResult(failed={p: "nope" for p in self.fail if p < len(messages)})


def test_only_the_failed_messages_are_named(monkeypatch: pytest.MonkeyPatch) -> None:
    spy = Spy(fail={1})
    monkeypatch.setattr(handler, "index_changes", spy)
    records = [record(change()), record("{broken"), record(change()), record(change())]
    response = handler.handle_sqs_event({"Records": records}, pool=None, index=None)  # type: ignore[arg-type]
    # The malformed one, and the second of the parsed ones (the third record).
    assert response == {
        "batchItemFailures": [
            {"itemIdentifier": records[1]["messageId"]},
            {"itemIdentifier": records[2]["messageId"]},
        ]
    }
    assert len(spy.seen) == 3


def test_a_batch_of_poison_reaches_neither_database_nor_index(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    spy = Spy(fail=set())
    monkeypatch.setattr(handler, "index_changes", spy)
    records = [record("x"), record("")]
    response = handler.handle_sqs_event({"Records": records}, pool=None, index=None)  # type: ignore[arg-type]
    assert [f["itemIdentifier"] for f in response["batchItemFailures"]] == [
        r["messageId"] for r in records
    ]
    assert spy.seen == []


def test_an_all_good_batch_reports_no_failures(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(handler, "index_changes", Spy(fail=set()))
    monkeypatch.setattr(handler, "_resources", lambda: (None, None))
    response = handler.lambda_handler({"Records": [record(change()), record(change(3))]}, None)
    assert response == {"batchItemFailures": []}
