"""The matcher's Faust consumer at the end of a rebalance, in the order Faust's recovery calls it
(`Recovery.on_recovery_completed`): resume the input partitions, seek them to their committed
offsets, resume flow control (which empties the streams' queues), resume the consumer's flow.
No broker is involved: these calls only change which partitions the fetcher may deliver."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from faust.types import TP

from services.contracts.topics import (
    CIVIL_EVENTS,
    MATCHER_MEMBERSHIPS,
    MATCHER_PERSON_STATE,
    WELFARE_REGISTRATIONS,
)
from services.matcher.settings import MatcherSettings
from services.matcher.worker import create_app

INPUTS = {
    TP(WELFARE_REGISTRATIONS.name, 5),
    TP(CIVIL_EVENTS.name, 4),
    TP(MATCHER_MEMBERSHIPS.name, 3),
}
CHANGELOGS = {TP(MATCHER_PERSON_STATE.name, 5)}


def _assigned_and_paused() -> tuple[Any, Any]:
    """A worker's app and consumer as Faust leaves them once partitions are assigned: every
    assigned partition paused, a rebalance in progress."""
    app = create_app(MatcherSettings(kafka_bootstrap_servers="127.0.0.1:9", store="memory://"))
    consumer = app.consumer
    consumer.pause_partitions(INPUTS | CHANGELOGS)
    app.rebalancing = True
    app.consumer_generation_id = 2
    return app, consumer


def _delivering(consumer: Any) -> set[TP]:
    # The partitions whose fetched records the consumer hands to the streams.
    return set(consumer._get_active_partitions())


def test_input_partitions_resumed_at_the_end_of_a_rebalance_wait_until_the_flow_resumes() -> None:
    app, consumer = _assigned_and_paused()
    consumer.resume_partitions(INPUTS | CHANGELOGS)
    # Before the seek and before flow control empties the queues: nothing read from the inputs.
    assert _delivering(consumer) == CHANGELOGS
    app.flow_control.resume()
    consumer.resume_flow()
    assert _delivering(consumer) == INPUTS | CHANGELOGS


def test_input_partitions_held_in_an_earlier_generation_are_not_resumed() -> None:
    # Another rebalance started between the resumption and the flow's: that generation's
    # recovery resumes (and holds back) the partitions it assigns itself.
    app, consumer = _assigned_and_paused()
    consumer.resume_partitions(INPUTS)
    app.consumer_generation_id = 3
    consumer.resume_flow()
    assert _delivering(consumer) == set()


def test_partitions_resumed_outside_a_rebalance_are_resumed_at_once() -> None:
    app, consumer = _assigned_and_paused()
    app.rebalancing = False
    consumer.resume_partitions(INPUTS)
    assert _delivering(consumer) == INPUTS


def test_the_fetch_state_says_which_partitions_are_read_and_which_are_held_back() -> None:
    app, consumer = _assigned_and_paused()
    consumer.resume_partitions(INPUTS | CHANGELOGS)
    state = consumer.fetch_state()
    assert state["generation"] == 2
    assert state["rebalancing"] is True
    assert state["fetched"] == {MATCHER_PERSON_STATE.name: [5]}
    assert state["held_until_flow_resumes"] == {
        WELFARE_REGISTRATIONS.name: [5],
        CIVIL_EVENTS.name: [4],
        MATCHER_MEMBERSHIPS.name: [3],
    }
    app.flow_control.resume()
    consumer.resume_flow()
    assert consumer.fetch_state()["held_until_flow_resumes"] == {}


async def test_a_fetch_in_flight_when_a_recovery_ends_keeps_the_partitions_it_asked_for() -> None:
    # Faust's fetcher asks aiokafka for the partitions it may deliver; here, during a table's
    # recovery, the changelogs. The recovery ends while that fetch waits for data: the
    # changelogs are paused and the inputs held, so Faust's set of deliverable partitions is
    # empty, which aiokafka reads as "every partition".
    _, consumer = _assigned_and_paused()
    consumer.resume_partitions(CHANGELOGS)
    asked: list[set[TP]] = []

    async def fetch_in_flight(partitions: set[TP], timeout: float) -> dict[TP, list[Any]]:
        consumer.pause_partitions(CHANGELOGS)  # recovery over
        consumer.resume_partitions(INPUTS)  # held until the flow resumes
        asked.append(set(partitions))  # what aiokafka would read when it wakes up
        return {}

    consumer._thread = SimpleNamespace(getmany=fetch_in_flight)  # the aiokafka thread's call
    await consumer._getmany(consumer._get_active_partitions(), 1.0)
    assert _delivering(consumer) == set()
    assert asked == [CHANGELOGS]
