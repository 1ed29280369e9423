"""Pure parts of the local PostgreSQL cluster: its settings, its pg_hba.conf, where it lives."""

from __future__ import annotations

import hashlib
import re
import stat
from collections.abc import Collection, Iterable
from pathlib import Path

from deploy.local.ports import HOST

SETTINGS_FILE = "tpmap.conf"
# Appended once to the postgresql.conf initdb writes; our settings then override its defaults.
INCLUDE_LINE = f"include '{SETTINGS_FILE}'"
# For a data folder that the server's OS user cannot reach inside the project (see README):
# kept across reboots, unlike /tmp, and enterable by every user.
FALLBACK_PARENT = Path("/var/tmp")  # noqa: S108


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def render_settings(port: int, socket_dir: Path) -> str:
    settings = {
        # TCP on loopback only: nothing on the network can reach a dev database.
        "listen_addresses": _quote(HOST),
        "port": str(port),
        # The socket sits in the data folder: /var/run/postgresql may not exist or be writable,
        # and two stacks on one machine must not share a socket path.
        "unix_socket_directories": _quote(str(socket_dir)),
        "password_encryption": _quote("scram-sha-256"),
        "timezone": _quote("UTC"),
        "log_timezone": _quote("UTC"),
        # The server's stderr goes through pg_ctl to .local/logs/postgres.log.
        "logging_collector": "off",
        "log_line_prefix": _quote("%m [%p] %q%u@%d "),
    }
    lines = ["# Written by `python -m deploy.local up` on every start; edit postgres_config.py."]
    lines += [f"{key} = {value}" for key, value in settings.items()]
    return "\n".join(lines) + "\n"


def render_hba() -> str:
    """Password (SCRAM) authentication for everyone, on the socket and on loopback TCP only."""
    return (
        "# Written by `python -m deploy.local up`; edit postgres_config.py.\n"
        "# TYPE  DATABASE  USER  ADDRESS       METHOD\n"
        "local   all       all                 scram-sha-256\n"
        f"host    all       all   {HOST}/32  scram-sha-256\n"
    )


def newest_first(bindirs: Iterable[Path]) -> list[Path]:
    """Debian's /usr/lib/postgresql/<major>/bin folders, highest major version first."""

    def major(bindir: Path) -> int:
        match = re.fullmatch(r"\d+", bindir.parent.name)
        return int(match.group()) if match else -1

    return sorted(bindirs, key=major, reverse=True)


def fallback_data_folder(preferred: Path) -> Path:
    """A data folder outside the project, unique to `preferred` so stacks never share one."""
    digest = hashlib.sha256(str(preferred).encode()).hexdigest()[:12]
    return FALLBACK_PARENT / f"tpmap-postgres-{digest}"


def can_traverse(mode: int, owner: int, group: int, uid: int, gids: Collection[int]) -> bool:
    """Whether user `uid` (in groups `gids`) may enter a folder of this mode and ownership."""
    if uid == 0:
        return True
    if owner == uid:
        return bool(mode & stat.S_IXUSR)
    if group in gids:
        return bool(mode & stat.S_IXGRP)
    return bool(mode & stat.S_IXOTH)
