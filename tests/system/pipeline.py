"""A whole tpmap pipeline of a test's own: its own Kafka broker (tests/service/brokers.py), its
own PostgreSQL database (in the session's cluster, or a cluster of its own when the test stops
PostgreSQL), and every service as its own process (`python -m services.<name>`, as deployed),
on free ports, with its own matcher state folder. A test loads records through ingest's HTTP
API, does field work through the logbook's, disturbs what it wants (SIGKILL a service, stop the
broker or the database), waits until everything is taken in, and compares what reporting
counted with an undisturbed run.

Services of one pipeline (one replica each, or two with `replicas=2`):

| name | process | does |
|---|---|---|
| `ingest-N` | `services.ingest` | HTTP API of the agencies |
| `matcher-N` | `services.matcher` | Faust worker, rocksdb tables in its own folder |
| `logbook-api-N` | `services.logbook serve`, no consumer, no relay | HTTP API of the field teams |
| `logbook-worker-N` | `services.logbook worker` | status consumer and outbox relay |
| `reporting-worker-N` | `services.reporting worker` | status and logbook-event consumer, publisher |
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import ctypes
import functools
import hashlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx
import orjson
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

from deploy.local.ports import any_free_port
from services.contracts.logs import mask_text
from services.contracts.topics import (
    BMN_HOUSEHOLDS,
    CIVIL_EVENTS,
    HOUSEHOLD_STATUS,
    LOGBOOK_EVENTS,
    MATCHER_DEAD_LETTER,
    MATCHER_MEMBER_FACTS,
    MATCHER_MEMBERSHIPS,
    PERSON_STATUS,
    WELFARE_REGISTRATIONS,
    TopicSpec,
)
from services.ingest.api_keys import new_key
from services.ingest.store import Store as IngestStore
from services.ingest.store import migrate as migrate_ingest
from services.logbook.cases import case_id
from services.logbook.store import Store as LogbookStore
from services.logbook.store import migrate as migrate_logbook
from services.logbook.tokens import new_token
from services.matcher.worker import EXIT_STALLED
from services.reporting.store import migrate as migrate_reporting
from tests.service.brokers import DisposableBroker, DisposablePostgres
from tests.system.population import PROVINCE, SURVEY_YEAR, Batch, FieldWork, agency_for

T = TypeVar("T")

REPO = Path(__file__).parents[2]
MATCHER_GROUP = "tpmap-matcher"
REPORTING_GROUP = "tpmap-reporting-status"
LOGBOOK_GROUP = "tpmap-logbook-status"
MATCHER_INPUTS = (
    BMN_HOUSEHOLDS,
    WELFARE_REGISTRATIONS,
    CIVIL_EVENTS,
    MATCHER_MEMBERSHIPS,
    MATCHER_MEMBER_FACTS,
)
STATUS_TOPICS = (PERSON_STATUS, HOUSEHOLD_STATUS)
REPORTING_INPUTS = (PERSON_STATUS, HOUSEHOLD_STATUS, LOGBOOK_EVENTS)
WATCHED = (*MATCHER_INPUTS, *STATUS_TOPICS, LOGBOOK_EVENTS)
INGEST_PATHS = {
    "bmn": "/v1/bmn/households",
    "welfare": "/v1/welfare/registrations",
    "civil": "/v1/civil/events",
}
AGENCY_OF_SOURCE = {"bmn": "CDD", "welfare": "MOF", "civil": "DOPA"}
FULL_CITIZEN_ID = re.compile(r"(?<![0-9])[0-9]{13}(?![0-9])")
POLL_SECONDS = 0.5
STALL_SECONDS = 60  # a pipeline where nothing moves this long is stuck, not slow
# A matcher agent that finishes no batch this long exits (EXIT_STALLED) and is started again,
# as its supervisor would in a deployment: well within STALL_SECONDS.
MATCHER_STALL_SECONDS = 30


class SupervisorRestart(UserWarning):
    """A service exited asking to be started again (a matcher that stalled), and was."""


class PipelineError(AssertionError):
    """The pipeline did not do what the test needs (a service died, nothing settled...)."""


def wait_for(what: str, probe: Callable[[], T | None], timeout: float = 120) -> T:
    """The first true value of `probe`, polled until `timeout` seconds have passed."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found is not None and found is not False:
            return found
        if time.monotonic() > deadline:
            raise PipelineError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)


# --- PostgreSQL ----------------------------------------------------------------------------


def sql(url: str, statement: str, *args: Any) -> list[dict[str, Any]]:
    """Rows of one statement on a connection of its own."""

    async def run() -> list[dict[str, Any]]:
        connection = await asyncpg.connect(url, timeout=10)
        try:
            return [dict(row) for row in await connection.fetch(statement, *args)]
        finally:
            await connection.close()

    return asyncio.run(run())


def _database_url(server_url: str, name: str) -> str:
    base, _, _ = server_url.rpartition("/")
    return f"{base}/{name}"


