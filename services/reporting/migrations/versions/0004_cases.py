"""Case files (the logbook's events per case, with the household's deprivation set) and the
logbook event IDs applied.

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    # One row per case (household and survey year), or per deprived household whose case is not
    # open yet: the case file (services/reporting/cases.py) and the contribution applied for it,
    # which the next change subtracts.
    op.execute(
        """
        CREATE TABLE reporting.cases (
            household_id text NOT NULL,
            survey_year  integer NOT NULL,
            file         jsonb NOT NULL DEFAULT '{}',
            village_code text,
            counters     jsonb NOT NULL DEFAULT '{}',
            updated_at   timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (household_id, survey_year)
        )
        """
    )
    # logbook.events.v1 is at least once and its events carry no version: each ID counts once.
    op.execute(
        """
        CREATE TABLE reporting.logbook_events (
            event_id   text PRIMARY KEY,
            applied_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE reporting.logbook_events")
    op.execute("DROP TABLE reporting.cases")
