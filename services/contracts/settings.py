"""The connection settings every service shares, read by the same names in every deployment
(environment variables, or .local/stack.env written by make up)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class PlatformSettings(BaseSettings):
    """Base of each service's settings; a service adds its own, prefixed with its name."""

    model_config = SettingsConfigDict(env_file=".local/stack.env", extra="ignore")

    kafka_bootstrap_servers: str = Field(
        default="127.0.0.1:19092", validation_alias="KAFKA_BOOTSTRAP_SERVERS"
    )
