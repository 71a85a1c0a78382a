"""Permissions for the back half of lead to cash: leads, approvals by finance, the SAP integration
and webhooks; the operator role that hears about sync failures.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from alembic import op
from sqlalchemy import ARRAY, Boolean, Text, column, table, text

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

roles = table("roles", column("name", Text), column("description", Text), column("permissions", ARRAY(Text)),
              column("data_scope", Text), column("sees_sensitive", Boolean), column("built_in", Boolean))

ADDED = {
    "general_manager": ["leads.read", "leads.write", "leads.assign", "integrations.read"],
    "sales_director": ["leads.read", "leads.write", "leads.assign"],
    "sales_manager": ["leads.read", "leads.write"],
    "sales_rep": ["leads.read", "leads.write"],
    "customer_service": ["leads.read"],
    # The approval chain of seed 004 ends with finance (rep → manager → director → finance).
    "finance": ["contracts.approve"],
    "marketing": ["leads.read", "leads.write", "leads.assign"],
    "auditor": ["leads.read", "integrations.read"],
}

OPERATOR = {"name": "operator", "description": "Operations: the SAP integration and delivery logs, no customer data",
            "permissions": ["integrations.read", "integrations.manage", "notifications.manage", "org.read"],
            "data_scope": "all", "sees_sensitive": False, "built_in": True}


def upgrade() -> None:
    bind = op.get_bind()
    for role, permissions in ADDED.items():
        # A union, so that an administrator's own additions to a built-in role survive.
        bind.execute(text("UPDATE roles SET permissions = ARRAY(SELECT DISTINCT p FROM unnest(permissions || :added) p "
                          "ORDER BY p) WHERE name = :role"), {"added": permissions, "role": role})
    op.bulk_insert(roles, [OPERATOR])


def downgrade() -> None:
    bind = op.get_bind()
    bind.execute(text("DELETE FROM roles WHERE name = 'operator'"))
    for role, permissions in ADDED.items():
        bind.execute(text("UPDATE roles SET permissions = ARRAY(SELECT p FROM unnest(permissions) p "
                          "WHERE p <> ALL(:added)) WHERE name = :role"), {"added": permissions, "role": role})
