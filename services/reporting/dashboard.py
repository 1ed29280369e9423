"""The dashboard: a plain HTML/CSS/JS page served by reporting, every asset from this process (it
works without internet). The page reads the figures from the read API and `/v1/stream`.

    /                          redirects to /dashboard/
    /dashboard/                the page (web/static/index.html)
    /dashboard/static/...      its scripts and styles (repository code)
    /dashboard/vendor/thailand-map/...   the province map, npm package @svg-maps/thailand
                               (CC BY 4.0; installed by `make assets` into web/node_modules,
                               never committed; its LICENSE.md is served and linked)
    /dashboard/catalogue.json  dimension and indicator names in Thai and English
    /v1/tpmap/2561/{code}      TPMAP's published figures of an area, for the comparison
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from services.contracts.indicators import DIMENSIONS, indicator_set_for
from services.reporting.contributions import ALL_DIMENSIONS_MASK
from services.reporting.settings import ReportingSettings
from services.reporting.stream import stream_router
from services.reporting.tpmap_published import PUBLISHED_YEAR, read_published

WEB = Path(__file__).parent / "web"
STATIC = WEB / "static"
THAILAND_MAP = WEB / "node_modules" / "@svg-maps" / "thailand"


def catalogue(survey_year: int) -> dict[str, Any]:
    """The names the page shows: dimensions, and the indicators of the year's survey."""
    indicators = indicator_set_for(survey_year)
    return {
        "dimensions": [{"name": d.value, "label_th": d.label_th} for d in DIMENSIONS],
        "indicators": [
            {
                "number": i.number,
                "dimension": i.dimension.value if i.dimension else None,
                "label_th": i.label_th,
                "label_en": i.label_en,
            }
            for i in (indicators.indicators if indicators else ())
        ],
    }


def dashboard_router(settings: ReportingSettings) -> APIRouter:
    """The page, its assets, and the stream it reads (so `create_app` includes one router)."""
    router = APIRouter()
    router.include_router(stream_router(settings))
    router.mount("/dashboard/static", StaticFiles(directory=STATIC), name="dashboard-static")
    # check_dir=False: without `make assets` the page still works, without its map.
    router.mount(
        "/dashboard/vendor/thailand-map",
        StaticFiles(directory=THAILAND_MAP, check_dir=False),
        name="dashboard-map",
    )

    @router.get("/", include_in_schema=False)
    async def home() -> RedirectResponse:
        return RedirectResponse("/dashboard/")

    @router.get("/dashboard/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    @router.get("/dashboard/catalogue.json", include_in_schema=False)
    async def names(year: int = PUBLISHED_YEAR) -> dict[str, Any]:
        return catalogue(year)

    @router.get(
        f"/v1/tpmap/{PUBLISHED_YEAR}/{{code}}",
        tags=["figures"],
        summary="TPMAP's published figures of an area (data year 2561), for comparison",
    )
    async def published(
        code: Annotated[str, PathParam(description="TH, PP, PPDD, PPDDSS or PPDDSSVV")],
        mask: Annotated[str, Query(pattern=r"^[01]{5}$")] = ALL_DIMENSIONS_MASK,
    ) -> dict[str, Any]:
        """Under the platform's figure names; TPMAP published no card filter (its figures are
        `card=all`), and subdistricts and villages under mask 11111 only."""
        found = read_published(settings.tpmap_2561_dir, code, mask)
        if found is None:
            raise HTTPException(404, f"TPMAP published no figures for {code} under mask {mask}")
        return {"survey_year": PUBLISHED_YEAR, "area_code": code, "mask": mask, **found}

    return router
