"""What one batch of input events sends, pure: the newest word per key, and the internal
messages grouped by the partition that owns their addressees.

A batch moves every key's state forward, so within a batch only the last status per key matters:
one superseded by a later version in the same batch need not be sent; nor need a person's facts
superseded by their later facts. Internal messages travel as one Kafka message per destination partition, so
a batch of a thousand households costs six messages to the person partitions, not three
thousand (more only where a partition's share outgrows MAX_ITEMS_PER_MESSAGE).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from functools import lru_cache
from typing import TypeVar

from aiokafka.partitioner import murmur2

from services.contracts.events import DeadLetter, HouseholdStatus, PersonStatus
from services.matcher.state import MemberFacts, Membership

# An item is at most about 600 bytes of JSON (a membership listing all 31 indicators), so a
# message stays well below Kafka's default limit of 1 MB.
MAX_ITEMS_PER_MESSAGE = 1000
ItemT = TypeVar("ItemT", Membership, MemberFacts)


@lru_cache(maxsize=1 << 16)
def partition_for(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner (Java's and aiokafka's) gives `key`: the one
    whose inputs keyed by `key` already live there. Cached: aiokafka's murmur2 is pure Python,
    and a batch asks for most keys two or three times (a member's membership, then their status;
    a household's facts, then its status)."""
    hashed: int = murmur2(key.encode())
    return (hashed & 0x7FFFFFFF) % partitions


class Outbox:
    def __init__(self, partitions: int) -> None:
        self._partitions = partitions
        self.person_statuses: dict[str, PersonStatus] = {}
        self.household_statuses: dict[str, HouseholdStatus] = {}
        # Every membership, in order: a record and its re-survey in one batch must still tell
        # a member who left that they joined and left, as they would if the batch were split.
        self._memberships: list[Membership] = []
        self._facts: dict[tuple[str, int, str], MemberFacts] = {}
        self.dead_letters: list[DeadLetter] = []

    def add_household_results(
        self, memberships: list[Membership], statuses: list[HouseholdStatus]
    ) -> None:
        self._memberships += memberships
        for status in statuses:
            self.household_statuses[f"{status.household_id}:{status.survey_year}"] = status

    def add_person_results(self, statuses: list[PersonStatus], facts: list[MemberFacts]) -> None:
        for status in statuses:
            self.person_statuses[f"{status.citizen_id}:{status.survey_year}"] = status
        for f in facts:
            self._facts[f.household_id, f.survey_year, f.citizen_id] = f

    def membership_messages(self) -> list[tuple[int, list[Membership]]]:
        """The memberships as (partition, items) messages, in order."""
        return _messages(self._memberships, lambda m: m.citizen_id, self._partitions)

    def fact_messages(self) -> list[tuple[int, list[MemberFacts]]]:
        """The newest facts per person and household as (partition, items) messages."""
        return _messages(list(self._facts.values()), lambda f: f.household_id, self._partitions)


def _messages(
    items: list[ItemT], key: Callable[[ItemT], str], partitions: int
) -> list[tuple[int, list[ItemT]]]:
    """`items` grouped by the partition of their key, each group kept in order and cut into
    messages of at most MAX_ITEMS_PER_MESSAGE (a batch's group can outgrow Kafka's 1 MB)."""
    grouped: dict[int, list[ItemT]] = defaultdict(list)
    for item in items:
        grouped[partition_for(key(item), partitions)].append(item)
    return [
        (partition, group[start : start + MAX_ITEMS_PER_MESSAGE])
        for partition, group in grouped.items()
        for start in range(0, len(group), MAX_ITEMS_PER_MESSAGE)
    ]
