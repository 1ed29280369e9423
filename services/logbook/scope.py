"""Who may see and do what: roles, their areas, and how citizen IDs are shown. Pure: no I/O.

Every user has one role and the area(s) it covers. Area codes are prefixes of village codes
(`services.contracts.areas`): a province user on `49` covers every village `49xxxxxx`. Anything
outside a user's area is answered as if it did not exist (404), so existence does not leak.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

from services.contracts.areas import COUNTRY_CODE, area, level_of
from services.contracts.citizen_id import mask_citizen_id

Role = Literal["national", "province", "district", "team"]
ROLES: tuple[Role, ...] = get_args(Role)

# The area level each role is scoped to, and how many areas it may hold.
ROLE_LEVEL = {
    "national": "country",
    "province": "province",
    "district": "district",
    "team": "subdistrict",
}
ROLE_LABELS_TH = {
    "national": "ส่วนกลาง",
    "province": "ศูนย์ขจัดความยากจนจังหวัด",
    "district": "ศูนย์ขจัดความยากจนอำเภอ (ทีมพี่เลี้ยง)",
    "team": "ทีมปฏิบัติการตำบล",
}
# Field workers need the full ID to find a person and register them; oversight roles do not.
FULL_CITIZEN_ID_ROLES: frozenset[Role] = frozenset({"district", "team"})
# National monitors; the provinces, districts and teams do the field work.
WRITER_ROLES: frozenset[Role] = frozenset({"province", "district", "team"})
AUDIT_READER_ROLES: frozenset[Role] = frozenset({"national", "province"})


def user_areas_problem(role: str, areas: list[str]) -> str | None:
    """Why these areas do not fit the role, or None: national holds TH, province one province,
    district one district, team one or more subdistricts; every code must exist."""
    if role not in ROLES:
        return f"unknown role {role!r}; roles are {', '.join(ROLES)}"
    if not areas:
        return "at least one area code is required"
    if len(set(areas)) != len(areas):
        return "an area code is given twice"
    if role != "team" and len(areas) != 1:
        return f"a {role} user has exactly one area; only team users may hold several subdistricts"
    expected = ROLE_LEVEL[role]
    problems = (_area_problem(role, expected, code) for code in areas)
    return next((p for p in problems if p is not None), None)


def _area_problem(role: str, expected: str, code: str) -> str | None:
    if level_of(code) != expected:
        return f"{code!r} is not a {expected} code; a {role} user is scoped to a {expected}"
    if area(code) is None:
        return f"unknown {expected} {code}"
    return None


@dataclass(frozen=True, slots=True)
class User:
    user_id: str
    display_name: str
    role: Role
    areas: tuple[str, ...]

    @property
    def prefixes(self) -> tuple[str, ...]:
        """Village-code prefixes this user covers; ('',) covers everything."""
        return ("",) if self.role == "national" else self.areas

    def covers(self, code: str) -> bool:
        """Whether an area or village code lies inside this user's area (at or below it)."""
        if self.role == "national":
            return True
        if code == COUNTRY_CODE:
            return False
        return any(code.startswith(prefix) for prefix in self.areas)

    @property
    def sees_full_citizen_ids(self) -> bool:
        return self.role in FULL_CITIZEN_ID_ROLES

    @property
    def may_write(self) -> bool:
        return self.role in WRITER_ROLES

    @property
    def may_read_audit(self) -> bool:
        return self.role in AUDIT_READER_ROLES

    def show_citizen_id(self, citizen_id: str) -> str:
        return citizen_id if self.sees_full_citizen_ids else mask_citizen_id(citizen_id)


def like_patterns(prefixes: tuple[str, ...]) -> list[str] | None:
    """SQL LIKE patterns for village codes under these prefixes; None when they cover everything."""
    if "" in prefixes or COUNTRY_CODE in prefixes:
        return None
    return [f"{prefix}%" for prefix in prefixes]


def narrowed(user: User, area_code: str | None) -> tuple[str, ...] | None:
    """The prefixes a query asks for: the user's own, or `area_code` if it lies inside them.
    None when the area is outside the user's (answer 404)."""
    if area_code is None:
        return user.prefixes
    if not user.covers(area_code):
        return None
    return ("",) if area_code == COUNTRY_CODE else (area_code,)
