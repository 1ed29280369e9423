"""FastAPI read API of reporting: an area's figures (TPMAP-RULES.md section 4) under any dimension
mask and welfare-card filter, the survey years counted, health and readiness."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated, Literal

import asyncpg
from fastapi import APIRouter, FastAPI, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from services.contracts.areas import AreaLevel, area, level_of
from services.contracts.process import exit_when_stopped, freeze_startup_heap
from services.reporting.consumer import StatusConsumer, TopicEnds
from services.reporting.contributions import ALL_DIMENSIONS_MASK, AreaFigures, CardFilter, figures
from services.reporting.dashboard import dashboard_router
from services.reporting.export_api import router as export_router
from services.reporting.publisher import AreaPublisher
from services.reporting.settings import ReportingSettings
from services.reporting.store import DATABASE_DOWN, Store

log = logging.getLogger("services.reporting")

_UNREADY: tuple[type[Exception], ...] = (*DATABASE_DOWN, asyncpg.PostgresError)

router = APIRouter()


class AreaReport(AreaFigures):
    """An area's figures in one survey year, with the area's names and when the consumer last
    applied a change (`as_of`, null before the first)."""

    survey_year: int
    area_code: str
    level: AreaLevel
    name_th: str | None
    name_en: str | None
    as_of: datetime | None


class AreaChildren(BaseModel):
    """The figures of each child area of `parent` with anything counted, sorted."""

    survey_year: int
    parent: str
    mask: str
    card: CardFilter
    sort: str
    order: Literal["asc", "desc"]
    as_of: datetime | None
    children: list[AreaReport]


class AreaYears(BaseModel):
    """An area's figures in every survey year counted there, oldest first (year over year)."""

    area_code: str
    mask: str
    card: CardFilter
    as_of: datetime | None
    years: list[AreaReport]


# What children may be sorted by: the area code and every single-number figure.
SORTABLE: tuple[str, ...] = (
    "area_code",
    *(
        name
        for name, info in AreaFigures.model_fields.items()
        if info.annotation in (int, float) and name not in ("mask", "card")
    ),
)

Code = Annotated[str, Path(description="TH, PP, PPDD, PPDDSS or PPDDSSVV")]
Year = Annotated[int | None, Query(description="Survey year (BE); the latest counted when omitted")]
Mask = Annotated[
    str,
    Query(
        pattern=r"^[01]{5}$",
        description="Dimensions that count: health, living, education, income, access",
    ),
]
Card = Annotated[CardFilter, Query(description="Welfare-card filter")]


def _report(
    year: int,
    code: str,
    counters: dict[str, int],
    *,
    as_of: datetime | None,
    mask: str,
    card: CardFilter,
) -> AreaReport:
    level = _level(code)
    found = area(code)
    return AreaReport(
        **figures(counters, mask, card).model_dump(),
        survey_year=year,
        area_code=code,
        level=level,
        name_th=found.name_th if found else None,
        name_en=found.name_en if found else None,
        as_of=as_of,
    )


async def _year(store: Store, year: int | None) -> int:
    if year is not None:
        return year
    counted = await store.years()
    if not counted:
        raise HTTPException(404, "no survey year has been counted yet")
    return counted[-1]


def _level(code: str) -> AreaLevel:
    level = level_of(code)
    if level is None:
        raise HTTPException(404, f"not an area code: {code!r} (TH, PP, PPDD, PPDDSS, PPDDSSVV)")
    return level


class Freshness(BaseModel):
    """How far behind the matcher the figures are."""

    consumer_lag: int | None = Field(
        description="Status messages not yet applied; null when the broker cannot be asked"
    )
    lag_by_partition: dict[str, int] | None = Field(description="topic:partition -> messages")
    newest_event_at: datetime | None = Field(description="Time of the newest status applied")
    newest_event_age_seconds: float | None


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


@router.get("/healthz", tags=["health"], summary="The process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", tags=["health"], summary="PostgreSQL is reachable")
async def readyz(request: Request) -> Response:
    try:
        await asyncio.wait_for(_store(request).ping(), 5)
        ready = True
    except _UNREADY as error:
        log.warning("database unreachable: %s", error)
        ready = False
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "postgres": ready},
        status_code=200 if ready else 503,
    )


@router.get("/v1/years", tags=["figures"], summary="Survey years (BE) with counted figures")
async def years(request: Request) -> dict[str, list[int]]:
    return {"years": await _store(request).years()}


@router.get(
    "/v1/areas/{code}",
    tags=["figures"],
    summary="An area's figures under a dimension mask and welfare-card filter",
    response_model=AreaReport,
)
async def area_figures(
    request: Request,
    code: Code,
    year: Year = None,
    mask: Mask = ALL_DIMENSIONS_MASK,
    card: Card = "all",
) -> AreaReport:
    _level(code)
    store = _store(request)
    year = await _year(store, year)
    stored = await store.area_counters(year, code)
    return _report(year, code, stored.counters, as_of=stored.as_of, mask=mask, card=card)


