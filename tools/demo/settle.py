"""Waiting until the platform has taken in what was loaded: the matcher's consumer group has
committed every record of its inputs and the reporting service has applied every status and
logbook event (its `/v1/freshness`), twice in a row with nothing new arriving in between."""

from __future__ import annotations

import http.client
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import orjson
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from services.contracts.topics import (
    BMN_HOUSEHOLDS,
    CIVIL_EVENTS,
    MATCHER_MEMBER_FACTS,
    MATCHER_MEMBERSHIPS,
    WELFARE_REGISTRATIONS,
)

MATCHER_GROUP = "tpmap-matcher"  # services/matcher/worker.py's APP_ID
MATCHER_INPUTS = (
    BMN_HOUSEHOLDS,
    WELFARE_REGISTRATIONS,
    CIVIL_EVENTS,
    MATCHER_MEMBERSHIPS,
    MATCHER_MEMBER_FACTS,
)
_POLL_SECONDS = 2.0


class NotSettledError(TimeoutError):
    """The platform did not take in everything within the time allowed."""


@dataclass(frozen=True, slots=True)
class Progress:
    surveys_matched: int  # survey records the matcher has committed
    surveys_loaded: int
    matcher_lag: int  # records of all its inputs not yet committed
    reporting_lag: int | None  # None while reporting cannot say
    input_ends: tuple[int, ...]

    @property
    def settled(self) -> bool:
        return self.matcher_lag == 0 and self.reporting_lag == 0

    def line(self, rate: float) -> str:
        share = 100 * self.surveys_matched / max(self.surveys_loaded, 1)
        reporting = "unknown" if self.reporting_lag is None else f"{self.reporting_lag:,}"
        return (
            f"matcher: {self.surveys_matched:,} / {self.surveys_loaded:,} surveys ({share:.0f} %), "
            f"{rate:,.0f}/s, {self.matcher_lag:,} records waiting; reporting: {reporting} waiting"
        )


class Watcher:
    """Reads the matcher's lag from the broker and the reporting service's from its API."""

    def __init__(self, bootstrap: str, reporting_url: str) -> None:
        self._admin = KafkaAdminClient(bootstrap_servers=bootstrap)
        self._consumer = KafkaConsumer(bootstrap_servers=bootstrap)
        self._reporting = urlsplit(reporting_url)
        self._partitions = [
            TopicPartition(spec.name, p) for spec in MATCHER_INPUTS for p in range(spec.partitions)
        ]

    def close(self) -> None:
        self._admin.close()
        self._consumer.close()

    def progress(self) -> Progress:
        ends = self._consumer.end_offsets(self._partitions)
        try:
            groups = self._admin.list_group_offsets(MATCHER_GROUP)
        except KafkaError:
            groups = {}
        committed = {tp: meta.offset for tp, meta in groups.get(MATCHER_GROUP, {}).items()}
        done = {tp: min(max(committed.get(tp, 0), 0), ends[tp]) for tp in self._partitions}
        surveys = [tp for tp in self._partitions if tp.topic == BMN_HOUSEHOLDS.name]
        return Progress(
            surveys_matched=sum(done[tp] for tp in surveys),
            surveys_loaded=sum(ends[tp] for tp in surveys),
            matcher_lag=sum(ends[tp] - done[tp] for tp in self._partitions),
            reporting_lag=self._reporting_lag(),
            input_ends=tuple(ends[tp] for tp in self._partitions),
        )

    def _reporting_lag(self) -> int | None:
        connection = http.client.HTTPConnection(
            self._reporting.hostname or "127.0.0.1", self._reporting.port or 80, timeout=10
        )
        try:
            connection.request("GET", "/v1/freshness")
            reply = connection.getresponse()
            lag = orjson.loads(reply.read()).get("consumer_lag") if reply.status == 200 else None
        except (OSError, http.client.HTTPException, ValueError):
            return None
        finally:
            connection.close()
        return lag if isinstance(lag, int) else None


def wait_until_settled(
    bootstrap: str,
    reporting_url: str,
    report: Callable[[str], None],
    *,
    timeout_seconds: float = 1800,
    report_every_seconds: float = 10,
) -> float:
    """Seconds until everything loaded is matched and reported; `report` gets a progress line
    every `report_every_seconds`. Raises NotSettledError after `timeout_seconds`."""
    watcher = Watcher(bootstrap, reporting_url)
    started = last_report = time.monotonic()
    previous: Progress | None = None
    last_matched = 0
    try:
        while True:
            progress = watcher.progress()
            now = time.monotonic()
            # Settled twice in a row with the same inputs: nothing was still in flight between.
            if progress.settled and previous is not None and previous == progress:
                report(progress.line(0))
                return now - started
            if now - last_report >= report_every_seconds:
                rate = (progress.surveys_matched - last_matched) / (now - last_report)
                report(progress.line(rate))
                last_report, last_matched = now, progress.surveys_matched
            if now - started > timeout_seconds:
                msg = f"not settled after {timeout_seconds:.0f} s: {progress.line(0)}"
                raise NotSettledError(msg)
            previous = progress
            time.sleep(_POLL_SECONDS)
    finally:
        watcher.close()
