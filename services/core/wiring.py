"""The one place that picks adapters for the profile (``local`` or ``aws``).

Lambda handlers and the local stack both get their dependencies here; the local runtime
(``musicsync``) only starts embedded servers and fills in the settings before calling ``build``.
"""

from __future__ import annotations

import functools
import os
import secrets
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from psycopg_pool import ConnectionPool

from ingest.events.sink import EventSink

if TYPE_CHECKING:
    from ingest.events.dead_letters import DeadLetterStore
    from services.core.search.port import SearchIndex
from services.core.clock import Clock, SystemClock
from services.core.db import open_pool
from services.core.identity.verifier import TokenVerifier
from services.core.objects.port import ObjectStore
from services.core.settings import Settings
from services.core.users import UserDirectory


@dataclass
class Dependencies:
    settings: Settings
    clock: Clock
    pool: ConnectionPool[Any]
    objects: ObjectStore
    verifier: TokenVerifier
    users: UserDirectory
    events: EventSink
    _redis: Any = None
    _search_index: Any = None

    @property
    def redis(self) -> Any:
        """A Redis client, made on first use (redis-py costs 0.1 s to import: cold start)."""
        if self._redis is None:
            import redis

            if not self.settings.redis_url:
                raise RuntimeError("No Redis configured: set REDIS_URL (or run `musicsync up`).")
            # One connection, not a pool: a Lambda container (a local serving process) runs one
            # request at a time, and a pool checkout cost a third of each command's CPU.
            self._redis = redis.Redis.from_url(
                self.settings.redis_url, socket_timeout=2, single_connection_client=True
            )
        return self._redis

    @functools.cached_property
    def signing_secret(self) -> bytes:
        """The key of signed URLs and pitch sessions, read once (it never changes while the
        process runs; reading its file on every request cost a system call or three)."""
        return object_signing_secret(self.settings)

    @property
    def search_index(self) -> SearchIndex:
        """The search index, opened on first use (only the search and indexer paths need it)."""
        if self._search_index is None:
            self._search_index = search_index(self.settings)
        index: SearchIndex = self._search_index
        return index

    def close(self) -> None:
        if self._search_index is not None:
            self._search_index.close()
        self.events.close()
        if self._redis is not None:
            self._redis.close()
        self.pool.close()


def build(settings: Settings, clock: Clock | None = None) -> Dependencies:
    clock = clock or SystemClock()
    if not settings.database_url:
        raise RuntimeError("No database configured: set DATABASE_URL (or run `musicsync up`).")
    pool = open_pool(settings.database_url, max_size=settings.db_pool_max)
    return Dependencies(
        settings=settings,
        clock=clock,
        pool=pool,
        objects=_object_store(settings, clock),
        verifier=TokenVerifier(
            settings.trusted_issuers, clock, leeway_seconds=settings.jwt_leeway_seconds
        ),
        users=UserDirectory(pool, clock),
        events=event_sink(settings, clock),
    )


def _object_store(settings: Settings, clock: Clock) -> ObjectStore:
    if settings.profile == "aws":
        from services.core.objects.s3 import S3ObjectStore

        if not settings.s3_bucket:
            raise RuntimeError("MUSICSYNC_S3_BUCKET is required in the aws profile")
        return S3ObjectStore(
            settings.s3_bucket,
            clock,
            region=settings.aws_region,
            endpoint_url=settings.aws_endpoint_url,
            multipart_threshold=settings.multipart_threshold_bytes,
            part_size=settings.multipart_part_bytes,
        )
    from services.core.objects.local import LocalObjectStore

    return LocalObjectStore(
        settings.objects_dir, object_signing_secret(settings), settings.public_url, clock
    )


def event_sink(settings: Settings, clock: Clock) -> EventSink:
    """Firehose (aws) or the local lake writer (local), started."""
    if settings.profile == "aws":
        from ingest.events.firehose import FirehoseSink

        if not settings.firehose_stream:
            raise RuntimeError("the aws profile needs MUSICSYNC_FIREHOSE_STREAM")
        return FirehoseSink(
            settings.firehose_stream,
            clock,
            dead_letter_store(settings, clock),
            region=settings.aws_region,
            endpoint_url=settings.aws_endpoint_url,
        )
    from ingest.events.lake_writer import LocalLakeWriter

    writer = LocalLakeWriter(settings.lake_dir, clock)
    writer.start()
    return writer


def search_index(settings: Settings) -> SearchIndex:
    """OpenSearch behind its alias (aws), or tantivy generations under the data dir (local)."""
    if settings.profile == "aws":
        import boto3
        from opensearchpy import OpenSearch, Urllib3AWSV4SignerAuth

        from services.core.search.opensearch_index import OpenSearchIndex

        if not settings.opensearch_url:
            raise RuntimeError("the aws profile needs MUSICSYNC_OPENSEARCH_URL")
        # The domain's access policy admits the Lambda roles: requests are SigV4-signed.
        credentials = boto3.Session().get_credentials()
        auth = Urllib3AWSV4SignerAuth(credentials, settings.aws_region, "es")
        client = OpenSearch(settings.opensearch_url, http_auth=auth, timeout=5)
        return OpenSearchIndex(client, settings.search_alias)
    from services.core.search.tantivy_index import TantivyIndex

    return TantivyIndex(settings.search_dir)


def dead_letter_store(settings: Settings, clock: Clock) -> DeadLetterStore:
    """Where events go that no sink would take: an S3 prefix (aws) or the local lake folder."""
    if settings.profile == "aws":
        from ingest.events.dead_letters import S3DeadLetters

        if not settings.lake_bucket:
            raise RuntimeError("the aws profile needs MUSICSYNC_LAKE_BUCKET")
        return S3DeadLetters(
            settings.lake_bucket,
            settings.lake_prefix,
            clock,
            region=settings.aws_region,
            endpoint_url=settings.aws_endpoint_url,
        )
    from ingest.events.dead_letters import LocalDeadLetters

    return LocalDeadLetters(settings.lake_dir, clock)


def object_signing_secret(settings: Settings) -> bytes:
    """The configured secret, or one generated once and kept in the data dir."""
    secret = settings.object_signing_secret
    if not secret:
        path = settings.data_dir / "object-signing.key"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            # Written whole under another name, then linked: a crash never leaves a short key.
            tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
            tmp.touch(mode=0o600)
            tmp.write_text(secrets.token_hex(32))
            try:
                os.link(tmp, path)
            except FileExistsError:  # another process made it first: use theirs
                pass
            finally:
                tmp.unlink()
        secret = path.read_text().strip()
    if len(secret) < 32:
        raise RuntimeError("the object signing secret must be at least 32 characters")
    return secret.encode()


_lock = threading.Lock()
_current: Dependencies | None = None


def install(deps: Dependencies | None) -> None:
    """Use these dependencies for every handler in this process (local stack, tests)."""
    global _current
    with _lock:
        _current = deps


def dependencies() -> Dependencies:
    """This process's dependencies; in Lambda, built from the environment on first use."""
    global _current
    if _current is None:
        with _lock:
            if _current is None:
                _current = build(Settings())
    return _current
