"""The dashboard and targets (issue 14): reps read their own dashboard (insights.read); sales
managers, directors and the general manager set targets for the people in their scope
(targets.manage).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

from alembic import op
from sqlalchemy import text

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

ADDED = {
    "sales_rep": ["insights.read"],
    "sales_manager": ["targets.manage"],
    "sales_director": ["targets.manage"],
    "general_manager": ["targets.manage"],
}


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
