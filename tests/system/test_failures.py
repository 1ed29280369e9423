"""Failures mid-load, duplicates and disorder: each scenario runs the population through a
pipeline of its own (broker, database, services) and disturbs it (a service killed, the broker
or PostgreSQL restarted while the surveys are going in; every record sent twice; another
order), and must end with exactly the undisturbed run's aggregates, contributions and cases,
nothing lost and nothing counted twice.

    .venv/bin/python -m pytest tests/system          (-s or -rA: what each disturbance hit)
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from services.contracts.topics import HOUSEHOLD_STATUS, LOGBOOK_EVENTS, PERSON_STATUS
from tests.system.pipeline import (
    BrokerPool,
    Loader,
    Outcome,
    Pipeline,
    produce_again,
    wait_for,
)
from tests.system.population import Population
from tests.system.scenarios import (
    FACTS_PER_REQUEST,
    SURVEY_PACE,
    SURVEYS_PER_REQUEST,
    UPDATES_PER_REQUEST,
    check_complete,
    check_same_as_reference,
    check_same_but_cases_left_behind,
    run_in_usual_order,
)

pytestmark = pytest.mark.stack


def _surveys_under_way(
    pipeline: Pipeline, population: Population, share: float, *, more_waiting: bool = True
) -> tuple[int, int]:
    """Waits until the matcher has committed `share` of the surveys (and, with `more_waiting`,
    has more input waiting); (surveys committed, input records it has not committed yet)."""
    wanted = int(len(population.surveys) * share)

    def mid_load() -> tuple[int, int] | None:
        matched = pipeline.surveys_matched()
        progress = pipeline.matcher_progress()
        if matched is None or progress is None or matched < wanted:
            return None
        if more_waiting and progress[1] == 0:
            return None
        return matched, progress[1]

    return wait_for(f"{share:.0%} of the surveys matched, more waiting", mid_load)


def test_the_undisturbed_run_follows_the_rules(reference: Outcome) -> None:
    """The reference is checked against the matcher's rules when it is made (check_reference in
    the `reference` fixture); this test only makes its failure show up under its own name."""
    assert reference.counters


def test_a_matcher_killed_mid_load_and_restarted(
    population: Population,
    reference: Outcome,
    broker_pool: BrokerPool,
    database_url: str,
    tmp_path: Path,
) -> None:
    seen: dict[str, int] = {}

    def kill_the_matcher(pipeline: Pipeline, loader: Loader) -> None:
        matched, waiting = _surveys_under_way(pipeline, population, 0.2)
        pipeline.kill("matcher-1")
        seen.update(surveys_matched=matched, waiting=waiting, requests_left=loader.remaining)
        time.sleep(1)
        pipeline.restart("matcher-1")

    with Pipeline.open("matcher-kill", tmp_path, broker_pool, database_url) as pipeline:
        outcome = run_in_usual_order(pipeline, population, during_surveys=kill_the_matcher)
        check_complete(pipeline, population, outcome)
    assert seen["waiting"] > 0, f"the matcher had nothing left to do when it was killed: {seen}"
    assert seen["surveys_matched"] < len(population.surveys), seen
    print(f"\na matcher killed mid-load: {seen}")  # shown with -s or -rA
    check_same_as_reference(outcome, reference, f"a matcher killed mid-load ({seen})")


def test_a_reporting_worker_killed_mid_load_and_restarted(
    population: Population,
    reference: Outcome,
    broker_pool: BrokerPool,
    database_url: str,
    tmp_path: Path,
) -> None:
    seen: dict[str, int] = {}

    def kill_reporting(pipeline: Pipeline, loader: Loader) -> None:
        _surveys_under_way(pipeline, population, 0.2)
        # Facts alone make statuses (welfare-only persons): wait for the surveys' statuses.
        start = (pipeline.reporting_progress() or (0, 0))[0]

        def mid_load() -> tuple[int, int] | None:
            progress = pipeline.reporting_progress()
            if progress is None or progress[0] < start + 500 or progress[1] == 0:
                return None
            return progress

        applied, waiting = wait_for("reporting mid-load", mid_load)
        pipeline.kill("reporting-worker-1")
        seen.update(applied=applied, waiting=waiting, requests_left=loader.remaining)
        time.sleep(1)
        pipeline.restart("reporting-worker-1")

    with Pipeline.open("reporting-kill", tmp_path, broker_pool, database_url) as pipeline:
        outcome = run_in_usual_order(pipeline, population, during_surveys=kill_reporting)
        check_complete(pipeline, population, outcome)
    assert seen["waiting"] > 0, f"reporting had nothing left to apply when killed: {seen}"
    print(f"\na reporting worker killed mid-load: {seen}")  # shown with -s or -rA
    check_same_as_reference(outcome, reference, f"a reporting worker killed mid-load ({seen})")


def test_the_logbook_relay_killed_mid_load_during_field_work_and_restarted(
    population: Population,
    reference: Outcome,
    broker_pool: BrokerPool,
    database_url: str,
    tmp_path: Path,
) -> None:
    """The logbook worker (status consumer and the only outbox relay) is killed while the
    surveys go in and a field team records visits, interventions and resolutions on the cases
    that have opened; the team goes on writing, and the rest of the surveys come, while it is
    down."""
    seen: dict[str, int] = {}
    work = population.field_work

    # The surveys go in as far as the household of the fourth case after the first third of the
    # field work (so that those cases can open), the rest once the worker is down.
    first = len(work) // 3
    share = population.share_of_surveys_up_to(work[first + 3].household_id) + 0.02

    def kill_the_relay(pipeline: Pipeline, loader: Loader) -> None:
        held = loader.pause_after(share)
        team = pipeline.start_field_work(work, pace=0.1)
        wait_for(
            "field work on a third of the cases", lambda: team.done.households >= len(work) // 3
        )
        # The team pauses until three more of its cases have opened, so that it has work to do
        # while the relay (and the status consumer, which opens cases) is down.
        team.going.clear()
        wait_for("the field team to pause", team.holding.is_set)
        wait_for("three more cases", lambda: pipeline.cases_open(team.pending) >= 3)
        pipeline.kill("logbook-worker-1")
        written = team.done.households
        seen.update(
            households_written=written,
            backlog_at_kill=pipeline.outbox_backlog() or 0,
            requests_left=held,
        )
        loader.going.set()
        team.going.set()
        wait_for("field work while the relay is down", lambda: team.done.households >= written + 3)
        seen.update(
            written_while_down=team.done.households - written,
            backlog_at_restart=pipeline.outbox_backlog() or 0,
            statuses_waiting_at_restart=(pipeline.logbook_progress() or (0, 0))[1],
        )
        pipeline.restart("logbook-worker-1")
        pipeline.record_field_work(team.finish())

    with Pipeline.open("logbook-relay-kill", tmp_path, broker_pool, database_url) as pipeline:
        outcome = run_in_usual_order(pipeline, population, during_surveys=kill_the_relay)
        check_complete(pipeline, population, outcome)
    assert seen["requests_left"] > 0, f"the surveys were all in when the relay was killed: {seen}"
    assert 0 < seen["households_written"] < len(work), seen
    assert seen["written_while_down"] > 0, f"no field work while the relay was down: {seen}"
    assert seen["backlog_at_restart"] > 0, f"nothing waited in the outbox: {seen}"
    print(f"\nthe logbook relay killed mid-load: {seen}")  # shown with -s or -rA
    check_same_as_reference(outcome, reference, f"the logbook relay killed mid-load ({seen})")


def test_the_broker_stopped_mid_load_and_restarted(
    population: Population,
    reference: Outcome,
    broker_pool: BrokerPool,
    database_url: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The broker stops (SIGTERM, as for an upgrade) while surveys are still being posted, for
    about 15 s with its restart; ingest holds the requests or answers 503 meanwhile and the
    loader resends."""
    caplog.set_level(logging.CRITICAL, logger="kafka")  # the test's own clients, while it is away
    seen: dict[str, int] = {}

    def stop_the_broker(pipeline: Pipeline, loader: Loader) -> None:
        # Half the surveys are posted; the rest go while the broker is down.
        held = loader.pause_after(0.5)
        matched, waiting = _surveys_under_way(pipeline, population, 0.1, more_waiting=False)
        seen.update(surveys_matched=matched, waiting=waiting, requests_left=held)
        retries = loader.retries
        pipeline.broker.stop()
        loader.going.set()
        time.sleep(3)
        pipeline.broker.start()
        seen.update(retries_while_down=loader.retries - retries)

    with Pipeline.open("broker-restart", tmp_path, broker_pool, database_url) as pipeline:
        outcome = run_in_usual_order(pipeline, population, during_surveys=stop_the_broker)
        check_complete(pipeline, population, outcome)
    assert seen["requests_left"] > 0, f"the surveys were all in when the broker stopped: {seen}"
    print(f"\nthe broker restarted mid-load: {seen}")  # shown with -s or -rA
    check_same_as_reference(outcome, reference, f"the broker restarted mid-load ({seen})")


