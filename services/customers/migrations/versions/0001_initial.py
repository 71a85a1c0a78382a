"""Customers, contacts, tags, follow-ups, industries; the outbox and processed-event log.

Revision ID: 0001
Revises:
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from crm_customers.domain.industries import DEFAULT_INDUSTRIES
from crmkit.outbox import schema as outbox_schema

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    industries = op.create_table(
        "industries",
        sa.Column("code", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("name_zh", sa.Text, nullable=False, server_default=""),
    )
    op.bulk_insert(industries, [{"code": c, "name": n, "name_zh": z} for c, n, z in DEFAULT_INDUSTRIES])
    op.create_table(
        "customers",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("tax_id", sa.Text),
        sa.Column("industry", sa.Text, sa.ForeignKey("industries.code")),
        sa.Column("region", sa.Text, nullable=False, server_default=""),
        sa.Column("origin", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("lifecycle_stage", sa.Text, nullable=False),
        sa.Column("owner_id", sa.Text, nullable=False),
        sa.Column("team_id", sa.Text, nullable=False, server_default=""),
        sa.Column("department_path", sa.Text, nullable=False, server_default="/"),
        sa.Column("addresses", postgresql.JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("created_by", sa.Text, nullable=False, server_default=""),
        sa.Column("deleted_at", sa.DateTime(timezone=True)),
    )
    op.create_index("customers_tax_id_live", "customers", ["tax_id"], unique=True,
                    postgresql_where=sa.text("deleted_at IS NULL AND tax_id IS NOT NULL"))
    op.create_index("customers_name_id", "customers", ["name", "id"])
    op.create_index("customers_created_id", "customers", ["created_at", "id"])
    op.create_index("customers_updated_id", "customers", ["updated_at", "id"])
    op.create_index("customers_owner", "customers", ["owner_id"])
    op.create_index("customers_team", "customers", ["team_id"])
    op.create_index("customers_industry", "customers", ["industry"])
    op.create_index("customers_name_trgm", "customers", ["name"], postgresql_using="gin",
                    postgresql_ops={"name": "gin_trgm_ops"})
    op.create_table(
        "customer_tags",
        sa.Column("customer_id", sa.Uuid, sa.ForeignKey("customers.id", ondelete="CASCADE"), nullable=False),
        sa.Column("tag", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("customer_id", "tag"),
    )
    op.create_index("customer_tags_tag", "customer_tags", [sa.text("lower(tag)")])
    op.create_table(
        "contacts",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("customer_id", sa.Uuid, sa.ForeignKey("customers.id", ondelete="CASCADE"), nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("title", sa.Text, nullable=False, server_default=""),
        sa.Column("phones", postgresql.ARRAY(sa.Text), nullable=False, server_default="{}"),
        sa.Column("email", sa.Text, nullable=False, server_default=""),
        sa.Column("wechat", sa.Text, nullable=False, server_default=""),
        sa.Column("is_key", sa.Boolean, nullable=False, server_default="false"),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_index("ix_contacts_customer_id", "contacts", ["customer_id"])
    op.create_table(
        "follow_ups",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("customer_id", sa.Uuid, sa.ForeignKey("customers.id", ondelete="CASCADE"), nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("content", sa.Text, nullable=False, server_default=""),
        sa.Column("key_facts", postgresql.ARRAY(sa.Text), nullable=False, server_default="{}"),
        sa.Column("contact_id", sa.Uuid, sa.ForeignKey("contacts.id", ondelete="SET NULL")),
        sa.Column("author_id", sa.Text, nullable=False),
        sa.Column("author_name", sa.Text, nullable=False, server_default=""),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_index("follow_ups_timeline", "follow_ups", ["customer_id", "occurred_at", "id"])
    outbox_schema.create_tables()


def downgrade() -> None:
    outbox_schema.drop_tables()
    for table in ("follow_ups", "contacts", "customer_tags", "customers", "industries"):
        op.drop_table(table)
