"""When the matcher's stall watch says an agent has stopped: records waiting on its inputs, and
no batch finished for the limit, outside a rebalance."""

from __future__ import annotations

from services.matcher.liveness import Stall, StallWatch

AGENTS = ["households", "persons"]


def test_an_agent_with_records_waiting_and_no_batch_for_the_limit_is_stalled() -> None:
    watch = StallWatch(60, AGENTS, now=0)
    watch.batch_done("persons", now=50)
    assert watch.check({"households": 300, "persons": 2}, rebalancing=False, now=59) is None
    stall = watch.check({"households": 300, "persons": 2}, rebalancing=False, now=60)
    assert stall == Stall("households", 300, 60)


def test_a_batch_finished_within_the_limit_keeps_an_agent_well() -> None:
    watch = StallWatch(60, AGENTS, now=0)
    for now in range(10, 200, 10):
        watch.batch_done("households", now)
        watch.batch_done("persons", now)
        assert watch.check({"households": 300, "persons": 5}, rebalancing=False, now=now) is None


def test_an_agent_with_nothing_waiting_is_never_stalled() -> None:
    watch = StallWatch(60, AGENTS, now=0)
    assert watch.check({"households": 0, "persons": 0}, rebalancing=False, now=600) is None
    # Records that arrive give the agent the whole limit from the last check without them.
    assert watch.check({"households": 1, "persons": 0}, rebalancing=False, now=601) is None
    assert watch.check({"households": 1, "persons": 0}, rebalancing=False, now=659) is None
    stall = watch.check({"households": 1, "persons": 0}, rebalancing=False, now=660)
    assert stall == Stall("households", 1, 60)


def test_a_rebalance_restarts_the_clock() -> None:
    # A rebalance pauses every agent on purpose, and recovery can take long.
    watch = StallWatch(60, AGENTS, now=0)
    assert watch.check({"households": 9, "persons": 9}, rebalancing=True, now=100) is None
    assert watch.check({"households": 9, "persons": 9}, rebalancing=False, now=159) is None
    assert watch.check({"households": 9, "persons": 9}, rebalancing=False, now=160) is not None


def test_a_limit_of_zero_turns_the_watch_off() -> None:
    watch = StallWatch(0, AGENTS, now=0)
    assert watch.check({"households": 9, "persons": 9}, rebalancing=False, now=10**6) is None