# --- Kafka ---------------------------------------------------------------------------------


class BrokerPool:
    """Fresh brokers, the next one always starting in the background: a broker takes 10-15 s
    to start on this machine, which would otherwise add up over the scenarios."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._count = 0
        self._executor = concurrent.futures.ThreadPoolExecutor(1, "broker-pool")
        self._next: concurrent.futures.Future[DisposableBroker] | None = None
        self._stopping = concurrent.futures.ThreadPoolExecutor(2, "broker-stop")

    def _start_one(self) -> DisposableBroker:
        self._count += 1
        broker = DisposableBroker(self._root / f"broker-{self._count}")
        broker.start()
        return broker

    def take(self) -> DisposableBroker:
        future = self._next or self._executor.submit(self._start_one)
        self._next = self._executor.submit(self._start_one)
        return future.result()

    def give_back(self, broker: DisposableBroker) -> None:
        """Stops a broker in the background."""
        self._stopping.submit(broker.stop)

    def close(self) -> None:
        self._stopping.shutdown()
        if self._next is not None:
            # A spare that failed to start has nothing to stop.
            with contextlib.suppress(Exception):
                self._next.result().stop()
        self._executor.shutdown()


class KafkaWatch:
    """End offsets, group offsets and group members, read by clients that are made again after
    a failure (the broker may be away on purpose)."""

    def __init__(self, bootstrap: str) -> None:
        self._bootstrap = bootstrap
        self._admin: KafkaAdminClient | None = None
        self._consumer: KafkaConsumer | None = None

    def close(self) -> None:
        for client in (self._admin, self._consumer):
            if client is not None:
                client.close()
        self._admin = self._consumer = None

    def _clients(self) -> tuple[KafkaAdminClient, KafkaConsumer]:
        if self._admin is None or self._consumer is None:
            self.close()
            options: dict[str, Any] = {
                "bootstrap_servers": self._bootstrap,
                "request_timeout_ms": 5000,
            }
            self._admin = KafkaAdminClient(**options)
            self._consumer = KafkaConsumer(**options)
        return self._admin, self._consumer

    def _guarded(self, read: Callable[[KafkaAdminClient, KafkaConsumer], T]) -> T | None:
        try:
            return read(*self._clients())
        except Exception:  # any client failure means "cannot say now"
            self.close()
            return None

    def ends(self, specs: tuple[TopicSpec, ...]) -> dict[tuple[str, int], int] | None:
        partitions = [TopicPartition(s.name, p) for s in specs for p in range(s.partitions)]

        def read(_: KafkaAdminClient, consumer: KafkaConsumer) -> dict[tuple[str, int], int]:
            found = consumer.end_offsets(partitions)
            return {(tp.topic, tp.partition): offset for tp, offset in found.items()}

        return self._guarded(read)

    def committed(self, group: str) -> dict[tuple[str, int], int] | None:
        def read(admin: KafkaAdminClient, _: KafkaConsumer) -> dict[tuple[str, int], int]:
            offsets = admin.list_group_offsets(group).get(group, {})
            return {(tp.topic, tp.partition): meta.offset for tp, meta in offsets.items()}

        return self._guarded(read)

    def members(self, group: str) -> list[tuple[str, list[tuple[str, int]]]] | None:
        """(client id, assigned partitions) of each member of a consumer group."""

        def read(admin: KafkaAdminClient, _: KafkaConsumer) -> list[tuple[str, list[Any]]]:
            described = admin.describe_groups([group])[group]
            members = []
            for member in described["members"]:
                assignment = member["member_assignment"]
                partitions = [
                    (entry["topic"], partition)
                    for entry in assignment["assigned_partitions"]
                    for partition in entry["partitions"]
                ]
                members.append((str(member["client_id"]), partitions))
            return members

        return self._guarded(read)


def read_topic(bootstrap: str, spec: TopicSpec) -> list[Any]:
    """Every message of a topic, from the start, in partition order."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    partitions = [TopicPartition(spec.name, p) for p in range(spec.partitions)]
    consumer.assign(partitions)
    consumer.seek_to_beginning()
    ends = consumer.end_offsets(partitions)
    found: list[Any] = []
    deadline = time.monotonic() + 60
    try:
        while any(consumer.position(p) < ends[p] for p in partitions):
            if time.monotonic() > deadline:
                raise PipelineError(f"could not read {spec.name} to its end")
            for records in consumer.poll(timeout_ms=500).values():
                found.extend(records)
    finally:
        consumer.close()
    return found


