"""The topic registry: every Kafka topic of the platform, its key, partitions and cleanup policy.

Topic creation (deploy/local, the k8s Job), producers and consumers all read this one table, so a
partition count or a retention rule is changed in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

CleanupPolicy = Literal["delete", "compact"]

# Keyed topics get at least this many partitions: the ceiling on replicas of one consumer group.
KEYED_PARTITIONS = 6
# Inputs and audit topics are the platform's replayable source of truth: never expire them.
KEEP_FOREVER_MS = -1


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """One topic: what it carries and how Kafka keeps it."""

    name: str
    key: str
    description: str
    event_type: str | None = None  # None: no enveloped events (agencies' raw records, internal)
    cleanup_policy: CleanupPolicy = "delete"
    partitions: int = KEYED_PARTITIONS
    retention_ms: int = KEEP_FOREVER_MS

    def require_event_type(self) -> str:
        """The envelope type this topic carries; raw and internal topics carry none."""
        if self.event_type is None:
            msg = f"topic {self.name} carries no enveloped events"
            raise ValueError(msg)
        return self.event_type

    def configs(self) -> dict[str, str]:
        """Topic-level broker configs for creation."""
        configs: dict[str, str] = {"cleanup.policy": self.cleanup_policy}
        if self.cleanup_policy == "delete":
            configs["retention.ms"] = str(self.retention_ms)
        return configs


RAW_BMN = TopicSpec(
    "ingest.raw.bmn.v1",
    key="household_id (as the agency sends it; unvalidated)",
    description="BMN households produced straight to Kafka by an agency; ingest validates them",
)
RAW_WELFARE = TopicSpec(
    "ingest.raw.welfare.v1",
    key="citizen_id (unvalidated)",
    description="Welfare registrations produced straight to Kafka; ingest validates them",
)
RAW_CIVIL = TopicSpec(
    "ingest.raw.civil.v1",
    key="citizen_id (unvalidated)",
    description="Civil-registry events produced straight to Kafka; ingest validates them",
)
BMN_HOUSEHOLDS = TopicSpec(
    "bmn.households.v1",
    event_type="th.tpmap.bmn.household.v1",
    key="household_id",
    description="Validated BMN survey households and field-added households (source=field)",
)
WELFARE_REGISTRATIONS = TopicSpec(
    "welfare.registrations.v1",
    event_type="th.tpmap.welfare.registration.v1",
    key="citizen_id",
    description="Validated state welfare card registrations (MOF)",
)
CIVIL_EVENTS = TopicSpec(
    "civil.events.v1",
    event_type="th.tpmap.civil.event.v1",
    key="citizen_id",
    description="Validated civil-registry events (DOPA), e.g. deaths",
)
INGEST_REJECTED = TopicSpec(
    "ingest.rejected.v1",
    event_type="th.tpmap.ingest.rejected.v1",
    key="agency",
    description="Every rejected record with its original payload, agency, reasons and time",
)
PERSON_STATUS = TopicSpec(
    "targeting.person-status.v1",
    event_type="th.tpmap.targeting.person-status.v1",
    # The year is part of the key: compaction keeps one record per key, and a key of the
    # citizen ID alone would erase a person's earlier survey years.
    key="citizen_id:survey_year",
    description="Per person and survey year: class, deprivations, welfare status (matcher)",
    cleanup_policy="compact",
)
HOUSEHOLD_STATUS = TopicSpec(
    "targeting.household-status.v1",
    event_type="th.tpmap.targeting.household-status.v1",
    key="household_id:survey_year",
    description="Per household and survey year: deprivation set, target, no-card, crisis, priority",
    cleanup_policy="compact",
)
LOGBOOK_EVENTS = TopicSpec(
    "logbook.events.v1",
    event_type="th.tpmap.logbook.event.v1",
    key="household_id",
    description="Field work: cases, visits, interventions, resolutions (logbook outbox)",
)
AREA_AGGREGATES = TopicSpec(
    "reporting.area-aggregates.v1",
    event_type="th.tpmap.reporting.area-aggregate.v1",
    key="survey_year:area_code",
    description="Latest aggregates of each area and year, coalesced (reporting)",
    cleanup_policy="compact",
)
MATCHER_MEMBERSHIPS = TopicSpec(
    "matcher.memberships.v1",
    key="(partition of citizen_id)",
    description=(
        "matcher-internal: a batch's words from household records to the members, one JSON "
        "array per person partition"
    ),
)
MATCHER_MEMBER_FACTS = TopicSpec(
    "matcher.member-facts.v1",
    key="(partition of household_id)",
    description=(
        "matcher-internal: a batch's persons' welfare status and death for their households, "
        "one JSON array per household partition"
    ),
)
MATCHER_HOUSEHOLD_STATE = TopicSpec(
    "matcher.household-state.v1",
    key="household_id",
    description="matcher-internal: changelog of the households table (Faust)",
    cleanup_policy="compact",
)
MATCHER_PERSON_STATE = TopicSpec(
    "matcher.person-state.v1",
    key="citizen_id",
    description="matcher-internal: changelog of the persons table (Faust)",
    cleanup_policy="compact",
)
MATCHER_DEAD_LETTER = TopicSpec(
    "matcher.dead-letter.v1",
    event_type="th.tpmap.dead-letter.v1",
    key="source topic key",
    description="Events the matcher could not process, with the error",
)
LOGBOOK_DEAD_LETTER = TopicSpec(
    "logbook.dead-letter.v1",
    event_type="th.tpmap.dead-letter.v1",
    key="source topic key",
    description="Events the logbook consumer could not process, with the error",
)
REPORTING_DEAD_LETTER = TopicSpec(
    "reporting.dead-letter.v1",
    event_type="th.tpmap.dead-letter.v1",
    key="source topic key",
    description="Events the reporting consumer could not process, with the error",
)

TOPICS: tuple[TopicSpec, ...] = (
    RAW_BMN,
    RAW_WELFARE,
    RAW_CIVIL,
    BMN_HOUSEHOLDS,
    WELFARE_REGISTRATIONS,
    CIVIL_EVENTS,
    INGEST_REJECTED,
    PERSON_STATUS,
    HOUSEHOLD_STATUS,
    LOGBOOK_EVENTS,
    AREA_AGGREGATES,
    MATCHER_MEMBERSHIPS,
    MATCHER_MEMBER_FACTS,
    MATCHER_HOUSEHOLD_STATE,
    MATCHER_PERSON_STATE,
    MATCHER_DEAD_LETTER,
    LOGBOOK_DEAD_LETTER,
    REPORTING_DEAD_LETTER,
)

TOPICS_BY_NAME: dict[str, TopicSpec] = {t.name: t for t in TOPICS}
