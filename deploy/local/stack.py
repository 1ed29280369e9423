"""The whole local stack: `up`, `down`, `status` and `topics` over its components."""

from __future__ import annotations

import fcntl
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Literal

from deploy.local import kafka_broker, postgres_cluster, processes, services
from deploy.local.connection_files import Endpoints, write_connection_files
from deploy.local.errors import StackError
from deploy.local.kafka_config import BrokerConfig
from deploy.local.layout import StackLayout
from deploy.local.ports import (
    HOST,
    PortRequest,
    any_free_port,
    choose_port,
    port_is_free,
)
from deploy.local.postgres_cluster import Cluster
from deploy.local.state import StackState, load_state, save_state
from deploy.local.topics import ensure_topics, registry_topics_present

Component = Literal["services", "kafka", "postgres"]
INFRASTRUCTURE: frozenset[Component] = frozenset({"kafka", "postgres"})
EVERYTHING: frozenset[Component] = INFRASTRUCTURE | {"services"}

DEFAULT_KAFKA_PORT = 19092
DEFAULT_KAFKA_CONTROLLER_PORT = 19093
DEFAULT_POSTGRES_PORT = 15432


@contextmanager
def _exclusive(layout: StackLayout) -> Iterator[None]:
    """One `up` or `down` at a time per home (say `make up` while a test session starts the
    stack): two at once could both find Kafka stopped and start two brokers."""
    layout.local.mkdir(parents=True, exist_ok=True)
    with (layout.local / "stack.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _cluster(layout: StackLayout, env: Mapping[str, str], *, create_user: bool) -> Cluster:
    user = postgres_cluster.server_user(create=create_user)
    return Cluster(
        bindir=postgres_cluster.require_bindir(env),
        data=postgres_cluster.data_folder(layout, user),
        user=user,
    )


@dataclass(frozen=True, slots=True)
class Ports:
    kafka: int
    kafka_controller: int
    postgres: int

    def remember(self, state: StackState) -> StackState:
        return replace(
            state,
            kafka_port=self.kafka,
            kafka_controller_port=self.kafka_controller,
            postgres_port=self.postgres,
        )


def _choose_ports(
    state: StackState,
    env: Mapping[str, str],
    *,
    kafka_running: bool,
    postgres_running: bool,
) -> Ports:
    """Ports for the three listeners, told to the user when they differ from what was asked."""
    chosen: set[int] = set()

    def is_free(port: int) -> bool:
        # A port chosen a moment ago for another listener isn't bound yet, but is not free.
        return port not in chosen and port_is_free(port)

    def any_free() -> int:
        while (port := any_free_port()) in chosen:
            pass
        return port

    requests = (
        PortRequest(
            "kafka", "TPMAP_KAFKA_PORT", DEFAULT_KAFKA_PORT, state.kafka_port, kafka_running
        ),
        PortRequest(
            "kafka controller",
            "TPMAP_KAFKA_CONTROLLER_PORT",
            DEFAULT_KAFKA_CONTROLLER_PORT,
            state.kafka_controller_port,
            kafka_running,
        ),
        PortRequest(
            "postgres",
            "TPMAP_PG_PORT",
            DEFAULT_POSTGRES_PORT,
            state.postgres_port,
            postgres_running,
        ),
    )
    ports = []
    for request in requests:
        choice = choose_port(request, env, is_free=is_free, any_free=any_free)
        if choice.note:
            print(f"{request.what}: {choice.note}")
        chosen.add(choice.port)
        ports.append(choice.port)
    return Ports(*ports)


def up(layout: StackLayout, env: Mapping[str, str], *, with_services: bool) -> Endpoints:
    """Start whatever of the stack isn't running, wait until it answers, create the topics.

    Idempotent: a second `up` finds everything running and only re-checks it.
    """
    with _exclusive(layout):
        return _up(layout, env, with_services=with_services)


def _up(layout: StackLayout, env: Mapping[str, str], *, with_services: bool) -> Endpoints:
    for folder in (layout.local, layout.logs, layout.run):
        folder.mkdir(parents=True, exist_ok=True)
    cluster = _cluster(layout, env, create_user=True)
    kafka_pid = kafka_broker.running_pid(layout)
    postgres_pid = postgres_cluster.running_pid(cluster.data)
    # Checked before anything starts, so a missing tool leaves nothing half-started.
    launcher = (
        None
        if kafka_pid
        else kafka_broker.launcher(
            layout, kafka_broker.find_java(env), kafka_broker.ensure_jars(layout)
        )
    )
    state = load_state(layout.state_file).with_password()
    ports = _choose_ports(
        state,
        env,
        kafka_running=kafka_pid is not None,
        postgres_running=postgres_pid is not None,
    )
    # Saved before starting: a later `up`, `status` or test after a half-failed `up` still
    # finds the ports and, above all, the password the cluster was made with.
    save_state(layout.state_file, ports.remember(state))
    password = state.postgres_password
    endpoints = Endpoints(ports.kafka, ports.postgres, password)

    if launcher is None:
        print(f"kafka: already running (pid {kafka_pid})")
    else:
        broker = BrokerConfig(ports.kafka, ports.kafka_controller, layout.kafka_data)
        pid = kafka_broker.start(layout, launcher, broker, env)
        print(f"kafka: starting (pid {pid}, log {layout.log_file('kafka')})…")

    # PostgreSQL starts while the JVM warms up.
    if postgres_pid is not None:
        print(f"postgres: already running (pid {postgres_pid})")
    else:
        if not (cluster.data / "PG_VERSION").exists():
            postgres_cluster.initialise(cluster, password)
        postgres_cluster.configure(cluster, ports.postgres)
        postgres_cluster.start(cluster, layout.log_file("postgres"))
    postgres_cluster.wait_ready(cluster, ports.postgres)
    postgres_cluster.ensure_database(cluster, ports.postgres, password)
    print(f"postgres: up on {HOST}:{ports.postgres} (data in {cluster.data})")

    kafka_broker.wait_ready(layout, ports.kafka)
    print(f"kafka: up on {endpoints.kafka_bootstrap}")
    print(ensure_topics(endpoints.kafka_bootstrap))

    write_connection_files(layout.env_file, layout.credentials_file, endpoints)
    print(f"env: {layout.env_file} and {layout.credentials_file}")
    if with_services:
        _start_services(layout, env, endpoints)
    return endpoints


def _start_services(layout: StackLayout, env: Mapping[str, str], endpoints: Endpoints) -> None:
    names = services.existing_services(layout)
    if not names:
        print("services: none in this checkout yet")
    started = []
    for name in names:
        services.set_up(layout, name, env, endpoints.environment())
        pid = services.running_pid(layout, name)
        if pid is not None:
            print(f"{name}: already running (pid {pid})")
            continue
        pid = services.start(layout, name, env, endpoints.environment())
        started.append(name)
        print(f"{name}: started (pid {pid}, log {layout.log_file(name)})")
    # A service that cannot start (a port in use, a bad setting) exits within moments; say so
    # here rather than leave the user to find a dead process later.
    if started and processes.wait_until(
        lambda: any(services.running_pid(layout, name) is None for name in started),
        services.EARLY_EXIT_SECONDS,
    ):
        dead = [name for name in started if services.running_pid(layout, name) is None]
        raise StackError(
            "\n".join(
                f"{name}: exited right after starting; last lines of {layout.log_file(name)}:\n"
                f"{processes.tail(layout.log_file(name))}"
                for name in dead
            )
        )


def running_components(layout: StackLayout) -> set[Component]:
    """Which infrastructure components of this layout are running now."""
    running: set[Component] = set()
    if kafka_broker.running_pid(layout) is not None:
        running.add("kafka")
    user = postgres_cluster.server_user(create=False)
    if postgres_cluster.running_pid(postgres_cluster.data_folder(layout, user)) is not None:
        running.add("postgres")
    return running


def down(
    layout: StackLayout,
    env: Mapping[str, str],
    components: Collection[Component] = EVERYTHING,
) -> None:
    """Stop what this stack started (services first, PostgreSQL last); data stays."""
    with _exclusive(layout):
        stopped = _down(layout, env, components)
    for name in stopped:
        print(f"{name}: stopped")
    if not stopped:
        print("nothing was running")


def _down(
    layout: StackLayout, env: Mapping[str, str], components: Collection[Component]
) -> list[str]:
    stopped = []
    if "services" in components:
        stopped += [name for name in services.SERVICE_NAMES if services.stop(layout, name)]
    if "kafka" in components and kafka_broker.stop(layout):
        stopped.append("kafka")
    if "postgres" in components:
        user = postgres_cluster.server_user(create=False)
        data = postgres_cluster.data_folder(layout, user)
        if postgres_cluster.running_pid(data) is not None:
            cluster = Cluster(postgres_cluster.require_bindir(env), data, user)
            if postgres_cluster.stop(cluster):
                stopped.append("postgres")
    return stopped


def status(layout: StackLayout) -> None:
    state = load_state(layout.state_file)
    kafka_pid = kafka_broker.running_pid(layout)
    if kafka_pid is None:
        print("kafka: stopped")
    else:
        bootstrap = f"{HOST}:{state.kafka_port}"
        if kafka_broker.answers(bootstrap):
            print(f"kafka: running (pid {kafka_pid}) on {bootstrap}")
            print(f"topics: {registry_topics_present(bootstrap)} of the registry's present")
        else:
            print(f"kafka: running (pid {kafka_pid}) but not answering on {bootstrap}")
    user = postgres_cluster.server_user(create=False)
    data = postgres_cluster.data_folder(layout, user)
    postgres_pid = postgres_cluster.running_pid(data)
    if postgres_pid is None:
        print("postgres: stopped")
    else:
        print(
            f"postgres: running (pid {postgres_pid}) on {HOST}:{state.postgres_port}, data {data}"
        )
    for name in services.existing_services(layout):
        pid = services.running_pid(layout, name)
        print(f"{name}: " + (f"running (pid {pid})" if pid else "stopped"))
    if layout.env_file.exists():
        print(f"env: {layout.env_file}")


def topics(layout: StackLayout) -> None:
    state = load_state(layout.state_file)
    if kafka_broker.running_pid(layout) is None or state.kafka_port is None:
        raise StackError("kafka is not running: `python -m deploy.local up` first")
    print(ensure_topics(f"{HOST}:{state.kafka_port}"))
