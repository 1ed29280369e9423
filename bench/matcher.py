"""Matcher benchmark: households per second through one worker and through two, and bytes of
state per person. Each run gets a fresh local stack (Kafka + PostgreSQL on free ports, in a
temporary folder), so earlier data on the topics does not count.

    python -m bench.matcher [--households N]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError

from bench.common import fresh_stack, machine, write_results
from bench.ingest import MEMBERS_PER_HOUSEHOLD, households
from services.contracts.events import envelope
from services.contracts.records import BmnHousehold, WelfareRegistration, parse_record
from services.contracts.topics import (
    BMN_HOUSEHOLDS,
    HOUSEHOLD_STATUS,
    MATCHER_PERSON_STATE,
    PERSON_STATUS,
    WELFARE_REGISTRATIONS,
    TopicSpec,
)

GROUP = "tpmap-matcher"


def produce(bootstrap: str, count: int) -> int:
    """`count` households and a verified welfare registration for two of every three persons."""
    producer = KafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=20, batch_size=512 * 1024
    )
    persons = 0
    bmn_type = BMN_HOUSEHOLDS.require_event_type()
    welfare_type = WELFARE_REGISTRATIONS.require_event_type()
    for line in households(count, "matcher"):
        record = parse_record(BmnHousehold, line)
        value = (
            envelope(bmn_type, "/bench", record, subject=record.household_id)
            .model_dump_json()
            .encode()
        )
        producer.send(BMN_HOUSEHOLDS.name, key=record.household_id.encode(), value=value)
        for member in record.members:
            persons += 1
            if persons % 3:
                registration = WelfareRegistration(
                    citizen_id=member.citizen_id,
                    round=2560,
                    status="verified",
                    updated_at=datetime(2017, 12, 1, tzinfo=UTC),
                )
                value = (
                    envelope(welfare_type, "/bench", registration, subject=member.citizen_id)
                    .model_dump_json()
                    .encode()
                )
                producer.send(
                    WELFARE_REGISTRATIONS.name, key=member.citizen_id.encode(), value=value
                )
    producer.flush()
    producer.close()
    return persons


def total(consumer: KafkaConsumer, spec: TopicSpec) -> int:
    return sum(
        consumer.end_offsets(
            [TopicPartition(spec.name, p) for p in range(spec.partitions)]
        ).values()
    )


def settled(admin: KafkaAdminClient, consumer: KafkaConsumer) -> bool:
    try:
        committed = admin.list_group_offsets(GROUP).get(GROUP, {})
    except KafkaError:
        return False
    if not committed:
        return False
    ends = consumer.end_offsets(list(committed))
    return all(committed[tp].offset >= ends[tp] for tp in committed)


def latest_value_bytes(bootstrap: str, spec: TopicSpec) -> tuple[int, int]:
    """(keys, bytes of their latest values) on a compacted topic."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    partitions = [TopicPartition(spec.name, p) for p in range(spec.partitions)]
    consumer.assign(partitions)
    consumer.seek_to_beginning()
    ends = consumer.end_offsets(partitions)
    latest: dict[bytes, int] = {}
    while any(consumer.position(p) < ends[p] for p in partitions):
        for records in consumer.poll(timeout_ms=500).values():
            for r in records:
                latest[r.key] = len(r.value or b"")
    consumer.close()
    return len(latest), sum(latest.values())


def run(workers: int, count: int, folder: Path) -> dict[str, Any]:
    home = folder / f"stack-{workers}"
    with fresh_stack(home) as env:
        return measure(workers, count, home, env)


def measure(workers: int, count: int, home: Path, env: dict[str, str]) -> dict[str, Any]:
    bootstrap = env["KAFKA_BOOTSTRAP_SERVERS"]
    processes: list[subprocess.Popen[bytes]] = []
    try:
        print(f"matcher: {workers} worker(s), producing {count:,} households…", flush=True)
        persons = produce(bootstrap, count)
        admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        consumer = KafkaConsumer(bootstrap_servers=bootstrap)
        started = time.perf_counter()
        for n in range(workers):
            worker_env = {
                **env,
                "MATCHER_DATA_DIR": str(home / f"matcher-{n}"),
                "MATCHER_LOG_LEVEL": "WARNING",
            }
            log = (home / f"matcher-{n}.log").open("wb")
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "services.matcher"],
                    env=worker_env,
                    stdout=log,
                    stderr=log,
                )
            )
        expected_households = count
        while True:
            time.sleep(2)
            done = total(consumer, HOUSEHOLD_STATUS)
            print(
                f"  {time.perf_counter() - started:6.0f} s: {done:,} household statuses", flush=True
            )
            if done >= expected_households and settled(admin, consumer):
                break
        elapsed = time.perf_counter() - started
        keys, state_bytes = latest_value_bytes(bootstrap, MATCHER_PERSON_STATE)
        disk = sum(
            f.stat().st_size
            for n in range(workers)
            for f in (home / f"matcher-{n}").rglob("*")
            if f.is_file()
        )
        result = {
            "workers": workers,
            "households": count,
            "persons": persons,
            "seconds": round(elapsed, 1),
            "households_per_second": round(count / elapsed),
            "person_statuses": total(consumer, PERSON_STATUS),
            "person_state_json_bytes_per_person": round(state_bytes / max(keys, 1)),
            "rocksdb_bytes_per_person": round(disk / persons),
        }
        admin.close()
        consumer.close()
        print(f"  {result}", flush=True)
        return result
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(60)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--households", type=int, default=20_000)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="tpmap-bench-matcher-"))
    try:
        runs = [run(workers, args.households, folder) for workers in (1, 2)]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    write_results(
        "matcher",
        {**machine("matcher"), "members_per_household": MEMBERS_PER_HOUSEHOLD, "runs": runs},
    )


if __name__ == "__main__":
    main()
