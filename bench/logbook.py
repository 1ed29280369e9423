"""Logbook benchmark: latency of the case list (GET /v1/cases) with 100,000 cases, for every role
and the usual filters and pages. Runs against the local stack's PostgreSQL (make up), in a
database of its own (`logbook_bench`, made afresh each run).

    python -m bench.logbook [--cases N] [--requests R]

The cases are written with COPY, as the rows the status consumer writes (a household status and
its case), spread over every village of the BMN gazetteer; 10 % are crisis households. The
service runs as its own process with its consumer and relay off, so only the list is measured.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import orjson

from bench.common import (
    RESULTS,
    fresh_database,
    latency_summary,
    local_stack_env,
    machine,
    percentile,
    start_service,
    stop,
    write_results,
)
from services.contracts.events import HouseholdStatus
from services.contracts.indicators import DIMENSIONS
from services.logbook.cases import case_id, deprivation_bits
from services.logbook.scope import Role
from services.logbook.store import Store, migrate
from services.logbook.tokens import new_token

DATABASE = "logbook_bench"


def villages() -> list[str]:
    from services.contracts.areas import _village_names  # noqa: PLC0415 (the gazetteer)

    return sorted(_village_names())


def statuses(count: int, seed: int) -> list[HouseholdStatus]:
    rng = random.Random(seed)  # noqa: S311 (synthetic data)
    places = villages()
    made = []
    for n in range(count):
        deprivation = sorted(
            rng.sample(DIMENSIONS, rng.choice((1, 1, 1, 2, 2, 3))), key=DIMENSIONS.index
        )
        crisis = rng.random() < 0.1
        vulnerable = rng.randint(0, 2)
        made.append(
            HouseholdStatus(
                household_id=f"bench-{n}",
                survey_year=2561,
                village_code=places[n % len(places)] if n < len(places) else rng.choice(places),
                source="bmn",
                house_no=f"{n % 300} หมู่ {n % 12 + 1}",
                deprivation=deprivation,
                failed_indicators=[8, 22],
                member_count=3,
                target_members=1,
                registered_members=2,
                unregistered_members=1,
                vulnerable_members=vulnerable,
                mpi_poor=True,
                target=True,
                nocard=False,
                crisis=crisis,
                priority=(1000 if crisis else 0) + len(deprivation) * 10 + vulnerable,
                version=1,
            )
        )
    return made


async def load(database_url: str, count: int) -> None:
    connection = await asyncpg.connect(database_url)
    try:
        rows = statuses(count, seed=2561)
        await connection.copy_records_to_table(
            "households",
            schema_name="logbook",
            columns=["household_id", "survey_year", "version", "village_code", "status"],
            records=[
                (s.household_id, s.survey_year, 1, s.village_code, s.model_dump_json())
                for s in rows
            ],
        )
        now = datetime.now(UTC)
        await connection.copy_records_to_table(
            "cases",
            schema_name="logbook",
            columns=[
                "case_id",
                "household_id",
                "survey_year",
                "reason",
                "status",
                "village_code",
                "crisis",
                "priority",
                "deprivation_bits",
                "opened_at",
                "updated_at",
            ],
            records=[
                (
                    case_id(s.household_id, s.survey_year),
                    s.household_id,
                    s.survey_year,
                    "target",
                    "open",
                    s.village_code,
                    s.crisis,
                    s.priority,
                    deprivation_bits(s.deprivation),
                    now,
                    now,
                )
                for s in rows
            ],
        )
        await connection.execute("ANALYZE logbook.households, logbook.cases")
    finally:
        await connection.close()


async def create_users(
    database_url: str, users: dict[str, tuple[Role, list[str]]]
) -> dict[str, str]:
    store = await Store.connect(database_url, 1)
    try:
        tokens = {}
        for name, (role, areas) in users.items():
            await store.add_user(name, name, role, areas, "bench")
            token = new_token()
            await store.add_token(name, token, "bench", "bench")
            tokens[name] = token.token
        return tokens
    finally:
        await store.close()


async def measure(
    url: str,
    scenarios: dict[str, tuple[str, dict[str, Any]]],
    tokens: dict[str, str],
    requests: int,
) -> dict[str, list[float]]:
    """Closed loop, one request at a time, scenarios in random order; page-3 requests use the
    cursors of pages 1 and 2 fetched beforehand (not timed)."""
    rng = random.Random(7)  # noqa: S311 (request order)
    latencies: dict[str, list[float]] = {name: [] for name in scenarios}
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        cursors: dict[str, str] = {}
        for name, (user, params) in scenarios.items():
            if params.pop("page", None) == 3:
                headers = {"authorization": f"Bearer {tokens[user]}"}
                first = (await client.get("/v1/cases", params=params, headers=headers)).json()
                second = (
                    await client.get(
                        "/v1/cases",
                        params={**params, "cursor": first["next_cursor"]},
                        headers=headers,
                    )
                ).json()
                cursors[name] = second["next_cursor"]
        names = list(scenarios)
        for index in range(requests + 200):
            name = rng.choice(names)
            user, params = scenarios[name]
            if name in cursors:
                params = {**params, "cursor": cursors[name]}
            started = time.perf_counter()
            response = await client.get(
                "/v1/cases", params=params, headers={"authorization": f"Bearer {tokens[user]}"}
            )
            elapsed = (time.perf_counter() - started) * 1000
            response.raise_for_status()
            if index >= 200:  # warm-up excluded
                latencies[name].append(elapsed)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cases", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=4_000)
    args = parser.parse_args()

    env = local_stack_env()
    database_url = asyncio.run(fresh_database(env["DATABASE_URL"], DATABASE))
    env["DATABASE_URL"] = database_url
    migrate(database_url)
    print(f"logbook: loading {args.cases:,} cases…", flush=True)
    started = time.perf_counter()
    asyncio.run(load(database_url, args.cases))
    print(f"  loaded in {time.perf_counter() - started:.1f} s", flush=True)

    in_district = [v for v in villages() if v.startswith("3001")]
    subdistricts = sorted({v[:6] for v in in_district})[:2]
    users: dict[str, tuple[Role, list[str]]] = {
        "national": ("national", ["TH"]),
        "province": ("province", ["30"]),
        "district": ("district", ["3001"]),
        "team": ("team", subdistricts),
    }
    tokens = asyncio.run(create_users(database_url, users))
    village = in_district[0]
    scenarios: dict[str, tuple[str, dict[str, Any]]] = {
        "national, first page": ("national", {}),
        "national, crisis": ("national", {"crisis": "true"}),
        "national, education": ("national", {"dimension": "education"}),
        "national, page 3": ("national", {"page": 3}),
        "province, first page": ("province", {}),
        "province, access, page 3": ("province", {"dimension": "access", "page": 3}),
        "district, first page": ("district", {}),
        "team, first page": ("team", {}),
        "team, one village": ("team", {"village": village}),
    }
    RESULTS.mkdir(exist_ok=True)
    process, url = start_service(
        "logbook", env, RESULTS / "logbook-bench.log", consumer="false", relay="false"
    )
    try:
        print(f"logbook: {args.requests:,} case-list requests, one at a time…", flush=True)
        latencies = asyncio.run(measure(url, scenarios, tokens, args.requests))
    finally:
        stop(process)

    every = [value for values in latencies.values() for value in values]
    results: dict[str, Any] = {
        **machine("logbook"),
        "cases": args.cases,
        "page_size": 50,
        "case_list_latency_ms": latency_summary(every),
        "by_scenario_ms": {
            name: {
                "requests": len(values),
                "p50": round(percentile(values, 0.5), 1),
                "p99": round(percentile(values, 0.99), 1),
            }
            for name, values in latencies.items()
        },
    }
    print(orjson.dumps(results["case_list_latency_ms"]).decode())
    for name, figures in results["by_scenario_ms"].items():
        print(f"  {name:28} {figures}")
    write_results("logbook", results)


if __name__ == "__main__":
    main()
