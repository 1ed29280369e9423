"""What every benchmark shares: the stack to run against, starting a service, an open-loop load,
percentiles, and the results file."""

from __future__ import annotations

import asyncio
import contextlib
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson

from deploy.local import postgres_cluster, stack
from deploy.local.layout import CACHE_ENV, HOME_ENV, StackLayout
from deploy.local.ports import any_free_port

RESULTS = Path(__file__).parent / "results"


def local_stack_env() -> dict[str, str]:
    """The environment with the running local stack's connection settings (make up)."""
    layout = StackLayout.from_env(os.environ)
    stack_env = dict(
        line.split("=", 1)
        for line in layout.env_file.read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    return {**os.environ, **stack_env}


@contextlib.contextmanager
def fresh_stack(home: Path) -> Iterator[dict[str, str]]:
    """A Kafka broker and PostgreSQL of their own (free ports, under `home`), so earlier data on
    the topics does not count; yields the environment to run services with, stops them after."""
    env = {
        **os.environ,
        HOME_ENV: str(home),
        CACHE_ENV: str(StackLayout.from_env(os.environ).cache),
    }
    layout = StackLayout.from_env(env)
    try:
        endpoints = stack.up(layout, env, with_services=False)
        yield {
            **env,
            "KAFKA_BOOTSTRAP_SERVERS": endpoints.kafka_bootstrap,
            "DATABASE_URL": endpoints.database_url,
        }
    finally:
        stack.down(layout, env, stack.INFRASTRUCTURE)
        remove_postgres_data(layout)


def remove_postgres_data(layout: StackLayout) -> None:
    """A throwaway stack's PostgreSQL data: when root runs the stack, the server's user cannot
    enter a private temporary home and the data is kept in /var/tmp instead."""
    data = postgres_cluster.data_folder(layout, postgres_cluster.server_user(create=False))
    if not data.is_relative_to(layout.local):
        shutil.rmtree(data, ignore_errors=True)


async def fresh_database(database_url: str, name: str) -> str:
    """Database `name` on the server of `database_url`, made afresh; returns its URL."""
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await connection.execute(f"CREATE DATABASE {name}")
    finally:
        await connection.close()
    return f"{database_url.rpartition('/')[0]}/{name}"


def start_service(
    name: str, env: dict[str, str], log: Path, **settings: str
) -> tuple[subprocess.Popen[bytes], str]:
    """`python -m services.<name>` on a free port (`<NAME>_PORT`) with `settings` as
    `<NAME>_<KEY>` variables, once its /readyz answers 200."""
    port = any_free_port()
    prefix = name.upper()
    variables = {f"{prefix}_{key.upper()}": value for key, value in settings.items()}
    with log.open("wb") as out:
        process = subprocess.Popen(  # noqa: S603 (a service of this repository)
            [sys.executable, "-m", f"services.{name}"],
            env={
                **env,
                f"{prefix}_PORT": str(port),
                f"{prefix}_LOG_LEVEL": "WARNING",
                **variables,
            },
            stdout=out,
            stderr=out,
        )
    url = f"http://127.0.0.1:{port}"
    if wait_ready(url):
        return process, url
    process.kill()
    raise SystemExit(f"{name} did not become ready; see {log}")


def wait_ready(url: str, seconds: float = 60) -> bool:
    """Whether the service at `url` answers 200 on /readyz within `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return True
        time.sleep(0.2)
    return False


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set so far (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    process.wait(30)


async def open_loop(
    request: Callable[[int], Awaitable[None]], rate: float, count: int
) -> list[float]:
    """Open loop: `request(i)` started every 1/rate s whatever the replies do; returns each
    one's latency in ms, in the order they were started."""
    latencies = [0.0] * count

    async def timed(index: int) -> None:
        started = time.perf_counter()
        await request(index)
        latencies[index] = (time.perf_counter() - started) * 1000

    tasks = []
    begin = time.perf_counter()
    for index in range(count):
        delay = begin + index / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(timed(index)))
    await asyncio.gather(*tasks)
    return latencies


