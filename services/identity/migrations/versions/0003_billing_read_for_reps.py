"""Reps read their own customers' billing (issue 22): invoices, instalments, payments and statements
of the customers in their data scope, read-only (billing.read; billing.write stays with finance).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

from alembic import op
from sqlalchemy import text

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

ADDED = {"sales_rep": ["billing.read"]}


def upgrade() -> None:
    bind = op.get_bind()
    for role, permissions in ADDED.items():
        # A union, so that an administrator's own additions to a built-in role survive.
        bind.execute(text("UPDATE roles SET permissions = ARRAY(SELECT DISTINCT p FROM unnest(permissions || :added) p "
                          "ORDER BY p) WHERE name = :role"), {"added": permissions, "role": role})


def downgrade() -> None:
    bind = op.get_bind()
    for role, permissions in ADDED.items():
        bind.execute(text("UPDATE roles SET permissions = ARRAY(SELECT p FROM unnest(permissions) p "
                          "WHERE p <> ALL(:added)) WHERE name = :role"), {"added": permissions, "role": role})