def test_postgresql_restarted_mid_load(
    population: Population,
    reference: Outcome,
    broker_pool: BrokerPool,
    tmp_path: Path,
) -> None:
    """On a PostgreSQL cluster of the pipeline's own, so the session's is never stopped. Every
    service must ride it out: ingest answers 503 meanwhile and frees the Idempotency-Key of a
    request that failed (its resend goes through), the workers keep running."""
    seen: dict[str, int] = {}
    loaders: list[Loader] = []

    def restart_postgresql(pipeline: Pipeline, loader: Loader) -> None:
        # Half the surveys are posted; the rest go while PostgreSQL is down.
        held = loader.pause_after(0.5)
        _, waiting = _surveys_under_way(pipeline, population, 0.1, more_waiting=False)
        reporting = pipeline.reporting_progress() or (0, 0)
        seen.update(matcher_waiting=waiting, reporting_waiting=reporting[1], requests_left=held)
        loaders.append(loader)
        assert pipeline.own_postgres is not None
        pipeline.own_postgres.stop()
        loader.going.set()
        time.sleep(3)
        pipeline.own_postgres.start()

    with Pipeline.open("postgres-restart", tmp_path, broker_pool, None) as pipeline:
        outcome = run_in_usual_order(pipeline, population, during_surveys=restart_postgresql)
        check_complete(pipeline, population, outcome)
    seen.update({f"ingest_answered_{code}": n for code, n in loaders[0].answers.items()})
    assert seen["requests_left"] > 0, f"the surveys were all in when PostgreSQL stopped: {seen}"
    assert seen.get("ingest_answered_503", 0) > 0, (
        f"ingest never noticed PostgreSQL was down: {seen}"
    )
    print(f"\nPostgreSQL restarted mid-load: {seen}")  # shown with -s or -rA
    check_same_as_reference(outcome, reference, f"PostgreSQL restarted mid-load ({seen})")


