"""Configuration of the ingest service, from environment variables (and .local/stack.env)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.contracts.settings import PlatformSettings

MIB = 1024 * 1024


class IngestSettings(PlatformSettings):
    """KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL as everywhere; the rest is prefixed INGEST_."""

    model_config = SettingsConfigDict(env_prefix="INGEST_")

    database_url: str = Field(
        default="postgresql://tpmap@127.0.0.1:15432/tpmap", validation_alias="DATABASE_URL"
    )
    host: str = "127.0.0.1"
    port: int = 8001
    max_body_bytes: int = Field(default=2048 * MIB, description="Any upload; larger ones get 413")
    max_json_body_bytes: int = Field(
        default=64 * MIB,
        description="JSON arrays are read whole; stream larger batches as NDJSON or CSV",
    )
    max_record_bytes: int = Field(
        default=512 * 1024, description="One record (NDJSON line, CSV row)"
    )
    max_reported_rejections: int = Field(
        default=1000, description="Rejections listed in a response; all are published either way"
    )
    max_in_flight: int = Field(
        default=20_000, description="Messages awaiting Kafka's ack per request"
    )
    kafka_timeout_seconds: float = Field(
        default=10.0, description="How long a send may wait for Kafka"
    )
    raw_consumer: bool = Field(default=True, description="Validate the ingest.raw.*.v1 topics too")
    idempotency_ttl_hours: int = 24
    log_level: str = "INFO"
