"""Pipelines and stages (default "New business" seeded), lost reasons (seeded), opportunities,
stage history, quotes; the outbox and processed-event log.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from crm_opportunities.domain.defaults import (
    DEFAULT_LOST_REASONS,
    DEFAULT_PIPELINE_ID,
    DEFAULT_PIPELINE_NAME,
    DEFAULT_STAGES,
    default_stage_id,
)
from crmkit.outbox import schema as outbox_schema

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TABLES = ["quotes", "stage_history", "opportunities", "lost_reasons", "stages", "pipelines"]


def upgrade() -> None:
    pipelines = op.create_table(
        "pipelines",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("name", sa.Text, nullable=False, unique=True),
        sa.Column("is_default", sa.Boolean, nullable=False, server_default="false"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_index("pipelines_one_default", "pipelines", ["is_default"], unique=True,
                    postgresql_where=sa.text("is_default"))
    stages = op.create_table(
        "stages",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("pipeline_id", sa.Uuid, sa.ForeignKey("pipelines.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("default_probability", sa.Integer, nullable=False),
        sa.Column("is_won", sa.Boolean, nullable=False, server_default="false"),
        sa.Column("is_lost", sa.Boolean, nullable=False, server_default="false"),
        sa.UniqueConstraint("pipeline_id", "position", name="stages_pipeline_position"),
    )
    lost_reasons = op.create_table(
        "lost_reasons",
        sa.Column("code", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
    )
    op.create_table(
        "opportunities",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("customer_id", sa.Uuid, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("pipeline_id", sa.Uuid, sa.ForeignKey("pipelines.id"), nullable=False),
        sa.Column("stage_id", sa.Uuid, sa.ForeignKey("stages.id"), nullable=False),
        sa.Column("amount", sa.Numeric(18, 2), nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("probability", sa.Integer, nullable=False),
        sa.Column("expected_close_date", sa.Date),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("lost_reason", sa.Text, sa.ForeignKey("lost_reasons.code")),
        sa.Column("lost_note", sa.Text, nullable=False, server_default=""),
        sa.Column("owner_id", sa.Text, nullable=False),
        sa.Column("team_id", sa.Text, nullable=False, server_default=""),
        sa.Column("department_path", sa.Text, nullable=False, server_default="/"),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("closed_at", sa.DateTime(timezone=True)),
        sa.Column("created_by", sa.Text, nullable=False, server_default=""),
    )
    op.create_index("opportunities_created_id", "opportunities", ["created_at", "id"])
    op.create_index("opportunities_pipeline_created", "opportunities", ["pipeline_id", "created_at"])
    op.create_index("opportunities_stage", "opportunities", ["stage_id"])
    op.create_index("opportunities_owner", "opportunities", ["owner_id"])
    op.create_index("opportunities_team", "opportunities", ["team_id"])
    op.create_index("opportunities_customer", "opportunities", ["customer_id"])
    op.create_table(
        "stage_history",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("opportunity_id", sa.Uuid, sa.ForeignKey("opportunities.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("from_stage_id", sa.Uuid, sa.ForeignKey("stages.id")),
        sa.Column("to_stage_id", sa.Uuid, sa.ForeignKey("stages.id"), nullable=False),
        sa.Column("changed_by", sa.Text, nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_index("stage_history_opportunity", "stage_history", ["opportunity_id", "changed_at", "id"])
    op.create_table(
        "quotes",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("opportunity_id", sa.Uuid, sa.ForeignKey("opportunities.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("customer_id", sa.Uuid, nullable=False),
        sa.Column("quote_version", sa.Integer, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("lines", postgresql.JSONB, nullable=False),
        sa.Column("net_total", sa.Numeric(18, 2), nullable=False),
        sa.Column("tax_total", sa.Numeric(18, 2), nullable=False),
        sa.Column("gross_total", sa.Numeric(18, 2), nullable=False),
        sa.Column("valid_until", sa.Date, nullable=False),
        sa.Column("note", sa.Text, nullable=False, server_default=""),
        sa.Column("owner_id", sa.Text, nullable=False),
        sa.Column("team_id", sa.Text, nullable=False, server_default=""),
        sa.Column("department_path", sa.Text, nullable=False, server_default="/"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("sent_at", sa.DateTime(timezone=True)),
        sa.Column("decided_at", sa.DateTime(timezone=True)),
        sa.Column("created_by", sa.Text, nullable=False, server_default=""),
        sa.UniqueConstraint("opportunity_id", "quote_version", name="quotes_opportunity_version"),
    )
    op.create_index("quotes_created_id", "quotes", ["created_at", "id"])
    op.create_index("quotes_owner", "quotes", ["owner_id"])
    op.bulk_insert(pipelines, [{"id": DEFAULT_PIPELINE_ID, "name": DEFAULT_PIPELINE_NAME, "is_default": True}])
    op.bulk_insert(stages, [
        {"id": default_stage_id(suffix), "pipeline_id": DEFAULT_PIPELINE_ID, "name": name, "position": i,
         "default_probability": probability, "is_won": won, "is_lost": lost}
        for i, (suffix, name, probability, won, lost) in enumerate(DEFAULT_STAGES, start=1)])
    op.bulk_insert(lost_reasons, [{"code": c, "name": n} for c, n in DEFAULT_LOST_REASONS])
    outbox_schema.create_tables()


def downgrade() -> None:
    outbox_schema.drop_tables()
    for table in TABLES:
        op.drop_table(table)
