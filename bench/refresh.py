"""National-scale benchmark: a full refresh of a calibrated province through the whole platform
(ingest → matcher → reporting), with one and with two matcher and reporting workers, projected to
the country; freshness idle and under that load; the read API; memory; and the same figures
recomputed the batch way, by one SQL pass in PostgreSQL.

    python -m bench.refresh [--province 30] [--scale 1] [--workers 1 2] [--probes 20]
                            [--read-rate 100] [--read-seconds 20]

Each worker count gets a fresh local stack (Kafka, PostgreSQL and every service, under a
temporary home) and the same generated population (`python -m tools.demo generate`, kept in
.local/bench/ for the next run), loaded through ingest's HTTP API as `make run` loads it.

Freshness is timed on a probe household of its own, in a village outside the province (49010101),
so that nothing else changes its figures: a welfare registration flipped between verified and
registered (POST to ingest → its `target_persons` on reporting's /v1/stream), and a visit written
to the logbook (POST → its `progress.visits` on the stream). Under load, the probes run one after
another from the start of the load until the matcher has committed every survey.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import itertools
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
from kafka import KafkaConsumer

from bench.common import (
    AreasSeen,
    latency_summary,
    machine,
    peak_rss_mb,
    remove_postgres_data,
    timed_gets,
    visits,
    wait_ready,
    write_results,
)
from bench.matcher import latest_value_bytes, total
from bench.reporting import publishing
from deploy.local import kafka_broker, postgres_cluster, processes, stack
from deploy.local.connection_files import read_credentials
from deploy.local.layout import CACHE_ENV, HOME_ENV, StackLayout
from deploy.local.ports import any_free_port
from services.contracts.areas import COUNTRY_CODE, level_of, parent_chain
from services.contracts.citizen_id import with_check_digit
from services.contracts.topics import HOUSEHOLD_STATUS, MATCHER_PERSON_STATE, PERSON_STATUS
from services.logbook.cases import case_id
from tools.demo.files import CONTENT_TYPES
from tools.demo.generate import Request, already_generated, generate
from tools.demo.load import SourceResult, ingest_access, load
from tools.demo.published import DEFAULT_DATA_DIR, tpmap_dir
from tools.demo.settle import Progress, Watcher

SURVEY_YEAR = 2561
SEED = 2561  # tools.demo's default
POPULATIONS = Path(".local/bench")
# A village outside the province loaded, so that only the probe changes its figures; in province
# 49, where the logbook's development province user may write.
PROBE_VILLAGE = "49010101"
PROBE_HOUSEHOLD = "bench-probe-1"
PROBE_CITIZEN = with_check_digit("999999999001")  # starts with 9: no real ID's category
PROBE_TIMEOUT_SECONDS = 1800  # under load a probe waits behind the backlog it joined
POLL_SECONDS = 2.0
LEVELS = ("province", "district", "subdistrict", "village")


@dataclass
class Timeline:
    """What the sampler saw, in seconds from the start of the load."""

    last: Progress | None = None  # the sampler's last reading
    loaded: float | None = None  # ingest answered the last request
    matched: float | None = None  # then the matcher had committed every input
    settled: float | None = None  # then reporting had applied everything, twice in a row
    load_results: dict[str, SourceResult] = field(default_factory=dict)


# -- the platform under test ---------------------------------------------------------------


@dataclass
class Platform:
    layout: StackLayout
    env: dict[str, str]  # what a service of this stack is started with
    credentials: dict[str, Any]
    extra: dict[str, subprocess.Popen[bytes]]  # the second workers, by name

    @property
    def bootstrap(self) -> str:
        return self.env["KAFKA_BOOTSTRAP_SERVERS"]

    @property
    def database_url(self) -> str:
        return self.env["DATABASE_URL"]

    def url(self, service: str) -> str:
        return str(self.credentials[service]["url"])

    def processes(self) -> dict[str, int]:
        """Each process of the platform by name (PostgreSQL: its postmaster)."""
        found = {
            name: pid
            for name in ("ingest", "matcher", "logbook", "reporting")
            if (pid := processes.running_pid(self.layout.pid_file(name))) is not None
        }
        found.update({name: process.pid for name, process in self.extra.items()})
        if (kafka := kafka_broker.running_pid(self.layout)) is not None:
            found["kafka"] = kafka
        user = postgres_cluster.server_user(create=False)
        data = postgres_cluster.data_folder(self.layout, user)
        if (postgres := postgres_cluster.running_pid(data)) is not None:
            found["postgres"] = postgres
        return found


@contextlib.contextmanager
def platform(home: Path, workers: int) -> Iterator[Platform]:
    """A fresh stack under `home` with every service, and `workers - 1` more matcher and
    reporting workers."""
    env = {
        **os.environ,
        HOME_ENV: str(home),
        CACHE_ENV: str(StackLayout.from_env(os.environ).cache),
        **{f"{name}_PORT": str(any_free_port()) for name in ("INGEST", "LOGBOOK", "REPORTING")},
    }
    layout = StackLayout.from_env(env)
    extra: dict[str, subprocess.Popen[bytes]] = {}
    try:
        endpoints = stack.up(layout, env, with_services=True)
        service_env = {**env, **endpoints.environment()}
        for n in range(2, workers + 1):
            extra[f"matcher-{n}"] = _spawn(
                ["services.matcher"],
                {**service_env, "MATCHER_DATA_DIR": str(layout.local / f"matcher-{n}")},
                layout.logs / f"matcher-{n}.log",
            )
            extra[f"reporting-{n}"] = _spawn(
                ["services.reporting", "worker"], service_env, layout.logs / f"reporting-{n}.log"
            )
        running = Platform(layout, service_env, read_credentials(layout.credentials_file), extra)
        for service in ("ingest", "logbook", "reporting"):
            if not wait_ready(running.url(service)):
                raise SystemExit(f"{service} did not become ready; see {layout.logs}")
        yield running
    finally:
        for process in extra.values():
            process.terminate()
        for process in extra.values():
            process.wait(60)
        stack.down(layout, env)
        remove_postgres_data(layout)


def _spawn(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(  # noqa: S603 (a service of this repository)
            [sys.executable, "-m", *argv], env=env, stdout=out, stderr=out
        )


# -- the population ------------------------------------------------------------------------


def population(province: str, scale: float) -> Path:
    """The calibrated population's folder, generated on first use."""
    request = Request(
        (province,),
        scale,
        SEED,
        DEFAULT_DATA_DIR,
        POPULATIONS / f"population-{province}-scale{scale:g}",
        "ndjson",
    )
    if already_generated(request):
        print(f"using the population in {request.out}", flush=True)
    else:
        summary = generate(request, lambda line: print(f"  {line}", flush=True))
        print(f"generated {summary.households:,} households in {summary.seconds:.0f} s")
    return request.out


