"""The ``aws`` sink of the publisher: SNS ``PublishBatch`` to the change topic.

Ten messages per call (the API's limit). The body is the change message's JSON
(``ChangeMessage.to_json``); an ``aggregate_type`` message attribute allows subscription filter
policies. The topic is a standard one: order and exactly-once do not matter downstream (the
indexer reads the current state and writes it with its version), so neither FIFO nor
deduplication ids are needed. Entries SNS reports failed, and whole calls that fail, are
returned as not delivered: the publisher leaves them unpublished for a later attempt.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from ingest.cdc.outbox import ChangeMessage

log = logging.getLogger(__name__)

MAX_BATCH = 10


class SnsSink:
    def __init__(
        self,
        topic_arn: str,
        *,
        client: Any | None = None,
        region: str = "us-east-1",
        endpoint_url: str | None = None,
    ) -> None:
        if client is None:
            import boto3
            from botocore.config import Config

            client = boto3.client(
                "sns",
                region_name=region,
                endpoint_url=endpoint_url,
                config=Config(
                    retries={"mode": "standard", "total_max_attempts": 3},
                    connect_timeout=2,
                    read_timeout=5,
                ),
            )
        self._client: Any = client
        self._topic = topic_arn

    def send(self, messages: Sequence[ChangeMessage]) -> dict[int, str]:
        from botocore.exceptions import BotoCoreError, ClientError

        failed: dict[int, str] = {}
        for start in range(0, len(messages), MAX_BATCH):
            chunk = messages[start : start + MAX_BATCH]
            by_entry = {str(m.outbox_id): m for m in chunk}
            try:
                response = self._client.publish_batch(
                    TopicArn=self._topic,
                    PublishBatchRequestEntries=[
                        {
                            "Id": entry_id,
                            "Message": m.to_json(),
                            "MessageAttributes": {
                                "aggregate_type": {
                                    "DataType": "String",
                                    "StringValue": m.aggregate_type,
                                }
                            },
                        }
                        for entry_id, m in by_entry.items()
                    ],
                )
            except ClientError as exc:
                code = str(exc.response.get("Error", {}).get("Code", "ClientError"))
                failed.update({m.outbox_id: code for m in chunk})
                continue
            except BotoCoreError as exc:
                failed.update({m.outbox_id: type(exc).__name__ for m in chunk})
                continue
            delivered = {entry["Id"] for entry in response.get("Successful", [])}
            for entry in response.get("Failed", []):
                message = by_entry.get(entry["Id"])
                if message is not None:
                    failed[message.outbox_id] = str(entry.get("Code", "Failed"))
            # An entry in neither list was not confirmed: treat it as not delivered.
            for entry_id, m in by_entry.items():
                if entry_id not in delivered and m.outbox_id not in failed:
                    failed[m.outbox_id] = "unconfirmed"
        return failed
