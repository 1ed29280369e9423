"""`GET /v1/export/tpmap/{year}/{file}`: TPMAP's CSV export (names, headers and lines in
`export.py`) from the stored counters, streamed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Request
from fastapi.responses import StreamingResponse

from services.reporting.contributions import figures
from services.reporting.export import (
    ExportFile,
    UnknownExportFileError,
    header_line,
    parse_file_name,
    row_line,
)
from services.reporting.store import Store

router = APIRouter()

Counted = list[tuple[str, dict[str, int]]]
"""(area code, counters) of some areas, in code order."""


async def _areas(store: Store, export: ExportFile) -> AsyncIterator[Counted]:
    """The file's areas with anything counted, in code order, one batch per store read: the
    tree below the file's parent is walked one level at a time, so a province's villages are
    read a subdistrict at a time and never held all at once."""
    year = export.survey_year
    if export.tpmap_level.generations == 0:
        yield [(export.parent, (await store.area_counters(year, export.parent)).counters)]
        return

    async def below(parent: str, generations: int) -> AsyncIterator[Counted]:
        counted, _ = await store.children_counters(year, parent)
        ordered = sorted(counted.items())
        if generations == 1:
            yield ordered
            return
        for child, _counters in ordered:
            async for batch in below(child, generations - 1):
                yield batch

    async for batch in below(export.parent, export.tpmap_level.generations):
        yield batch


def _lines(export: ExportFile, batch: Counted) -> str:
    return "".join(
        row_line(export, code, figures(counters, export.figures_mask)) for code, counters in batch
    )


@router.get(
    "/v1/export/tpmap/{year}/{file}",
    tags=["export"],
    summary="A file of TPMAP's CSV export (61_province_11111.csv, 61_49_village_common.csv, ...)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}}, 404: {"description": "No such file"}},
)
async def tpmap_export(
    request: Request,
    year: Annotated[int, Path(description="Survey year (BE), e.g. 2561")],
    file: Annotated[str, Path(description="TPMAP's file name, e.g. 61_49_amphur_01000.csv")],
) -> StreamingResponse:
    try:
        export = parse_file_name(year, file)
    except UnknownExportFileError as error:
        raise HTTPException(404, str(error)) from error
    store: Store = request.app.state.store
    counted_years = await store.years()
    if year not in counted_years:
        listed = ", ".join(map(str, counted_years)) or "none yet"
        raise HTTPException(404, f"survey year {year} has no counted figures (counted: {listed})")
    batches = _areas(store, export)
    # The first read happens before the response starts, so a database that is down is a 503
    # (the app's handler) rather than a truncated 200.
    first: Counted = await anext(batches, [])

    async def body() -> AsyncIterator[str]:
        yield header_line(export) + _lines(export, first)
        async for batch in batches:
            yield _lines(export, batch)

    return StreamingResponse(
        body(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{export.name}"'},
    )
