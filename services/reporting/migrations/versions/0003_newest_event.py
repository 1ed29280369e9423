"""The time of the newest event applied per partition, for /v1/freshness.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.execute("ALTER TABLE reporting.consumer_offsets ADD COLUMN newest_event_at timestamptz")


def downgrade() -> None:
    op.execute("ALTER TABLE reporting.consumer_offsets DROP COLUMN newest_event_at")
