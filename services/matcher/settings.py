"""Configuration of the matcher, from environment variables (and .local/stack.env)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.contracts.settings import PlatformSettings


class MatcherSettings(PlatformSettings):
    """KAFKA_BOOTSTRAP_SERVERS as everywhere; the rest is prefixed MATCHER_."""

    model_config = SettingsConfigDict(env_prefix="MATCHER_")

    store: str = Field(
        default="rocksdb://", description="Faust table store: rocksdb:// (rocksdict) or memory://"
    )
    data_dir: str = Field(default=".local/matcher", description="Where rocksdb keeps the tables")
    replication_factor: int = Field(default=1, description="Of the changelog topics Faust creates")
    session_timeout_seconds: float = Field(
        default=10.0,
        description="A worker silent this long leaves the group; its partitions move on",
    )
    producer_linger_ms: int = Field(
        default=20, description="How long sends wait to fill a produce request"
    )
    batch_size: int = Field(
        default=1000, description="Most input events an agent takes and applies at once"
    )
    batch_seconds: float = Field(default=0.2, description="How long an agent waits to fill a batch")
    stall_seconds: float = Field(
        default=120.0,
        ge=0,
        description="An agent with records waiting that finishes no batch for this long makes "
        "the worker exit (code 75) for its supervisor to restart it; 0 turns this off",
    )
    log_level: str = "INFO"
