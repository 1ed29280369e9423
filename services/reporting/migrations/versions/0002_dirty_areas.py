"""Areas whose counters changed since they were last published to reporting.area-aggregates.v1.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    # `generation` grows with every change, so a publisher removes a row only if nothing changed
    # the area after it read the counters it published.
    op.execute(
        """
        CREATE TABLE reporting.dirty_areas (
            survey_year integer NOT NULL,
            area_code   text NOT NULL,
            generation  bigint NOT NULL DEFAULT 1,
            changed_at  timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (survey_year, area_code)
        )
        """
    )
    op.execute("CREATE INDEX dirty_areas_changed ON reporting.dirty_areas (changed_at)")
    # Areas counted before this migration have never been published.
    op.execute(
        """INSERT INTO reporting.dirty_areas (survey_year, area_code)
           SELECT DISTINCT survey_year, area_code FROM reporting.counters"""
    )


def downgrade() -> None:
    op.execute("DROP TABLE reporting.dirty_areas")
