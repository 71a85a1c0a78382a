"""crmkit's idempotency keys (crmkit.idempotency): a command retried with the same
Idempotency-Key runs once. Part of crmkit's own branch of migrations, which every service's
database receives beside the service's own line (`crmkit.migrations.alembic_config`).

Revision ID: crmkit_0001
Revises:
Create Date: 2026-12-04
"""

from crmkit import idempotency

revision = "crmkit_0001"
down_revision = None
branch_labels = ("crmkit",)
depends_on = None


def upgrade() -> None:
    idempotency.create_table()


def downgrade() -> None:
    idempotency.drop_table()