def national_figures() -> dict[str, int]:
    """TPMAP 2561's country totals (../shared/data/tpmap-2561/country/61_country_common.csv)."""
    path = tpmap_dir(DEFAULT_DATA_DIR) / "country" / "61_country_common.csv"
    with path.open(encoding="utf-8") as rows:
        row = next(csv.DictReader(rows))
    return {
        "households": int(row["household.CNT"]),
        "persons": int(row["HOUSEMEMBER_CNT"]),
        "welfare_registered": int(row["MOF_REG_CNT"]),
    }


# -- freshness probes ----------------------------------------------------------------------


def target_persons(data: dict[str, Any]) -> int:
    count: int = data["target_persons"]
    return count


@dataclass
class Probes:
    ingest: httpx.AsyncClient
    logbook: httpx.AsyncClient
    seen: AreasSeen
    keys: dict[str, str]
    village: str
    verified: bool = False

    async def _post_ingest(self, source: str, path: str, record: dict[str, Any]) -> None:
        reply = await self.ingest.post(
            path,
            content=orjson.dumps(record) + b"\n",
            headers={
                "authorization": f"Bearer {self.keys[source]}",
                "content-type": CONTENT_TYPES["ndjson"],
            },
        )
        if reply.status_code != 200 or reply.json().get("accepted") != 1:
            raise SystemExit(f"probe {source} record refused: {reply.status_code} {reply.text}")

    async def set_up(self) -> None:
        """The probe household (one poor member) and a verified registration: a target person,
        and a case in the logbook."""
        await self._post_ingest(
            "bmn",
            "/v1/bmn/households",
            {
                "household_id": PROBE_HOUSEHOLD,
                "survey_year": SURVEY_YEAR,
                "village_code": self.village,
                "house_no": "1 หมู่ 1",
                "income_per_capita_baht": 20_000,
                "indicators": {str(i): "pass" for i in (4, 5, 8, 9, 10, 11)},
                "members": [
                    {
                        "citizen_id": PROBE_CITIZEN,
                        "age": 40,
                        "sex": "F",
                        "indicators": {"7": "pass", "24": "pass", "25": "fail"},
                    }
                ],
            },
        )
        await self.welfare_change()
        case = f"/v1/cases/{case_id(PROBE_HOUSEHOLD, SURVEY_YEAR)}"
        for _ in range(300):
            if (await self.logbook.get(case)).status_code == 200:
                return
            await asyncio.sleep(0.2)
        raise SystemExit("the probe household's case did not reach the logbook")

    async def welfare_change(self) -> float:
        """Flips the probe's registration (verified ↔ registered); seconds to its event."""
        self.verified = not self.verified
        started = time.perf_counter()
        await self._post_ingest(
            "welfare",
            "/v1/welfare/registrations",
            {
                "citizen_id": PROBE_CITIZEN,
                "round": 2560,
                "status": "verified" if self.verified else "registered",
                "updated_at": datetime.now(UTC).isoformat(),
            },
        )
        await asyncio.wait_for(
            self.seen.until(self.village, target_persons, int(self.verified)),
            PROBE_TIMEOUT_SECONDS,
        )
        return time.perf_counter() - started

    async def visit(self) -> float:
        """A visit to the probe's case (while it is a target); seconds to its event."""
        before = self.seen.figure(self.village, visits)
        started = time.perf_counter()
        reply = await self.logbook.post(
            f"/v1/cases/{case_id(PROBE_HOUSEHOLD, SURVEY_YEAR)}/visits",
            json={"visited_on": "2019-01-15", "team_member": "bench"},
        )
        reply.raise_for_status()
        await asyncio.wait_for(
            self.seen.until(self.village, visits, before + 1), PROBE_TIMEOUT_SECONDS
        )
        return time.perf_counter() - started

    async def round(self, welfare: list[float], logbook: list[float]) -> None:
        """A visit, then the registration flipped away and back (the case stays a target's)."""
        logbook.append(await self.visit())
        welfare.append(await self.welfare_change())
        welfare.append(await self.welfare_change())


