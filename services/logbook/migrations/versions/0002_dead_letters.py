"""Messages already dead-lettered, so a replay of the status topics does not report them again.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE logbook.dead_letters (
            topic     text NOT NULL,
            partition integer NOT NULL,
            "offset"  bigint NOT NULL,
            error     text NOT NULL,
            failed_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (topic, partition, "offset")
        )
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE logbook.dead_letters")
