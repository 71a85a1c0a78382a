"""The opportunities database schema (SQLAlchemy Core). Alembic migrations are written from it."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Identity,
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

pipelines = Table(
    "pipelines", metadata,
    Column("id", Uuid, primary_key=True),
    Column("name", Text, nullable=False, unique=True),
    Column("is_default", Boolean, nullable=False, server_default="false"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # At most one default pipeline.
    Index("pipelines_one_default", "is_default", unique=True, postgresql_where=text("is_default")),
)

stages = Table(
    "stages", metadata,
    Column("id", Uuid, primary_key=True),
    Column("pipeline_id", Uuid, ForeignKey("pipelines.id", ondelete="CASCADE"), nullable=False),
    Column("name", Text, nullable=False),
    Column("position", Integer, nullable=False),
    Column("default_probability", Integer, nullable=False),
    Column("is_won", Boolean, nullable=False, server_default="false"),
    Column("is_lost", Boolean, nullable=False, server_default="false"),
    UniqueConstraint("pipeline_id", "position", name="stages_pipeline_position"),
)

lost_reasons = Table(
    "lost_reasons", metadata,
    Column("code", Text, primary_key=True),
    Column("name", Text, nullable=False),
)

opportunities = Table(
    "opportunities", metadata,
    Column("id", Uuid, primary_key=True),
    Column("customer_id", Uuid, nullable=False),
    Column("name", Text, nullable=False),
    Column("pipeline_id", Uuid, ForeignKey("pipelines.id"), nullable=False),
    Column("stage_id", Uuid, ForeignKey("stages.id"), nullable=False),
    Column("amount", Numeric(18, 2), nullable=False),
    Column("currency", Text, nullable=False),
    Column("probability", Integer, nullable=False),
    Column("expected_close_date", Date),
    Column("status", Text, nullable=False),
    Column("lost_reason", Text, ForeignKey("lost_reasons.code")),
    Column("lost_note", Text, nullable=False, server_default=""),
    Column("owner_id", Text, nullable=False),
    Column("team_id", Text, nullable=False, server_default=""),
    Column("department_path", Text, nullable=False, server_default="/"),
    Column("version", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("closed_at", DateTime(timezone=True)),
    Column("created_by", Text, nullable=False, server_default=""),
    # The lead it was converted from (migration 0002): one opportunity per lead.
    Column("lead_id", Uuid),
    # The funnel (migration 0002): the position of the furthest non-lost stage it ever entered,
    # kept by every stage change, so "reached" needs no pass over the history.
    Column("furthest_position", Integer, nullable=False, server_default="0"),
    # Who owned it when it was won (migration 0003): the credit, kept when the customer moves.
    Column("won_by", Text, nullable=False, server_default=""),
    Index("opportunities_lead", "lead_id", unique=True, postgresql_where=text("lead_id IS NOT NULL")),
    Index("opportunities_created_id", "created_at", "id"),
    # The funnel: one pipeline, a period of creation.
    Index("opportunities_pipeline_created", "pipeline_id", "created_at"),
    Index("opportunities_stage", "stage_id"),
    Index("opportunities_owner", "owner_id"),
    Index("opportunities_team", "team_id"),
    Index("opportunities_customer", "customer_id"),
)

stage_history = Table(
    "stage_history", metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("opportunity_id", Uuid, ForeignKey("opportunities.id", ondelete="CASCADE"), nullable=False),
    Column("from_stage_id", Uuid, ForeignKey("stages.id")),
    Column("to_stage_id", Uuid, ForeignKey("stages.id"), nullable=False),
    Column("changed_by", Text, nullable=False),
    Column("changed_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # When the stay that began here ended (the next change's time); NULL while current. Set by the
    # next change (migration 0002), so days in stage need no window over the history.
    Column("left_at", DateTime(timezone=True)),
    # Each opportunity's history, in order.
    Index("stage_history_opportunity", "opportunity_id", "changed_at", "id"),
)

quotes = Table(
    "quotes", metadata,
    Column("id", Uuid, primary_key=True),
    Column("opportunity_id", Uuid, ForeignKey("opportunities.id", ondelete="CASCADE"), nullable=False),
    Column("customer_id", Uuid, nullable=False),
    Column("quote_version", Integer, nullable=False),
    Column("status", Text, nullable=False),
    Column("currency", Text, nullable=False),
    # [{product, specification, quantity, unit_price, discount_percent, tax_rate_percent,
    #   net_amount, tax_amount, gross_amount}] as decimal strings; a quote's lines never change.
    Column("lines", JSONB, nullable=False),
    Column("net_total", Numeric(18, 2), nullable=False),
    Column("tax_total", Numeric(18, 2), nullable=False),
    Column("gross_total", Numeric(18, 2), nullable=False),
    Column("valid_until", Date, nullable=False),
    Column("note", Text, nullable=False, server_default=""),
    Column("owner_id", Text, nullable=False),
    Column("team_id", Text, nullable=False, server_default=""),
    Column("department_path", Text, nullable=False, server_default="/"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("sent_at", DateTime(timezone=True)),
    Column("decided_at", DateTime(timezone=True)),
    Column("created_by", Text, nullable=False, server_default=""),
    # The requirement request it answers (migration 0002).
    Column("requirement_request_id", Uuid),
    UniqueConstraint("opportunity_id", "quote_version", name="quotes_opportunity_version"),
    Index("quotes_created_id", "created_at", "id"),
    Index("quotes_owner", "owner_id"),
    Index("quotes_customer", "customer_id"),
)

# Requirement requests (需求申請, R-OPP-02), migration 0002.
requirement_requests = Table(
    "requirement_requests", metadata,
    Column("id", Uuid, primary_key=True),
    Column("opportunity_id", Uuid, ForeignKey("opportunities.id", ondelete="CASCADE"), nullable=False),
    Column("customer_id", Uuid, nullable=False),
    Column("title", Text, nullable=False),
    Column("specification", Text, nullable=False),
    Column("quantity", Numeric(18, 4), nullable=False),
    Column("unit", Text, nullable=False, server_default=""),
    Column("target_price", Numeric(18, 4)),
    Column("currency", Text, nullable=False),
    Column("requested_date", Date),
    # [{name, size_bytes, content_type, url}]: metadata only, the files live in object storage.
    Column("attachments", JSONB, nullable=False, server_default=text("'[]'::jsonb")),
    Column("status", Text, nullable=False),
    Column("reviewer_id", Text, nullable=False, server_default=""),
    Column("review_notes", Text, nullable=False, server_default=""),
    Column("quote_id", Uuid),
    Column("owner_id", Text, nullable=False),
    Column("team_id", Text, nullable=False, server_default=""),
    Column("department_path", Text, nullable=False, server_default="/"),
    Column("version", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("decided_at", DateTime(timezone=True)),
    Column("created_by", Text, nullable=False, server_default=""),
    Index("requirement_requests_created_id", "created_at", "id"),
    Index("requirement_requests_opportunity", "opportunity_id"),
    Index("requirement_requests_status", "status"),
    Index("requirement_requests_customer", "customer_id"),
)
