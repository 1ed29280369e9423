"""Users and tokens, the matcher's statuses, cases and field work, audit trail, outbox, offsets.

Revision ID: 0001
Revises:
"""

from alembic import op

revision = "0001"
down_revision = None

_TABLES = (
    # Users and their hashed tokens.
    """
    CREATE TABLE logbook.users (
        user_id      text PRIMARY KEY,
        display_name text NOT NULL,
        role         text NOT NULL CHECK (role IN ('national', 'province', 'district', 'team')),
        areas        text[] NOT NULL,
        created_at   timestamptz NOT NULL DEFAULT now(),
        disabled_at  timestamptz
    )
    """,
    """
    CREATE TABLE logbook.tokens (
        token_id      text PRIMARY KEY,
        user_id       text NOT NULL REFERENCES logbook.users,
        secret_sha256 text NOT NULL,
        note          text,
        created_at    timestamptz NOT NULL DEFAULT now(),
        revoked_at    timestamptz
    )
    """,
    # The newest status of each household-year and person-year the matcher sent.
    """
    CREATE TABLE logbook.households (
        household_id text NOT NULL,
        survey_year  integer NOT NULL,
        version      integer NOT NULL,
        village_code text NOT NULL,
        status       jsonb NOT NULL,
        updated_at   timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (household_id, survey_year)
    )
    """,
    """
    CREATE TABLE logbook.persons (
        citizen_id   text NOT NULL,
        survey_year  integer NOT NULL,
        household_id text,
        version      integer NOT NULL,
        status       jsonb NOT NULL,
        updated_at   timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (citizen_id, survey_year)
    )
    """,
    "CREATE INDEX persons_household ON logbook.persons (household_id, survey_year)",
    # Cases, with the household's list columns copied in for the case list's indexes.
    """
    CREATE TABLE logbook.cases (
        case_id          text PRIMARY KEY,
        household_id     text NOT NULL,
        survey_year      integer NOT NULL,
        reason           text NOT NULL CHECK (reason IN ('target', 'outreach')),
        status           text NOT NULL CHECK (status IN ('open', 'no_longer_target', 'closed')),
        village_code     text NOT NULL,
        crisis           boolean NOT NULL,
        priority         integer NOT NULL,
        deprivation_bits integer NOT NULL,
        opened_at        timestamptz NOT NULL DEFAULT now(),
        updated_at       timestamptz NOT NULL DEFAULT now(),
        UNIQUE (household_id, survey_year)
    )
    """,
    "CREATE INDEX cases_priority ON logbook.cases (crisis DESC, priority DESC, case_id DESC)",
    """CREATE INDEX cases_area_priority ON logbook.cases
       (village_code text_pattern_ops, crisis DESC, priority DESC, case_id DESC)""",
    """
    CREATE TABLE logbook.visits (
        visit_id    text PRIMARY KEY,
        case_id     text NOT NULL REFERENCES logbook.cases,
        visited_on  date NOT NULL,
        team_member text NOT NULL,
        notes       text NOT NULL DEFAULT '',
        latitude    double precision,
        longitude   double precision,
        recorded_by text NOT NULL,
        recorded_at timestamptz NOT NULL DEFAULT now()
    )
    """,
    "CREATE INDEX visits_case ON logbook.visits (case_id, visited_on)",
    """
    CREATE TABLE logbook.interventions (
        intervention_id text PRIMARY KEY,
        case_id         text NOT NULL REFERENCES logbook.cases,
        dimension       text NOT NULL,
        agency_code     text NOT NULL,
        kind            text NOT NULL,
        description     text NOT NULL DEFAULT '',
        amount_baht     numeric(14, 2) NOT NULL DEFAULT 0,
        status          text NOT NULL CHECK (status IN ('planned', 'in_progress', 'done')),
        started_on      date,
        completed_on    date,
        recorded_by     text NOT NULL,
        recorded_at     timestamptz NOT NULL DEFAULT now(),
        updated_at      timestamptz NOT NULL DEFAULT now()
    )
    """,
    "CREATE INDEX interventions_case ON logbook.interventions (case_id)",
    # Append-only: the current resolution of a dimension is its newest row.
    """
    CREATE TABLE logbook.resolutions (
        resolution_id bigserial PRIMARY KEY,
        case_id       text NOT NULL REFERENCES logbook.cases,
        dimension     text NOT NULL,
        resolution    text NOT NULL CHECK (resolution IN ('helped', 'self_resolved', 'in_progress')),
        note          text NOT NULL DEFAULT '',
        recorded_by   text NOT NULL,
        recorded_at   timestamptz NOT NULL DEFAULT now()
    )
    """,
    "CREATE INDEX resolutions_case ON logbook.resolutions (case_id, dimension, resolution_id)",
    """
    CREATE TABLE logbook.field_households (
        household_id text PRIMARY KEY,
        village_code text NOT NULL,
        record       jsonb NOT NULL,
        added_by     text NOT NULL,
        added_at     timestamptz NOT NULL DEFAULT now()
    )
    """,
    """CREATE INDEX field_households_area ON logbook.field_households
       (village_code text_pattern_ops, added_at)""",
    # Who did what, when, before and after: every write, by people and by the consumer.
    """
    CREATE TABLE logbook.audit (
        audit_id     bigserial PRIMARY KEY,
        at           timestamptz NOT NULL DEFAULT now(),
        actor        text NOT NULL,
        action       text NOT NULL,
        entity       text NOT NULL,
        entity_id    text NOT NULL,
        case_id      text,
        village_code text,
        before       jsonb,
        after        jsonb
    )
    """,
    "CREATE INDEX audit_area ON logbook.audit (village_code text_pattern_ops, audit_id)",
    "CREATE INDEX audit_case ON logbook.audit (case_id, audit_id)",
    # Transactional outbox: rows are written with the change they announce; the relay publishes
    # them in id order and marks them once Kafka acknowledged.
    """
    CREATE TABLE logbook.outbox (
        outbox_id    bigserial PRIMARY KEY,
        topic        text NOT NULL,
        key          text NOT NULL,
        value        bytea NOT NULL,
        created_at   timestamptz NOT NULL DEFAULT now(),
        published_at timestamptz
    )
    """,
    "CREATE INDEX outbox_unpublished ON logbook.outbox (outbox_id) WHERE published_at IS NULL",
    # Offsets of the status topics, committed with what they changed.
    """
    CREATE TABLE logbook.consumer_offsets (
        topic       text NOT NULL,
        partition   integer NOT NULL,
        next_offset bigint NOT NULL,
        PRIMARY KEY (topic, partition)
    )
    """,
)


def upgrade() -> None:
    for statement in _TABLES:
        op.execute(statement)


def downgrade() -> None:
    for table in (
        "consumer_offsets",
        "outbox",
        "audit",
        "field_households",
        "resolutions",
        "interventions",
        "visits",
        "cases",
        "persons",
        "households",
        "tokens",
        "users",
    ):
        op.execute(f"DROP TABLE logbook.{table}")
