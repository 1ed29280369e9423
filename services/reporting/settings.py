"""Configuration of the reporting service, from environment variables (and .local/stack.env)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.contracts.settings import PlatformSettings

# shared/ lies next to the repository (its data is read in place, not copied in).
_SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


class ReportingSettings(PlatformSettings):
    """KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL as everywhere; the rest is prefixed REPORTING_."""

    model_config = SettingsConfigDict(env_prefix="REPORTING_")

    database_url: str = Field(
        default="postgresql://tpmap@127.0.0.1:15432/tpmap", validation_alias="DATABASE_URL"
    )
    host: str = "127.0.0.1"
    port: int = 8003
    consumer: bool = Field(
        default=True, description="Apply the matcher's status topics in this process"
    )
    consumer_group: str = "tpmap-reporting-status"
    consumer_batch: int = Field(
        default=4000,
        description="Most messages taken from Kafka at once; each partition's share is applied in one "
        "transaction (500 made transactions of a few dozen statuses under load)",
    )
    publisher: bool = Field(
        default=True,
        description="Publish changed areas to reporting.area-aggregates.v1 (one leader at a time)",
    )
    publish_interval_seconds: float = Field(
        default=0.25,
        description="Pause between publishing rounds: an area is sent at most once a round",
    )
    publish_batch: int = Field(default=500, description="Areas published per round at most")
    database_pool_size: int = 10
    tpmap_2561_dir: Path = Field(
        default=_SHARED_DATA / "tpmap-2561",
        description="TPMAP's published figures of data year 2561, for the dashboard's comparison",
    )
    log_level: str = "INFO"
