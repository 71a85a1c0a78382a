"""Read models of signed contracts, receivable plans, customers, invoices, payments and invoice
allocations; targets; the outbox and processed-event log.

Revision ID: 0001
Revises:
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

from crmkit.outbox import schema as outbox_schema

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TABLES = ["targets", "invoice_allocations", "payments", "invoices", "customers", "instalments",
          "signed_contracts"]


def upgrade() -> None:
    op.create_table(
        "signed_contracts",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("currency", sa.Text(), nullable=False),
        sa.Column("amount", sa.Numeric(18, 2), nullable=False),
        sa.Column("signed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("signed_on", sa.Date(), nullable=False),
        sa.Column("signed_by", sa.Text(), nullable=False),
        sa.Column("team_id", sa.Text(), server_default="", nullable=False),
        sa.Column("department_path", sa.Text(), server_default="/", nullable=False),
        sa.Column("end_date", sa.Date(), nullable=True),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("terminated", sa.Boolean(), server_default="false", nullable=False),
    )
    op.create_index("signed_contracts_customer", "signed_contracts", ["customer_id", "signed_at"])
    op.create_index("signed_contracts_signed_on", "signed_contracts", ["signed_on"])
    op.create_table(
        "instalments",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("contract_id", sa.Uuid(), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("currency", sa.Text(), nullable=False),
        sa.Column("amount", sa.Numeric(18, 2), nullable=False),
    )
    op.create_index("instalments_contract", "instalments", ["contract_id"])
    op.create_index("instalments_due", "instalments", ["due_date"])
    op.create_table(
        "customers",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("owner_id", sa.Text(), nullable=False),
        sa.Column("team_id", sa.Text(), server_default="", nullable=False),
        sa.Column("department_path", sa.Text(), server_default="/", nullable=False),
        sa.Column("version", sa.Integer(), server_default="0", nullable=False),
    )
    op.create_table(
        "invoices",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("contract_id", sa.Uuid(), nullable=True),
        sa.Column("owner_id", sa.Text(), server_default="", nullable=False),
        sa.Column("currency", sa.Text(), nullable=False),
        sa.Column("total", sa.Numeric(18, 2), nullable=False),
        sa.Column("issued_on", sa.Date(), nullable=False),
        sa.Column("due_on", sa.Date(), nullable=True),
        sa.Column("cancelled", sa.Boolean(), server_default="false", nullable=False),
    )
    op.create_index("invoices_customer", "invoices", ["customer_id"])
    op.create_table(
        "payments",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("customer_id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.Text(), server_default="", nullable=False),
        sa.Column("currency", sa.Text(), nullable=False),
        sa.Column("amount", sa.Numeric(18, 2), nullable=False),
        sa.Column("received_on", sa.Date(), nullable=False),
    )
    op.create_index("payments_customer", "payments", ["customer_id"])
    op.create_index("payments_received_on", "payments", ["received_on"])
    op.create_table(
        "invoice_allocations",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("payment_id", sa.Uuid(), nullable=False),
        sa.Column("invoice_id", sa.Uuid(), nullable=False),
        sa.Column("amount", sa.Numeric(18, 2), nullable=False),
    )
    op.create_index("invoice_allocations_invoice", "invoice_allocations", ["invoice_id"])
    op.create_table(
        "targets",
        sa.Column("id", sa.Uuid(), primary_key=True),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("level", sa.Text(), nullable=False),
        sa.Column("subject_id", sa.Text(), nullable=False),
        sa.Column("period", sa.Text(), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("value", sa.Numeric(18, 2), nullable=False),
        sa.Column("currency", sa.Text(), nullable=False),
        sa.Column("owner_id", sa.Text(), server_default="", nullable=False),
        sa.Column("team_id", sa.Text(), server_default="", nullable=False),
        sa.Column("department_path", sa.Text(), server_default="/", nullable=False),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("set_by", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.UniqueConstraint("kind", "level", "subject_id", "period", "period_start", name="targets_one_per_subject"),
    )
    outbox_schema.create_tables()


def downgrade() -> None:
    outbox_schema.drop_tables()
    for table in TABLES:
        op.drop_table(table)
