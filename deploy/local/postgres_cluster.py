"""The local PostgreSQL cluster's processes: binaries, OS user, initdb, start, database, stop.

initdb, pg_ctl and the server refuse to run as root. When `up` runs as root they run as an
unprivileged OS user (Debian's `postgres` if it exists, else a system user made for it) through
`runuser`, and the data folder belongs to that user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deploy.local import processes
from deploy.local.connection_files import DATABASE, DATABASE_ROLE
from deploy.local.errors import StackError
from deploy.local.layout import StackLayout
from deploy.local.ports import HOST
from deploy.local.postgres_config import (
    INCLUDE_LINE,
    SETTINGS_FILE,
    can_traverse,
    fallback_data_folder,
    newest_first,
    render_hba,
    render_settings,
)

NAME = "postgres"
# Preferred when `up` runs as root; created (as a system user) when missing.
SERVER_USERS = ("postgres", "tpmap-postgres")
START_TIMEOUT_SECONDS = 60
STOP_TIMEOUT_SECONDS = 60


@dataclass(frozen=True, slots=True)
class ServerUser:
    """The OS user the server runs as; `None` in `Cluster.user` means the current user."""

    name: str
    uid: int
    gid: int


@dataclass(frozen=True, slots=True)
class Cluster:
    bindir: Path
    data: Path
    user: ServerUser | None

    def tool(self, name: str) -> str:
        return str(self.bindir / name)


def find_bindir(env: Mapping[str, str]) -> Path | None:
    """The server binaries: pg_config's bindir, else Debian's newest, else those on PATH."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config", path=env.get("PATH"))
    if pg_config:
        result = subprocess.run(
            [pg_config, "--bindir"], capture_output=True, text=True, check=False
        )
        if result.returncode == 0:
            candidates.append(Path(result.stdout.strip()))
    candidates += newest_first(Path("/usr/lib/postgresql").glob("*/bin"))
    initdb = shutil.which("initdb", path=env.get("PATH"))
    if initdb:
        # Resolved: Debian links /usr/local/bin/initdb into /usr/lib/postgresql/<major>/bin.
        candidates.append(Path(initdb).resolve().parent)
    return next(
        (c for c in candidates if (c / "initdb").exists() and (c / "pg_ctl").exists()), None
    )


def require_bindir(env: Mapping[str, str]) -> Path:
    bindir = find_bindir(env)
    if bindir is None:
        raise StackError(
            f"{NAME}: no PostgreSQL server binaries (initdb, pg_ctl) found via pg_config, "
            "/usr/lib/postgresql/*/bin or PATH (Debian: apt-get install postgresql)"
        )
    return bindir


def _lookup_user(name: str) -> ServerUser | None:
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        return None
    return ServerUser(entry.pw_name, entry.pw_uid, entry.pw_gid)


def server_user(*, create: bool) -> ServerUser | None:
    """Who runs the server: the current user unless that is root (then see SERVER_USERS)."""
    if os.geteuid() != 0:
        return None
    for name in SERVER_USERS:
        user = _lookup_user(name)
        if user is not None:
            return user
    if not create:
        return None
    name = SERVER_USERS[-1]
    print(f"{NAME}: creating system user {name} to run the server (it refuses to run as root)")
    subprocess.run(
        [
            "useradd",
            "--system",
            "--user-group",
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            "/usr/sbin/nologin",
            name,
        ],
        check=True,
    )
    created = _lookup_user(name)
    if created is None:
        raise StackError(f"{NAME}: useradd {name} did not create the user")
    return created


def _first_blocked_folder(path: Path, user: ServerUser) -> Path | None:
    """The first folder above `path` that `user` may not enter, if any."""
    gids = set(os.getgrouplist(user.name, user.gid))
    for folder in reversed(path.parents):
        if not folder.exists():
            # `up` creates it (mode 0755): enterable.
            break
        info = folder.stat()
        if not can_traverse(info.st_mode, info.st_uid, info.st_gid, user.uid, gids):
            return folder
    return None


def data_folder(layout: StackLayout, user: ServerUser | None) -> Path:
    """.local/postgres, unless the server's user cannot reach it: then a folder in /var/tmp.

    Deterministic for one home, so `down` and `status` find what `up` made.
    """
    preferred = layout.postgres_data
    fallback = fallback_data_folder(preferred)
    if user is None or (preferred / "PG_VERSION").exists():
        return preferred
    if (fallback / "PG_VERSION").exists():
        return fallback
    blocked = _first_blocked_folder(preferred, user)
    if blocked is None:
        return preferred
    print(
        f"{NAME}: user {user.name} cannot enter {blocked} (mode {blocked.stat().st_mode & 0o777:o}),"
        f" so the data folder is {fallback} instead of {preferred}"
    )
    return fallback


def _run(cluster: Cluster, argv: Sequence[str], **options: Any) -> subprocess.CompletedProcess[str]:
    """Run a server tool as the server's user, from a folder that user can read."""
    prefix = ["runuser", "-u", cluster.user.name, "--"] if cluster.user else []
    return subprocess.run([*prefix, *argv], cwd="/", text=True, check=False, **options)


def _own(cluster: Cluster, path: Path) -> None:
    if cluster.user is not None:
        os.chown(path, cluster.user.uid, cluster.user.gid)