def produce_again(bootstrap: str, specs: tuple[TopicSpec, ...]) -> int:
    """Every message of the topics produced once more, same key and value (duplicates as a
    producer retry or a replayed relay would make them); how many."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    sent = 0
    try:
        for spec in specs:
            for message in read_topic(bootstrap, spec):
                producer.send(spec.name, key=message.key, value=message.value)
                sent += 1
        producer.flush()
    finally:
        producer.close()
    return sent


# --- services ------------------------------------------------------------------------------


def _die_with_parent() -> None:
    """Linux: the service gets SIGKILL when the test process dies (a killed or timed-out
    pytest leaves no service behind)."""
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)


@dataclass
class Service:
    """One service process; started again with the same settings (and state folder)."""

    name: str
    argv: list[str]
    env: dict[str, str]
    log: Path
    url: str | None = None  # HTTP services
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    expected_down: bool = False  # stopped or killed on purpose

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", *self.argv],
                cwd=REPO,
                env=self.env,
                stdout=out,
                stderr=out,
                preexec_fn=_die_with_parent,  # noqa: PLW1509 - only prctl, async-signal-safe
            )
        self.starts += 1
        self.expected_down = False

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no chance to finish anything, as a crash or an OOM kill."""
        assert self.process is not None
        self.expected_down = True
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(30)

    def signal_stop(self) -> None:
        if self.alive:
            assert self.process is not None
            self.expected_down = True
            self.process.send_signal(signal.SIGTERM)

    def wait_stopped(self, grace: float = 10) -> None:
        if self.process is None:
            return
        try:
            self.process.wait(grace)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def dump(self, size: int = 12_000) -> str:
        """What a Faust worker is doing (SIGUSR1: where its tasks wait and the partitions it
        fetches, written to its log), for a stalled pipeline's failure message."""
        if not self.alive:
            return ""
        assert self.process is not None
        written = self.log.stat().st_size
        self.process.send_signal(signal.SIGUSR1)
        time.sleep(3)
        with self.log.open("rb") as log:
            log.seek(written)
            return mask_text(log.read().decode(errors="replace")[-size:])

    def log_tail(self, size: int = 3000) -> str:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return mask_text(text[-size:])


# --- ingest and logbook clients --------------------------------------------------------------


class Loader(threading.Thread):
    """Posts batches to ingest (round robin over its replicas) in a thread of its own, each
    retried with the same Idempotency-Key while ingest answers 503 (or 409, 502, 504) or cannot
    be reached, as an agency's client would (any other answer fails the test: ingest's
    contract says a resend after those is safe, nothing about a 500). `remaining` says how
    many batches are still to go; `going` holds the rest back while it is cleared."""

    def __init__(
        self,
        urls: list[str],
        keys: dict[str, str],
        batches: list[Batch],
        *,
        pace: float,
        copy: str,
    ) -> None:
        super().__init__(name="loader", daemon=True)
        self._urls = urls
        self._keys = keys
        self._batches = batches
        self._pace = pace
        self._copy = copy
        self.remaining = len(batches)
        self.accepted = 0
        self.retries = 0
        self.answers: Counter[int] = Counter()  # HTTP statuses ingest answered
        self.going = threading.Event()  # cleared: no further request starts until it is set
        self.going.set()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with httpx.Client(timeout=120) as client:
                for n, batch in enumerate(self._batches):
                    self.going.wait()
                    self._post(client, self._urls[n % len(self._urls)], batch)
                    self.remaining -= 1
                    if self._pace and self.remaining:
                        time.sleep(self._pace)
        except BaseException as error:  # handed to the test by finish()
            self.error = error

    def _post(self, client: httpx.Client, url: str, batch: Batch) -> None:
        body = b"\n".join(batch.records) + b"\n"
        digest = hashlib.sha256(f"{batch.source}:{self._copy}:".encode() + body).hexdigest()
        headers = {
            "Authorization": f"Bearer {self._keys[batch.source]}",
            "Content-Type": "application/x-ndjson",
            "Idempotency-Key": f"system-{digest[:40]}",
        }
        deadline = time.monotonic() + 180
        delay = 0.5
        last = ""
        while True:
            try:
                reply = client.post(
                    f"{url}{INGEST_PATHS[batch.source]}", content=body, headers=headers
                )
                self.answers[reply.status_code] += 1
                last = f"{reply.status_code} {mask_text(reply.text[:200])}"
                if reply.status_code == 200:
                    answer = reply.json()
                    if answer["rejected_count"]:
                        raise PipelineError(
                            f"ingest rejected {answer['rejected_count']} {batch.source} records: "
                            f"{mask_text(str(answer['rejected'][:3]))}"
                        )
                    self.accepted += int(answer["accepted"])
                    return
                if reply.status_code not in (409, 502, 503, 504):
                    raise PipelineError(f"ingest answered {last}")
            except httpx.TransportError as error:
                last = f"{type(error).__name__}: {error}"
            if time.monotonic() > deadline:
                raise PipelineError(
                    f"ingest did not take a {batch.source} batch in 180 s; answers so far "
                    f"{dict(self.answers)}, the last: {last}"
                )
            self.retries += 1
            time.sleep(delay)
            delay = min(delay * 2, 4.0)

    def pause_after(self, share: float) -> int:
        """Lets `share` of the batches go, then holds the rest until `going` is set; how many
        batches are held back."""
        wait_for(
            f"{share:.0%} of the requests",
            lambda: len(self._batches) - self.remaining >= share * len(self._batches),
        )
        self.going.clear()
        return self.remaining

    def finish(self, timeout: float = 300) -> None:
        self.going.set()
        self.join(timeout)
        if self.is_alive():
            raise PipelineError("the loader did not finish")
        if self.error is not None:
            raise self.error


