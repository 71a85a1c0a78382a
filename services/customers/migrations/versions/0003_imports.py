"""Bulk import (R-CUS-03): an import's options, status and counts, and each row's outcome with
what a revert needs (the created customer, the added contact, the before-image of an update).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "imports",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("created_by", sa.Text, nullable=False),
        sa.Column("owner_id", sa.Text, nullable=False),
        sa.Column("team_id", sa.Text, nullable=False, server_default=""),
        sa.Column("department_path", sa.Text, nullable=False, server_default="/"),
        sa.Column("file_name", sa.Text, nullable=False, server_default=""),
        sa.Column("dedup_key", sa.Text, nullable=False),
        sa.Column("on_match", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("total", sa.Integer, nullable=False, server_default="0"),
        sa.Column("planned", postgresql.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("counts", postgresql.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("processed", sa.Integer, nullable=False, server_default="0"),
        sa.Column("error", sa.Text, nullable=False, server_default=""),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_index("imports_created_by", "imports", ["created_by", "created_at"])
    op.create_table(
        "import_rows",
        sa.Column("import_id", sa.Uuid, sa.ForeignKey("imports.id", ondelete="CASCADE"), nullable=False),
        sa.Column("line", sa.Integer, nullable=False),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("outcome", sa.Text, nullable=False),
        sa.Column("reasons", postgresql.ARRAY(sa.Text), nullable=False, server_default="{}"),
        sa.Column("applied", sa.Boolean, nullable=False, server_default="false"),
        sa.Column("customer_id", sa.Uuid),
        sa.Column("contact_id", sa.Uuid),
        sa.Column("before", sa.Text),
        sa.Column("reverted", sa.Boolean, nullable=False, server_default="false"),
        sa.PrimaryKeyConstraint("import_id", "line"),
    )


def downgrade() -> None:
    op.drop_table("import_rows")
    op.drop_index("imports_created_by", table_name="imports")
    op.drop_table("imports")
