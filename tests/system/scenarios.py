"""How a system test runs the population through a pipeline, and what it checks at the end.

The usual order, in three phases with the pipeline settled after each (so every undisturbed
run sends the same statuses, transitional ones included, and the logbook opens the same
cases): the registry's facts (welfare registrations, deaths), then the surveys (paced, a
request every `SURVEY_PACE` seconds: the "load" a scenario disturbs), then the field work on
the cases that opened, and the updates (re-surveys, newer registrations).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import orjson

from services.contracts.areas import parent_chain
from services.contracts.topics import HOUSEHOLD_STATUS, PERSON_STATUS
from tests.system.pipeline import Loader, Outcome, Pipeline, describe_differences, read_topic
from tests.system.population import SURVEY_YEAR, Population

FACTS_PER_REQUEST = 1000
SURVEYS_PER_REQUEST = 150
SURVEY_PACE = 0.3  # seconds between survey requests: 15 requests over about 4.5 s
UPDATES_PER_REQUEST = 500

Disturbance = Callable[[Pipeline, Loader], None]


def run_in_usual_order(
    pipeline: Pipeline,
    population: Population,
    *,
    during_surveys: Disturbance | None = None,
    copies: tuple[str, ...] = ("1",),
) -> Outcome:
    """The three phases; `during_surveys` is called once the surveys have started to go in
    (with their loader); `copies` sends every request once per copy, each copy a request of its
    own (another Idempotency-Key), so every record reaches Kafka once per copy."""
    for copy in copies:
        pipeline.load(population.facts(FACTS_PER_REQUEST), copy=copy)
    pipeline.settle()
    loaders = [
        pipeline.start_loading(
            population.survey_batches(SURVEYS_PER_REQUEST),
            pace=SURVEY_PACE,
            copy=copy,
        )
        for copy in copies
    ]
    pipeline.note("surveys started")
    if during_surveys is not None:
        during_surveys(pipeline, loaders[0])
        pipeline.note("disturbed")
    for loader in loaders:
        loader.finish()
    pipeline.note("surveys in")
    pipeline.settle()
    if not pipeline.field_work_done.households:
        pipeline.field_work(population.field_work)
        pipeline.note("field work done")
    for copy in copies:
        pipeline.load(
            population.updates(UPDATES_PER_REQUEST),
            copy=copy,
        )
    pipeline.settle()
    return pipeline.outcome()


# --- checks ----------------------------------------------------------------------------------


def check_complete(pipeline: Pipeline, population: Population, outcome: Outcome) -> None:
    """What any run must end with, whatever happened on the way: no dead letter, each
    logbook event once in the outbox and applied by reporting, and the field work counted
    exactly once."""
    assert outcome.dead_letters == {"matcher": 0, "logbook": 0, "reporting": 0}, (
        f"{pipeline.name}: dead letters {outcome.dead_letters}"
    )
    ids = outcome.outbox_event_ids
    repeated = [i for i, n in Counter(ids).items() if n > 1]
    assert not repeated, f"{pipeline.name}: {len(repeated)} logbook events twice in the outbox"
    missing = set(ids) - outcome.applied_event_ids
    unknown = outcome.applied_event_ids - set(ids)
    assert not missing, f"{pipeline.name}: reporting never applied {len(missing)} logbook events"
    assert not unknown, f"{pipeline.name}: reporting applied {len(unknown)} unknown events"
    done = pipeline.field_work_done
    assert done.households == len(population.field_work), (
        f"{pipeline.name}: field work on {done.households} of {len(population.field_work)} cases"
    )
    assert (outcome.visits, outcome.interventions) == (done.visits, done.interventions), (
        f"{pipeline.name}: the logbook holds {outcome.visits} visits and {outcome.interventions} "
        f"interventions, the field team made {done.visits} and {done.interventions}"
    )
    assert outcome.figure(PROVINCE_AREA, "lb:visits") == done.visits, (
        f"{pipeline.name}: reporting counts {outcome.figure(PROVINCE_AREA, 'lb:visits')} visits, "
        f"{done.visits} were recorded"
    )
    interventions = sum(
        value
        for (year, area, counter), value in outcome.counters.items()
        if year == SURVEY_YEAR and area == "TH" and counter.startswith("lb:interventions:")
    )
    assert interventions == done.interventions, (
        f"{pipeline.name}: reporting counts {interventions} interventions, "
        f"{done.interventions} were recorded"
    )


PROVINCE_AREA = "49"


def check_reference(pipeline: Pipeline, population: Population, outcome: Outcome) -> None:
    """The undisturbed run is right before anything is compared with it: the matcher's final
    statuses are what the rules give over all records in one batch (tests/unit/matcher/
    reference.py), and reporting counted every person and household once."""
    check_complete(pipeline, population, outcome)
    final: dict[str, dict[str, Any]] = {}
    for spec in (PERSON_STATUS, HOUSEHOLD_STATUS):
        for message in read_topic(pipeline.broker.bootstrap, spec):
            final[f"{spec.name}/{message.key.decode()}"] = orjson.loads(message.value)["data"]
    wrong = []
    for (cid, year), (
        household,
        village,
        cls,
        deprivation,
        band,
    ) in population.expected_persons.items():
        status = final.get(f"{PERSON_STATUS.name}/{cid}:{year}")
        got = (
            None
            if status is None
            else (
                status["household_id"],
                status["village_code"],
                status["person_class"],
                status["deprivation"],
                status["age_band"],
            )
        )
        if got != (household, village, cls, [d.value for d in deprivation], band):
            wrong.append(cid)
    assert not wrong, (
        f"the undisturbed run's person statuses differ from the rules for {len(wrong)} of "
        f"{len(population.expected_persons)} persons"
    )
    for (household, year), expected in population.expected_households.items():
        status = final[f"{HOUSEHOLD_STATUS.name}/{household}:{year}"]
        got = tuple(
            status[k]
            for k in (
                "member_count",
                "target_members",
                "registered_members",
                "nocard",
                "crisis",
                "priority",
            )
        )
        assert got == expected, f"household {household}: status {got}, the rules say {expected}"
    classes = Counter(value[2] for value in population.expected_persons.values())
    surveyed = sum(
        classes[c] for c in ("not_poor", "target", "registered_poor", "unregistered_poor")
    )
    target_persons = sum(
        value
        for (year, area, counter), value in outcome.counters.items()
        if year == SURVEY_YEAR and area == "TH" and counter.startswith("pt:")
    )
    assert (
        outcome.figure("TH", "persons"),
        outcome.figure("TH", "deceased"),
        outcome.figure("TH", "households"),
        target_persons,
    ) == (surveyed, classes["deceased"], len(population.expected_households), classes["target"])
    kinds = Counter(kind for kind, _ in outcome.applied)
    assert kinds == {
        "person": len(population.expected_persons),
        "household": len(population.expected_households),
    }, f"reporting applied {dict(kinds)}"
    assert outcome.cases, "the logbook opened no case"
    assert outcome.figure("TH", "lb:helped") > 0, "no case counts as helped"


def check_same_as_reference(run: Outcome, reference: Outcome, what: str) -> None:
    """Every aggregate, every stored contribution and every case as in the undisturbed run."""
    problems = [
        describe_differences(run.counters, reference.counters, "counters (year, area, counter)"),
        describe_differences(run.applied, reference.applied, "applied statuses (contributions)"),
        describe_differences(run.cases, reference.cases, "logbook cases (reason, status)"),
    ]
    found = [p for p in problems if p]
    assert not found, f"{what}:\n" + "\n".join(found)
    assert len(run.outbox_event_ids) == len(reference.outbox_event_ids), (
        f"{what}: {len(run.outbox_event_ids)} logbook events, the undisturbed run had "
        f"{len(reference.outbox_event_ids)}"
    )


# What a case the logbook opened and then closed as `no_longer_target`, with no field work,
# adds to the progress counters (services/reporting/progress.py).
LEFT_CASE_COUNTERS = frozenset(
    {"lb:cases", "lb:target_cases", "lb:outreach_cases", "lb:no_longer_target", "lb:not_started"}
)


def check_same_but_cases_left_behind(run: Outcome, reference: Outcome, what: str) -> list[str]:
    """As `check_same_as_reference`, except for the cases a transitional status opened: the
    logbook keeps a case whose household stops qualifying (`no_longer_target`, services/logbook/
    cases.py), so statuses that arrive in another order can leave cases the usual order never
    opened. Every such case must be `no_longer_target` without field work, and the counters
    must be the undisturbed run's plus exactly what those cases add; everything else (every
    status figure, every contribution, every other case) identical. The households of those
    cases."""
    missing = sorted(set(reference.cases) - set(run.cases))
    assert not missing, f"{what}: {len(missing)} cases of the undisturbed run never opened"
    left = sorted(set(run.cases) - set(reference.cases))
    wrong = {h: run.cases[h] for h in left if run.cases[h][1] != "no_longer_target"}
    assert not wrong, f"{what}: cases the undisturbed run has not: {wrong}"
    expected: Counter[tuple[int, str, str]] = Counter(reference.counters)
    for household in left:
        village, counters = run.case_files[household]
        assert village is not None
        assert set(counters) <= LEFT_CASE_COUNTERS, f"{what}: {household} adds {counters}"
        for area in parent_chain(village):
            for counter, value in counters.items():
                expected[(SURVEY_YEAR, area, counter)] += value
    problems = [
        describe_differences(
            run.counters,
            {k: v for k, v in expected.items() if v},
            "counters (with the cases left behind added)",
        ),
        describe_differences(run.applied, reference.applied, "applied statuses (contributions)"),
        describe_differences(
            {h: c for h, c in run.cases.items() if h in reference.cases},
            reference.cases,
            "logbook cases (reason, status)",
        ),
    ]
    found = [p for p in problems if p]
    assert not found, f"{what}:\n" + "\n".join(found)
    return left
