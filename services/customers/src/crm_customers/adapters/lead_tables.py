"""The leads schema (R-LEAD-01), on the customers service's metadata (migration 0005)."""

from __future__ import annotations

from sqlalchemy import (
    ARRAY,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Identity,
    Index,
    Integer,
    Numeric,
    Table,
    Text,
    Uuid,
    func,
)

from crm_customers.adapters.tables import metadata

leads = Table(
    "leads", metadata,
    Column("id", Uuid, primary_key=True),
    Column("name", Text, nullable=False),
    # Sealed like contacts' phones (R-SEC-04).
    Column("phone", Text, nullable=False, server_default=""),
    Column("email", Text, nullable=False, server_default=""),
    Column("company", Text, nullable=False, server_default=""),
    Column("title", Text, nullable=False, server_default=""),
    Column("region", Text, nullable=False, server_default=""),
    Column("industry", Text, nullable=False, server_default=""),
    Column("source", Text, nullable=False),
    Column("campaign", Text, nullable=False, server_default=""),
    Column("channel", Text, nullable=False, server_default=""),
    Column("status", Text, nullable=False),
    Column("owner_id", Text, nullable=False, server_default=""),
    Column("team_id", Text, nullable=False, server_default=""),
    Column("department_path", Text, nullable=False, server_default="/"),
    Column("assignment_rule_id", Uuid),
    Column("unassigned_reason", Text, nullable=False, server_default=""),
    Column("customer_id", Uuid),
    Column("contact_id", Uuid),
    Column("opportunity_id", Uuid),
    Column("converted_at", DateTime(timezone=True)),
    # Attribution: the amount of the opportunity it became, once won (opportunity.won event).
    Column("won_amount", Numeric(18, 2)),
    Column("won_currency", Text, nullable=False, server_default=""),
    Column("version", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("created_by", Text, nullable=False, server_default=""),
    Index("leads_created_id", "created_at", "id"),
    Index("leads_owner", "owner_id"),
    Index("leads_team", "team_id"),
    Index("leads_attribution", "source", "campaign", "channel"),
    Index("leads_opportunity", "opportunity_id"),
)

lead_assignment_rules = Table(
    "lead_assignment_rules", metadata,
    Column("id", Uuid, primary_key=True),
    Column("name", Text, nullable=False),
    Column("priority", Integer, nullable=False),
    Column("regions", ARRAY(Text), nullable=False, server_default="{}"),
    Column("industries", ARRAY(Text), nullable=False, server_default="{}"),
    Column("user_ids", ARRAY(Text), nullable=False),
    Column("team_id", Text, nullable=False, server_default=""),
    Column("department_path", Text, nullable=False, server_default="/"),
    Column("cap_count", Integer, nullable=False, server_default="0"),
    Column("cap_days", Integer, nullable=False, server_default="7"),
    Column("active", Boolean, nullable=False, server_default="true"),
    # Round-robin position: how many leads the rule has handed out. Locked (FOR UPDATE) while a
    # transaction assigns by the rule, so concurrent requests take turns.
    Column("cursor", BigInteger, nullable=False, server_default="0"),
    Column("version", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("created_by", Text, nullable=False, server_default=""),
)

# Every assignment: who got which lead, by which rule (none: by hand), when. The rolling counts
# of the capacity caps are read from here.
lead_assignments = Table(
    "lead_assignments", metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("lead_id", Uuid, nullable=False),
    Column("owner_id", Text, nullable=False),
    Column("rule_id", Uuid),
    Column("assigned_by", Text, nullable=False),
    Column("assigned_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("lead_assignments_owner_time", "owner_id", "assigned_at"),
    Index("lead_assignments_lead", "lead_id"),
)