class KeepAliveGets:
    """HTTP/1.1 GETs over a fixed number of keep-alive connections, each request waiting in a
    FIFO for a free one. Far cheaper per request than httpx, whose pool slows down as thousands
    of requests wait for a connection: at hundreds of requests per second on two cores the load
    generator must not be what is measured. Responses must carry Content-Length (FastAPI's do)."""

    def __init__(self, url: str, connections: int) -> None:
        parsed = httpx.URL(url)
        self._host, self._port = parsed.host, parsed.port or 80
        self._count = connections
        self._idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = (
            asyncio.Queue()
        )

    async def __aenter__(self) -> KeepAliveGets:
        for _ in range(self._count):
            self._idle.put_nowait(await asyncio.open_connection(self._host, self._port))
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        while not self._idle.empty():
            _, writer = self._idle.get_nowait()
            writer.close()

    async def get(self, path: str) -> tuple[int, bytes]:
        """The status and body of GET `path`."""
        reader, writer = await self._idle.get()
        try:
            writer.write(f"GET {path} HTTP/1.1\r\nHost: {self._host}\r\n\r\n".encode())
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            headers = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
            body = await reader.readexactly(int(headers["content-length"]))
            return int(lines[0].split(" ", 2)[1]), body
        finally:
            self._idle.put_nowait((reader, writer))


async def timed_gets(url: str, paths: list[str], rate: float, connections: int) -> list[float]:
    """GET each path in turn at `rate` per second (open loop) over keep-alive connections; each
    one's latency in ms. Any answer but 200 ends the run."""
    async with KeepAliveGets(url, connections) as client:

        async def get(index: int) -> None:
            status, body = await client.get(paths[index])
            if status != 200:
                raise SystemExit(f"GET {paths[index]}: {status} {body[:200]!r}")

        return await open_loop(get, rate, len(paths))


def visits(data: dict[str, Any]) -> int:
    """Visits in an area event's progress figures."""
    count: int = data["progress"]["visits"]
    return count


class AreasSeen:
    """The latest `area` event of each followed area on reporting's /v1/stream."""

    def __init__(self) -> None:
        self.latest: dict[str, dict[str, Any]] = {}
        self.changed = asyncio.Condition()
        self.ready = asyncio.Event()

    async def follow(self, client: httpx.AsyncClient, year: int, areas: list[str]) -> None:
        params = {"year": str(year), "areas": ",".join(areas)}
        async with client.stream("GET", "/v1/stream", params=params) as response:
            response.raise_for_status()
            kind = ""
            async for line in response.aiter_lines():
                if line.startswith("event: "):
                    kind = line.removeprefix("event: ")
                elif line.startswith("data: ") and kind == "area":
                    data = orjson.loads(line.removeprefix("data: "))
                    async with self.changed:
                        self.latest[data["area_code"]] = data
                        self.changed.notify_all()
                elif line.startswith("data: ") and kind == "ready":
                    self.ready.set()

    def figure(self, area: str, read: Callable[[dict[str, Any]], int]) -> int:
        """`read` of the area's latest event; 0 before any."""
        data = self.latest.get(area)
        return 0 if data is None else read(data)

    async def until(self, area: str, read: Callable[[dict[str, Any]], int], value: int) -> None:
        """Returns once an event of the area has `read` equal to `value` (at once if the latest
        has)."""
        async with self.changed:
            await self.changed.wait_for(lambda: self.figure(area, read) == value)


def percentile(values: list[float], q: float) -> float:
    """The q-quantile, interpolated between the values (never beyond the largest)."""
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=1000, method="inclusive")[int(q * 1000) - 1]


def latency_summary(values: list[float]) -> dict[str, float]:
    """Count, p50, p99 and max of latencies in ms, to 0.1 ms."""
    return {
        "requests": len(values),
        "p50": round(percentile(values, 0.5), 1),
        "p99": round(percentile(values, 0.99), 1),
        "max": round(max(values), 1),
    }


def machine(benchmark: str) -> dict[str, Any]:
    """What every results file starts with: when, where, and the command."""
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "cores": os.cpu_count(),
        "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024**3, 1),
        "command": " ".join([f"make bench (python -m bench.{benchmark}", *sys.argv[1:]]) + ")",
    }


def write_results(benchmark: str, results: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{datetime.now(UTC):%Y-%m-%d}-{platform.node()}-{benchmark}.json"
    path.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2) + b"\n")
    print(f"wrote {path}")
    return path
