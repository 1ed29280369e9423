"""The authorization matrix: every endpoint, every role, inside and outside the caller's area,
against the running service. Outside is always 404, answered exactly as for a thing that does
not exist; 403 only for what a role may do nowhere."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from services.logbook.cases import case_id
from services.logbook.scope import ROLES
from tests.service.logbook.conftest import (
    INSIDE_VILLAGE,
    OTHER_DISTRICT_VILLAGE,
    OTHER_PROVINCE_VILLAGE,
    LogbookServer,
    auth,
    household_status,
    person_status,
    publish_statuses,
    query,
    run_id,
    wait_for,
    wait_for_version,
)
from tests.synthetic import citizen_id

pytestmark = pytest.mark.stack

WRITERS = {"province", "district", "team"}
AUDITORS = {"national", "province"}


@dataclass(frozen=True, slots=True)
class Place:
    """A case, an intervention on it and a field-added household, all in one village."""

    name: str
    area: str
    village: str
    case: str
    intervention: str
    field: str


@dataclass(frozen=True, slots=True)
class World:
    places: dict[str, Place]
    covered: dict[str, set[str]]  # role -> names of the places inside its area
    first_person: int


def _post(server: LogbookServer, token: str, path: str, body: Any) -> httpx.Response:
    return httpx.post(f"{server.url}{path}", json=body, headers=auth(token), timeout=30)


def _field_household(village: str, n: int) -> dict[str, Any]:
    return {
        "survey_year": 2561,
        "village_code": village,
        "house_no": "99/1 (คนนอก จปฐ.)",
        "income_per_capita_baht": 20_000,
        "indicators": {"8": "fail", "22": "fail"},
        "members": [{"citizen_id": citizen_id(n), "age": 70, "sex": "F", "bedridden": True}],
    }


INTERVENTION = {
    "dimension": "income",
    "agency_code": "DOAE",
    "kind": "อาชีพเสริม",
    "description": "ไก่ไข่ 20 ตัว",
    "amount_baht": 4500,
}


@pytest.fixture(scope="module")
def world(
    logbook: LogbookServer,
    logbook_tokens: dict[str, str],
    kafka_bootstrap: str,
    database_url: str,
) -> World:
    run = run_id()
    first_person = 700_000_000 + int(run, 16) % 1_000_000 * 100
    villages = {
        "inside": (INSIDE_VILLAGE, "490101", "team"),
        "other_district": (OTHER_DISTRICT_VILLAGE, "4902", "other_district"),
        "other_province": (OTHER_PROVINCE_VILLAGE, "30", "other_province"),
    }
    statuses: list[Any] = []
    for name, (village, _, _) in villages.items():
        household = f"acl-{run}-{name}"
        statuses.append(household_status(household, village, 1, crisis=name == "inside"))
    statuses += [
        person_status(first_person, f"acl-{run}-inside", INSIDE_VILLAGE),
        person_status(
            first_person + 1, f"acl-{run}-inside", INSIDE_VILLAGE, person_class="unregistered_poor"
        ),
    ]
    publish_statuses(kafka_bootstrap, statuses)
    # Person statuses travel on their own topic: wait for them too, not only the households.
    wait_for(
        "the inside household's two members",
        lambda: (
            len(
                query(
                    database_url,
                    "SELECT 1 FROM logbook.persons WHERE household_id = $1",
                    f"acl-{run}-inside",
                )
            )
            == 2
        ),
    )
    places = {}
    for index, (name, (village, area, writer)) in enumerate(villages.items()):
        household = f"acl-{run}-{name}"
        wait_for_version(database_url, household, 1)
        the_case = case_id(household, 2561)
        made = _post(
            logbook, logbook_tokens[writer], f"/v1/cases/{the_case}/interventions", INTERVENTION
        )
        assert made.status_code == 201, made.text
        field = _post(
            logbook,
            logbook_tokens[writer],
            "/v1/field-households",
            _field_household(village, first_person + 10 + index),
        )
        assert field.status_code == 201, field.text
        places[name] = Place(
            name,
            area,
            village,
            the_case,
            made.json()["intervention_id"],
            field.json()["household_id"],
        )
    return World(
        places,
        {
            "national": set(places),
            "province": {"inside", "other_district"},
            "district": {"inside"},
            "team": {"inside"},
        },
        first_person,
    )


@dataclass(frozen=True, slots=True)
class Endpoint:
    method: str
    path: str  # with {case}, {intervention}, {field}, {area}, {village} from a Place
    body: Any = None
    writes: bool = False
    audit: bool = False
    placed: bool = True  # about something in an area (else the same for everyone, e.g. /v1/me)
    created: int = 200

    def url(self, place: Place) -> str:
        return self.path.format(
            case=place.case,
            intervention=place.intervention,
            field=place.field,
            area=place.area,
            village=place.village,
        )

    def expected_inside(self, role: str) -> int:
        if self.writes and role not in WRITERS:
            return 403
        if self.audit and role not in AUDITORS:
            return 403
        return self.created


ENDPOINTS: dict[str, Endpoint] = {
    "me": Endpoint("GET", "/v1/me", placed=False),
    "agencies": Endpoint("GET", "/v1/agencies", placed=False),
    "cases": Endpoint("GET", "/v1/cases?area={area}"),
    "cases by village": Endpoint("GET", "/v1/cases?village={village}"),
    "case": Endpoint("GET", "/v1/cases/{case}"),
    "visits": Endpoint("GET", "/v1/cases/{case}/visits"),
    "add visit": Endpoint(
        "POST",
        "/v1/cases/{case}/visits",
        {"visited_on": "2018-07-02", "team_member": "สมศรี", "notes": "เยี่ยมบ้าน"},
        writes=True,
        created=201,
    ),
    "interventions": Endpoint("GET", "/v1/cases/{case}/interventions"),
    "add intervention": Endpoint(
        "POST", "/v1/cases/{case}/interventions", INTERVENTION, writes=True, created=201
    ),
    "update intervention": Endpoint(
        "PATCH",
        "/v1/cases/{case}/interventions/{intervention}",
        {"status": "in_progress"},
        writes=True,
    ),
    "resolution": Endpoint(
        "PUT",
        "/v1/cases/{case}/resolutions/income",
        {"resolution": "in_progress", "note": "กำลังติดตาม"},
        writes=True,
    ),
    "add field household": Endpoint(
        "POST", "/v1/field-households", "field", writes=True, created=201
    ),
    "field households": Endpoint("GET", "/v1/field-households?area={area}"),
    "field household": Endpoint("GET", "/v1/field-households/{field}"),
    "progress": Endpoint("GET", "/v1/reports/progress.csv?area={area}&fiscal_year=2562&quarter=1"),
    "interventions report": Endpoint(
        "GET", "/v1/reports/interventions.csv?area={area}&fiscal_year=2562&quarter=1"
    ),
    "audit": Endpoint("GET", "/v1/audit?area={area}", audit=True),
    "audit of a case": Endpoint("GET", "/v1/audit?case_id={case}", audit=True),
}


def _call(
    server: LogbookServer, endpoint: Endpoint, place: Place, token: str | None, n: int
) -> httpx.Response:
    body = endpoint.body
    if body == "field":
        body = _field_household(place.village, n)
    return httpx.request(
        endpoint.method,
        f"{server.url}{endpoint.url(place)}",
        json=body,
        headers=auth(token) if token else {},
        timeout=30,
    )


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("name", list(ENDPOINTS))
def test_inside_and_outside(
    name: str,
    role: str,
    world: World,
    logbook: LogbookServer,
    logbook_tokens: dict[str, str],
) -> None:
    endpoint = ENDPOINTS[name]
    token = logbook_tokens[role]
    n = world.first_person + 20 + list(ENDPOINTS).index(name) * 10 + ROLES.index(role)
    inside = _call(logbook, endpoint, world.places["inside"], token, n)
    assert inside.status_code == endpoint.expected_inside(role), inside.text
    if not endpoint.placed:
        return
    for place in world.places.values():
        if place.name in world.covered[role]:
            continue
        outside = _call(logbook, endpoint, place, token, n + 5)
        assert outside.status_code == 404, (place.name, outside.text)
        assert "in your area" in outside.json()["detail"]


@pytest.mark.parametrize("name", list(ENDPOINTS))
def test_no_token_is_401(name: str, world: World, logbook: LogbookServer) -> None:
    response = _call(logbook, ENDPOINTS[name], world.places["inside"], None, 0)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    bad = _call(logbook, ENDPOINTS[name], world.places["inside"], "tpl_nope_nope", 0)
    assert bad.status_code == 401


def test_the_matrix_covers_every_route(logbook: LogbookServer) -> None:
    spec = httpx.get(f"{logbook.url}/openapi.json", timeout=10).json()
    routes = {
        (method.upper(), path)
        for path, operations in spec["paths"].items()
        for method in operations
        if path.startswith("/v1/")
    }
    covered = {
        (
            e.method,
            e.path.split("?")[0]
            .replace("{case}", "{case_id}")
            .replace("{intervention}", "{intervention_id}")
            .replace("/income", "/{dimension}")
            .replace("{field}", "{household_id}"),
        )
        for e in ENDPOINTS.values()
    }
    assert routes == covered


def test_a_missing_case_and_an_outside_case_look_the_same(
    world: World, logbook: LogbookServer, logbook_tokens: dict[str, str]
) -> None:
    token = logbook_tokens["team"]
    outside = httpx.get(
        f"{logbook.url}/v1/cases/{world.places['other_province'].case}", headers=auth(token)
    )
    missing = httpx.get(f"{logbook.url}/v1/cases/c00000000000000000000", headers=auth(token))
    assert (outside.status_code, outside.content) == (missing.status_code, missing.content)


def test_lists_hold_only_the_callers_area(
    world: World, logbook: LogbookServer, logbook_tokens: dict[str, str]
) -> None:
    for role in ROLES:
        token = logbook_tokens[role]
        cases: set[str] = set()
        cursor = None
        while True:
            page = httpx.get(
                f"{logbook.url}/v1/cases",
                params={"limit": 500, **({"cursor": cursor} if cursor else {})},
                headers=auth(token),
                timeout=30,
            ).json()
            cases |= {c["case_id"] for c in page["cases"]}
            cursor = page["next_cursor"]
            if cursor is None:
                break
        fields = {
            f["household_id"]
            for f in httpx.get(
                f"{logbook.url}/v1/field-households",
                params={"limit": 500},
                headers=auth(token),
                timeout=30,
            ).json()
        }
        for place in world.places.values():
            inside = place.name in world.covered[role]
            assert (place.case in cases) is inside, (role, place.name)
            assert (place.field in fields) is inside, (role, place.name)


def test_citizen_ids_are_full_for_field_roles_and_masked_for_oversight(
    world: World, logbook: LogbookServer, logbook_tokens: dict[str, str]
) -> None:
    place = world.places["inside"]
    full = citizen_id(world.first_person)
    for role in ROLES:
        detail = httpx.get(
            f"{logbook.url}/v1/cases/{place.case}", headers=auth(logbook_tokens[role])
        ).json()
        shown = {m["citizen_id"] for m in detail["members"]}
        field = httpx.get(
            f"{logbook.url}/v1/field-households/{place.field}", headers=auth(logbook_tokens[role])
        ).json()
        field_id = field["record"]["members"][0]["citizen_id"]
        if role in {"district", "team"}:
            assert full in shown
            assert "*" not in field_id
        else:
            assert full not in shown
            assert "*********" + full[-4:] in shown
            assert field_id.startswith("*********")
        assert any(m["needs_registration"] for m in detail["members"])