@dataclass
class FieldWorkDone:
    households: int = 0
    visits: int = 0
    interventions: int = 0
    resolutions: int = 0


class FieldTeam(threading.Thread):
    """Does the population's field work through the logbook's API (round robin over its
    replicas), a household as soon as its case exists, `pace` seconds between writes."""

    def __init__(
        self, urls: list[str], token: str, work: tuple[FieldWork, ...], *, pace: float
    ) -> None:
        super().__init__(name="field-team", daemon=True)
        self._urls = urls
        self._headers = {"Authorization": f"Bearer {token}"}
        self._work = work
        self._pace = pace
        self._turn = 0
        self.going = threading.Event()  # cleared: the team finishes its household and waits
        self.going.set()
        self.holding = threading.Event()  # set while it waits
        self.pending: list[str] = [w.household_id for w in work]
        self.done = FieldWorkDone()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with httpx.Client(timeout=60) as client:
                pending = list(self._work)
                deadline = time.monotonic() + 300
                while pending:
                    self._hold()
                    ready = [w for w in pending if self._case_exists(client, w)]
                    for work in ready:
                        self._hold()
                        self._record(client, work)
                        pending.remove(work)
                        self.pending.remove(work.household_id)
                        self.done.households += 1
                    if not ready:
                        if time.monotonic() > deadline:
                            raise PipelineError(f"{len(pending)} cases never opened")
                        time.sleep(0.3)
        except BaseException as error:  # handed to the test by finish()
            self.error = error

    def _hold(self) -> None:
        if not self.going.is_set():
            self.holding.set()
            self.going.wait()
            self.holding.clear()

    def _url(self) -> str:
        self._turn += 1
        return self._urls[self._turn % len(self._urls)]

    def _case_exists(self, client: httpx.Client, work: FieldWork) -> bool:
        try:
            reply = client.get(
                f"{self._url()}/v1/cases/{case_id(work.household_id, SURVEY_YEAR)}",
                headers=self._headers,
            )
        except httpx.TransportError:
            return False
        return reply.status_code == 200

    def _write(self, client: httpx.Client, method: str, path: str, body: dict[str, Any]) -> Any:
        """One write; retried only on 503, which the logbook answers when nothing changed."""
        deadline = time.monotonic() + 120
        while True:
            reply = client.request(method, f"{self._url()}{path}", json=body, headers=self._headers)
            if reply.status_code in (200, 201):
                if self._pace:
                    time.sleep(self._pace)
                return reply.json()
            if reply.status_code != 503 or time.monotonic() > deadline:
                raise PipelineError(f"{method} {path} answered {reply.status_code}: {reply.text}")
            time.sleep(0.5)

    def _record(self, client: httpx.Client, work: FieldWork) -> None:
        case = f"/v1/cases/{case_id(work.household_id, SURVEY_YEAR)}"
        first = work.deprivation[0]
        visit = {"visited_on": "2018-07-02", "team_member": "สมศรี ใจดี", "notes": "เยี่ยมบ้าน"}
        if work.kind in ("helped", "in_progress", "visited"):
            self._write(client, "POST", f"{case}/visits", visit)
            self.done.visits += 1
        if work.kind == "in_progress":
            self._write(client, "POST", f"{case}/visits", {**visit, "visited_on": "2018-08-01"})
            self.done.visits += 1
        if work.kind in ("helped", "in_progress"):
            intervention = {
                "dimension": first.value,
                "agency_code": agency_for(first),
                "kind": "อาชีพเสริม",
                "amount_baht": "1500.50" if work.kind == "helped" else "800",
                "status": "planned" if work.kind == "helped" else "in_progress",
                "started_on": "2018-07-10",
            }
            made = self._write(client, "POST", f"{case}/interventions", intervention)
            self.done.interventions += 1
            if work.kind == "helped":
                done = {"status": "done", "completed_on": "2018-09-30"}
                self._write(
                    client, "PATCH", f"{case}/interventions/{made['intervention_id']}", done
                )
        if work.kind in ("helped", "self_resolved"):
            for dimension in work.deprivation:
                self._write(
                    client,
                    "PUT",
                    f"{case}/resolutions/{dimension.value}",
                    {"resolution": work.kind},
                )
                self.done.resolutions += 1

    def finish(self, timeout: float = 300) -> FieldWorkDone:
        self.join(timeout)
        if self.is_alive():
            raise PipelineError("the field work did not finish")
        if self.error is not None:
            raise self.error
        return self.done


# --- what a run ends with --------------------------------------------------------------------