def test_every_record_sent_twice(
    population: Population,
    reference: Outcome,
    broker_pool: BrokerPool,
    database_url: str,
    tmp_path: Path,
) -> None:
    """Every agency record reaches Kafka twice (each request sent again as a request of its
    own), and once settled every status and logbook event is produced once more."""
    with Pipeline.open("duplicates", tmp_path, broker_pool, database_url) as pipeline:
        run_in_usual_order(pipeline, population, copies=("1", "2"))
        sent = produce_again(
            pipeline.broker.bootstrap, (PERSON_STATUS, HOUSEHOLD_STATUS, LOGBOOK_EVENTS)
        )
        pipeline.settle()
        outcome = pipeline.outcome()
        check_complete(pipeline, population, outcome)
    assert outcome.input_messages == {
        "bmn.households.v1": 2 * (len(population.surveys) + len(population.resurveys)),
        "welfare.registrations.v1": 2 * (len(population.welfare) + len(population.welfare_updates)),
        "civil.events.v1": 2 * len(population.civil),
    }, "not every record reached Kafka twice"
    assert sent > len(population.expected_persons)
    check_same_as_reference(outcome, reference, "every record sent twice")


def test_records_out_of_order(
    population: Population,
    reference: Outcome,
    broker_pool: BrokerPool,
    database_url: str,
    tmp_path: Path,
) -> None:
    """All in one stream, nothing waited for: the newer registrations before the older ones,
    the re-surveys before the first surveys, the surveys before the registrations they need
    (the usual order has the registrations first) and the deaths last."""
    with Pipeline.open("out-of-order", tmp_path, broker_pool, database_url) as pipeline:
        welfare = population.welfare
        batches = [
            *population.updates(UPDATES_PER_REQUEST)[::-1],  # newer registrations, re-surveys
            *population.survey_batches(SURVEYS_PER_REQUEST),
            *[b for b in population.facts(FACTS_PER_REQUEST) if b.source == "welfare"],
            *[b for b in population.facts(FACTS_PER_REQUEST) if b.source == "civil"],
        ]
        assert sum(len(b.records) for b in batches if b.source == "welfare") == len(welfare) + len(
            population.welfare_updates
        )
        pipeline.start_loading(batches, pace=SURVEY_PACE / 3).finish()
        pipeline.settle()
        pipeline.field_work(population.field_work)
        pipeline.settle()
        outcome = pipeline.outcome()
        check_complete(pipeline, population, outcome)
    left = check_same_but_cases_left_behind(outcome, reference, "records out of order")
    # Each is a household surveyed before its members' registrations arrived: it had
    # unregistered poor members (an outreach case) until they did.
    assert all(outcome.cases[h] == ("outreach", "no_longer_target") for h in left), left
    print(f"\nrecords out of order: {len(left)} cases left behind as no_longer_target")
