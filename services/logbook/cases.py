"""The case rules: what a household's status from the matcher does to its case. Pure: no I/O.

- A target household (at least one verified poor member) gets a case, reason `target`.
- An MPI-poor household with members not registered for the welfare card, and not target, gets
  an outreach case (reason `outreach`): help them register.
- A household that no longer qualifies keeps its case, marked `no_longer_target`; it is never
  deleted, and it is reopened if the household qualifies again. An outreach case whose household
  becomes target is re-announced with reason `target` (same case ID): the outreach worked.
- A case closed by a person stays closed whatever the statuses say.
- Statuses carry a version per household and year; only a newer one changes anything, so a
  replayed or late event is a no-op.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

from services.contracts.events import HouseholdStatus
from services.contracts.indicators import DIMENSIONS, Dimension

CaseReason = Literal["target", "outreach"]
CaseStatus = Literal["open", "no_longer_target", "closed"]
Resolution = Literal["helped", "self_resolved", "in_progress"]
Progress = Literal["helped", "self_resolved", "in_progress", "not_started"]

REASON_LABELS_TH: dict[str, str] = {
    "target": "คนจนเป้าหมาย",
    "outreach": "ช่วยลงทะเบียนบัตรสวัสดิการแห่งรัฐ",
}
STATUS_LABELS_TH: dict[str, str] = {
    "open": "กำลังดำเนินการ",
    "no_longer_target": "ไม่เป็นคนจนเป้าหมายแล้ว",
    "closed": "ปิดเคส",
}
RESOLUTION_LABELS_TH: dict[str, str] = {
    "helped": "ได้รับความช่วยเหลือแล้ว",
    "self_resolved": "แก้ไขได้เอง",
    "in_progress": "อยู่ระหว่างดำเนินการ",
}


@dataclass(frozen=True, slots=True)
class CaseState:
    reason: CaseReason
    status: CaseStatus


@dataclass(frozen=True, slots=True)
class CaseChange:
    """The case after a status: `opened` announces it (new, or outreach become target),
    `status_changed` says its status moved."""

    state: CaseState
    opened: bool
    status_changed: bool


def case_id(household_id: str, survey_year: int) -> str:
    """One case per household and survey year, with an ID derived from them: rebuilding the
    logbook from the topics gives every case the ID it had."""
    digest = hashlib.sha256(f"{household_id}:{survey_year}".encode()).hexdigest()
    return f"c{digest[:20]}"


def is_newer(stored_version: int | None, incoming_version: int) -> bool:
    return stored_version is None or incoming_version > stored_version


def qualifying_reason(status: HouseholdStatus) -> CaseReason | None:
    if status.target:
        return "target"
    if status.mpi_poor and status.unregistered_members > 0:
        return "outreach"
    return None


def next_case(current: CaseState | None, status: HouseholdStatus) -> CaseChange | None:
    """What `status` (newer than what the case has seen) does to the case; None: nothing."""
    wanted = qualifying_reason(status)
    if current is None:
        if wanted is None:
            return None
        return CaseChange(CaseState(wanted, "open"), opened=True, status_changed=False)
    if current.status == "closed":
        return None
    if current.reason == "outreach" and wanted == "target":
        return CaseChange(
            CaseState("target", "open"), opened=True, status_changed=current.status != "open"
        )
    # A target case lives while the household is target; an outreach case while it qualifies.
    still = wanted == "target" if current.reason == "target" else wanted is not None
    status_now: CaseStatus = "open" if still else "no_longer_target"
    if status_now == current.status:
        return None
    return CaseChange(CaseState(current.reason, status_now), opened=False, status_changed=True)


def deprivation_bits(dimensions: list[Dimension] | tuple[Dimension, ...]) -> int:
    bits = 0
    for dimension in dimensions:
        bits |= dimension.bit
    return bits


def dimensions_of(bits: int) -> list[Dimension]:
    return [d for d in DIMENSIONS if bits & d.bit]


def case_progress(
    deprived: list[Dimension],
    resolutions: dict[Dimension, Resolution],
    *,
    has_interventions: bool,
) -> Progress:
    """Where a case stands: `helped` once every deprived dimension is resolved (helped or
    self-resolved, at least one helped), `self_resolved` when all resolved themselves,
    `in_progress` once anything was done, else `not_started`."""
    if deprived and all(resolutions.get(d) in ("helped", "self_resolved") for d in deprived):
        if all(resolutions[d] == "self_resolved" for d in deprived):
            return "self_resolved"
        return "helped"
    if has_interventions or resolutions:
        return "in_progress"
    return "not_started"