CounterKey = tuple[int, str, str]  # survey year, area, counter


@dataclass(frozen=True, repr=False)
class Outcome:
    """What a run ends with, read from PostgreSQL and the topics once everything settled."""

    counters: dict[CounterKey, int]  # reporting.counters, the non-zero ones
    applied: dict[tuple[str, str], str]  # reporting.applied: (kind, key) -> its contribution
    cases: dict[str, tuple[str, str]]  # logbook.cases: household -> (reason, status)
    case_files: dict[str, tuple[str | None, dict[str, int]]]  # reporting.cases: village, counters
    outbox_event_ids: list[str]  # envelope IDs of the logbook's events, one per outbox row
    applied_event_ids: set[str]  # reporting.logbook_events
    visits: int
    interventions: int
    dead_letters: dict[str, int]
    input_messages: dict[str, int]  # messages on each input topic

    def __repr__(self) -> str:  # pytest shows arguments of a failed test: no citizen ID in it
        return (
            f"Outcome({len(self.counters)} counters, {len(self.applied)} statuses applied, "
            f"{len(self.cases)} cases, {len(self.outbox_event_ids)} logbook events)"
        )

    def figure(self, area: str, counter: str, year: int = SURVEY_YEAR) -> int:
        return self.counters.get((year, area, counter), 0)


def describe_differences(
    got: dict[Any, Any], expected: dict[Any, Any], what: str, show: int = 12
) -> str | None:
    """None when equal; otherwise how many entries differ and the first few."""
    keys = sorted(set(got) | set(expected), key=str)
    different = [k for k in keys if got.get(k) != expected.get(k)]
    if not different:
        return None
    lines = [
        f"  {mask_text(str(k))}: expected {expected.get(k)!r}, got {got.get(k)!r}"
        for k in different[:show]
    ]
    more = f"\n  ... and {len(different) - show} more" if len(different) > show else ""
    return (
        f"{len(different)} of {len(expected):,} {what} differ from the undisturbed run:\n"
        + "\n".join(lines)
        + more
    )


# --- the pipeline ----------------------------------------------------------------------------


