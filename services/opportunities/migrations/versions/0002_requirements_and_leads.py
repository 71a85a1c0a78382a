"""Requirement requests (R-OPP-02); the lead an opportunity was converted from (one per lead);
the requirement request a quote answers; the funnel's stored stay ends and furthest stage.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("opportunities", sa.Column("lead_id", sa.Uuid))
    op.create_index("opportunities_lead", "opportunities", ["lead_id"], unique=True,
                    postgresql_where=sa.text("lead_id IS NOT NULL"))
    op.add_column("quotes", sa.Column("requirement_request_id", sa.Uuid))
    # The funnel without a window over the whole history: each stay's end, each opportunity's
    # furthest non-lost stage, kept by every stage change from now on and backfilled here.
    op.add_column("stage_history", sa.Column("left_at", sa.DateTime(timezone=True)))
    op.execute("""
        UPDATE stage_history h SET left_at = n.next
        FROM (SELECT id, lead(changed_at) OVER (PARTITION BY opportunity_id ORDER BY changed_at, id) AS next
              FROM stage_history) n
        WHERE n.id = h.id AND n.next IS NOT NULL""")
    op.add_column("opportunities", sa.Column("furthest_position", sa.Integer, nullable=False, server_default="0"))
    op.execute("""
        UPDATE opportunities o SET furthest_position = f.position
        FROM (SELECT h.opportunity_id, max(s.position) AS position
              FROM stage_history h JOIN stages s ON s.id = h.to_stage_id
              WHERE NOT s.is_lost GROUP BY h.opportunity_id) f
        WHERE f.opportunity_id = o.id""")
    op.create_table(
        "requirement_requests",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("opportunity_id", sa.Uuid, sa.ForeignKey("opportunities.id", ondelete="CASCADE"), nullable=False),
        sa.Column("customer_id", sa.Uuid, nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("specification", sa.Text, nullable=False),
        sa.Column("quantity", sa.Numeric(18, 4), nullable=False),
        sa.Column("unit", sa.Text, nullable=False, server_default=""),
        sa.Column("target_price", sa.Numeric(18, 4)),
        sa.Column("currency", sa.Text, nullable=False),
        sa.Column("requested_date", sa.Date),
        sa.Column("attachments", postgresql.JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("reviewer_id", sa.Text, nullable=False, server_default=""),
        sa.Column("review_notes", sa.Text, nullable=False, server_default=""),
        sa.Column("quote_id", sa.Uuid),
        sa.Column("owner_id", sa.Text, nullable=False),
        sa.Column("team_id", sa.Text, nullable=False, server_default=""),
        sa.Column("department_path", sa.Text, nullable=False, server_default="/"),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("decided_at", sa.DateTime(timezone=True)),
        sa.Column("created_by", sa.Text, nullable=False, server_default=""),
    )
    op.create_index("requirement_requests_created_id", "requirement_requests", ["created_at", "id"])
    op.create_index("requirement_requests_opportunity", "requirement_requests", ["opportunity_id"])
    op.create_index("requirement_requests_status", "requirement_requests", ["status"])


def downgrade() -> None:
    op.drop_table("requirement_requests")
    op.drop_column("quotes", "requirement_request_id")
    op.drop_column("opportunities", "furthest_position")
    op.drop_column("stage_history", "left_at")
    op.drop_index("opportunities_lead", table_name="opportunities")
    op.drop_column("opportunities", "lead_id")
