"""A from-scratch recount of section 4's figures over final statuses, written straight from
TPMAP-RULES.md (not from reporting's counters), for the unit and the service tests."""

from __future__ import annotations

from dataclasses import dataclass

from services.contracts.areas import parent_chain
from services.contracts.events import HouseholdStatus, PersonStatus
from services.contracts.indicators import DIMENSIONS, Dimension
from services.reporting.contributions import AreaFigures, CardFilter, mpi, target_rate

Status = PersonStatus | HouseholdStatus


def final_states(stream: list[Status]) -> list[Status]:
    newest: dict[tuple[str, str, int], Status] = {}
    for status in stream:
        key: tuple[str, str, int] = (
            ("p", status.citizen_id, status.survey_year)
            if isinstance(status, PersonStatus)
            else ("h", status.household_id, status.survey_year)
        )
        if key not in newest or status.version > newest[key].version:
            newest[key] = status
    return list(newest.values())


# --- the recount, written from the rules, not from the counters ----------------------------------


@dataclass(frozen=True, slots=True)
class Recount:
    mask: str
    card: CardFilter

    def meets(self, deprivation: list[Dimension]) -> set[Dimension]:
        chosen = {d for d, flag in zip(DIMENSIONS, self.mask, strict=True) if flag == "1"}
        return set(deprivation) & chosen

    def passes(self, has_card: bool) -> bool:
        return self.card == "all" or (self.card == "card") == has_card

    def figures(self, states: list[Status], year: int, area: str) -> AreaFigures:
        def here(code: str | None) -> bool:
            return code is not None and area in parent_chain(code)

        persons = [
            s
            for s in states
            if isinstance(s, PersonStatus)
            and s.survey_year == year
            and here(s.village_code)
            and s.person_class in ("not_poor", "target", "registered_poor", "unregistered_poor")
        ]
        households = [
            s
            for s in states
            if isinstance(s, HouseholdStatus) and s.survey_year == year and here(s.village_code)
        ]
        has_card = {p.citizen_id: p.welfare_status in ("registered", "verified") for p in persons}
        poor = [
            p for p in persons if self.meets(p.deprivation) and self.passes(has_card[p.citizen_id])
        ]
        target = [p for p in poor if p.person_class == "target"]
        poor_households = [
            h
            for h in households
            if self.meets(h.deprivation) and self.passes(h.registered_members > 0)
        ]
        others = [
            s
            for s in states
            if isinstance(s, PersonStatus) and s.survey_year == year and s.person_class != "removed"
        ]
        applicable: dict[int, int] = {}
        failed: dict[int, int] = {}
        for p in persons:
            for i in p.applicable_indicators:
                applicable[i] = applicable.get(i, 0) + 1
            for i in p.failed_indicators:
                failed[i] = failed.get(i, 0) + 1
        target_count = len(target)
        return AreaFigures(
            mask=self.mask,
            card=self.card,
            households_surveyed=len(households),
            persons_surveyed=len(persons),
            welfare_registered=sum(has_card.values()),
            welfare_verified=sum(p.welfare_status == "verified" for p in persons),
            elderly=sum(p.age_band == "60+" for p in persons),
            disabled=sum(p.disabled for p in persons),
            chronic_patients=sum(p.chronic_patient for p in persons),
            indicator_applicable=dict(sorted(applicable.items())),
            indicator_failed=dict(sorted(failed.items())),
            poor_households=len(poor_households),
            poor_persons=len(poor),
            poor_registered=sum(has_card[p.citizen_id] for p in poor),
            target_persons=target_count,
            target_by_dimension={
                d.value: sum(d in self.meets(p.deprivation) for p in target) for d in DIMENSIONS
            },
            target_by_indicator={
                i: sum(i in p.failed_indicators for p in target) for i in range(1, 32)
            },
            target_rate=target_rate(target_count, len(persons)),
            target_households=sum(h.target for h in poor_households),
            nocard_poor_households=sum(h.registered_members == 0 for h in poor_households),
            crisis_households=sum(h.crisis for h in poor_households),
            unregistered_poor=sum(not has_card[p.citizen_id] for p in poor),
            welfare_only=sum(
                p.person_class == "welfare_only" and here(p.village_code) for p in others
            ),
            deceased=sum(p.person_class == "deceased" and here(p.village_code) for p in others),
            unplaced=(sum(p.village_code is None for p in others) if area == "TH" else 0),
            mpi_poor=mpi(
                len(persons), len(poor), sum(len(self.meets(p.deprivation)) for p in poor)
            ),
            mpi_target=mpi(
                len(persons), target_count, sum(len(self.meets(p.deprivation)) for p in target)
            ),
        )
