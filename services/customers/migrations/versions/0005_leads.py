"""Leads, assignment rules and assignments (R-LEAD-01); customer tier (R-CUS-06).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("customers", sa.Column("signed_amount", sa.Numeric(18, 2), nullable=False, server_default="0"))
    op.add_column("customers", sa.Column("signed_currency", sa.Text, nullable=False, server_default=""))
    op.add_column("customers", sa.Column("tier", sa.Text, nullable=False, server_default=""))
    op.create_table(
        "leads",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("phone", sa.Text, nullable=False, server_default=""),
        sa.Column("email", sa.Text, nullable=False, server_default=""),
        sa.Column("company", sa.Text, nullable=False, server_default=""),
        sa.Column("title", sa.Text, nullable=False, server_default=""),
        sa.Column("region", sa.Text, nullable=False, server_default=""),
        sa.Column("industry", sa.Text, nullable=False, server_default=""),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("campaign", sa.Text, nullable=False, server_default=""),
        sa.Column("channel", sa.Text, nullable=False, server_default=""),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("owner_id", sa.Text, nullable=False, server_default=""),
        sa.Column("team_id", sa.Text, nullable=False, server_default=""),
        sa.Column("department_path", sa.Text, nullable=False, server_default="/"),
        sa.Column("assignment_rule_id", sa.Uuid),
        sa.Column("unassigned_reason", sa.Text, nullable=False, server_default=""),
        sa.Column("customer_id", sa.Uuid),
        sa.Column("contact_id", sa.Uuid),
        sa.Column("opportunity_id", sa.Uuid),
        sa.Column("converted_at", sa.DateTime(timezone=True)),
        sa.Column("won_amount", sa.Numeric(18, 2)),
        sa.Column("won_currency", sa.Text, nullable=False, server_default=""),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("created_by", sa.Text, nullable=False, server_default=""),
    )
    op.create_index("leads_created_id", "leads", ["created_at", "id"])
    op.create_index("leads_owner", "leads", ["owner_id"])
    op.create_index("leads_team", "leads", ["team_id"])
    op.create_index("leads_attribution", "leads", ["source", "campaign", "channel"])
    op.create_index("leads_opportunity", "leads", ["opportunity_id"])
    op.create_table(
        "lead_assignment_rules",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("regions", postgresql.ARRAY(sa.Text), nullable=False, server_default="{}"),
        sa.Column("industries", postgresql.ARRAY(sa.Text), nullable=False, server_default="{}"),
        sa.Column("user_ids", postgresql.ARRAY(sa.Text), nullable=False),
        sa.Column("team_id", sa.Text, nullable=False, server_default=""),
        sa.Column("department_path", sa.Text, nullable=False, server_default="/"),
        sa.Column("cap_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("cap_days", sa.Integer, nullable=False, server_default="7"),
        sa.Column("active", sa.Boolean, nullable=False, server_default="true"),
        sa.Column("cursor", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("created_by", sa.Text, nullable=False, server_default=""),
    )
    op.create_table(
        "lead_assignments",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("lead_id", sa.Uuid, nullable=False),
        sa.Column("owner_id", sa.Text, nullable=False),
        sa.Column("rule_id", sa.Uuid),
        sa.Column("assigned_by", sa.Text, nullable=False),
        sa.Column("assigned_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_index("lead_assignments_owner_time", "lead_assignments", ["owner_id", "assigned_at"])
    op.create_index("lead_assignments_lead", "lead_assignments", ["lead_id"])


def downgrade() -> None:
    op.drop_table("lead_assignments")
    op.drop_table("lead_assignment_rules")
    op.drop_table("leads")
    for column in ("tier", "signed_currency", "signed_amount"):
        op.drop_column("customers", column)