class Pipeline:
    """Build with `Pipeline.open(...)` as a context manager; everything it started is stopped
    and its database dropped at the end."""

    def __init__(
        self,
        name: str,
        root: Path,
        broker: DisposableBroker,
        database_url: str,
        *,
        replicas: int = 1,
        own_postgres: DisposablePostgres | None = None,
        drop: Callable[[], None] | None = None,
        give_back: Callable[[DisposableBroker], None] | None = None,
    ) -> None:
        self.name = name
        self.root = root
        self.broker = broker
        self.database_url = database_url
        self.replicas = replicas
        self.own_postgres = own_postgres
        self._drop = drop
        self._give_back = give_back or DisposableBroker.stop
        self.watch = KafkaWatch(broker.bootstrap)
        self.services: dict[str, Service] = {}
        self.ingest_keys: dict[str, str] = {}
        self.logbook_token = ""
        self.field_work_done = FieldWorkDone()
        self._started = time.monotonic()
        self.settle_timeout = 240.0
        self.timeline: list[tuple[float, str]] = []

    def note(self, what: str) -> None:
        """A line of the pipeline's timeline (printed at its end: pytest -s, or on failure)."""
        self.timeline.append((time.monotonic() - self._started, what))

    # -- building ----------------------------------------------------------------------

    @classmethod
    @contextlib.contextmanager
    def open(
        cls, name: str, root: Path, pool: BrokerPool, server_url: str | None, *, replicas: int = 1
    ) -> Iterator[Pipeline]:
        """A pipeline on a fresh broker, with a database of its own in the cluster at
        `server_url`, or (None) in a PostgreSQL cluster of its own."""
        root.mkdir(parents=True, exist_ok=True)
        own: DisposablePostgres | None = None
        drop: Callable[[], None] | None = None
        if server_url is None:
            own = DisposablePostgres(root / "postgres")
            own.start()
            database_url = own.url
        else:
            database = f"tpmap_system_{name.replace('-', '_')}_{uuid.uuid4().hex[:6]}"
            sql(server_url, f"CREATE DATABASE {database}")
            database_url = _database_url(server_url, database)

            def drop() -> None:
                sql(server_url, f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")

        broker = pool.take()
        pipeline = cls(
            name,
            root,
            broker,
            database_url,
            replicas=replicas,
            own_postgres=own,
            drop=drop,
            give_back=pool.give_back,
        )
        pipeline.note("broker taken")
        try:
            pipeline._set_up()
            pipeline.note("migrated")
            pipeline._start_all()
            pipeline.note("services ready")
            yield pipeline
            pipeline.check_logs()
        finally:
            pipeline._tear_down()
            pipeline.note("torn down")
            timeline = ", ".join(f"{what} {at:.1f}s" for at, what in pipeline.timeline)
            (root / "timeline.txt").write_text(timeline + "\n")
            print(f"\n{name}: {timeline}")

    def _set_up(self) -> None:
        # Each service's migrations (what `python -m services.<name> migrate` runs).
        for migrate in (migrate_ingest, migrate_logbook, migrate_reporting):
            migrate(self.database_url)
        self.ingest_keys = asyncio.run(self._credentials())

    async def _credentials(self) -> dict[str, str]:
        """One agency API key per source, as `python -m services.ingest keys create` makes."""
        store = await IngestStore.connect(self.database_url)
        try:
            keys = {}
            for source, agency in AGENCY_OF_SOURCE.items():
                key = new_key()
                await store.add_key(key, agency, [source], "system test")
                keys[source] = key.token
            return keys
        finally:
            await store.close()

    def _env(self, **settings: str) -> dict[str, str]:
        return {
            **os.environ,
            "KAFKA_BOOTSTRAP_SERVERS": self.broker.bootstrap,
            "DATABASE_URL": self.database_url,
            **settings,
        }

    def _add(self, name: str, argv: list[str], url: str | None = None, **settings: str) -> None:
        logs = self.root / "logs"
        logs.mkdir(exist_ok=True)
        self.services[name] = Service(name, argv, self._env(**settings), logs / f"{name}.log", url)

    def _start_all(self) -> None:
        for n in range(1, self.replicas + 1):
            port = any_free_port()
            self._add(
                f"ingest-{n}",
                ["services.ingest"],
                f"http://127.0.0.1:{port}",
                INGEST_PORT=str(port),
                INGEST_RAW_CONSUMER="false",
            )
            self._add(
                f"matcher-{n}",
                ["services.matcher"],
                MATCHER_DATA_DIR=str(self.root / f"matcher-{n}"),
                MATCHER_STALL_SECONDS=str(MATCHER_STALL_SECONDS),
            )
            port = any_free_port()
            self._add(
                f"logbook-api-{n}",
                ["services.logbook", "serve"],
                f"http://127.0.0.1:{port}",
                LOGBOOK_PORT=str(port),
                LOGBOOK_CONSUMER="false",
                LOGBOOK_RELAY="false",
            )
            self._add(f"logbook-worker-{n}", ["services.logbook", "worker"])
            self._add(f"reporting-worker-{n}", ["services.reporting", "worker"])
        for service in self.services.values():
            service.start()
        for service in self.services.values():
            if service.url is not None:
                wait_for(f"{service.name} ready", functools.partial(self._ready, service), 90)
        self.logbook_token = self._logbook_user()

    def _ready(self, service: Service) -> bool:
        if not service.alive:
            raise PipelineError(f"{service.name} exited while starting:\n{service.log_tail()}")
        try:
            return httpx.get(f"{service.url}/readyz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def _logbook_user(self) -> str:
        """A province user of the population's province (it may write field work)."""

        async def create() -> str:
            store = await LogbookStore.connect(self.database_url, 1)
            try:
                user = f"system-{uuid.uuid4().hex[:6]}"
                await store.add_user(user, "ทีมทดสอบระบบ", "province", [PROVINCE], "system test")
                token = new_token()
                await store.add_token(user, token, "system test", "system test")
                return token.token
            finally:
                await store.close()

        return asyncio.run(create())

    def _tear_down(self) -> None:
        for service in self.services.values():
            service.signal_stop()
        for service in self.services.values():
            service.wait_stopped()
        self.watch.close()
        self._give_back(self.broker)
        if self._drop is not None:
            # A leftover database must not hide the test's result.
            with contextlib.suppress(Exception):
                self._drop()
        if self.own_postgres is not None:
            self.own_postgres.remove()

    def check_logs(self) -> None:
        """PDPA: whatever went through, no service logged a citizen ID in full."""
        for service in self.services.values():
            text = service.log.read_text(errors="replace") if service.log.exists() else ""
            found = FULL_CITIZEN_ID.findall(text)
            assert not found, f"{service.name} logged {len(found)} full citizen IDs"

    # -- driving -------------------------------------------------------------------------

    def urls(self, prefix: str) -> list[str]:
        return [s.url for n, s in self.services.items() if n.startswith(prefix) and s.url]

    def start_loading(
        self,
        batches: list[Batch],
        *,
        pace: float = 0.0,
        copy: str = "1",
    ) -> Loader:
        loader = Loader(self.urls("ingest-"), self.ingest_keys, batches, pace=pace, copy=copy)
        loader.start()
        return loader

    def load(self, batches: list[Batch], *, copy: str = "1") -> None:
        self.start_loading(batches, copy=copy).finish()

    def start_field_work(self, work: tuple[FieldWork, ...], *, pace: float = 0.0) -> FieldTeam:
        team = FieldTeam(self.urls("logbook-api-"), self.logbook_token, work, pace=pace)
        team.start()
        return team

    def field_work(self, work: tuple[FieldWork, ...]) -> None:
        self.record_field_work(self.start_field_work(work).finish())

    def record_field_work(self, done: FieldWorkDone) -> None:
        self.field_work_done = done

    def kill(self, name: str) -> None:
        self.services[name].kill()

    def restart(self, name: str) -> None:
        self.services[name].start()

    def check_alive(self) -> bool:
        """Fails when a service exited that was not stopped on purpose, unless it exited asking
        to be started again (EXIT_STALLED): then it is started, as Compose or Kubernetes would,
        with a warning in the test's summary. Returns whether it started one again."""
        restarted = False
        for service in self.services.values():
            if service.expected_down or service.alive:
                continue
            code = service.process.returncode if service.process else "?"
            if code == EXIT_STALLED:
                warnings.warn(
                    SupervisorRestart(
                        f"{self.name}: {service.name} stalled and exited ({code}); started it "
                        f"again. Its log ends:\n{service.log_tail(12_000)}"
                    ),
                    stacklevel=2,
                )
                self.note(f"{service.name} stalled, started again")
                service.start()
                restarted = True
                continue
            raise PipelineError(
                f"{self.name}: {service.name} exited with {code}; its log ends:\n"
                f"{service.log_tail()}"
            )
        return restarted

    # -- progress ------------------------------------------------------------------------

    def _stored_offsets(self, table: str) -> dict[tuple[str, int], int] | None:
        try:
            rows = sql(self.database_url, f"SELECT topic, partition, next_offset FROM {table}")  # noqa: S608 - our table names
        except (OSError, asyncpg.PostgresError, TimeoutError):
            return None
        return {(r["topic"], r["partition"]): r["next_offset"] for r in rows}

    def matcher_lag_by_partition(self) -> dict[str, int] | None:
        """Records the matcher has not committed yet, per input partition that has any."""
        ends = self.watch.ends(MATCHER_INPUTS)
        committed = self.watch.committed(MATCHER_GROUP)
        if ends is None or committed is None:
            return None
        return {
            f"{topic}:{partition}": end - max(committed.get((topic, partition), 0), 0)
            for (topic, partition), end in sorted(ends.items())
            if end > max(committed.get((topic, partition), 0), 0)
        }

    def matcher_progress(self) -> tuple[int, int] | None:
        """(input records the matcher committed, records still waiting)."""
        ends = self.watch.ends(MATCHER_INPUTS)
        committed = self.watch.committed(MATCHER_GROUP)
        if ends is None or committed is None:
            return None
        done = {tp: min(max(committed.get(tp, 0), 0), end) for tp, end in ends.items()}
        return sum(done.values()), sum(ends.values()) - sum(done.values())

    def surveys_matched(self) -> int | None:
        """Survey records the matcher has committed so far."""
        committed = self.watch.committed(MATCHER_GROUP)
        if committed is None:
            return None
        return sum(o for (topic, _), o in committed.items() if topic == BMN_HOUSEHOLDS.name)

    def consumer_progress(
        self, table: str, topics: tuple[TopicSpec, ...]
    ) -> tuple[int, int] | None:
        """(messages applied, messages waiting) of a consumer with its offsets in `table`."""
        ends = self.watch.ends(topics)
        stored = self._stored_offsets(table)
        if ends is None or stored is None:
            return None
        applied = sum(min(stored.get(tp, 0), end) for tp, end in ends.items())
        return applied, sum(ends.values()) - applied

    def reporting_progress(self) -> tuple[int, int] | None:
        return self.consumer_progress("reporting.consumer_offsets", REPORTING_INPUTS)

    def logbook_progress(self) -> tuple[int, int] | None:
        return self.consumer_progress("logbook.consumer_offsets", STATUS_TOPICS)

    def cases_open(self, household_ids: list[str]) -> int:
        """How many of these households have a case in the logbook."""
        rows = sql(
            self.database_url,
            "SELECT count(*) AS n FROM logbook.cases WHERE household_id = ANY($1)",
            household_ids,
        )
        return int(rows[0]["n"])

    def outbox_backlog(self) -> int | None:
        try:
            rows = sql(
                self.database_url,
                "SELECT count(*) AS n FROM logbook.outbox WHERE published_at IS NULL",
            )
        except (OSError, asyncpg.PostgresError, TimeoutError):
            return None
        return int(rows[0]["n"])

    def _snapshot(self) -> tuple[Any, ...] | None:
        """(settled, every progress figure and watched end offset), None when it cannot say."""
        ends = self.watch.ends(WATCHED)
        matcher = self.matcher_progress()
        logbook = self.logbook_progress()
        reporting = self.reporting_progress()
        backlog = self.outbox_backlog()
        if ends is None or matcher is None or logbook is None or reporting is None:
            return None
        if backlog is None:
            return None
        settled = matcher[1] == 0 and logbook[1] == 0 and reporting[1] == 0 and backlog == 0
        return settled, matcher, logbook, reporting, backlog, tuple(sorted(ends.items()))

    def _state(self) -> str:
        return (
            f"matcher (committed, waiting) {self.matcher_progress()}, waiting by partition "
            f"{self.matcher_lag_by_partition()}, logbook (applied, waiting) "
            f"{self.logbook_progress()}, outbox backlog {self.outbox_backlog()}, reporting "
            f"(applied, waiting) {self.reporting_progress()}"
        )

    def settle(self, timeout: float | None = None) -> float:
        """Until the matcher has committed every input, the logbook applied every status and
        published its outbox, and reporting applied every status and logbook event, twice in
        a row with nothing new in between; the seconds it took. Fails after `timeout`, or
        after `STALL_SECONDS` without any progress."""
        timeout = timeout or self.settle_timeout
        started = last_change = time.monotonic()
        previous: tuple[Any, ...] | None = None
        while True:
            restarted = self.check_alive()
            snapshot = self._snapshot()
            now = time.monotonic()
            if restarted:
                last_change = now  # a restart is progress of a kind; the timeout still holds
            if snapshot is not None and snapshot[0] and snapshot == previous:
                self.note("settled")
                return now - started
            if snapshot != previous:
                last_change = now
            if now - last_change > STALL_SECONDS:
                dumps = "".join(
                    f"\n{service.name} (SIGUSR1):\n{service.dump()}"
                    for service in self.services.values()
                    if service.argv[0] == "services.matcher"
                )
                raise PipelineError(
                    f"{self.name} stalled: nothing moved for {STALL_SECONDS} s: {self._state()}"
                    f"\n{self._warnings()}{dumps}"
                )
            if now - started > timeout:
                raise PipelineError(
                    f"{self.name} did not settle in {timeout:.0f} s: {self._state()}"
                    f"\n{self._warnings()}"
                )
            previous = snapshot if snapshot is not None else previous
            time.sleep(POLL_SECONDS)

    def _warnings(self, per_service: int = 3) -> str:
        """The last few warnings and errors each service logged (JSON lines, IDs masked)."""
        found = []
        for service in self.services.values():
            text = service.log.read_text(errors="replace") if service.log.exists() else ""
            lines = [
                line[:400]
                for line in text.splitlines()
                if '"level":"warning"' in line or '"level":"error"' in line
            ]
            found += [f"  {service.name}: {mask_text(line)}" for line in lines[-per_service:]]
        return "last warnings and errors:\n" + "\n".join(found) if found else ""

    # -- the outcome ---------------------------------------------------------------------

    def outcome(self) -> Outcome:
        url = self.database_url
        counters = {
            (r["survey_year"], r["area_code"], r["counter"]): int(r["value"])
            for r in sql(
                url,
                "SELECT survey_year, area_code, counter, value FROM reporting.counters "
                "WHERE value <> 0",
            )
        }
        applied = {
            (r["kind"], r["entity_key"]): orjson.dumps(
                orjson.loads(r["counters"]), option=orjson.OPT_SORT_KEYS
            ).decode()
            + f"@{r['village_code']}"
            for r in sql(
                url, "SELECT kind, entity_key, village_code, counters::text FROM reporting.applied"
            )
        }
        cases = {
            r["household_id"]: (r["reason"], r["status"])
            for r in sql(url, "SELECT household_id, reason, status FROM logbook.cases")
        }
        case_files = {
            r["household_id"]: (r["village_code"], orjson.loads(r["counters"]))
            for r in sql(
                url, "SELECT household_id, village_code, counters::text FROM reporting.cases"
            )
        }
        outbox = [
            str(orjson.loads(r["value"])["id"])
            for r in sql(
                url,
                "SELECT value FROM logbook.outbox WHERE topic = $1 ORDER BY outbox_id",
                LOGBOOK_EVENTS.name,
            )
        ]
        applied_events = {
            r["event_id"] for r in sql(url, "SELECT event_id FROM reporting.logbook_events")
        }
        count = {
            table: int(sql(url, f"SELECT count(*) AS n FROM {table}")[0]["n"])  # noqa: S608
            for table in (
                "logbook.visits",
                "logbook.interventions",
                "logbook.dead_letters",
                "reporting.dead_letters",
            )
        }
        matcher_letters = self.watch.ends((MATCHER_DEAD_LETTER,)) or {}
        inputs = self.watch.ends((BMN_HOUSEHOLDS, WELFARE_REGISTRATIONS, CIVIL_EVENTS)) or {}
        per_topic: Counter[str] = Counter()
        for (topic, _), end in inputs.items():
            per_topic[topic] += end
        return Outcome(
            counters=counters,
            applied=applied,
            cases=cases,
            case_files=case_files,
            outbox_event_ids=outbox,
            applied_event_ids=applied_events,
            visits=count["logbook.visits"],
            interventions=count["logbook.interventions"],
            dead_letters={
                "matcher": sum(matcher_letters.values()),
                "logbook": count["logbook.dead_letters"],
                "reporting": count["reporting.dead_letters"],
            },
            input_messages=dict(per_topic),
        )