@contextlib.asynccontextmanager
async def probes(running: Platform) -> Any:
    _, keys = ingest_access(running.credentials)
    token = running.credentials["logbook"]["tokens"]["province"]  # province 49's user
    seen = AreasSeen()
    async with (
        httpx.AsyncClient(base_url=running.url("ingest"), timeout=60) as ingest,
        httpx.AsyncClient(
            base_url=running.url("logbook"),
            timeout=60,
            headers={"authorization": f"Bearer {token}"},
        ) as logbook,
        httpx.AsyncClient(
            base_url=running.url("reporting"), timeout=httpx.Timeout(10, read=60)
        ) as stream,
    ):
        reader = asyncio.create_task(seen.follow(stream, SURVEY_YEAR, [PROBE_VILLAGE]))
        try:
            await asyncio.wait_for(seen.ready.wait(), 60)
            probe = Probes(ingest, logbook, seen, keys, PROBE_VILLAGE)
            await probe.set_up()
            yield probe
        finally:
            reader.cancel()


def milliseconds(seconds: list[float]) -> dict[str, float]:
    return latency_summary([s * 1000 for s in seconds]) if seconds else {"requests": 0}


# -- one full refresh ----------------------------------------------------------------------


def sample(
    running: Platform, timeline: Timeline, started: float, surveys_done: threading.Event
) -> None:
    """Progress every POLL_SECONDS until settled: the times the matcher and reporting finished;
    sets `surveys_done` once the matcher has committed every survey loaded."""
    watcher = Watcher(running.bootstrap, running.url("reporting"))
    previous: Progress | None = None
    last_print = 0.0
    try:
        while timeline.settled is None:
            progress = watcher.progress()
            now = time.perf_counter() - started
            timeline.last = progress
            if timeline.loaded is not None:
                # Every survey committed: the probes stop (their own records keep the lag above
                # 0), and the matcher is done once the rest of its inputs are.
                if progress.surveys_matched >= progress.surveys_loaded:
                    surveys_done.set()
                    if timeline.matched is None and progress.matcher_lag == 0:
                        timeline.matched = now
                if timeline.matched is not None and progress.settled and previous == progress:
                    timeline.settled = now
            if now - last_print >= 30:
                print(f"  {now:5.0f} s  {progress.line(0)}", flush=True)
                last_print = now
            previous = progress
            time.sleep(POLL_SECONDS)
    finally:
        watcher.close()


