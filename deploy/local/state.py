"""The stack's memory between runs (.local/stack.json): the ports it chose and the database
password, so a later `up`, `status` or test session finds the same stack."""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from deploy.local.private_files import write_private


@dataclass(frozen=True, slots=True)
class StackState:
    kafka_port: int | None = None
    kafka_controller_port: int | None = None
    postgres_port: int | None = None
    postgres_password: str = ""

    def with_password(self) -> StackState:
        """This state, with a database password generated if there is none yet."""
        if self.postgres_password:
            return self
        # URL-safe characters: the password goes into DATABASE_URL unescaped.
        return replace(self, postgres_password=secrets.token_urlsafe(24))


def load_state(path: Path) -> StackState:
    if not path.exists():
        return StackState()
    data = json.loads(path.read_text(encoding="utf-8"))
    known = StackState.__dataclass_fields__
    return StackState(**{key: value for key, value in data.items() if key in known})


def save_state(path: Path, state: StackState) -> None:
    write_private(path, json.dumps(asdict(state), indent=2) + "\n")
