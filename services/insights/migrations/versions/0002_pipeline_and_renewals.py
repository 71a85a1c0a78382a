"""Follow-ups and opportunities read models, customers' names: key-customer renewals (R-DASH-02)
and the pipeline matrix (R-DASH-03).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("customers", sa.Column("name", sa.Text(), server_default="", nullable=False))
    op.create_table(
        "follow_ups",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("author_id", sa.Text(), server_default="", nullable=False),
    )
    op.create_index("follow_ups_customer", "follow_ups", ["customer_id", "occurred_at"])
    op.create_table(
        "opportunities",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("pipeline_id", sa.Text(), nullable=False),
        sa.Column("stage_id", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("currency", sa.Text(), nullable=False),
        sa.Column("amount", sa.Numeric(18, 2), nullable=False),
        sa.Column("probability", sa.Integer(), nullable=False),
        sa.Column("owner_id", sa.Text(), nullable=False),
        sa.Column("team_id", sa.Text(), server_default="", nullable=False),
        sa.Column("department_path", sa.Text(), server_default="/", nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
    )
    op.create_index("opportunities_customer", "opportunities", ["customer_id"])


def downgrade() -> None:
    op.drop_table("opportunities")
    op.drop_table("follow_ups")
    op.drop_column("customers", "name")
