"""Agency API keys (hashed) and idempotent request replies.

Revision ID: 0001
Revises:
"""

from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE ingest.api_keys (
            key_id        text PRIMARY KEY,
            agency        text NOT NULL,
            sources       text[] NOT NULL,
            secret_sha256 text NOT NULL,
            note          text,
            created_at    timestamptz NOT NULL DEFAULT now(),
            revoked_at    timestamptz
        )
        """
    )
    op.execute(
        """
        CREATE TABLE ingest.idempotent_requests (
            agency          text NOT NULL,
            idempotency_key text NOT NULL,
            fingerprint     text NOT NULL,
            status_code     integer,
            response        bytea,
            claimed_at      timestamptz NOT NULL DEFAULT now(),
            completed_at    timestamptz,
            PRIMARY KEY (agency, idempotency_key)
        )
        """
    )
    op.execute(
        "CREATE INDEX idempotent_requests_claimed_at ON ingest.idempotent_requests (claimed_at)"
    )


def downgrade() -> None:
    op.execute("DROP TABLE ingest.idempotent_requests")
    op.execute("DROP TABLE ingest.api_keys")
