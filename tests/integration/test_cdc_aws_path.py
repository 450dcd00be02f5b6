"""The ``aws`` path of change capture over real HTTP: outbox -> publisher -> SNS -> SQS -> the
indexer Lambda handler -> the index, on moto in server mode.

moto does not run Lambda code, so the SQS event source mapping is played here: receive the real
messages, hand them to ``lambda_handler`` in the Lambda SQS event shape (batches of 10,
shuffled, with duplicates and a poisoned message), delete what the response does not name as
failed, and let the rest come back until the redrive policy moves it to the DLQ.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from psycopg_pool import ConnectionPool

from ingest.cdc import publisher as publisher_module
from ingest.cdc.dlq import list_dead, redrive
from ingest.cdc.outbox import mark_published
from ingest.cdc.publisher import drain
from ingest.cdc.sns import SnsSink
from ingest.cdc.sweeper import sweep
from ingest.indexer import handler
from tests.support.aws import REGION
from tests.support.cdc import (
    Index,
    add_entry,
    add_playlist,
    add_share,
    add_track,
    add_user,
    assert_index_matches_database,
    make_index,
    own_database,
    pool_of,
    visible,
)

pytestmark = pytest.mark.integration

MAX_RECEIVE_COUNT = 2


@pytest.fixture(scope="module")
def db_url(server_url: str) -> Iterator[str]:
    with own_database(server_url) as url:
        yield url


@pytest.fixture(scope="module")
def pool(db_url: str) -> Iterator[ConnectionPool[Any]]:
    with pool_of(db_url, max_size=6) as pool:
        yield pool


@pytest.fixture(autouse=True)
def clean_slate(pool: ConnectionPool[Any]) -> None:
    """Each test starts with no tracks and nothing waiting in the outbox."""
    with pool.connection() as conn:
        conn.execute("DELETE FROM tracks")
        conn.execute("UPDATE outbox SET published_at = now() WHERE published_at IS NULL")


@pytest.fixture
def sns(moto_endpoint: str) -> Any:
    return boto3.client("sns", region_name=REGION, endpoint_url=moto_endpoint)


@pytest.fixture
def sqs(moto_endpoint: str) -> Any:
    return boto3.client("sqs", region_name=REGION, endpoint_url=moto_endpoint)


class Queues:
    def __init__(self, sns: Any, sqs: Any) -> None:
        suffix = uuid.uuid4().hex[:8]
        self.sqs = sqs
        self.topic = sns.create_topic(Name=f"musicsync-changes-{suffix}")["TopicArn"]
        self.dlq = sqs.create_queue(QueueName=f"musicsync-indexer-dlq-{suffix}")["QueueUrl"]
        dlq_arn = self.arn(self.dlq)
        self.queue = sqs.create_queue(
            QueueName=f"musicsync-indexer-{suffix}",
            Attributes={
                "VisibilityTimeout": "30",
                "RedrivePolicy": json.dumps(
                    {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(MAX_RECEIVE_COUNT)}
                ),
            },
        )["QueueUrl"]
        # What SNS delivers without raw message delivery: the envelope.
        self.enveloped = sqs.create_queue(QueueName=f"musicsync-enveloped-{suffix}")["QueueUrl"]
        for url, raw in ((self.queue, "true"), (self.enveloped, "false")):
            sns.subscribe(
                TopicArn=self.topic,
                Protocol="sqs",
                Endpoint=self.arn(url),
                Attributes={"RawMessageDelivery": raw},
            )

    def arn(self, url: str) -> str:
        attributes = self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
        return str(attributes["Attributes"]["QueueArn"])

    def receive_all(self, url: str) -> list[dict[str, Any]]:
        """Everything visible now (each hidden for the visibility timeout once received)."""
        received: list[dict[str, Any]] = []
        while True:
            batch = self.sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=10,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if not batch:
                return received
            received += batch


@pytest.fixture
def queues(sns: Any, sqs: Any) -> Queues:
    return Queues(sns, sqs)


def lambda_record(message: dict[str, Any], queue_arn: str) -> dict[str, Any]:
    """A received SQS message as the Lambda SQS event source presents it."""
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": {
            "ApproximateReceiveCount": message["Attributes"]["ApproximateReceiveCount"],
            "SentTimestamp": message["Attributes"]["SentTimestamp"],
            "SenderId": message["Attributes"]["SenderId"],
            "ApproximateFirstReceiveTimestamp": message["Attributes"][
                "ApproximateFirstReceiveTimestamp"
            ],
        },
        "messageAttributes": {
            name: {
                "stringValue": value.get("StringValue"),
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": value["DataType"],
            }
            for name, value in message.get("MessageAttributes", {}).items()
        },
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": REGION,
    }


@pytest.fixture(params=["recording", "tantivy"])
def index(
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    pool: ConnectionPool[Any],
    tmp_path: Path,
) -> Iterator[Index]:
    """The index the handler finds in the composition root."""
    index = make_index(request.param, tmp_path)
    monkeypatch.setattr(handler, "_resources", lambda: (pool, index))
    try:
        yield index
    finally:
        index.close()


def run_event_source(
    queues: Queues, url: str, records: list[dict[str, Any]], rng: random.Random
) -> list[str]:
    """Hand the records to the handler in shuffled batches of 10, as the event source mapping
    would; delete the messages not reported failed. The ids reported failed."""
    rng.shuffle(records)
    failed: list[str] = []
    for start in range(0, len(records), 10):
        batch = records[start : start + 10]
        response = handler.lambda_handler({"Records": batch}, None)
        names = [str(item["itemIdentifier"]) for item in response["batchItemFailures"]]
        failed += names
        done = [r for r in batch if r["messageId"] not in names]
        for r in done:
            queues.sqs.delete_message(QueueUrl=url, ReceiptHandle=r["receiptHandle"])
        # A failed message becomes visible again when its visibility timeout ends: now.
        for r in batch:
            if r["messageId"] in names:
                queues.sqs.change_message_visibility(
                    QueueUrl=url, ReceiptHandle=r["receiptHandle"], VisibilityTimeout=0
                )
    return failed


def make_changes(pool: ConnectionPool[Any]) -> dict[str, uuid.UUID]:
    """Uploads, edits, shares and revocations, playlists, a deletion."""
    with pool.connection() as conn:
        owner, friend, listener = add_user(conn), add_user(conn), add_user(conn)
        tracks = [add_track(conn, owner, f"Song {i}") for i in range(6)]
        conn.execute("UPDATE tracks SET title = 'Renamed' WHERE id = %s", (tracks[0],))
        share = add_share(conn, owner, track=tracks[1], grantee=friend)
        playlist = add_playlist(conn, owner, tracks[2:4])
        add_share(conn, owner, playlist=playlist, grantee=listener)
        add_entry(conn, playlist, tracks[4])
    with pool.connection() as conn:
        conn.execute("UPDATE shares SET revoked_at = now() WHERE id = %s", (share,))
        conn.execute("DELETE FROM tracks WHERE id = %s", (tracks[5],))
        conn.execute("UPDATE tracks SET genre = 'jazz' WHERE id = %s", (tracks[2],))
    return {"renamed": tracks[0], "deleted": tracks[5], "listened": tracks[4], "owner": owner}


def test_outbox_to_index_through_sns_and_sqs(
    pool: ConnectionPool[Any], queues: Queues, index: Index, moto_endpoint: str
) -> None:
    rng = random.Random(5)
    made = make_changes(pool)
    sink = SnsSink(queues.topic, region=REGION, endpoint_url=moto_endpoint)
    published = drain(pool, sink)
    assert published > 10  # more than one PublishBatch call

    queues.sqs.send_message(QueueUrl=queues.queue, MessageBody='{"aggregate_type": "track"')
    received = queues.receive_all(queues.queue)
    assert len(received) == published + 1
    poison = next(m for m in received if m["Body"].startswith('{"aggregate_type": "track"'))
    queue_arn = queues.arn(queues.queue)
    records = [lambda_record(m, queue_arn) for m in received]
    # Delivered twice (as after a sweeper's republish): other message ids, same bodies.
    duplicates = [
        {**r, "messageId": str(uuid.uuid4())}
        for r in rng.sample(records, k=8)
        if r["messageId"] != poison["MessageId"]
    ]
    for dup in duplicates:
        body = json.loads(dup["body"])
        assert set(body) == {"aggregate_type", "aggregate_id", "version", "operation", "outbox_id"}
    failed = run_event_source(queues, queues.queue, records + duplicates, rng)
    assert failed == [poison["MessageId"]]

    assert_index_matches_database(pool, index)
    found = visible(index, made["owner"])
    assert found[made["renamed"]].title == "Renamed"
    assert made["deleted"] not in found
    assert len(found[made["listened"]].viewers) == 2

    # The poisoned message comes back until the redrive policy moves it to the DLQ.
    for receive in range(2, MAX_RECEIVE_COUNT + 1):
        [again] = queues.receive_all(queues.queue)
        assert again["MessageId"] == poison["MessageId"]
        assert again["Attributes"]["ApproximateReceiveCount"] == str(receive)
        assert run_event_source(queues, queues.queue, [lambda_record(again, queue_arn)], rng) == [
            poison["MessageId"]
        ]
    assert queues.receive_all(queues.queue) == []
    [dead] = list_dead(queues.sqs, queues.dlq)
    assert dead.body == poison["Body"]
    assert dead.change is None  # not a change message
    # Listing leaves it there.
    assert [d.message_id for d in list_dead(queues.sqs, queues.dlq)] == [dead.message_id]

    assert redrive(queues.sqs, queues.dlq, queues.queue) == 1
    assert list_dead(queues.sqs, queues.dlq) == []
    [back] = queues.receive_all(queues.queue)
    assert back["Body"] == poison["Body"]


def test_a_crash_between_publish_and_mark_ends_in_a_correct_index(
    pool: ConnectionPool[Any],
    queues: Queues,
    index: Index,
    moto_endpoint: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    rng = random.Random(11)
    make_changes(pool)
    sink = SnsSink(queues.topic, region=REGION, endpoint_url=moto_endpoint)

    def crash(*_: object) -> None:
        raise SystemExit("the publisher Lambda timed out")

    monkeypatch.setattr(publisher_module, "mark_published", crash)
    with pytest.raises(SystemExit):
        drain(pool, sink)
    monkeypatch.setattr(publisher_module, "mark_published", mark_published)
    first = queues.receive_all(queues.queue)
    assert first  # they went out before the crash
    with pool.connection() as conn:
        conn.execute(
            "UPDATE outbox SET created_at = now() - interval '2 minutes' WHERE published_at IS NULL"
        )
        waiting = conn.execute(
            "SELECT count(*) AS n FROM outbox WHERE published_at IS NULL"
        ).fetchone()
    assert waiting is not None and waiting["n"] == len(first)
    assert sweep(pool, sink).republished == len(first)
    second = queues.receive_all(queues.queue)
    assert len(second) == len(first)
    queue_arn = queues.arn(queues.queue)
    records = [lambda_record(m, queue_arn) for m in first + second]
    assert run_event_source(queues, queues.queue, records, rng) == []
    assert_index_matches_database(pool, index)


def test_the_handler_reads_the_sns_envelope_too(
    pool: ConnectionPool[Any], queues: Queues, index: Index, moto_endpoint: str
) -> None:
    with pool.connection() as conn:
        owner = add_user(conn)
        track = add_track(conn, owner, "Enveloped")
    drain(pool, SnsSink(queues.topic, region=REGION, endpoint_url=moto_endpoint))
    [message] = queues.receive_all(queues.enveloped)
    assert json.loads(message["Body"])["Type"] == "Notification"
    records = [lambda_record(message, queues.arn(queues.enveloped))]
    assert run_event_source(queues, queues.enveloped, records, random.Random(1)) == []
    assert visible(index, owner)[track].title == "Enveloped"
