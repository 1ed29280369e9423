"""What services and tests read to reach the stack: .local/stack.env and .local/credentials.json.

Rendering and merging are pure; `write_connection_files` writes both with mode 0600.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deploy.local.ports import HOST
from deploy.local.private_files import write_private

DATABASE = "tpmap"
DATABASE_ROLE = "tpmap"


@dataclass(frozen=True, slots=True)
class Endpoints:
    """How to reach the stack's Kafka and PostgreSQL."""

    kafka_port: int
    postgres_port: int
    postgres_password: str

    @property
    def kafka_bootstrap(self) -> str:
        return f"{HOST}:{self.kafka_port}"

    @property
    def database_url(self) -> str:
        return (
            f"postgresql://{DATABASE_ROLE}:{self.postgres_password}"
            f"@{HOST}:{self.postgres_port}/{DATABASE}"
        )

    def environment(self) -> dict[str, str]:
        """The variables every service and test reads."""
        return {
            "KAFKA_BOOTSTRAP_SERVERS": self.kafka_bootstrap,
            "DATABASE_URL": self.database_url,
        }


def render_env_file(endpoints: Endpoints) -> str:
    lines = ["# Written by `python -m deploy.local up`; rewritten on every up."]
    lines += [f"{name}={value}" for name, value in endpoints.environment().items()]
    return "\n".join(lines) + "\n"


def merge_credentials(existing: dict[str, Any], endpoints: Endpoints) -> dict[str, Any]:
    """`existing` with its postgres and kafka sections replaced; other sections (written by
    later tooling, e.g. ingest or logbook) are kept as they are."""
    return existing | {
        "postgres": {
            "url": endpoints.database_url,
            "host": HOST,
            "port": endpoints.postgres_port,
            "user": DATABASE_ROLE,
            "password": endpoints.postgres_password,
            "database": DATABASE,
        },
        "kafka": {"bootstrap_servers": endpoints.kafka_bootstrap},
    }


def read_credentials(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path} does not hold a JSON object; fix or remove it")
    return data


def write_connection_files(env_file: Path, credentials_file: Path, endpoints: Endpoints) -> None:
    write_private(env_file, render_env_file(endpoints))
    merged = merge_credentials(read_credentials(credentials_file), endpoints)
    write_private(credentials_file, json.dumps(merged, indent=2, ensure_ascii=False) + "\n")
