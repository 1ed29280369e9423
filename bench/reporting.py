"""Reporting benchmark: events applied per second by the consumer, area-summary latency at a
fixed rate (`GET /v1/areas/{code}`), and the time from a logbook write (HTTP to the logbook
service) to its Server-Sent Event reaching a client of `/v1/stream`. A fresh local stack of its
own (as bench.matcher), so earlier data on the topics does not count.

    python -m bench.reporting [--households N] [--rates R ...] [--seconds S] [--writes W]

The population is bench.logbook's: N target households (three members: target, registered
poor, unregistered poor) over every village of the gazetteer, and for each a case opened, a
visit and an intervention on logbook.events.v1. Statuses and logbook events are produced while
reporting is stopped and applied after it starts, each kind on its own; the rate runs from the
first applied batch to the end of the topics. The logbook service gets the same cases (its
database loaded as bench.logbook loads it) and publishes each visit through its outbox relay.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import tempfile
import time
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from kafka import KafkaProducer
from pydantic import BaseModel

from bench.common import (
    AreasSeen,
    fresh_database,
    fresh_stack,
    latency_summary,
    machine,
    start_service,
    stop,
    timed_gets,
    visits,
    write_results,
)
from bench.logbook import create_users, load, statuses
from services.contracts.areas import parent_chain
from services.contracts.citizen_id import with_check_digit
from services.contracts.events import (
    CaseOpened,
    HouseholdStatus,
    InterventionRecorded,
    LogbookEvent,
    LogbookEventData,
    PersonStatus,
    VisitRecorded,
    envelope,
)
from services.contracts.topics import (
    HOUSEHOLD_STATUS,
    LOGBOOK_EVENTS,
    PERSON_STATUS,
    TopicSpec,
)
from services.logbook.cases import case_id
from services.logbook.store import migrate as migrate_logbook

SURVEY_YEAR = 2561
SEED = 2561  # bench.logbook's: both services get the same households
WARM_UP_SECONDS = 2  # of the area run, not kept
LEVELS = ("country", "province", "district", "subdistrict", "village")
Message = tuple[TopicSpec, str, BaseModel]  # (topic, key, payload)
# The stream sends a keep-alive every 15 s: a read waits longer than that.
_STREAM_TIMEOUT = httpx.Timeout(10, read=60)


def persons(household: HouseholdStatus, n: int) -> list[PersonStatus]:
    """The household's three members; citizen IDs start with 9, never a real ID's category."""
    classes = (
        ("target", "verified"),
        ("registered_poor", "registered"),
        ("unregistered_poor", None),
    )
    return [
        PersonStatus.model_validate(
            {
                "citizen_id": with_check_digit(f"9{n * len(classes) + m:011d}"),
                "survey_year": household.survey_year,
                "household_id": household.household_id,
                "village_code": household.village_code,
                "person_class": person_class,
                "deprivation": household.deprivation,
                "failed_indicators": household.failed_indicators,
                "applicable_indicators": [4, 5, 8, 9, 10, 11, 22],
                "welfare_status": welfare,
                "age_band": ("15-59", "60+", "6-14")[m],
                "disabled": m == 1,
                "version": 1,
            }
        )
        for m, (person_class, welfare) in enumerate(classes)
    ]


def status_messages(households: list[HouseholdStatus]) -> Iterator[Message]:
    for n, household in enumerate(households):
        yield HOUSEHOLD_STATUS, f"{household.household_id}:{SURVEY_YEAR}", household
        for person in persons(household, n):
            yield PERSON_STATUS, f"{person.citizen_id}:{SURVEY_YEAR}", person


def logbook_messages(households: list[HouseholdStatus]) -> Iterator[Message]:
    """A case opened, a visit and an intervention per household, as the logbook sends them."""
    started = datetime(2019, 1, 7, tzinfo=UTC)
    for n, household in enumerate(households):
        base = {
            "household_id": household.household_id,
            "survey_year": SURVEY_YEAR,
            "village_code": household.village_code,
            "case_id": case_id(household.household_id, SURVEY_YEAR),
            "actor": "bench",
        }
        at = started + timedelta(seconds=n)
        events: list[LogbookEvent] = [
            CaseOpened(**base, occurred_at=at, reason="target"),
            VisitRecorded(
                **base, occurred_at=at, visit_id=f"v{n}", visited_on=at.date() + timedelta(1)
            ),
            InterventionRecorded(
                **base,
                occurred_at=at,
                intervention_id=f"i{n}",
                dimension=household.deprivation[0],
                agency_code=("CDD", "DSDW", "DOP")[n % 3],
                amount_baht=float(1000 + n % 5000),
                status="done" if n % 2 else "planned",
            ),
        ]
        for event in events:
            yield LOGBOOK_EVENTS, household.household_id, LogbookEventData(event=event)


def produce(bootstrap: str, messages: Iterable[Message]) -> int:
    producer = KafkaProducer(
        bootstrap_servers=bootstrap, acks="all", linger_ms=20, batch_size=512 * 1024
    )
    count = 0
    for topic, key, payload in messages:
        wrapped = envelope(topic.require_event_type(), "/bench", payload, subject=key)
        producer.send(topic.name, key=key.encode(), value=wrapped.model_dump_json().encode())
        count += 1
    producer.flush()
    producer.close()
    return count


async def count(database_url: str, sql: str, *args: object) -> int:
    connection = await asyncpg.connect(database_url)
    try:
        found: int = await connection.fetchval(sql, *args)
        return found
    finally:
        await connection.close()


def applied(database_url: str, topics: tuple[TopicSpec, ...]) -> int:
    """Messages of `topics` reporting has applied (its offsets in PostgreSQL)."""
    return asyncio.run(
        count(
            database_url,
            """SELECT coalesce(sum(next_offset), 0)::bigint FROM reporting.consumer_offsets
               WHERE topic = ANY($1::text[])""",
            [t.name for t in topics],
        )
    )


def dirty_areas(database_url: str) -> int:
    return asyncio.run(count(database_url, "SELECT count(*) FROM reporting.dirty_areas"))


def apply_rate(
    database_url: str, topics: tuple[TopicSpec, ...], end: int, timeout: float = 1800
) -> dict[str, float]:
    """Waits until reporting has applied `topics` to `end`; the rate from the first batch seen
    applied to the last."""
    deadline = time.monotonic() + timeout
    baseline = applied(database_url, topics)
    first: tuple[float, int] | None = None
    while True:
        done = applied(database_url, topics)
        now = time.perf_counter()
        if first is None and done > baseline:
            first = (now, done)
        if done >= end and first is not None:
            seconds = now - first[0]
            count = done - first[1]
            return {
                "messages": done - baseline,
                "seconds": round(seconds, 1),
                "per_second": round(count / seconds) if seconds else float("nan"),
            }
        if time.monotonic() > deadline:
            raise SystemExit(f"reporting applied {done} of {end} in {timeout:.0f} s")
        time.sleep(0.25)


def publishing(database_url: str, timeout: float = 1800) -> dict[str, float]:
    """Waits until every changed area is published (the measurements after it see a service at
    rest, and a write's areas do not queue behind a backlog); how many and how fast."""
    deadline = time.monotonic() + timeout
    started = time.perf_counter()
    waiting = first = dirty_areas(database_url)
    while waiting:
        if time.monotonic() > deadline:
            raise SystemExit(f"{waiting} areas still unpublished after {timeout:.0f} s")
        time.sleep(0.5)
        waiting = dirty_areas(database_url)
    seconds = time.perf_counter() - started
    return {
        "areas": first,
        "seconds": round(seconds, 1),
        "per_second": round(first / seconds) if seconds else float("nan"),
    }


def area_codes(households: list[HouseholdStatus]) -> dict[str, list[str]]:
    """Every area with households, by level."""
    by_level: dict[str, set[str]] = {level: set() for level in LEVELS}
    for household in households:
        for level, code in zip(LEVELS, parent_chain(household.village_code), strict=True):
            by_level[level].add(code)
    return {level: sorted(codes) for level, codes in by_level.items()}


async def area_latency(
    url: str, codes: dict[str, list[str]], rate: float, seconds: float
) -> dict[str, list[float]]:
    """GET /v1/areas/{code} at `rate` per second, each level in turn, a random area of it; the
    first WARM_UP_SECONDS warm up and are not kept. Latencies in ms by level."""
    rng = random.Random(7)  # noqa: S311 (request order)
    warm_up = int(rate * WARM_UP_SECONDS)
    levels = [LEVELS[i % len(LEVELS)] for i in range(warm_up + int(rate * seconds))]
    paths = [f"/v1/areas/{rng.choice(codes[level])}?year={SURVEY_YEAR}" for level in levels]
    latencies = await timed_gets(url, paths, rate, connections=100)
    by_level: dict[str, list[float]] = {level: [] for level in LEVELS}
    for level, latency in list(zip(levels, latencies, strict=True))[warm_up:]:
        by_level[level].append(latency)
    return by_level


async def write_to_event(
    logbook_url: str,
    reporting_url: str,
    token: str,
    cases: list[HouseholdStatus],
    writes: int,
) -> tuple[list[float], list[float]]:
    """One visit at a time through the logbook's API, to the `area` event of its village on
    /v1/stream; returns those latencies and the POSTs' own, in ms."""
    rng = random.Random(11)  # noqa: S311 (pauses)
    seen = AreasSeen()
    villages = sorted({c.village_code for c in cases})
    headers = {"authorization": f"Bearer {token}"}
    to_event: list[float] = []
    posts: list[float] = []
    async with (
        httpx.AsyncClient(base_url=reporting_url, timeout=_STREAM_TIMEOUT) as stream_client,
        httpx.AsyncClient(base_url=logbook_url, timeout=30, headers=headers) as logbook,
    ):
        reader = asyncio.create_task(seen.follow(stream_client, SURVEY_YEAR, villages))
        try:
            await asyncio.wait_for(seen.ready.wait(), 60)
            for index in range(writes):
                case = cases[index % len(cases)]
                before = seen.figure(case.village_code, visits)
                started = time.perf_counter()
                response = await logbook.post(
                    f"/v1/cases/{case_id(case.household_id, SURVEY_YEAR)}/visits",
                    json={"visited_on": "2019-01-15", "team_member": "bench"},
                )
                posts.append((time.perf_counter() - started) * 1000)
                response.raise_for_status()
                await asyncio.wait_for(seen.until(case.village_code, visits, before + 1), 30)
                to_event.append((time.perf_counter() - started) * 1000)
                await asyncio.sleep(rng.uniform(0.1, 0.3))
        finally:
            reader.cancel()
    return to_event, posts


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--households", type=int, default=20_000)
    parser.add_argument(
        "--rates",
        type=float,
        nargs="+",
        default=[200, 500],
        help="area requests per second, one run each (500: the goal's; 200: below saturation)",
    )
    parser.add_argument("--seconds", type=float, default=20, help="duration of each area run")
    parser.add_argument("--writes", type=int, default=200, help="logbook writes timed to SSE")
    args = parser.parse_args()

    households = statuses(args.households, SEED)
    results: dict[str, Any] = {**machine("reporting"), "households": args.households}
    folder = Path(tempfile.mkdtemp(prefix="tpmap-bench-reporting-"))
    try:
        with fresh_stack(folder / "stack") as env:
            run(env, folder, households, args, results)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    write_results("reporting", results)


def run(
    env: dict[str, str],
    folder: Path,
    households: list[HouseholdStatus],
    args: argparse.Namespace,
    results: dict[str, Any],
) -> None:
    bootstrap = env["KAFKA_BOOTSTRAP_SERVERS"]
    reporting_env = {
        **env,
        "DATABASE_URL": asyncio.run(fresh_database(env["DATABASE_URL"], "reporting_bench")),
    }
    database_url = reporting_env["DATABASE_URL"]
    log = folder / "reporting.log"
    status_topics = (PERSON_STATUS, HOUSEHOLD_STATUS)

    print(f"reporting: {args.households:,} households, their statuses…", flush=True)
    sent = produce(bootstrap, status_messages(households))
    process, url = start_service("reporting", reporting_env, log)
    try:
        results["statuses_applied"] = apply_rate(database_url, status_topics, sent)
        print(f"  {results['statuses_applied']}", flush=True)
    finally:
        stop(process)

    print("reporting: logbook events…", flush=True)
    sent = produce(bootstrap, logbook_messages(households))
    process, url = start_service("reporting", reporting_env, log)
    try:
        results["logbook_events_applied"] = apply_rate(database_url, (LOGBOOK_EVENTS,), sent)
        print(f"  {results['logbook_events_applied']}", flush=True)
        results["areas_published"] = publishing(database_url)
        print(f"  then areas published: {results['areas_published']}", flush=True)

        codes = area_codes(households)
        results["area_latency_ms"] = [
            area_run(url, codes, rate, args.seconds) for rate in args.rates
        ]

        results["write_to_sse_ms"] = logbook_to_stream(env, folder, households, url, args.writes)
        print(f"  {results['write_to_sse_ms']}", flush=True)
    finally:
        stop(process)


def area_run(url: str, codes: dict[str, list[str]], rate: float, seconds: float) -> dict[str, Any]:
    print(f"reporting: GET /v1/areas/{{code}} at {rate:g}/s for {seconds:g} s…", flush=True)
    started = time.perf_counter()
    by_level = asyncio.run(area_latency(url, codes, rate, seconds))
    # Served per second over the whole run (warm-up included): below the rate when it lags.
    served = rate * (seconds + WARM_UP_SECONDS) / (time.perf_counter() - started)
    every = [value for values in by_level.values() for value in values]
    result = {
        "rate_per_second": rate,
        "served_per_second": round(served),
        **latency_summary(every),
        "by_level": {level: latency_summary(values) for level, values in by_level.items()},
    }
    print(f"  {result}", flush=True)
    return result


def logbook_to_stream(
    env: dict[str, str],
    folder: Path,
    households: list[HouseholdStatus],
    reporting_url: str,
    writes: int,
) -> dict[str, Any]:
    """The logbook with the same cases (relay on, consumer off), a province user, and visits to
    ten cases of one province in turn, each timed to its event on /v1/stream."""
    database_url = asyncio.run(fresh_database(env["DATABASE_URL"], "logbook_bench_reporting"))
    migrate_logbook(database_url)
    asyncio.run(load(database_url, len(households)))
    province = households[0].village_code[:2]
    cases = list(
        {h.village_code: h for h in households if h.village_code.startswith(province)}.values()
    )[:10]
    tokens = asyncio.run(create_users(database_url, {"bench-province": ("province", [province])}))
    logbook_env = {**env, "DATABASE_URL": database_url}
    print(f"reporting: {writes} logbook writes, each to its SSE event…", flush=True)
    process, logbook_url = start_service(
        "logbook", logbook_env, folder / "logbook.log", consumer="false"
    )
    try:
        to_event, posts = asyncio.run(
            write_to_event(logbook_url, reporting_url, tokens["bench-province"], cases, writes)
        )
    finally:
        stop(process)
    return {**latency_summary(to_event), "visit_post": latency_summary(posts)}


if __name__ == "__main__":
    main()
