"""The batch outbox: internal messages go to the partition Kafka's default partitioner gives
their key, and a batch sends only the newest word per key, but every membership in order."""

from __future__ import annotations

from datetime import date

from hypothesis import given
from hypothesis import strategies as st
from kafka.partitioner.default import murmur2 as kafka_python_murmur2

from services.matcher.outbox import MAX_ITEMS_PER_MESSAGE, Outbox, partition_for
from services.matcher.state import Facts, MemberFacts
from tests.synthetic import citizen_id


@given(st.text(min_size=1, max_size=40), st.integers(min_value=1, max_value=64))
def test_partition_for_agrees_with_kafka_python_default_partitioner(
    key: str, partitions: int
) -> None:
    # kafka-python's murmur2 is a second, independent implementation of Java's.
    expected = (kafka_python_murmur2(key.encode()) & 0x7FFFFFFF) % partitions
    assert partition_for(key, partitions) == expected


def _facts(household: str, person: int, death: date | None) -> MemberFacts:
    return MemberFacts(
        household_id=household,
        survey_year=2561,
        citizen_id=citizen_id(person),
        facts=Facts(death=death),
    )


def test_later_facts_of_a_person_for_a_household_supersede_earlier_ones() -> None:
    outbox = Outbox(6)
    outbox.add_person_results([], [_facts("49-1", 1, None), _facts("49-2", 1, None)])
    outbox.add_person_results([], [_facts("49-1", 1, date(2018, 3, 1))])
    sent = [f for _, group in outbox.fact_messages() for f in group]
    assert sorted((f.household_id, f.facts.death) for f in sent) == [
        ("49-1", date(2018, 3, 1)),
        ("49-2", None),
    ]
    for partition, group in outbox.fact_messages():
        assert all(partition_for(f.household_id, 6) == partition for f in group)


def test_a_partitions_share_is_cut_into_messages_of_bounded_size_in_order() -> None:
    outbox = Outbox(1)
    facts = [_facts(f"49-{n}", n, None) for n in range(2 * MAX_ITEMS_PER_MESSAGE + 1)]
    outbox.add_person_results([], facts)
    messages = outbox.fact_messages()
    assert [len(items) for _, items in messages] == [
        MAX_ITEMS_PER_MESSAGE,
        MAX_ITEMS_PER_MESSAGE,
        1,
    ]
    assert [f for _, items in messages for f in items] == facts
