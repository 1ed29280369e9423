"""Background processes of the stack: start with a pid file, recognise, stop. Linux only (/proc).

A pid file holds the pid and the process's start time (field 22 of /proc/PID/stat), so a pid
the kernel has since given to an unrelated process is never taken for ours nor signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path


def parse_proc_stat(text: str) -> tuple[str, int]:
    """(state letter, start time in clock ticks) from the text of /proc/PID/stat."""
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    fields = text[text.rindex(")") + 2 :].split()
    return fields[0], int(fields[19])


def _proc_stat(pid: int) -> tuple[str, int] | None:
    try:
        return parse_proc_stat(Path(f"/proc/{pid}/stat").read_text(encoding="utf-8"))
    except (FileNotFoundError, ProcessLookupError):
        return None


def _reap(pid: int) -> None:
    """Collect the exit status if `pid` is our child, so it doesn't linger as a zombie."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _is_same_process_alive(pid: int, started: int) -> bool:
    _reap(pid)
    stat = _proc_stat(pid)
    # A zombie has exited; it only waits for its parent (or init) to collect it.
    return stat is not None and stat[1] == started and stat[0] != "Z"


def _recorded(pid_file: Path) -> tuple[int, int] | None:
    """(pid, start time) from a pid file, if there is a readable one."""
    try:
        pid_text, started_text = pid_file.read_text(encoding="utf-8").split()
        return int(pid_text), int(started_text)
    except (FileNotFoundError, ValueError):
        return None


def running_pid(pid_file: Path) -> int | None:
    """The pid recorded in `pid_file` if that very process is still running."""
    recorded = _recorded(pid_file)
    if recorded is None or not _is_same_process_alive(*recorded):
        return None
    return recorded[0]


def spawn(
    argv: Sequence[str], *, pid_file: Path, log_file: Path, cwd: Path, env: Mapping[str, str]
) -> int:
    """Start `argv` in the background in a session of its own, output appended to `log_file`."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        # Its own session: a Ctrl-C in the terminal that ran `up` doesn't reach the server,
        # and `stop` can signal the whole process group, children included.
        child = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    stat = _proc_stat(child.pid)
    started = stat[1] if stat else 0
    pid_file.write_text(f"{child.pid} {started}\n", encoding="utf-8")
    return child.pid


def _signal_group(pid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signum)


def stop(pid_file: Path, *, grace_seconds: float) -> bool:
    """SIGTERM the process group of `pid_file`, SIGKILL it after the grace period.

    True if a running process was stopped; the pid file is removed either way.
    """
    recorded = _recorded(pid_file)
    running = recorded is not None and _is_same_process_alive(*recorded)
    if recorded is not None and running:
        pid, started = recorded
        _signal_group(pid, signal.SIGTERM)
        if not wait_until(lambda: not _is_same_process_alive(pid, started), grace_seconds):
            _signal_group(pid, signal.SIGKILL)
            wait_until(lambda: not _is_same_process_alive(pid, started), 10)
        # Children that outlived the leader would keep the group alive.
        _signal_group(pid, signal.SIGKILL)
    pid_file.unlink(missing_ok=True)
    return running


def wait_until(
    condition: Callable[[], bool], timeout_seconds: float, interval: float = 0.2
) -> bool:
    """Poll `condition` until it holds (True) or the timeout passes (False)."""
    deadline = time.monotonic() + timeout_seconds
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def tail(path: Path, lines: int = 20) -> str:
    """The last lines of a log, for error messages."""
    if not path.exists():
        return f"    (no {path})"
    text = path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
    return "\n".join(f"    {line}" for line in text)
