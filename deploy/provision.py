"""One-shot provisioning of a deployed tpmap: the registry's topics, made by the same code as the
local stack's (`deploy.local.topics`), so compose, Kubernetes and `make up` create the same
partitions and cleanup policies from `services/contracts/topics.py`.

    python -m deploy.provision topics           create missing topics, grow short ones
    python -m deploy.provision topics --check   only wait until every registry topic is there

`topics` is compose's `topics` service and the Kubernetes Job; `--check` is the init container
of every Deployment, so no service starts against a cluster without its topics (Faust would
otherwise create the matcher's changelogs itself, with its own settings).

Settings: `KAFKA_BOOTSTRAP_SERVERS` as every service, `PROVISION_REPLICATION_FACTOR` (of the
topics it creates: 1 for one broker, 3 for a production cluster) and `PROVISION_WAIT_SECONDS`
(how long to wait for the broker, or with `--check` for the topics).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

from kafka.admin import KafkaAdminClient
from kafka.errors import KafkaError
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from deploy.local.errors import StackError
from deploy.local.topics import ensure_topics, partition_counts, plan_topics
from services.contracts.settings import PlatformSettings
from services.contracts.topics import TOPICS

# Between two attempts while the broker starts or the topics Job has not run yet.
RETRY_SECONDS = 2.0


class ProvisionSettings(PlatformSettings):
    """KAFKA_BOOTSTRAP_SERVERS as everywhere; the rest is prefixed PROVISION_."""

    model_config = SettingsConfigDict(env_prefix="PROVISION_")

    replication_factor: int = Field(
        default=1, ge=1, description="Of the topics it creates (existing topics keep theirs)"
    )
    wait_seconds: float = Field(
        default=180.0, ge=0, description="How long to retry while Kafka or the topics are missing"
    )


def create_topics(settings: ProvisionSettings) -> str | None:
    """Creates or grows the registry's topics; None: done."""
    print(
        ensure_topics(
            settings.kafka_bootstrap_servers, replication_factor=settings.replication_factor
        ),
        flush=True,
    )
    return None


def missing_topics(settings: ProvisionSettings) -> str | None:
    """What the broker lacks of the registry (None: nothing)."""
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    try:
        found = partition_counts(admin, (spec.name for spec in TOPICS))
    finally:
        admin.close()
    plan = plan_topics(TOPICS, found)
    lacking = [spec.name for spec in plan.create] + [
        f"{name} (fewer than {count} partitions)" for name, count in plan.grow.items()
    ]
    if lacking:
        return "topics not provisioned yet: " + ", ".join(lacking)
    print(f"topics: {len(TOPICS)} ready", flush=True)
    return None


def wait_until(
    attempt: Callable[[], str | None],
    wait_seconds: float,
    *,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> str | None:
    """Calls `attempt` until it returns None (done) or `wait_seconds` have passed, and returns
    its last reason for not being done. A Kafka error is a reason to retry, not to fail: in a
    fresh deployment the broker starts at the same time as this does."""
    deadline = clock() + wait_seconds
    while True:
        try:
            reason = attempt()
        except KafkaError as error:
            reason = f"kafka: {error!r}"
        if reason is None or clock() >= deadline:
            return reason
        print(f"waiting: {reason}", file=sys.stderr, flush=True)
        sleep(RETRY_SECONDS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m deploy.provision",
        description="Provision a deployed tpmap cluster (topics from the registry).",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    topics = commands.add_parser("topics", help="create missing topics, grow short ones")
    topics.add_argument(
        "--check",
        action="store_true",
        help="change nothing; wait until every registry topic exists (init containers)",
    )
    args = parser.parse_args(argv)
    settings = ProvisionSettings()
    step = missing_topics if args.check else create_topics
    try:
        reason = wait_until(lambda: step(settings), settings.wait_seconds)
    except StackError as error:  # a refusal from the broker (e.g. too few brokers): final
        print(f"error: {error}", file=sys.stderr)
        return 1
    if reason is not None:
        print(f"error: gave up after {settings.wait_seconds:g} s: {reason}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
