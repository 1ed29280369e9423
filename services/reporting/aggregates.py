"""An area's counters as the `AreaAggregate` event of `reporting.area-aggregates.v1`, and back.
Pure: no I/O.

The contract's `DeprivationBin` keeps, per exact deprivation set, persons and the registered
among them (the `card` persons), target persons and target households, households and the
`nocard` among them, crisis households and target persons per failed indicator. With the card
rule of `contributions.py` that is everything every mask and card filter needs: a target person
is verified, so always `card`; a target (and so a crisis) household has a verified member, so is
always `card`. `counters_of_aggregate` rebuilds counters from an aggregate, so a reader of the
topic answers `figures(...)` exactly as the API does (except `deceased` and `unplaced`, which the
contract does not carry). The progress counters (`progress.py`) travel in `progress`, by their
names without the `lb:` prefix.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from datetime import datetime

from services.contracts.areas import level_of
from services.contracts.events import AreaAggregate, DeprivationBin
from services.reporting.progress import PREFIX as PROGRESS_PREFIX

_COMMON = {
    "households": "households_surveyed",
    "persons": "persons_surveyed",
    "welfare_registered": "welfare_registered",
    "welfare_verified": "welfare_verified",
    "elderly": "elderly",
    "disabled": "disabled",
    "chronic": "chronic_patients",
    "welfare_only": "welfare_only",
}


def area_aggregate(
    survey_year: int, area_code: str, counters: Mapping[str, int], as_of: datetime
) -> AreaAggregate:
    """The event for one area and year from its counters."""
    level = level_of(area_code)
    if level is None:
        msg = f"not an area code: {area_code!r}"
        raise ValueError(msg)
    common = dict.fromkeys(_COMMON.values(), 0)
    applicable: dict[int, int] = {}
    failed: dict[int, int] = {}
    cells: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    by_indicator: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    progress: dict[str, int] = {}
    for key, value in counters.items():
        if not value:
            continue
        kind, _, rest = key.partition(":")
        if key.startswith(PROGRESS_PREFIX):
            name = key.removeprefix(PROGRESS_PREFIX)
            progress[name] = progress.get(name, 0) + value
        elif kind in _COMMON:
            common[_COMMON[kind]] += value
        elif kind == "ind_app":
            applicable[int(rest)] = applicable.get(int(rest), 0) + value
        elif kind == "ind_fail":
            failed[int(rest)] = failed.get(int(rest), 0) + value
        elif kind in ("pp", "pt", "hp", "ht", "hc", "pti"):
            s, _, rest = rest.partition(":")
            card, _, number = rest.partition(":")
            if kind == "pti":
                by_indicator[s][int(number)] += value
            else:
                cells[s][f"{kind}:{card}"] += value
    bins = []
    for s in sorted(set(cells) | set(by_indicator)):
        cell = cells[s]
        bins.append(
            DeprivationBin(
                deprivation_set=s,
                households=cell["hp:card"] + cell["hp:nocard"],
                persons=cell["pp:card"] + cell["pp:nocard"],
                registered_persons=cell["pp:card"],
                target_persons=cell["pt:card"] + cell["pt:nocard"],
                target_households=cell["ht:card"] + cell["ht:nocard"],
                nocard_households=cell["hp:nocard"],
                crisis_households=cell["hc:card"] + cell["hc:nocard"],
                target_by_indicator=dict(sorted(by_indicator[s].items())),
            )
        )
    return AreaAggregate(
        survey_year=survey_year,
        area_code=area_code,
        level=level,
        **common,
        indicator_applicable=dict(sorted(applicable.items())),
        indicator_failed=dict(sorted(failed.items())),
        bins=bins,
        progress=dict(sorted(progress.items())),
        as_of=as_of,
    )


def counters_of_aggregate(aggregate: AreaAggregate) -> dict[str, int]:
    """Counters that answer `figures(...)` as the aggregate's area does (target persons and
    target and crisis households are `card`, see the module's docstring)."""
    counters: dict[str, int] = {}

    def add(key: str, value: int) -> None:
        if value:
            counters[key] = counters.get(key, 0) + value

    for counter, name in _COMMON.items():
        add(counter, getattr(aggregate, name))
    for number, value in aggregate.indicator_applicable.items():
        add(f"ind_app:{number}", value)
    for number, value in aggregate.indicator_failed.items():
        add(f"ind_fail:{number}", value)
    for b in aggregate.bins:
        s = b.deprivation_set
        add(f"pp:{s}:card", b.registered_persons)
        add(f"pp:{s}:nocard", b.persons - b.registered_persons)
        add(f"pt:{s}:card", b.target_persons)
        add(f"hp:{s}:card", b.households - b.nocard_households)
        add(f"hp:{s}:nocard", b.nocard_households)
        add(f"ht:{s}:card", b.target_households)
        add(f"hc:{s}:card", b.crisis_households)
        for number, value in b.target_by_indicator.items():
            add(f"pti:{s}:card:{number}", value)
    for name, value in aggregate.progress.items():
        add(f"{PROGRESS_PREFIX}{name}", value)
    return counters
