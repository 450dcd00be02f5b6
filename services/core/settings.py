"""Settings from the environment (`MUSICSYNC_*`, plus `DATABASE_URL` and `REDIS_URL`)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.core.identity.issuers import TrustedIssuer

GIB = 1024**3


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="MUSICSYNC_", extra="ignore")

    profile: Literal["local", "aws"] = "local"
    data_dir: Path = Path(".musicsync")
    database_url: str | None = Field(
        default=None, validation_alias=AliasChoices("MUSICSYNC_DATABASE_URL", "DATABASE_URL")
    )
    redis_url: str | None = Field(
        default=None, validation_alias=AliasChoices("MUSICSYNC_REDIS_URL", "REDIS_URL")
    )
    db_pool_max: int = 10
    # Public base URL of the local stack; signed object URLs point at it.
    public_url: str = "http://127.0.0.1:8000"
    trusted_issuers: list[TrustedIssuer] = Field(default_factory=list)
    jwt_leeway_seconds: int = 30
    upload_max_bytes: int = 2 * GIB
    multipart_threshold_bytes: int = 100 * 1024**2
    multipart_part_bytes: int = 64 * 1024**2
    upload_url_ttl_seconds: int = 3600
    # How often the local stack runs the scheduled jobs: remove uploads that expired without
    # completion, announce pitches that expired.
    sweep_seconds: float = 300
    media_url_ttl_seconds: int = 300
    # Local object store: HMAC key for signed URLs (generated into the data dir when unset).
    object_signing_secret: str | None = None
    # Usage events: the local lake lives in the data dir; in aws, Firehose delivers to the lake
    # bucket, and what it cannot take goes to the dead-letter prefix there.
    firehose_stream: str | None = None
    # The collector: requests per actor per minute (each up to 100 events).
    collector_requests_per_minute: int = 120
    # Pitch links: lookups per client address and per link per minute, password attempts per
    # link per 10 minutes, and how long a correct password is remembered by the browser.
    pitch_requests_per_minute: int = 300
    pitch_link_requests_per_minute: int = 600
    pitch_unlock_attempts: int = 10
    pitch_session_hours: int = 12
    # Rendered pitch pages kept per process, reused while their content is unchanged.
    pitch_page_cache_mib: int = 32
    # Search: OpenSearch in aws (the index is reached through this alias), tantivy on disk in
    # local (under the data dir).
    opensearch_url: str | None = None
    search_alias: str = "tracks"
    # Change capture (aws): the SNS topic the publisher sends to; how long a woken publisher
    # waits for the writing transaction to commit; when the sweeper republishes what no
    # publisher took; how long published outbox rows are kept.
    cdc_topic_arn: str | None = None
    # The indexer's SQS queue and its dead-letter queue (for `musicsync search dlq`).
    cdc_queue_url: str | None = None
    cdc_dlq_url: str | None = None
    cdc_commit_wait_seconds: float = 5.0
    cdc_sweep_after_seconds: float = 60.0
    cdc_retention_days: float = 7.0
    lake_bucket: str | None = None
    lake_prefix: str = ""
    glue_database: str = "musicsync"
    # AWS profile.
    s3_bucket: str | None = None
    aws_region: str = "us-east-1"
    aws_endpoint_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("MUSICSYNC_AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL"),
    )

    @property
    def objects_dir(self) -> Path:
        return self.data_dir / "objects"

    @property
    def lake_dir(self) -> Path:
        return self.data_dir / "lake"

    @property
    def search_dir(self) -> Path:
        return self.data_dir / "search"

    @property
    def dashboard_dir(self) -> Path:
        """Where `musicsync dashboard` writes and `musicsync up` serves (/dashboards)."""
        return self.data_dir / "analytics" / "dashboard"
