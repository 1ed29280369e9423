"""Session fixtures of the system tests: the population (generated once), a pool of fresh
brokers, and the undisturbed reference run every scenario is compared with."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.system.pipeline import BrokerPool, Outcome, Pipeline
from tests.system.population import Population, build, generate_demo
from tests.system.scenarios import check_reference, run_in_usual_order


@pytest.fixture(scope="session")
def population(tmp_path_factory: pytest.TempPathFactory) -> Population:
    return build(generate_demo(tmp_path_factory.mktemp("demo")))


@pytest.fixture(scope="session")
def broker_pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerPool]:
    pool = BrokerPool(tmp_path_factory.mktemp("brokers"))
    yield pool
    pool.close()


@pytest.fixture(scope="session")
def reference(
    population: Population,
    broker_pool: BrokerPool,
    database_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Outcome:
    """The undisturbed run: the usual order, one replica of everything, nothing stopped."""
    root = tmp_path_factory.mktemp("reference")
    with Pipeline.open("reference", root, broker_pool, database_url) as pipeline:
        outcome = run_in_usual_order(pipeline, population)
        check_reference(pipeline, population, outcome)
    return outcome
