"""The platform's services as background processes: `python -m services.<name>` for each that
exists, with the stack's connection variables, logging to .local/logs/<name>.log."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping

from deploy.local import processes
from deploy.local.errors import StackError
from deploy.local.layout import StackLayout

SERVICE_NAMES = ("ingest", "matcher", "logbook", "reporting")
# Services finish in-flight work and commit offsets on SIGTERM; give them time to.
STOP_GRACE_SECONDS = 20
# How long `up` watches freshly started services for an immediate crash.
EARLY_EXIT_SECONDS = 3


def existing_services(layout: StackLayout) -> list[str]:
    """The services whose package can be run (has a __main__.py) in this checkout."""
    return [
        name for name in SERVICE_NAMES if (layout.repo / "services" / name / "__main__.py").exists()
    ]


def running_pid(layout: StackLayout, name: str) -> int | None:
    return processes.running_pid(layout.pid_file(name))


def set_up(
    layout: StackLayout, name: str, env: Mapping[str, str], stack_env: Mapping[str, str]
) -> None:
    """Runs the service's own local setup (`python -m services.<name> setup-local CREDENTIALS`):
    every service implements it, to apply its migrations and write its development credentials
    into its section of .local/credentials.json. Idempotent."""
    result = subprocess.run(
        [sys.executable, "-m", f"services.{name}", "setup-local", str(layout.credentials_file)],
        cwd=layout.repo,
        env={**env, **stack_env},
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        msg = f"{name}: setup-local failed ({result.returncode}):\n{result.stderr[-2000:]}"
        raise StackError(msg)
    print(result.stdout.strip())


def start(
    layout: StackLayout, name: str, env: Mapping[str, str], stack_env: Mapping[str, str]
) -> int:
    # The matcher's tables under this stack's home: two homes must not share one rocksdb.
    home_defaults = {"MATCHER_DATA_DIR": str(layout.local / "matcher")}
    return processes.spawn(
        [sys.executable, "-m", f"services.{name}"],
        pid_file=layout.pid_file(name),
        log_file=layout.log_file(name),
        cwd=layout.repo,
        env={**home_defaults, **env, **stack_env},
    )


def stop(layout: StackLayout, name: str) -> bool:
    return processes.stop(layout.pid_file(name), grace_seconds=STOP_GRACE_SECONDS)
