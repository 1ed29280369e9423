"""Ingest benchmarks: NDJSON throughput of one process, single-record latency at a fixed rate,
and peak memory on a large streamed upload. Runs against the local stack (make up).

    python -m bench.ingest [--households N] [--rate R] [--seconds S] [--large-mb M]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson

from bench.common import (
    RESULTS,
    latency_summary,
    local_stack_env,
    machine,
    open_loop,
    peak_rss_mb,
    start_service,
    stop,
    write_results,
)
from services.contracts.citizen_id import with_check_digit
from services.contracts.topics import BMN_HOUSEHOLDS
from services.ingest.api_keys import new_key
from services.ingest.store import Store, migrate

VILLAGES = ("49010101", "49010102", "49020301", "49050601", "30010101", "30020201")
MEMBERS_PER_HOUSEHOLD = 3  # TPMAP 2561: 36.6 M persons in 12.9 M households = 2.8


def households(count: int, run: str) -> Iterator[bytes]:
    """Synthetic NDJSON households; citizen IDs start with 9, never a real ID's category."""
    for n in range(count):
        members = [
            {
                "citizen_id": with_check_digit(f"9{(n * MEMBERS_PER_HOUSEHOLD + m) % 10**11:011d}"),
                "age": (n + m * 23) % 90,
                "sex": "MF"[m % 2],
                "indicators": {"7": "pass", "24": "pass", "25": "fail"}
                if (n + m * 23) % 90 >= 15
                else {},
            }
            for m in range(MEMBERS_PER_HOUSEHOLD)
        ]
        record: dict[str, Any] = {
            "household_id": f"bench-{run}-{n}",
            "survey_year": 2561,
            "village_code": VILLAGES[n % len(VILLAGES)],
            "house_no": f"{n % 300} หมู่ {n % 12 + 1}",
            "income_per_capita_baht": 20_000 + n % 40_000,
            "indicators": {str(i): "pass" for i in (4, 5, 8, 9, 10, 11)},
            "members": members,
        }
        yield orjson.dumps(record) + b"\n"


async def stream_upload(
    url: str, key: str, lines: Iterator[bytes], chunk_bytes: int = 256 * 1024
) -> tuple[dict[str, Any], int]:
    sent = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal sent
        buffer: list[bytes] = []
        size = 0
        for line in lines:
            buffer.append(line)
            size += len(line)
            if size >= chunk_bytes:
                sent += size
                yield b"".join(buffer)
                buffer, size = [], 0
        sent += size
        yield b"".join(buffer)

    async with httpx.AsyncClient(timeout=3600) as client:
        response = await client.post(
            f"{url}/v1/bmn/households",
            content=chunks(),
            headers={"authorization": f"Bearer {key}", "content-type": "application/x-ndjson"},
        )
    response.raise_for_status()
    return response.json(), sent


async def fixed_rate(url: str, key: str, rate: float, seconds: float, run: str) -> list[float]:
    """Single-household POSTs at `rate` per second (open loop); latencies in ms."""
    bodies = list(households(int(rate * seconds), f"{run}-single"))
    headers = {"authorization": f"Bearer {key}", "content-type": "application/x-ndjson"}
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:

        async def post(index: int) -> None:
            response = await client.post(
                f"{url}/v1/bmn/households", content=bodies[index], headers=headers
            )
            response.raise_for_status()

        return await open_loop(post, rate, len(bodies))


async def create_key(database_url: str) -> str:
    store = await Store.connect(database_url)
    try:
        key = new_key()
        await store.add_key(key, "BENCH", ["bmn"], "benchmark")
        return key.token
    finally:
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--households", type=int, default=100_000, help="households in the throughput run"
    )
    parser.add_argument("--rate", type=float, default=200, help="single-record requests per second")
    parser.add_argument("--seconds", type=float, default=20, help="duration of the fixed-rate run")
    parser.add_argument(
        "--large-mb", type=int, default=1024, help="size of the large upload (0 to skip)"
    )
    args = parser.parse_args()

    env = local_stack_env()
    migrate(env["DATABASE_URL"])
    key = asyncio.run(create_key(env["DATABASE_URL"]))
    run = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    RESULTS.mkdir(exist_ok=True)
    results: dict[str, Any] = {**machine("ingest"), "topic": BMN_HOUSEHOLDS.name}

    process, url = start_service("ingest", env, RESULTS / "ingest-bench.log", raw_consumer="false")
    try:
        print(
            f"ingest: NDJSON throughput, {args.households:,} households of {MEMBERS_PER_HOUSEHOLD} members…",
            flush=True,
        )
        started = time.perf_counter()
        reply, sent = asyncio.run(stream_upload(url, key, households(args.households, run)))
        elapsed = time.perf_counter() - started
        if reply["accepted"] != args.households:
            raise SystemExit(f"ingest accepted {reply['accepted']} of {args.households}: {reply}")
        members = args.households * MEMBERS_PER_HOUSEHOLD
        results["ndjson_throughput"] = {
            "households": args.households,
            "members": members,
            "bytes": sent,
            "seconds": round(elapsed, 2),
            "members_per_second": round(members / elapsed),
            "households_per_second": round(args.households / elapsed),
            "mb_per_second": round(sent / elapsed / 1e6, 1),
        }
        print(f"  {results['ndjson_throughput']}", flush=True)

        print(f"ingest: single-record POSTs at {args.rate:g}/s for {args.seconds:g} s…", flush=True)
        latencies = asyncio.run(fixed_rate(url, key, args.rate, args.seconds, run))
        results["single_record_latency_ms"] = {
            "rate_per_second": args.rate,
            **latency_summary(latencies),
        }
        print(f"  {results['single_record_latency_ms']}", flush=True)

        if args.large_mb:
            count = args.large_mb * 1024 * 1024 // len(next(households(1, run)))
            print(
                f"ingest: large upload, {args.large_mb} MB ({count:,} households), peak memory…",
                flush=True,
            )
            started = time.perf_counter()
            reply, sent = asyncio.run(stream_upload(url, key, households(count, f"{run}-large")))
            results["large_upload"] = {
                "mebibytes": round(sent / 1024**2),
                "households": reply["accepted"],
                "seconds": round(time.perf_counter() - started, 1),
                "ingest_peak_rss_mb": round(peak_rss_mb(process.pid)),
            }
            print(f"  {results['large_upload']}", flush=True)
    finally:
        stop(process)
    write_results("ingest", results)


if __name__ == "__main__":
    main()
