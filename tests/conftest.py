"""Session fixtures for tests against the real Kafka broker and PostgreSQL.

`kafka_bootstrap` and `database_url` come from KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL when both
are set. Otherwise the first test that asks for either starts the local stack with the code of
`make up` (infrastructure only: no services), or reuses it if it is already up; at the end of the
session the fixture stops only what it started itself. Tests that ask for neither (the unit
tests) start nothing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest


@dataclass(frozen=True, slots=True)
class StackEndpoints:
    kafka_bootstrap: str
    database_url: str


@pytest.fixture(scope="session")
def stack_endpoints() -> Iterator[StackEndpoints]:
    given_kafka = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    given_database = os.environ.get("DATABASE_URL")
    if given_kafka and given_database:
        yield StackEndpoints(given_kafka, given_database)
        return
    # Imported here, not at the top: a run of unit tests alone loads neither the Kafka client
    # nor the deploy code.
    from deploy.local import stack  # noqa: PLC0415
    from deploy.local.layout import StackLayout  # noqa: PLC0415

    env = dict(os.environ)
    layout = StackLayout.from_env(env)
    already_running = stack.running_components(layout)
    try:
        endpoints = stack.up(layout, env, with_services=False)
        yield StackEndpoints(endpoints.kafka_bootstrap, endpoints.database_url)
    finally:
        # Also after a failed `up`: whatever it did start must not outlive the session.
        started = stack.INFRASTRUCTURE - already_running
        if started:
            stack.down(layout, env, started)


@pytest.fixture(scope="session")
def kafka_bootstrap(stack_endpoints: StackEndpoints) -> str:
    """host:port of the broker, for KafkaProducer, AIOKafkaConsumer, KafkaAdminClient..."""
    return stack_endpoints.kafka_bootstrap


@pytest.fixture(scope="session")
def database_url(stack_endpoints: StackEndpoints) -> str:
    """postgresql://tpmap:...@127.0.0.1:PORT/tpmap, for asyncpg.connect and pools."""
    return stack_endpoints.database_url
