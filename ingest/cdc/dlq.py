"""The indexer queue's dead-letter queue: list what is there, and send it back.

A message the indexer keeps failing on is moved by SQS to the DLQ once its receive count passes
the queue's ``maxReceiveCount`` (redrive policy). ``list_dead`` shows them without consuming
them; ``redrive`` moves them back to the source queue (receive, send, delete: a message is
deleted from the DLQ only after the source queue took it, so a crash duplicates, never loses).
Backs ``musicsync search dlq``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

_RECEIVE = {
    "MaxNumberOfMessages": 10,
    "WaitTimeSeconds": 0,
    "AttributeNames": ["All"],
    "MessageAttributeNames": ["All"],
}


@dataclass(frozen=True)
class DeadMessage:
    message_id: str
    body: str
    # How often it was received (on the source queue, then here while listing).
    receive_count: int
    sent_at: datetime | None

    @property
    def change(self) -> dict[str, Any] | None:
        """The change message in the body, when it parses as JSON (else None)."""
        from ingest.cdc.outbox import MalformedMessage, parse_body

        try:
            message = parse_body(self.body)
        except MalformedMessage:
            return None
        return {
            "aggregate_type": message.aggregate_type,
            "aggregate_id": str(message.aggregate_id),
            "version": message.version,
            "operation": message.operation,
            "outbox_id": message.outbox_id,
        }


def _dead(message: dict[str, Any]) -> DeadMessage:
    attributes = message.get("Attributes", {})
    sent = attributes.get("SentTimestamp")
    return DeadMessage(
        message_id=message["MessageId"],
        body=message["Body"],
        receive_count=int(attributes.get("ApproximateReceiveCount", 0)),
        sent_at=None if sent is None else datetime.fromtimestamp(int(sent) / 1000, tz=UTC),
    )


def list_dead(
    sqs: Any, dlq_url: str, *, limit: int = 1000, visibility_timeout: int = 30
) -> list[DeadMessage]:
    """Up to ``limit`` messages of the DLQ, left in place. Each is hidden while the listing
    pages through the queue and made visible again at the end."""
    seen: dict[str, DeadMessage] = {}
    handles: list[str] = []
    try:
        while len(seen) < limit:
            response = sqs.receive_message(
                QueueUrl=dlq_url, VisibilityTimeout=visibility_timeout, **_RECEIVE
            )
            messages = response.get("Messages", [])
            if not messages:
                break
            for message in messages:
                handles.append(message["ReceiptHandle"])
                seen.setdefault(message["MessageId"], _dead(message))
    finally:
        _release(sqs, dlq_url, handles)
    return list(seen.values())[:limit]


def _release(sqs: Any, queue_url: str, handles: list[str]) -> None:
    for start in range(0, len(handles), 10):
        sqs.change_message_visibility_batch(
            QueueUrl=queue_url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": handle, "VisibilityTimeout": 0}
                for i, handle in enumerate(handles[start : start + 10])
            ],
        )


def redrive(
    sqs: Any,
    dlq_url: str,
    source_url: str,
    *,
    limit: int | None = None,
    visibility_timeout: int = 60,
) -> int:
    """Move the DLQ's messages (up to ``limit``) back to ``source_url``; how many moved."""
    moved = 0
    while limit is None or moved < limit:
        response = sqs.receive_message(
            QueueUrl=dlq_url, VisibilityTimeout=visibility_timeout, **_RECEIVE
        )
        messages = response.get("Messages", [])
        if limit is not None:
            messages = messages[: limit - moved]
        if not messages:
            break
        sent = sqs.send_message_batch(
            QueueUrl=source_url,
            Entries=[
                {
                    "Id": str(i),
                    "MessageBody": m["Body"],
                    **(
                        {"MessageAttributes": m["MessageAttributes"]}
                        if m.get("MessageAttributes")
                        else {}
                    ),
                }
                for i, m in enumerate(messages)
            ],
        )
        ok = [messages[int(entry["Id"])] for entry in sent.get("Successful", [])]
        if ok:
            deleted = sqs.delete_message_batch(
                QueueUrl=dlq_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(ok)
                ],
            )
            moved += len(deleted.get("Successful", []))
        failed = sent.get("Failed", [])
        if failed:
            raise RuntimeError(
                f"the source queue refused {len(failed)} messages: "
                + json.dumps([f.get("Code") for f in failed])
            )
    return moved
