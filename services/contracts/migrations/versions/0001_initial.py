"""Contracts, lines, instalments, versions, approval rules (the demo"s default rule seeded),
approval steps, delegations, the yearly number counters; the outbox and processed-event log.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from crm_contracts.domain.approvals import default_rule_definition
from crm_contracts.domain.defaults import DEFAULT_RULE_ID, DEFAULT_RULE_NAME
from crmkit.outbox import schema as outbox_schema

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TABLES = ["delegations", "approval_steps", "approval_rules", "contract_versions", "instalments", "contracts",
          "number_counters"]


def upgrade() -> None:
    op.create_table(
        "number_counters",
        sa.Column("year", sa.Integer, primary_key=True),
        sa.Column("last", sa.Integer, nullable=False),
    )
    op.create_table(
        "contracts",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("number", sa.Text, nullable=False, unique=True),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("title", sa.Text, nullable=False, server_default=""),
        sa.Column("customer_id", sa.Uuid, nullable=False),
        sa.Column("customer_name", sa.Text, nullable=False, server_default=""),
        sa.Column("customer_type", sa.Text, nullable=False, server_default=""),
        sa.Column("opportunity_id", sa.Uuid),
        # One draft per accepted quote, however often quote.accepted is delivered.
        sa.Column("quote_id", sa.Uuid, unique=True),
        sa.Column("predecessor_id", sa.Uuid, sa.ForeignKey("contracts.id")),
        sa.Column("successor_id", sa.Uuid),
        sa.Column("currency", sa.Text, nullable=False),
        # [{line_id, product, specification, quantity, unit, unit_price, discount_percent,
        #   tax_rate_percent, product_line}] as strings; amounts are computed from them.
        sa.Column("lines", postgresql.JSONB, nullable=False),
        sa.Column("net_total", sa.Numeric(18, 2), nullable=False),
        sa.Column("tax_total", sa.Numeric(18, 2), nullable=False),
        sa.Column("amount", sa.Numeric(18, 2), nullable=False),
        sa.Column("start_date", sa.Date),
        sa.Column("end_date", sa.Date),
        sa.Column("sign_date", sa.Date),
        sa.Column("renewal_date", sa.Date),
        sa.Column("version", sa.Integer, nullable=False, server_default="1"),
        sa.Column("revision", sa.Integer, nullable=False, server_default="1"),
        sa.Column("termination_reason", sa.Text, nullable=False, server_default=""),
        sa.Column("approval_rule_id", sa.Uuid),
        sa.Column("approval_attempt", sa.Integer, nullable=False, server_default="0"),
        # Who submitted the current attempt, and from where in the org chart (the chain is theirs).
        sa.Column("submitted_by", sa.Text, nullable=False, server_default=""),
        sa.Column("submitted_department_path", sa.Text, nullable=False, server_default=""),
        sa.Column("returned_position", sa.Integer, nullable=False, server_default="0"),
        sa.Column("expiring_noticed_for", sa.Date),
        sa.Column("owner_id", sa.Text, nullable=False),
        sa.Column("team_id", sa.Text, nullable=False, server_default=""),
        sa.Column("department_path", sa.Text, nullable=False, server_default="/"),
        sa.Column("created_by", sa.Text, nullable=False, server_default=""),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "instalments",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("contract_id", sa.Uuid, sa.ForeignKey("contracts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("sequence", sa.Integer, nullable=False),
        sa.Column("due_date", sa.Date, nullable=False),
        sa.Column("amount", sa.Numeric(18, 2), nullable=False),
        sa.Column("label", sa.Text, nullable=False, server_default=""),
        sa.UniqueConstraint("contract_id", "sequence", name="instalments_contract_sequence"),
    )
    op.create_table(
        "contract_versions",
        sa.Column("contract_id", sa.Uuid, sa.ForeignKey("contracts.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("snapshot", postgresql.JSONB, nullable=False),
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
        sa.Column("created_by", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    approval_rules = op.create_table(
        "approval_rules",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("name", sa.Text, nullable=False, unique=True),
        sa.Column("priority", sa.Integer, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False, server_default="true"),
        sa.Column("definition", postgresql.JSONB, nullable=False),
        sa.Column("revision", sa.Integer, nullable=False, server_default="1"),
        sa.Column("updated_by", sa.Text, nullable=False, server_default=""),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "approval_steps",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("contract_id", sa.Uuid, sa.ForeignKey("contracts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("spec", postgresql.JSONB, nullable=False),
        sa.Column("due_hours", sa.Integer, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("approver_ids", postgresql.JSONB, nullable=False, server_default="[]"),
        sa.Column("mode", sa.Text, nullable=False, server_default="any"),
        sa.Column("fallback", sa.Boolean, nullable=False, server_default="false"),
        sa.Column("approved_by", postgresql.JSONB, nullable=False, server_default="[]"),
        sa.Column("decided_by", sa.Text, nullable=False, server_default=""),
        sa.Column("acting_for", sa.Text, nullable=False, server_default=""),
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
        sa.Column("chosen", sa.Text, nullable=False, server_default=""),
        sa.Column("reached_at", sa.DateTime(timezone=True)),
        sa.Column("due_at", sa.DateTime(timezone=True)),
        sa.Column("decided_at", sa.DateTime(timezone=True)),
        sa.Column("reminded_at", sa.DateTime(timezone=True)),
        sa.UniqueConstraint("contract_id", "attempt", "position", name="approval_steps_attempt_position"),
    )
    op.create_table(
        "delegations",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("delegator_id", sa.Text, nullable=False),
        sa.Column("delegate_id", sa.Text, nullable=False),
        sa.Column("start_date", sa.Date, nullable=False),
        sa.Column("end_date", sa.Date, nullable=False),
        sa.Column("revoked", sa.Boolean, nullable=False, server_default="false"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_index("contracts_created_id", "contracts", ["created_at", "id"])
    op.create_index("contracts_owner", "contracts", ["owner_id"])
    op.create_index("contracts_team", "contracts", ["team_id"])
    op.create_index("contracts_customer", "contracts", ["customer_id"])
    op.create_index("contracts_in_force_end", "contracts", ["end_date"], 
                    postgresql_where=sa.text("status IN ('signed', 'active')"))
    op.create_index("approval_steps_pending_due", "approval_steps", ["due_at"], 
                    postgresql_where=sa.text("state = 'pending'"))
    op.create_index("approval_steps_approvers", "approval_steps", ["approver_ids"], postgresql_using="gin")
    op.create_index("delegations_delegate", "delegations", ["delegate_id"])
    op.create_index("delegations_delegator", "delegations", ["delegator_id"])
    # R-CON-02: the demo's chain (see crm_contracts.domain.approvals.default_rule_definition).
    op.bulk_insert(approval_rules, [{"id": DEFAULT_RULE_ID, "name": DEFAULT_RULE_NAME, "priority": 1000,
                                     "active": True, "definition": default_rule_definition(),
                                     "updated_by": "migration"}])
    outbox_schema.create_tables()


def downgrade() -> None:
    outbox_schema.drop_tables()
    for table in TABLES:
        op.drop_table(table)