def running_pid(data: Path) -> int | None:
    """The postmaster's pid if one is running on `data` (read from postmaster.pid)."""
    try:
        first_line = (data / "postmaster.pid").read_text(encoding="utf-8").split("\n", 1)[0]
        pid = int(first_line)
        stat_text = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8")
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return None
    state, _ = processes.parse_proc_stat(stat_text)
    # A stale postmaster.pid (after a crash or reboot) may name a pid now used by another program.
    if state == "Z" or not any(arg.endswith(b"postgres") for arg in command):
        return None
    return pid


def initialise(cluster: Cluster, password: str) -> None:
    """initdb a new cluster whose superuser is the tpmap role, with `password`."""
    cluster.data.mkdir(parents=True, exist_ok=True)
    cluster.data.chmod(0o700)
    _own(cluster, cluster.data)
    print(f"{NAME}: initialising a cluster in {cluster.data}")
    # initdb reads the password from a file; this one is private to the server's user.
    with tempfile.TemporaryDirectory(prefix="tpmap-pg-") as scratch:
        password_file = Path(scratch) / "password"
        password_file.write_text(password + "\n", encoding="utf-8")
        password_file.chmod(0o600)
        _own(cluster, Path(scratch))
        _own(cluster, password_file)
        result = _run(
            cluster,
            [
                cluster.tool("initdb"),
                "--pgdata",
                str(cluster.data),
                "--username",
                DATABASE_ROLE,
                f"--pwfile={password_file}",
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--no-locale",
            ],
            capture_output=True,
        )
    if result.returncode != 0:
        raise StackError(f"{NAME}: initdb failed:\n{result.stdout}{result.stderr}")
    conf = cluster.data / "postgresql.conf"
    with conf.open("a", encoding="utf-8") as out:
        out.write(f"\n{INCLUDE_LINE}\n")


def configure(cluster: Cluster, port: int) -> None:
    """(Re)write our settings and pg_hba.conf; the server reads them when it starts."""
    for name, text in (
        (SETTINGS_FILE, render_settings(port, cluster.data)),
        ("pg_hba.conf", render_hba()),
    ):
        path = cluster.data / name
        path.write_text(text, encoding="utf-8")
        path.chmod(0o600)
        _own(cluster, path)


def start(cluster: Cluster, log_file: Path) -> None:
    log_file.parent.mkdir(parents=True, exist_ok=True)
    # Without -l, pg_ctl hands its stdout to the server: a log file opened here is writable by
    # the server whatever its OS user may do in .local/logs.
    with log_file.open("ab") as log:
        result = _run(
            cluster,
            [
                cluster.tool("pg_ctl"),
                "start",
                "--pgdata",
                str(cluster.data),
                "--wait",
                f"--timeout={START_TIMEOUT_SECONDS}",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    if result.returncode != 0:
        raise StackError(
            f"{NAME}: the server did not start; last lines of {log_file}:\n"
            f"{processes.tail(log_file)}"
        )


def _client_env(password: str) -> dict[str, str]:
    return os.environ | {"PGPASSWORD": password, "PGCONNECT_TIMEOUT": "5"}


def wait_ready(cluster: Cluster, port: int) -> None:
    """Until the server accepts TCP connections on loopback (pg_ctl --wait uses the socket)."""

    def accepting() -> bool:
        probe = subprocess.run(
            [cluster.tool("pg_isready"), "--host", HOST, "--port", str(port), "--quiet"],
            check=False,
        )
        return probe.returncode == 0

    if not processes.wait_until(accepting, START_TIMEOUT_SECONDS, interval=0.5):
        raise StackError(f"{NAME}: no connections accepted on {HOST}:{port}")


def ensure_database(cluster: Cluster, port: int, password: str) -> None:
    """Create the tpmap database unless it exists; also proves the password works."""
    psql = [
        cluster.tool("psql"),
        "--no-psqlrc",
        "--quiet",
        "--tuples-only",
        "--no-align",
        "--host",
        HOST,
        "--port",
        str(port),
        "--username",
        DATABASE_ROLE,
        "--dbname",
        "postgres",
        "--command",
    ]
    exists = subprocess.run(
        [*psql, f"SELECT 1 FROM pg_database WHERE datname = '{DATABASE}'"],  # noqa: S608 (a constant)
        capture_output=True,
        text=True,
        env=_client_env(password),
        check=False,
    )
    if exists.returncode != 0:
        raise StackError(
            f"{NAME}: cannot log in as {DATABASE_ROLE}: {exists.stderr.strip()}\n"
            "The password in .local/stack.json no longer matches the cluster's; "
            f"run `down` and remove {cluster.data} to start afresh."
        )
    if exists.stdout.strip() == "1":
        return
    created = subprocess.run(
        [*psql, f"CREATE DATABASE {DATABASE}"],
        capture_output=True,
        text=True,
        env=_client_env(password),
        check=False,
    )
    if created.returncode != 0:
        raise StackError(f"{NAME}: CREATE DATABASE {DATABASE} failed: {created.stderr.strip()}")


def stop(cluster: Cluster) -> bool:
    """Stop the server (fast: disconnect clients, then immediate if that hangs)."""
    if running_pid(cluster.data) is None:
        return False
    for mode in ("fast", "immediate"):
        _run(
            cluster,
            [
                cluster.tool("pg_ctl"),
                "stop",
                "--pgdata",
                str(cluster.data),
                "--mode",
                mode,
                "--wait",
                f"--timeout={STOP_TIMEOUT_SECONDS}",
            ],
            capture_output=True,
        )
        if running_pid(cluster.data) is None:
            return True
    raise StackError(f"{NAME}: the server on {cluster.data} would not stop")
