"""Applied statuses with their contributions, the counters per year and area, consumer offsets,
dead letters.

Revision ID: 0001
Revises:
"""

from alembic import op

revision = "0001"
down_revision = None

_TABLES = (
    # The newest version applied of each person-year and household-year, and what it added
    # (services/reporting/contributions.py): the next version subtracts exactly that.
    """
    CREATE TABLE reporting.applied (
        kind         text NOT NULL CHECK (kind IN ('person', 'household')),
        entity_key   text NOT NULL,
        version      integer NOT NULL,
        village_code text,
        counters     jsonb NOT NULL,
        updated_at   timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (kind, entity_key)
    )
    """,
    # Sums of the contributions per survey year, area (all five levels) and counter key.
    """
    CREATE TABLE reporting.counters (
        survey_year integer NOT NULL,
        area_code   text NOT NULL,
        counter     text NOT NULL,
        value       bigint NOT NULL,
        PRIMARY KEY (survey_year, area_code, counter)
    )
    """,
    # The next offset to apply per partition, written in the transaction that applies messages.
    """
    CREATE TABLE reporting.consumer_offsets (
        topic       text NOT NULL,
        partition   integer NOT NULL,
        next_offset bigint NOT NULL,
        updated_at  timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (topic, partition)
    )
    """,
    # Messages that could not be read: skipped, kept once for a person to look at.
    """
    CREATE TABLE reporting.dead_letters (
        topic      text NOT NULL,
        partition  integer NOT NULL,
        "offset"   bigint NOT NULL,
        error      text NOT NULL,
        failed_at  timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (topic, partition, "offset")
    )
    """,
)


def upgrade() -> None:
    for statement in _TABLES:
        op.execute(statement)


def downgrade() -> None:
    for table in ("dead_letters", "consumer_offsets", "counters", "applied"):
        op.execute(f"DROP TABLE reporting.{table}")
