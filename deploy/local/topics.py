"""The registry's topics on a broker: created when missing, given more partitions when the
registry asks for more. Replication factor 1 for the local stack (one broker); deployed clusters
pass theirs (deploy/provision.py)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from kafka.admin import KafkaAdminClient
from kafka.errors import TopicAlreadyExistsError

from deploy.local.errors import StackError
from services.contracts.topics import TOPICS, TopicSpec

REPLICATION_FACTOR = 1
# Kafka's error code for a topic that exists already (a concurrent `up` may have made it).
TOPIC_ALREADY_EXISTS = TopicAlreadyExistsError.errno


@dataclass(frozen=True, slots=True)
class TopicPlan:
    create: tuple[TopicSpec, ...]
    grow: dict[str, int]  # topic -> the partition count it must reach

    def summary(self, total: int) -> str:
        changes = [f"{len(self.create)} created"] if self.create else []
        changes += [f"{len(self.grow)} given more partitions"] if self.grow else []
        return f"topics: {total} ready" + (f" ({', '.join(changes)})" if changes else "")


def plan_topics(registry: Iterable[TopicSpec], existing: Mapping[str, int]) -> TopicPlan:
    """What to change so every registry topic exists with at least its partitions.

    `existing` maps topic names on the broker to their partition counts. Partitions are never
    removed (Kafka can't), nor are topics outside the registry touched.
    """
    specs = tuple(registry)
    return TopicPlan(
        create=tuple(spec for spec in specs if spec.name not in existing),
        grow={
            spec.name: spec.partitions
            for spec in specs
            if spec.name in existing and existing[spec.name] < spec.partitions
        },
    )


def partition_counts(admin: KafkaAdminClient, names: Iterable[str]) -> dict[str, int]:
    """Partition counts of those of `names` that exist on the broker."""
    wanted = set(names) & set(admin.list_topics())
    if not wanted:
        return {}
    return {
        topic["name"]: len(topic["partitions"]) for topic in admin.describe_topics(list(wanted))
    }


def ensure_topics(
    bootstrap: str,
    registry: Iterable[TopicSpec] = TOPICS,
    replication_factor: int = REPLICATION_FACTOR,
) -> str:
    """Bring the broker's topics in line with the registry; returns a one-line summary.
    `replication_factor` applies to topics it creates; existing ones keep theirs."""
    specs = tuple(registry)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        plan = plan_topics(specs, partition_counts(admin, (spec.name for spec in specs)))
        if plan.create:
            response = admin.create_topics(
                {
                    spec.name: {
                        "num_partitions": spec.partitions,
                        "replication_factor": replication_factor,
                        "configs": spec.configs(),
                    }
                    for spec in plan.create
                },
                raise_errors=False,
                # Producers started right after `up` then find a leader for every partition.
                wait_for_metadata=True,
            )
            failed = [
                f"{topic['name']}: {topic['error_message']}"
                for topic in response["topics"]
                if topic["error_code"] not in (0, TOPIC_ALREADY_EXISTS)
            ]
            if failed:
                raise StackError("topics: cannot create " + "; ".join(failed))
        if plan.grow:
            admin.create_partitions(plan.grow)
    finally:
        admin.close()
    return plan.summary(len(specs))


def registry_topics_present(bootstrap: str, registry: Iterable[TopicSpec] = TOPICS) -> str:
    """'N/M': how many of the registry's topics exist on the broker."""
    names = [spec.name for spec in registry]
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        present = set(names) & set(admin.list_topics())
    finally:
        admin.close()
    return f"{len(present)}/{len(names)}"