@router.get(
    "/v1/areas/{code}/children",
    tags=["figures"],
    summary="The figures of each child area (provinces of TH, districts of a province, ...)",
    response_model=AreaChildren,
)
async def area_children(
    request: Request,
    code: Code,
    *,
    year: Year = None,
    mask: Mask = ALL_DIMENSIONS_MASK,
    card: Card = "all",
    sort: Annotated[str, Query(description=f"One of: {', '.join(SORTABLE)}")] = "area_code",
    order: Annotated[Literal["asc", "desc"], Query()] = "asc",
) -> AreaChildren:
    if _level(code) == "village":
        raise HTTPException(404, "a village has no child areas")
    if sort not in SORTABLE:
        raise HTTPException(422, f"sort must be one of: {', '.join(SORTABLE)}")
    store = _store(request)
    year = await _year(store, year)
    counted, as_of = await store.children_counters(year, code)
    children = [
        _report(year, child, c, as_of=as_of, mask=mask, card=card) for child, c in counted.items()
    ]
    children.sort(key=lambda r: r.area_code)  # ties in the figure keep code order
    children.sort(key=lambda r: getattr(r, sort), reverse=order == "desc")
    return AreaChildren(
        survey_year=year,
        parent=code,
        mask=mask,
        card=card,
        sort=sort,
        order=order,
        as_of=as_of,
        children=children,
    )


@router.get(
    "/v1/areas/{code}/years",
    tags=["figures"],
    summary="An area's figures in every survey year counted there (year over year)",
    response_model=AreaYears,
)
async def area_years(
    request: Request, code: Code, mask: Mask = ALL_DIMENSIONS_MASK, card: Card = "all"
) -> AreaYears:
    _level(code)
    by_year, as_of = await _store(request).area_counters_by_year(code)
    return AreaYears(
        area_code=code,
        mask=mask,
        card=card,
        as_of=as_of,
        years=[
            _report(year, code, counters, as_of=as_of, mask=mask, card=card)
            for year, counters in by_year.items()
        ],
    )


@router.get(
    "/v1/freshness",
    tags=["health"],
    summary="Consumer lag and the age of the newest applied event",
    response_model=Freshness,
)
async def freshness(request: Request) -> Freshness:
    stored = await _store(request).freshness()
    topic_ends: TopicEnds = request.app.state.topic_ends
    ends = await topic_ends.get()
    lags = (
        None
        if ends is None
        else {
            f"{topic}:{partition}": max(end - stored.offsets.get((topic, partition), 0), 0)
            for (topic, partition), end in sorted(ends.items())
        }
    )
    newest = stored.newest_event_at
    return Freshness(
        consumer_lag=None if lags is None else sum(lags.values()),
        lag_by_partition=lags,
        newest_event_at=newest,
        newest_event_age_seconds=(
            None if newest is None else (datetime.now(UTC) - newest).total_seconds()
        ),
    )


def create_app(settings: ReportingSettings) -> FastAPI:
    """The reporting app; PostgreSQL is connected and the status consumer started on startup."""

    topic_ends = TopicEnds(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = await Store.connect(settings.database_url, settings.database_pool_size)
        app.state.store = store
        app.state.topic_ends = topic_ends
        background: list[asyncio.Task[None]] = []
        if settings.consumer:
            consumer = StatusConsumer(settings, store)
            background.append(asyncio.create_task(consumer.run(), name="status-consumer"))
        if settings.publisher:
            publisher = AreaPublisher(settings, store)
            background.append(asyncio.create_task(publisher.run(), name="area-publisher"))
        for task in background:
            exit_when_stopped(task)
        freeze_startup_heap()
        try:
            yield
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await topic_ends.close()
            await store.close()

    app = FastAPI(
        title="tpmap reporting",
        version="1",
        description=(
            "Live figures of the target poor per survey year and area, at every level (country, "
            "province, district, subdistrict, village), under any of TPMAP's dimension masks "
            "and the welfare-card filter.\n\n"
            "ตัวเลขคนจนเป้าหมายรายปีสำรวจและรายพื้นที่ ทุกระดับ เลือกมิติและสถานะบัตรสวัสดิการได้"
        ),
        lifespan=lifespan,
    )

    async def database_down(request: Request, error: Exception) -> Response:
        log.warning("database unavailable", extra={"error": str(error), "path": request.url.path})
        return JSONResponse(
            {"detail": "the database is unavailable, try again"},
            status_code=503,
            headers={"Retry-After": "2"},
        )

    for error_class in DATABASE_DOWN:
        app.add_exception_handler(error_class, database_down)
    app.include_router(router)
    app.include_router(dashboard_router(settings))
    app.include_router(export_router)
    return app
