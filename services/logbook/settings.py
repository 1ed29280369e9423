"""Configuration of the logbook service, from environment variables (and .local/stack.env)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.contracts.settings import PlatformSettings


class LogbookSettings(PlatformSettings):
    """KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL as everywhere; the rest is prefixed LOGBOOK_."""

    model_config = SettingsConfigDict(env_prefix="LOGBOOK_")

    database_url: str = Field(
        default="postgresql://tpmap@127.0.0.1:15432/tpmap", validation_alias="DATABASE_URL"
    )
    host: str = "127.0.0.1"
    port: int = 8002
    consumer: bool = Field(
        default=True, description="Apply the matcher's status topics in this process"
    )
    relay: bool = Field(default=True, description="Publish the outbox in this process")
    consumer_group: str = "tpmap-logbook-status"
    consumer_batch: int = Field(
        default=4000,
        description="Most messages taken from Kafka at once; each partition's share is applied in one "
        "transaction (500 made transactions of a few dozen statuses under load)",
    )
    relay_batch: int = Field(default=500, description="Outbox rows published per round")
    relay_interval_seconds: float = Field(
        default=0.2, description="Pause between outbox rounds when nothing is waiting"
    )
    kafka_timeout_seconds: float = Field(
        default=30.0,
        description="How long the relay waits for Kafka's acks before it starts a fresh producer",
    )
    database_pool_size: int = 10
    log_level: str = "INFO"