def cpu_seconds(pid: int) -> float:
    """CPU time of a process and its reaped children (PostgreSQL's ended backends)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(v) for v in fields[11:15])  # utime stime cutime cstime
    live_children = 0.0
    for child in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError, IndexError):
            stat = (child / "stat").read_text().rsplit(")", 1)[1].split()
            if int(stat[1]) == pid:
                live_children += sum(int(v) for v in stat[11:13])
    return (ticks + live_children) / os.sysconf("SC_CLK_TCK")


async def full_refresh(
    running: Platform, folder: Path, probe_rounds: int
) -> tuple[Timeline, dict[str, Any]]:
    """Idle probes, then the load with probes running until the matcher has committed every
    survey, then wait until reporting has applied everything."""
    welfare_idle: list[float] = []
    logbook_idle: list[float] = []
    welfare_load: list[float] = []
    logbook_load: list[float] = []
    timeline = Timeline()
    surveys_done = threading.Event()
    async with probes(running) as probe:
        print(f"  {probe_rounds} probe rounds idle…", flush=True)
        for _ in range(probe_rounds):
            await probe.round(welfare_idle, logbook_idle)
        url, keys = ingest_access(running.credentials)
        started = time.perf_counter()

        def load_all() -> None:
            timeline.load_results = load(folder, url, keys, 5000, lambda _: None)
            timeline.loaded = time.perf_counter() - started
            print(f"  {timeline.loaded:5.0f} s  loaded: {timeline.load_results}", flush=True)

        sampler = asyncio.create_task(
            asyncio.to_thread(sample, running, timeline, started, surveys_done)
        )
        loader = asyncio.create_task(asyncio.to_thread(load_all))
        while not surveys_done.is_set() and not sampler.done():
            await probe.round(welfare_load, logbook_load)
            print(
                f"  probe under load: welfare {welfare_load[-1]:.2f} s, "
                f"logbook {logbook_load[-1]:.2f} s",
                flush=True,
            )
        await loader
        await sampler
    freshness = {
        "welfare_to_sse_idle_ms": milliseconds(welfare_idle),
        "logbook_to_sse_idle_ms": milliseconds(logbook_idle),
        "welfare_to_sse_under_load_ms": milliseconds(welfare_load),
        "logbook_to_sse_under_load_ms": milliseconds(logbook_load),
    }
    return timeline, freshness


def stage_figures(running: Platform, timeline: Timeline, households: int) -> dict[str, Any]:
    if not (timeline.loaded and timeline.matched and timeline.settled):
        raise SystemExit(f"the run did not finish: {timeline}")
    accepted = {name: r.accepted for name, r in timeline.load_results.items()}
    rejected = {name: r.rejected for name, r in timeline.load_results.items()}
    consumer = KafkaConsumer(bootstrap_servers=running.bootstrap)
    statuses = total(consumer, PERSON_STATUS) + total(consumer, HOUSEHOLD_STATUS)
    consumer.close()
    inputs = sum(timeline.last.input_ends) if timeline.last else 0
    return {
        "households": households,
        "records_accepted": accepted,
        "records_rejected": rejected,
        "wall_seconds": round(timeline.settled, 1),
        "households_per_second": round(households / timeline.settled),
        "ingest": {
            "seconds": round(timeline.loaded, 1),
            "records_per_second": round(sum(accepted.values()) / timeline.loaded),
            "households_per_second": round(accepted.get("bmn", 0) / timeline.loaded),
        },
        "matcher": {
            "seconds": round(timeline.matched, 1),
            "input_records": inputs,
            "input_records_per_second": round(inputs / timeline.matched),
            "statuses_out": statuses,
            "households_per_second": round(households / timeline.matched),
        },
        "reporting": {
            "seconds": round(timeline.settled, 1),
            "statuses_per_second": round(statuses / timeline.settled),
        },
    }


# -- the read API --------------------------------------------------------------------------


async def read_latency(url: str, province: str, rate: float, seconds: float) -> dict[str, Any]:
    """`GET /v1/areas/{code}` and `/v1/areas/{code}/children` in turn at `rate` per second, over
    the province's areas at every level."""
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        codes: dict[str, list[str]] = {"province": [province]}
        for parent, child in itertools.pairwise(LEVELS):
            codes[child] = []
            for code in codes[parent][:20]:
                reply = await client.get(f"/v1/areas/{code}/children", params={"year": SURVEY_YEAR})
                reply.raise_for_status()
                codes[child] += [c["area_code"] for c in reply.json()["children"]]
    paths = []
    for index in range(int(rate * seconds)):
        # Summaries of every level, children of every level that has any, in turn.
        level = LEVELS[index // 2 % (len(LEVELS) - index % 2)]
        code = codes[level][index * 7919 % len(codes[level])]
        suffix = "/children" if index % 2 else ""
        paths.append(f"/v1/areas/{code}{suffix}?year={SURVEY_YEAR}")
    latencies = await timed_gets(url, paths, rate, connections=50)
    return {
        "rate_per_second": rate,
        "area": latency_summary(latencies[0::2]),
        "children": latency_summary(latencies[1::2]),
    }


# -- the batch way -------------------------------------------------------------------------

# Every counter of every area recomputed from the stored person and household states in one
# statement, as a batch system refreshes: the states' counters summed per village, then rolled up
# to the village's areas.
_BATCH_SQL = """
CREATE TEMP TABLE batch_counters AS
WITH by_village AS (
  SELECT split_part(a.entity_key, ':', 2)::int AS survey_year,
         coalesce(a.village_code, '') AS village_code, kv.key AS counter,
         sum(kv.value::bigint) AS value
  FROM reporting.applied a
  CROSS JOIN LATERAL jsonb_each_text(a.counters) AS kv(key, value)
  GROUP BY 1, 2, 3
)
SELECT v.survey_year, c.area_code, v.counter, sum(v.value) AS value
FROM by_village v JOIN area_chain c USING (village_code)
GROUP BY 1, 2, 3
"""
# Counters that differ between the batch pass and the live aggregates (the logbook's progress
# counters come from cases, not states: not compared).
_DIFFERENCES = """
SELECT count(*) FROM (
  (SELECT survey_year, area_code, counter, value FROM batch_counters WHERE value <> 0
   EXCEPT SELECT survey_year, area_code, counter, value FROM reporting.counters)
  UNION ALL
  (SELECT survey_year, area_code, counter, value FROM reporting.counters
   WHERE value <> 0 AND counter NOT LIKE 'lb:%'
   EXCEPT SELECT survey_year, area_code, counter, value FROM batch_counters)
) AS d
"""


async def batch_pass(database_url: str, passes: int = 1) -> dict[str, Any]:
    connection = await asyncpg.connect(database_url)
    try:
        villages = await connection.fetch(
            "SELECT DISTINCT village_code FROM reporting.applied WHERE village_code IS NOT NULL"
        )
        chain = [("", COUNTRY_CODE)] + [
            (row["village_code"], area)
            for row in villages
            for area in (
                parent_chain(row["village_code"])
                if level_of(row["village_code"]) == "village"
                else (COUNTRY_CODE,)
            )
        ]
        await connection.execute("CREATE TEMP TABLE area_chain (village_code text, area_code text)")
        await connection.copy_records_to_table("area_chain", records=chain)
        await connection.execute("ANALYZE area_chain")
        states = await connection.fetchval("SELECT count(*) FROM reporting.applied")
        seconds = []
        for _ in range(passes):
            await connection.execute("DROP TABLE IF EXISTS batch_counters")
            started = time.perf_counter()
            await connection.execute(_BATCH_SQL)
            seconds.append(time.perf_counter() - started)
        rows = await connection.fetchval("SELECT count(*) FROM batch_counters")
        differences = await connection.fetchval(_DIFFERENCES)
    finally:
        await connection.close()
    return {
        "states": states,
        "counters": rows,
        "seconds": [round(s, 2) for s in seconds],
        "differences_from_live": differences,
    }


# -- a whole run ---------------------------------------------------------------------------


def run(
    workers: int, folder: Path, households: int, args: argparse.Namespace, home: Path
) -> dict[str, Any]:
    print(f"refresh: {workers} matcher and reporting worker(s), province {args.province}…")
    with platform(home, workers) as running:
        timeline, freshness = asyncio.run(full_refresh(running, folder, args.probes))
        result: dict[str, Any] = {
            "workers": workers,
            **stage_figures(running, timeline, households),
            "freshness": freshness,
        }
        # Reads are measured on a service at rest: the area publisher's backlog drained first.
        print("  waiting until every changed area is published…", flush=True)
        result["areas_published_after_settled"] = publishing(running.database_url)
        pids = running.processes()
        result["cpu_seconds"] = {name: round(cpu_seconds(pid), 1) for name, pid in pids.items()}
        result["peak_rss_mb"] = {
            name: round(peak_rss_mb(pid), 1) for name, pid in pids.items() if name != "postgres"
        }
        print(f"  reads at {args.read_rate:g}/s…", flush=True)
        result["read_api_ms"] = asyncio.run(
            read_latency(running.url("reporting"), args.province, args.read_rate, args.read_seconds)
        )
        print("  the batch pass…", flush=True)
        result["batch"] = asyncio.run(batch_pass(running.database_url))
        if workers == 1:
            keys, state_bytes = latest_value_bytes(running.bootstrap, MATCHER_PERSON_STATE)
            disk = sum(
                f.stat().st_size
                for f in (running.layout.local / "matcher").rglob("*")
                if f.is_file()
            )
            result["matcher_state"] = {
                "persons": keys,
                "json_bytes_per_person": round(state_bytes / max(keys, 1)),
                "rocksdb_bytes_per_person": round(disk / max(keys, 1)),
            }
    print(f"  {orjson.dumps(result).decode()}", flush=True)
    return result


def project(result: dict[str, Any], national: dict[str, int]) -> dict[str, Any]:
    """Linear in households: every stage's work is per record, partitioned by key, and its
    state per person; on this machine the platform is bound by its two cores throughout."""
    factor = national["households"] / result["households"]
    seconds = result["wall_seconds"] * factor
    return {
        "factor": round(factor, 2),
        "national_seconds": round(seconds),
        "national_minutes": round(seconds / 60, 1),
        "goal_minutes": 30,
        "times_over_goal": round(seconds / 1800, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--province", default="30")
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--probes", type=int, default=20, help="idle probe rounds")
    parser.add_argument("--read-rate", type=float, default=100)
    parser.add_argument("--read-seconds", type=float, default=20)
    args = parser.parse_args()
    if args.province == PROBE_VILLAGE[:2]:
        parser.error(
            f"province {args.province} holds the freshness probe's village; choose another"
        )

    folder = population(args.province, args.scale)
    manifest = orjson.loads((folder / "manifest.json").read_bytes())
    households = int(manifest["households"])
    national = national_figures()
    results: dict[str, Any] = {
        **machine("refresh"),
        "province": args.province,
        "scale": args.scale,
        "population": {k: manifest[k] for k in ("households", "persons", "records")},
        "national": national,
        "runs": [],
    }
    temporary = Path(tempfile.mkdtemp(prefix="tpmap-bench-refresh-"))
    try:
        for workers in args.workers:
            result = run(workers, folder, households, args, temporary / f"home-{workers}")
            result["projection"] = project(result, national)
            results["runs"].append(result)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    path = write_results("refresh", results)
    table = markdown(results)
    path.with_suffix(".md").write_text(table, encoding="utf-8")
    print(table)


def markdown(results: dict[str, Any]) -> str:
    """The README's table: one column per worker count."""
    runs = results["runs"]
    head = "| figure | " + " | ".join(f"{r['workers']} worker(s)" for r in runs) + " |"
    lines = [head, "|---|" + "---|" * len(runs)]

    def row(label: str, value: Any) -> None:
        lines.append(f"| {label} | " + " | ".join(str(value(r)) for r in runs) + " |")

    def ms(r: dict[str, Any], key: str) -> str:
        f = r["freshness"][key]
        return f"p50 {f['p50']:,} / p99 {f['p99']:,} ({f['requests']})" if f["requests"] else "-"

    row("full refresh, load to settled", lambda r: f"{r['wall_seconds']:,} s")
    row("households per second, end to end", lambda r: f"{r['households_per_second']:,}")
    row(
        "ingest: records/s (households/s)",
        lambda r: (
            f"{r['ingest']['records_per_second']:,} ({r['ingest']['households_per_second']:,})"
        ),
    )
    row(
        "matcher: done at; input records/s",
        lambda r: f"{r['matcher']['seconds']:,} s; {r['matcher']['input_records_per_second']:,}",
    )
    row("reporting: statuses/s to settled", lambda r: f"{r['reporting']['statuses_per_second']:,}")
    row(
        "areas published after settled",
        lambda r: (
            "-"
            if "areas_published_after_settled" not in r
            else f"{r['areas_published_after_settled']['areas']:,} in "
            f"{r['areas_published_after_settled']['seconds']} s"
        ),
    )
    row(
        "national projection (goal 30 min)",
        lambda r: (
            f"{r['projection']['national_minutes']:,} min "
            f"({r['projection']['times_over_goal']}× the goal)"
        ),
    )
    row("welfare change → SSE, idle (ms)", lambda r: ms(r, "welfare_to_sse_idle_ms"))
    row("welfare change → SSE, under load (ms)", lambda r: ms(r, "welfare_to_sse_under_load_ms"))
    row("logbook write → SSE, idle (ms)", lambda r: ms(r, "logbook_to_sse_idle_ms"))
    row("logbook write → SSE, under load (ms)", lambda r: ms(r, "logbook_to_sse_under_load_ms"))
    row(
        "area summary / children at the read rate (ms)",
        lambda r: (
            f"p50 {r['read_api_ms']['area']['p50']} / p99 {r['read_api_ms']['area']['p99']}; "
            f"p50 {r['read_api_ms']['children']['p50']} / p99 {r['read_api_ms']['children']['p99']}"
        ),
    )
    row(
        "peak RSS MB (ingest, matcher, reporting, logbook, kafka)",
        lambda r: ", ".join(
            str(r["peak_rss_mb"].get(n, "-"))
            for n in ("ingest", "matcher", "reporting", "logbook", "kafka")
        ),
    )
    row(
        "CPU seconds by process",
        lambda r: ", ".join(f"{k} {v}" for k, v in r["cpu_seconds"].items()),
    )
    row(
        "batch: one SQL pass over the states (s)",
        lambda r: (
            f"{r['batch']['seconds'][-1]} ({r['batch']['states']:,} states; "
            f"{r['batch']['differences_from_live']} counters differ)"
        ),
    )
    row(
        "one change: batch pass ÷ live welfare→SSE p99 (idle)",
        lambda r: (
            f"{r['batch']['seconds'][-1] * 1000 / r['freshness']['welfare_to_sse_idle_ms']['p99']:,.0f}×"
        ),
    )
    first = runs[0]
    if "matcher_state" in first:
        state = first["matcher_state"]
        lines.append(
            f"\nMatcher state: {state['json_bytes_per_person']} bytes of JSON and "
            f"{state['rocksdb_bytes_per_person']} bytes of RocksDB per person "
            f"({state['persons']:,} persons)."
        )
    lines.append(
        f"\nMachine: {results['cores']} cores, {results['memory_gb']} GB; province "
        f"{results['province']} at scale {results['scale']:g}: "
        f"{results['population']['households']:,} households, "
        f"{results['population']['persons']:,} persons; `{results['command']}`."
    )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
