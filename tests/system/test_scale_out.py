"""Scale-out: two replicas of every service at once give the undisturbed run's figures, with the
consumer groups' partitions spread over the replicas."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.system.pipeline import (
    LOGBOOK_GROUP,
    MATCHER_GROUP,
    MATCHER_INPUTS,
    REPORTING_GROUP,
    REPORTING_INPUTS,
    STATUS_TOPICS,
    BrokerPool,
    Outcome,
    Pipeline,
)
from tests.system.population import Population
from tests.system.scenarios import check_complete, check_same_as_reference, run_in_usual_order

pytestmark = pytest.mark.stack

GROUP_INPUTS = {
    MATCHER_GROUP: MATCHER_INPUTS,
    LOGBOOK_GROUP: STATUS_TOPICS,
    REPORTING_GROUP: REPORTING_INPUTS,
}


def test_two_replicas_of_every_service_give_the_same_figures(
    population: Population,
    reference: Outcome,
    broker_pool: BrokerPool,
    database_url: str,
    tmp_path: Path,
) -> None:
    """Two ingest (requests alternate), two matcher workers, two logbook APIs (the field
    team's writes alternate) with two logbook workers, and two reporting workers."""
    with Pipeline.open("scale-out", tmp_path, broker_pool, database_url, replicas=2) as pipeline:
        outcome = run_in_usual_order(pipeline, population)
        check_complete(pipeline, population, outcome)
        groups = {
            group: pipeline.watch.members(group)
            for group in (MATCHER_GROUP, LOGBOOK_GROUP, REPORTING_GROUP)
        }
        restarts = {name: s.starts for name, s in pipeline.services.items() if s.starts != 1}
    assert not restarts, f"services started more than once: {restarts}"
    for group, members in groups.items():
        assert members is not None, f"could not describe the group {group}"
        # Only the inputs: Faust also gives each matcher worker standby changelog partitions.
        inputs = {spec.name: spec.partitions for spec in GROUP_INPUTS[group]}
        shares = [sorted(tp for tp in partitions if tp[0] in inputs) for _, partitions in members]
        counts = [
            f"{client}: {len(share)} input partitions"
            for (client, _), share in zip(members, shares, strict=True)
        ]
        assert len(members) == 2, f"{group} has {len(members)} members: {counts}"
        assert all(shares), f"a replica of {group} got no input partition: {counts}"
        assigned = [tp for share in shares for tp in share]
        assert len(assigned) == len(set(assigned)), f"{group}: an input partition assigned twice"
        assert len(assigned) == sum(inputs.values()), f"{group}: inputs left out: {counts}"
    check_same_as_reference(outcome, reference, "two replicas of every service")
