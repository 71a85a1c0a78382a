"""The contracts database schema (SQLAlchemy Core). Alembic migrations are written from it."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

# People-facing numbers: one counter row per year, incremented in the drafting transaction (row
# lock), so numbers never repeat, even under concurrency (never max()+1).
number_counters = Table(
    "number_counters", metadata,
    Column("year", Integer, primary_key=True),
    Column("last", Integer, nullable=False),
)

contracts = Table(
    "contracts", metadata,
    Column("id", Uuid, primary_key=True),
    Column("number", Text, nullable=False, unique=True),
    Column("status", Text, nullable=False),
    Column("title", Text, nullable=False, server_default=""),
    Column("customer_id", Uuid, nullable=False),
    Column("customer_name", Text, nullable=False, server_default=""),
    Column("customer_type", Text, nullable=False, server_default=""),
    Column("opportunity_id", Uuid),
    # One draft per accepted quote, however often quote.accepted is delivered.
    Column("quote_id", Uuid, unique=True),
    Column("predecessor_id", Uuid, ForeignKey("contracts.id")),
    Column("successor_id", Uuid),
    Column("currency", Text, nullable=False),
    # [{line_id, product, specification, quantity, unit, unit_price, discount_percent,
    #   tax_rate_percent, product_line}] as strings; amounts are computed from them.
    Column("lines", JSONB, nullable=False),
    Column("net_total", Numeric(18, 2), nullable=False),
    Column("tax_total", Numeric(18, 2), nullable=False),
    Column("amount", Numeric(18, 2), nullable=False),
    Column("start_date", Date),
    Column("end_date", Date),
    Column("sign_date", Date),
    Column("renewal_date", Date),
    Column("version", Integer, nullable=False, server_default="1"),
    Column("revision", Integer, nullable=False, server_default="1"),
    Column("termination_reason", Text, nullable=False, server_default=""),
    Column("approval_rule_id", Uuid),
    Column("approval_attempt", Integer, nullable=False, server_default="0"),
    # Who submitted the current attempt, and from where in the org chart (the chain is theirs).
    Column("submitted_by", Text, nullable=False, server_default=""),
    Column("submitted_department_path", Text, nullable=False, server_default=""),
    Column("returned_position", Integer, nullable=False, server_default="0"),
    Column("expiring_noticed_for", Date),
    Column("owner_id", Text, nullable=False),
    Column("team_id", Text, nullable=False, server_default=""),
    Column("department_path", Text, nullable=False, server_default="/"),
    Column("created_by", Text, nullable=False, server_default=""),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # Who owned it when it was signed (migration 0002): the credit, kept when the customer moves.
    Column("signed_by", Text, nullable=False, server_default=""),
    Index("contracts_created_id", "created_at", "id"),
    Index("contracts_owner", "owner_id"),
    Index("contracts_team", "team_id"),
    Index("contracts_customer", "customer_id"),
    # Renewals and the daily pass: contracts in force by end date.
    Index("contracts_in_force_end", "end_date", postgresql_where=text("status IN ('signed', 'active')")),
)

instalments = Table(
    "instalments", metadata,
    Column("id", Uuid, primary_key=True),
    Column("contract_id", Uuid, ForeignKey("contracts.id", ondelete="CASCADE"), nullable=False),
    Column("sequence", Integer, nullable=False),
    Column("due_date", Date, nullable=False),
    Column("amount", Numeric(18, 2), nullable=False),
    Column("label", Text, nullable=False, server_default=""),
    UniqueConstraint("contract_id", "sequence", name="instalments_contract_sequence"),
)

# Every version of a contract as it was (R-CON-01: amendments keep history); written when a
# contract is signed (version 1) and on every amendment.
contract_versions = Table(
    "contract_versions", metadata,
    Column("contract_id", Uuid, ForeignKey("contracts.id", ondelete="CASCADE"), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("snapshot", JSONB, nullable=False),
    Column("reason", Text, nullable=False, server_default=""),
    Column("created_by", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

approval_rules = Table(
    "approval_rules", metadata,
    Column("id", Uuid, primary_key=True),
    Column("name", Text, nullable=False, unique=True),
    Column("priority", Integer, nullable=False),
    Column("active", Boolean, nullable=False, server_default="true"),
    Column("definition", JSONB, nullable=False),
    Column("revision", Integer, nullable=False, server_default="1"),
    Column("updated_by", Text, nullable=False, server_default=""),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

approval_steps = Table(
    "approval_steps", metadata,
    Column("id", Uuid, primary_key=True),
    Column("contract_id", Uuid, ForeignKey("contracts.id", ondelete="CASCADE"), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("position", Integer, nullable=False),
    Column("name", Text, nullable=False),
    Column("spec", JSONB, nullable=False),
    Column("due_hours", Integer, nullable=False),
    Column("state", Text, nullable=False),
    Column("approver_ids", JSONB, nullable=False, server_default="[]"),
    Column("mode", Text, nullable=False, server_default="any"),
    Column("fallback", Boolean, nullable=False, server_default="false"),
    Column("approved_by", JSONB, nullable=False, server_default="[]"),
    Column("decided_by", Text, nullable=False, server_default=""),
    Column("acting_for", Text, nullable=False, server_default=""),
    Column("reason", Text, nullable=False, server_default=""),
    Column("chosen", Text, nullable=False, server_default=""),
    Column("reached_at", DateTime(timezone=True)),
    Column("due_at", DateTime(timezone=True)),
    Column("decided_at", DateTime(timezone=True)),
    Column("reminded_at", DateTime(timezone=True)),
    UniqueConstraint("contract_id", "attempt", "position", name="approval_steps_attempt_position"),
    Index("approval_steps_pending_due", "due_at", postgresql_where=text("state = 'pending'")),
    Index("approval_steps_approvers", "approver_ids", postgresql_using="gin"),
)

delegations = Table(
    "delegations", metadata,
    Column("id", Uuid, primary_key=True),
    Column("delegator_id", Text, nullable=False),
    Column("delegate_id", Text, nullable=False),
    Column("start_date", Date, nullable=False),
    Column("end_date", Date, nullable=False),
    Column("revoked", Boolean, nullable=False, server_default="false"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("delegations_delegate", "delegate_id"),
    Index("delegations_delegator", "delegator_id"),
)
