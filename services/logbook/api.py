"""HTTP adapter of the logbook (FastAPI): field teams' cases, visits, interventions and added
households, each user confined to their area.

Anything outside the caller's area is answered 404, exactly as if it did not exist; 403 only
says a role may not do something anywhere (national users do not write; only national and
province users read the audit trail).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator
from datetime import datetime
from functools import cache
from typing import Annotated, Any

import asyncpg
import orjson
from fastapi import APIRouter, Body, Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse, Response

from services.contracts.areas import area, level_of
from services.contracts.events import PersonStatus
from services.contracts.indicators import Dimension, indicator_set_for
from services.contracts.logs import mask_text
from services.contracts.process import exit_when_stopped, freeze_startup_heap
from services.contracts.records import BANGKOK, BmnHousehold, InvalidRecordError, parse_record
from services.logbook.agencies import agencies
from services.logbook.cases import (
    REASON_LABELS_TH,
    RESOLUTION_LABELS_TH,
    STATUS_LABELS_TH,
    CaseStatus,
    case_progress,
)
from services.logbook.consumer import StatusConsumer
from services.logbook.models import (
    FIELD_HOUSEHOLD_EXAMPLE,
    AgencyOut,
    AuditEntry,
    CaseDetail,
    CaseList,
    CaseSummary,
    DimensionLabel,
    ErrorReply,
    FieldHouseholdOut,
    IndicatorLabel,
    InterventionIn,
    InterventionOut,
    InterventionPatch,
    Me,
    MemberOut,
    ResolutionIn,
    ResolutionOut,
    VisitIn,
    VisitOut,
)
from services.logbook.relay import OutboxRelay
from services.logbook.report import (
    INTERVENTION_COLUMNS,
    PROGRESS_COLUMNS,
    Quarter,
    intervention_rows,
    progress_rows,
    quarter_of,
    render_csv,
)
from services.logbook.scope import ROLE_LABELS_TH, User, narrowed
from services.logbook.settings import LogbookSettings
from services.logbook.store import (
    DATABASE_DOWN,
    CaseFilters,
    CaseRow,
    Cursor,
    Store,
)

log = logging.getLogger("services.logbook")

JSON = "application/json"
Responses = dict[int | str, dict[str, Any]]
router = APIRouter()
_UNREADY: tuple[type[Exception], ...] = (*DATABASE_DOWN, asyncpg.PostgresError)
MAX_PAGE = 500
_UNREGISTERED = "unregistered_poor"

NOT_FOUND: Responses = {
    404: {"model": ErrorReply, "description": "Not found, or outside your area"}
}
AUTH: Responses = {401: {"model": ErrorReply, "description": "No valid token"}}
WRITE: Responses = {403: {"model": ErrorReply, "description": "Your role may not write (national)"}}


# --- dependencies ---------------------------------------------------------------------------


def _store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


async def current_user(request: Request) -> User:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    user = await _store(request).user_for(token.strip()) if scheme.lower() == "bearer" else None
    if user is None:
        raise HTTPException(
            401,
            "a valid token is required: Authorization: Bearer tpl_...",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return user


CurrentUser = Annotated[User, Depends(current_user)]
CaseIdPath = Annotated[str, Path(max_length=64, description="From GET /v1/cases")]


def _not_found(what: str) -> HTTPException:
    return HTTPException(404, f"no such {what} in your area")


def _writer(user: User) -> None:
    if not user.may_write:
        raise HTTPException(403, f"{user.role} users read; field work is written by their areas")


async def _case_in_scope(request: Request, user: User, case_id: str) -> CaseRow:
    case = await _store(request).case(user, case_id)
    if case is None:
        raise _not_found("case")
    return case


def _scope(user: User, area_code: str | None) -> tuple[str, ...]:
    if area_code is not None and level_of(area_code) is None:
        raise HTTPException(422, f"area {area_code!r} is not an area code (TH, PP, PPDD, ...)")
    prefixes = narrowed(user, area_code)
    if prefixes is None:
        raise _not_found("area")
    return prefixes


# --- rendering ------------------------------------------------------------------------------


@cache
def _area_names(code: str) -> tuple[str, str]:
    found = area(code)
    return ("", "") if found is None else (found.name_th, found.name_en)


def _summary(case: CaseRow) -> dict[str, Any]:
    household = case.household
    name_th, name_en = _area_names(case.village_code)
    return {
        "case_id": case.case_id,
        "household_id": case.household_id,
        "survey_year": case.survey_year,
        "village_code": case.village_code,
        "village_name_th": name_th,
        "village_name_en": name_en,
        "house_no": household.house_no,
        "reason": case.reason,
        "reason_th": REASON_LABELS_TH[case.reason],
        "status": case.status,
        "status_th": STATUS_LABELS_TH[case.status],
        "crisis": case.crisis,
        "priority": case.priority,
        "deprivation": [
            DimensionLabel(dimension=d, label_th=d.label_th) for d in household.deprivation
        ],
        "member_count": household.member_count,
        "target_members": household.target_members,
        "unregistered_members": household.unregistered_members,
        "vulnerable_members": household.vulnerable_members,
        "opened_at": case.opened_at,
        "updated_at": case.updated_at,
    }


def _member(user: User, person: PersonStatus) -> MemberOut:
    return MemberOut(
        citizen_id=user.show_citizen_id(person.citizen_id),
        person_class=person.person_class,
        welfare_status=person.welfare_status,
        age_band=person.age_band,
        disabled=person.disabled,
        chronic_patient=person.chronic_patient,
        bedridden=person.bedridden,
        needs_registration=person.person_class == _UNREGISTERED,
    )


def _intervention(row: dict[str, Any]) -> InterventionOut:
    agency = agencies().get(row["agency_code"])
    return InterventionOut(**row, agency_name_th=agency.name_th if agency else "")


def _resolution(row: dict[str, Any]) -> ResolutionOut:
    dimension = Dimension(row["dimension"])
    return ResolutionOut(
        **{**row, "dimension": dimension},
        label_th=dimension.label_th,
        resolution_th=RESOLUTION_LABELS_TH[row["resolution"]],
    )


def _indicators(survey_year: int, numbers: list[int]) -> list[IndicatorLabel]:
    indicator_set = indicator_set_for(survey_year)
    if indicator_set is None:
        return []
    by_number = {i.number: i for i in indicator_set.indicators}
    return [
        IndicatorLabel(
            number=n,
            dimension=by_number[n].dimension,
            label_th=by_number[n].label_th,
            label_en=by_number[n].label_en,
        )
        for n in numbers
        if n in by_number
    ]


def _encode_cursor(case: CaseRow) -> str:
    raw = orjson.dumps([case.crisis, case.priority, case.case_id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(text: str) -> Cursor:
    try:
        crisis, priority, case_id = orjson.loads(
            base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        )
        if not (
            isinstance(crisis, bool) and isinstance(priority, int) and isinstance(case_id, str)
        ):
            raise TypeError
    except (ValueError, TypeError):
        raise HTTPException(422, "cursor is not one this API gave") from None
    return Cursor(crisis, priority, case_id)


def _masked_for(user: User, value: Any) -> Any:
    """Citizen IDs inside free-form values (audit, field records), masked for oversight roles."""
    if user.sees_full_citizen_ids:
        return value
    return orjson.loads(mask_text(orjson.dumps(value).decode()))


# --- the app --------------------------------------------------------------------------------


# --- health -------------------------------------------------------------------------------


@router.get("/healthz", tags=["health"], summary="The process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    tags=["health"],
    summary="PostgreSQL is reachable (Kafka is reported but not required: writes go to the outbox)",
)
async def readyz(request: Request) -> Response:
    try:
        backlog = await asyncio.wait_for(_store(request).outbox_backlog(), 5)
        database = True
    except _UNREADY as error:
        log.warning("database unreachable: %s", error)
        database, backlog = False, None
    body = {
        "status": "ready" if database else "not ready",
        "postgres": database,
        "kafka": request.app.state.relay.kafka_ok,
        "outbox_backlog": backlog,
    }
    return Response(orjson.dumps(body), status_code=200 if database else 503, media_type=JSON)


# --- who am I, agencies -------------------------------------------------------------------


@router.get("/v1/me", tags=["users"], summary="The caller, their role and areas", responses=AUTH)
async def me(user: CurrentUser) -> Me:
    return Me(
        user_id=user.user_id,
        display_name=user.display_name,
        role=user.role,
        role_th=ROLE_LABELS_TH[user.role],
        areas=list(user.areas),
        sees_full_citizen_ids=user.sees_full_citizen_ids,
    )


@router.get(
    "/v1/agencies",
    tags=["interventions"],
    summary="The catalogue of Thai agencies (หน่วยงาน) an intervention may come from",
    responses=AUTH,
)
async def list_agencies(user: CurrentUser) -> list[AgencyOut]:
    return [
        AgencyOut(code=a.code, name_th=a.name_th, name_en=a.name_en, dimensions=list(a.dimensions))
        for a in agencies().values()
    ]


# --- cases --------------------------------------------------------------------------------


@router.get(
    "/v1/cases",
    tags=["cases"],
    summary="Cases in your area, crisis first, then by priority (รายการเคส)",
    responses={**AUTH, **NOT_FOUND},
)
async def list_cases(
    request: Request,
    *,
    user: CurrentUser,
    area_code: Annotated[
        str | None, Query(alias="area", description="Narrow to an area inside yours")
    ] = None,
    village: Annotated[str | None, Query(pattern=r"^[0-9]{8}$")] = None,
    dimension: Dimension | None = None,
    crisis: bool | None = None,
    status: CaseStatus | None = None,
    reason: Annotated[str | None, Query(pattern="^(target|outreach)$")] = None,
    survey_year: int | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    cursor: str | None = None,
) -> CaseList:
    prefixes = _scope(user, area_code)
    if village is not None and not (
        user.covers(village) and any(village.startswith(p) for p in prefixes)
    ):
        raise _not_found("village")
    after = _decode_cursor(cursor) if cursor else None
    rows = await _store(request).cases(
        prefixes,
        CaseFilters(dimension, crisis, status, reason, village, survey_year),
        after,
        limit + 1,
    )
    page = rows[:limit]
    return CaseList(
        cases=[CaseSummary(**_summary(c)) for c in page],
        next_cursor=_encode_cursor(page[-1]) if len(rows) > limit else None,
    )


@router.get(
    "/v1/cases/{case_id}",
    tags=["cases"],
    summary="A case with its members, deprivations, visits, interventions and resolutions",
    responses={**AUTH, **NOT_FOUND},
)
async def get_case(request: Request, user: CurrentUser, case_id: CaseIdPath) -> CaseDetail:
    store = _store(request)
    case = await _case_in_scope(request, user, case_id)
    members = await store.members(case)
    visits = await store.visits(case.case_id)
    interventions = await store.interventions(case.case_id)
    resolutions = [_resolution(r) for r in await store.resolutions(case.case_id)]
    return CaseDetail(
        **_summary(case),
        failed_indicators=_indicators(case.survey_year, case.household.failed_indicators),
        members=[_member(user, m) for m in members],
        resolutions=resolutions,
        visits=[VisitOut(**v) for v in visits],
        interventions=[_intervention(i) for i in interventions],
        progress=case_progress(
            case.household.deprivation,
            {r.dimension: r.resolution for r in resolutions},
            has_interventions=bool(interventions),
        ),
    )


# --- visits -------------------------------------------------------------------------------


@router.get(
    "/v1/cases/{case_id}/visits",
    tags=["visits"],
    summary="Visits to the household (การเยี่ยมบ้าน)",
    responses={**AUTH, **NOT_FOUND},
)
async def list_visits(request: Request, user: CurrentUser, case_id: CaseIdPath) -> list[VisitOut]:
    case = await _case_in_scope(request, user, case_id)
    return [VisitOut(**v) for v in await _store(request).visits(case.case_id)]


@router.post(
    "/v1/cases/{case_id}/visits",
    tags=["visits"],
    status_code=201,
    summary="Record a visit",
    responses={**AUTH, **NOT_FOUND, **WRITE},
)
async def add_visit(
    request: Request, user: CurrentUser, case_id: CaseIdPath, visit: VisitIn
) -> VisitOut:
    case = await _case_in_scope(request, user, case_id)
    _writer(user)
    stored = await _store(request).add_visit(user, case, visit.model_dump())
    log.info("visit recorded", extra={"case_id": case.case_id, "user": user.user_id})
    return VisitOut(**stored)


# --- interventions ------------------------------------------------------------------------


@router.get(
    "/v1/cases/{case_id}/interventions",
    tags=["interventions"],
    summary="Interventions for the household (การให้ความช่วยเหลือ)",
    responses={**AUTH, **NOT_FOUND},
)
async def list_interventions(
    request: Request, user: CurrentUser, case_id: CaseIdPath
) -> list[InterventionOut]:
    case = await _case_in_scope(request, user, case_id)
    return [_intervention(i) for i in await _store(request).interventions(case.case_id)]


@router.post(
    "/v1/cases/{case_id}/interventions",
    tags=["interventions"],
    status_code=201,
    summary="Record an intervention",
    responses={**AUTH, **NOT_FOUND, **WRITE},
)
async def add_intervention(
    request: Request, user: CurrentUser, case_id: CaseIdPath, intervention: InterventionIn
) -> InterventionOut:
    case = await _case_in_scope(request, user, case_id)
    _writer(user)
    stored = await _store(request).add_intervention(user, case, intervention.model_dump())
    log.info("intervention recorded", extra={"case_id": case.case_id, "user": user.user_id})
    return _intervention(stored)


@router.patch(
    "/v1/cases/{case_id}/interventions/{intervention_id}",
    tags=["interventions"],
    summary="Update an intervention (status, dates, amount, text)",
    responses={**AUTH, **NOT_FOUND, **WRITE},
)
async def update_intervention(
    request: Request,
    *,
    user: CurrentUser,
    case_id: CaseIdPath,
    intervention_id: Annotated[str, Path(max_length=64)],
    changes: InterventionPatch,
) -> InterventionOut:
    case = await _case_in_scope(request, user, case_id)
    store = _store(request)
    if await store.intervention(case.case_id, intervention_id) is None:
        raise _not_found("intervention")
    _writer(user)
    stored = await store.update_intervention(
        user, case, intervention_id, changes.model_dump(exclude_unset=True)
    )
    if stored is None:
        raise _not_found("intervention")
    return _intervention(stored)


# --- resolutions --------------------------------------------------------------------------


@router.put(
    "/v1/cases/{case_id}/resolutions/{dimension}",
    tags=["resolutions"],
    summary="Set how a deprived dimension stands: helped, self-resolved, in progress",
    responses={
        **AUTH,
        **NOT_FOUND,
        **WRITE,
        422: {"model": ErrorReply, "description": "The household is not deprived there"},
    },
)
async def set_resolution(
    request: Request,
    *,
    user: CurrentUser,
    case_id: CaseIdPath,
    dimension: Dimension,
    resolution: ResolutionIn,
) -> ResolutionOut:
    case = await _case_in_scope(request, user, case_id)
    _writer(user)
    if dimension not in case.household.deprivation:
        raise HTTPException(
            422,
            f"the household is not deprived in {dimension.value}; deprived in: "
            + (", ".join(d.value for d in case.household.deprivation) or "none"),
        )
    stored = await _store(request).set_resolution(
        user, case, dimension, resolution.resolution, resolution.note
    )
    return _resolution(stored)


# --- households the survey missed (คนนอก จปฐ.) -----------------------------------------


@router.post(
    "/v1/field-households",
    tags=["field households"],
    status_code=201,
    summary="Add a household the survey missed (คนนอก จปฐ.); the matcher receives it",
    responses={
        **AUTH,
        **NOT_FOUND,
        **WRITE,
        409: {"model": ErrorReply, "description": "household_id already added"},
        422: {"model": ErrorReply, "description": "Not a valid household (field errors)"},
    },
)
async def add_field_household(
    request: Request,
    *,
    user: CurrentUser,
    body: Annotated[
        dict[str, Any],
        Body(
            description=(
                "A BMN household (record.bmn-household schema) without `source` (always "
                "`field`); `household_id` is optional and generated when absent"
            ),
            examples=[FIELD_HOUSEHOLD_EXAMPLE],
        ),
    ],
) -> FieldHouseholdOut:
    village = body.get("village_code")
    if isinstance(village, str) and not user.covers(village):
        raise _not_found("village")
    _writer(user)
    if body.get("source", "field") != "field":
        raise HTTPException(
            422, [{"field": "source", "message": "a field-added household has source field"}]
        )
    record = {
        **body,
        "household_id": body.get("household_id")
        or f"F{village if isinstance(village, str) else ''}-{secrets.token_hex(4)}",
        "source": "field",
    }
    try:
        household = parse_record(BmnHousehold, record)
    except InvalidRecordError as invalid:
        raise HTTPException(422, [e.model_dump() for e in invalid.errors]) from None
    if not user.covers(household.village_code):
        raise _not_found("village")
    try:
        added_at = await _store(request).add_field_household(user, household)
    except asyncpg.UniqueViolationError:
        raise HTTPException(409, f"household {household.household_id} was already added") from None
    log.info(
        "field household added",
        extra={"household_id": household.household_id, "user": user.user_id},
    )
    return FieldHouseholdOut(
        household_id=household.household_id,
        village_code=household.village_code,
        record=_masked_for(user, household.model_dump(mode="json")),
        added_by=user.user_id,
        added_at=added_at,
    )


@router.get(
    "/v1/field-households",
    tags=["field households"],
    summary="Households added by field teams in your area, newest first",
    responses={**AUTH, **NOT_FOUND},
)
async def list_field_households(
    request: Request,
    *,
    user: CurrentUser,
    area_code: Annotated[str | None, Query(alias="area")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> list[FieldHouseholdOut]:
    rows = await _store(request).field_households(_scope(user, area_code), limit)
    return [FieldHouseholdOut(**{**r, "record": _masked_for(user, r["record"])}) for r in rows]


@router.get(
    "/v1/field-households/{household_id}",
    tags=["field households"],
    summary="One household added by a field team",
    responses={**AUTH, **NOT_FOUND},
)
async def get_field_household(
    request: Request,
    *,
    user: CurrentUser,
    household_id: Annotated[str, Path(max_length=40)],
) -> FieldHouseholdOut:
    row = await _store(request).field_household(household_id)
    if row is None or not user.covers(row["village_code"]):
        raise _not_found("household")
    return FieldHouseholdOut(**{**row, "record": _masked_for(user, row["record"])})


# --- reports and audit --------------------------------------------------------------------


def _quarter(fiscal_year: int | None, quarter: int | None) -> Quarter:
    current = quarter_of(datetime.now(BANGKOK).date())
    try:
        return Quarter(fiscal_year or current.fiscal_year, quarter or current.number)
    except ValueError as error:
        raise HTTPException(422, str(error)) from None


async def _report_facts(
    request: Request,
    *,
    user: CurrentUser,
    area_code: Annotated[str | None, Query(alias="area")] = None,
    fiscal_year: Annotated[
        int | None, Query(ge=2500, le=2700, description="Thai fiscal year, BE (Oct-Sep)")
    ] = None,
    quarter: Annotated[int | None, Query(ge=1, le=4, description="1 = Oct-Dec")] = None,
    survey_year: int | None = None,
) -> tuple[Quarter, list[str], Any]:
    """The query both CSV reports take, answered: the quarter, the areas asked for, the facts."""
    prefixes = _scope(user, area_code)
    roots = [area_code] if area_code else list(user.areas)
    period = _quarter(fiscal_year, quarter)
    facts = await _store(request).report_facts(prefixes, period, survey_year)
    return period, roots, facts


ReportFacts = Annotated[tuple[Quarter, list[str], Any], Depends(_report_facts)]


csv_response: Responses = {200: {"content": {"text/csv": {}}, "description": "CSV, UTF-8"}}


@router.get(
    "/v1/reports/progress.csv",
    tags=["reports"],
    summary="Quarterly progress per area (CSV): each area asked for, then its children",
    response_class=Response,
    responses={**csv_response, **AUTH, **NOT_FOUND},
)
async def progress_report(report: ReportFacts) -> Response:
    period, roots, facts = report
    text = render_csv(PROGRESS_COLUMNS, progress_rows(period, roots, facts))
    return _csv(text, f"progress-{'-'.join(roots)}-{period.label}.csv")


@router.get(
    "/v1/reports/interventions.csv",
    tags=["reports"],
    summary="Interventions and budget by dimension and agency (CSV)",
    response_class=Response,
    responses={**csv_response, **AUTH, **NOT_FOUND},
)
async def interventions_report(report: ReportFacts) -> Response:
    period, roots, facts = report
    text = render_csv(INTERVENTION_COLUMNS, intervention_rows(period, roots, facts))
    return _csv(text, f"interventions-{'-'.join(roots)}-{period.label}.csv")


@router.get(
    "/v1/audit",
    tags=["audit"],
    summary="The audit trail: who changed what, when, before and after (national, province)",
    responses={
        **AUTH,
        **NOT_FOUND,
        403: {"model": ErrorReply, "description": "Only national and province users"},
    },
)
async def audit(
    request: Request,
    *,
    user: CurrentUser,
    area_code: Annotated[str | None, Query(alias="area")] = None,
    case_id: Annotated[str | None, Query(max_length=64)] = None,
    before: Annotated[int | None, Query(description="audit_id to page below")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
) -> list[AuditEntry]:
    prefixes = _scope(user, area_code)
    if case_id is not None and await _store(request).case(user, case_id) is None:
        raise _not_found("case")
    if not user.may_read_audit:
        raise HTTPException(403, "the audit trail is for national and province users")
    rows = await _store(request).audit(prefixes, case_id=case_id, before_id=before, limit=limit)
    return [
        AuditEntry(
            **{
                **r,
                "before": _masked_for(user, r["before"]),
                "after": _masked_for(user, r["after"]),
            }
        )
        for r in rows
    ]


def create_app(settings: LogbookSettings) -> FastAPI:
    """The logbook app; PostgreSQL is connected, the consumer and the relay started, on startup."""
    relay = OutboxRelay(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = await Store.connect(settings.database_url, settings.database_pool_size)
        app.state.store = store
        app.state.relay = relay
        background: list[asyncio.Task[None]] = []
        if settings.consumer:
            consumer = StatusConsumer(settings, store)
            background.append(asyncio.create_task(consumer.run(), name="status-consumer"))
        if settings.relay:
            background.append(asyncio.create_task(relay.run(), name="outbox-relay"))
        for task in background:
            exit_when_stopped(task)
        freeze_startup_heap()
        try:
            yield
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await relay.close()
            await store.close()

    app = FastAPI(
        title="tpmap logbook",
        version="1",
        description=(
            "Field work on the target poor: cases opened from the matcher's household statuses, "
            "visits, interventions by Thai agencies, per-dimension resolution, households the "
            "survey missed, quarterly progress and the audit trail. Every user sees only their "
            "area; anything outside it is answered 404.\n\n"
            "สมุดบันทึกการทำงานของทีมปฏิบัติการ: เคสครัวเรือนคนจนเป้าหมาย การเยี่ยมบ้าน "
            "การให้ความช่วยเหลือจากหน่วยงาน การแก้ปัญหารายมิติ คนนอก จปฐ. "
            "รายงานความก้าวหน้ารายไตรมาส และประวัติการแก้ไข ผู้ใช้เห็นเฉพาะพื้นที่ของตน"
        ),
        lifespan=lifespan,
    )

    async def database_down(request: Request, error: Exception) -> Response:
        log.warning("database unavailable", extra={"error": str(error), "path": request.url.path})
        return JSONResponse(
            {"detail": "the database is unavailable; nothing was changed, try again"},
            status_code=503,
            headers={"Retry-After": "2"},
        )

    for error_class in DATABASE_DOWN:
        app.add_exception_handler(error_class, database_down)

    app.include_router(router)
    return app


def _csv(text: str, filename: str) -> Response:
    # A byte-order mark, so spreadsheet programs read the Thai names as UTF-8.
    return Response(
        ("\ufeff" + text).encode("utf-8"),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
