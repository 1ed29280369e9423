"""Which TCP port each server of the stack listens on.

The choice is pure (`choose_port`, given a test of whether a port is free); the socket probes
that answer that test are the two small functions at the end.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from deploy.local.errors import StackError

HOST = "127.0.0.1"


class PortError(StackError):
    """A configured port cannot be used."""


@dataclass(frozen=True, slots=True)
class PortRequest:
    """What is known about one server's port before choosing it."""

    what: str  # e.g. "kafka", for messages
    env_var: str
    default: int
    remembered: int | None  # from .local/stack.json
    running: bool  # our own server is already up on `remembered`


@dataclass(frozen=True, slots=True)
class PortChoice:
    port: int
    note: str | None = None  # said to the user when the port is not the expected one


def configured_port(request: PortRequest, env: Mapping[str, str]) -> int | None:
    raw = env.get(request.env_var, "").strip()
    if not raw:
        return None
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise PortError(f"{request.env_var}={raw!r} is not a TCP port number")
    return int(raw)


def choose_port(
    request: PortRequest,
    env: Mapping[str, str],
    *,
    is_free: Callable[[int], bool],
    any_free: Callable[[], int],
) -> PortChoice:
    """A running server keeps its port; otherwise the configured, remembered or default port
    if it is free, else any free port (a port explicitly configured must be free)."""
    configured = configured_port(request, env)
    if request.running:
        if request.remembered is None:
            raise PortError(f"{request.what} is running but its port is not recorded")
        if configured is not None and configured != request.remembered:
            raise PortError(
                f"{request.what} is already running on port {request.remembered}; "
                f"run `python -m deploy.local down` before switching to {request.env_var}="
                f"{configured}"
            )
        return PortChoice(request.remembered)
    if configured is not None:
        if not is_free(configured):
            raise PortError(
                f"{request.env_var}={configured} is in use by another program; "
                "pick another port or unset it"
            )
        return PortChoice(configured)
    wanted = request.remembered if request.remembered is not None else request.default
    if is_free(wanted):
        return PortChoice(wanted)
    port = any_free()
    return PortChoice(port, f"port {wanted} is taken by another program, using {port}")


def port_is_free(port: int) -> bool:
    """True when a server could listen on HOST:port now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As the servers do: a connection lingering in TIME_WAIT doesn't make the port busy.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
    return True


def any_free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
    return port


def port_is_open(port: int) -> bool:
    """True when something accepts connections on HOST:port."""
    try:
        with socket.create_connection((HOST, port), timeout=1):
            return True
    except OSError:
        return False
