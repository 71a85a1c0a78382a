"""The billing database schema (SQLAlchemy Core). Migration 0001 creates exactly this."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

metadata = sa.MetaData()

MONEY = sa.Numeric(18, 2)

invoice_numbers = sa.Sequence("invoice_numbers", metadata=metadata)
statement_numbers = sa.Sequence("statement_numbers", metadata=metadata)

# Local read-only copy of signed contracts (CRM_CONTRACTS): who owns the customer's receivables.
contracts = sa.Table(
    "contracts", metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("contract_number", sa.Text, nullable=False, server_default=""),
    sa.Column("customer_id", sa.Uuid, nullable=False),
    sa.Column("customer_name", sa.Text, nullable=False, server_default=""),
    sa.Column("owner_id", sa.Text, nullable=False, server_default=""),
    sa.Column("team_id", sa.Text, nullable=False, server_default=""),
    sa.Column("department_path", sa.Text, nullable=False, server_default="/"),
    sa.Column("amount", MONEY, nullable=False),
    sa.Column("currency", sa.Text, nullable=False),
    sa.Column("signed_on", sa.Date),
    sa.Column("status", sa.Text, nullable=False, server_default="signed"),
    sa.Column("plan_version", sa.Integer, nullable=False, server_default="1"),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Index("contracts_customer", "customer_id", "signed_on"),
    sa.Index("contracts_owner", "owner_id"),
)

# Local copy of orders (CRM_ORDERS): order -> contract and customer, for SAP billing documents.
orders = sa.Table(
    "orders", metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("order_number", sa.Text, nullable=False, server_default=""),
    sa.Column("contract_id", sa.Uuid),
    sa.Column("customer_id", sa.Uuid),
    sa.Column("sap_sales_order", sa.Text, nullable=False, server_default=""),
)

instalments = sa.Table(
    "instalments", metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("contract_id", sa.Uuid, sa.ForeignKey("contracts.id"), nullable=False),
    sa.Column("customer_id", sa.Uuid, nullable=False),
    sa.Column("sequence", sa.Integer, nullable=False),
    sa.Column("due_date", sa.Date, nullable=False),
    sa.Column("amount", MONEY, nullable=False),
    sa.Column("currency", sa.Text, nullable=False),
    sa.Column("label", sa.Text, nullable=False, server_default=""),
    sa.Column("received", MONEY, nullable=False, server_default="0"),
    sa.Column("state", sa.Text, nullable=False),
    sa.CheckConstraint("received >= 0 AND received <= amount", name="instalments_received_within_amount"),
    sa.Index("instalments_contract", "contract_id", "sequence"),
)

invoices = sa.Table(
    "invoices", metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("invoice_number", sa.Text, nullable=False, unique=True),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("sap_billing_document", sa.Text, unique=True),
    sa.Column("customer_id", sa.Uuid, nullable=False),
    sa.Column("contract_id", sa.Uuid),
    sa.Column("order_id", sa.Uuid),
    sa.Column("currency", sa.Text, nullable=False),
    sa.Column("net_amount", MONEY, nullable=False),
    sa.Column("tax_amount", MONEY, nullable=False),
    sa.Column("total", MONEY, nullable=False),
    # Invoices: what has been paid or credited; credit notes: what has been applied.
    sa.Column("allocated", MONEY, nullable=False, server_default="0"),
    sa.Column("issued_on", sa.Date, nullable=False),
    sa.Column("due_on", sa.Date, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("cancelled_on", sa.Date),
    sa.Column("lines", JSONB, nullable=False, server_default="[]"),
    sa.Column("note", sa.Text, nullable=False, server_default=""),
    sa.Column("owner_id", sa.Text, nullable=False, server_default=""),
    sa.Column("team_id", sa.Text, nullable=False, server_default=""),
    sa.Column("department_path", sa.Text, nullable=False, server_default="/"),
    sa.Column("created_by", sa.Text, nullable=False, server_default=""),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("stated_in", sa.Uuid),
    sa.Column("cancellation_stated_in", sa.Uuid),
    # Set when invoice.overdue was published for the current overdue spell; cleared when settled.
    sa.Column("overdue_notified_on", sa.Date),
    sa.CheckConstraint("allocated >= 0 AND allocated <= total", name="invoices_allocated_within_total"),
    sa.CheckConstraint("total >= 0", name="invoices_total_not_negative"),
    sa.Index("invoices_created_id", "created_at", "id"),
    sa.Index("invoices_customer", "customer_id", "currency", "issued_on"),
    sa.Index("invoices_open_due", "due_on", postgresql_where=sa.text("status = 'open'")),
)

payments = sa.Table(
    "payments", metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("customer_id", sa.Uuid, nullable=False),
    sa.Column("contract_id", sa.Uuid),
    sa.Column("amount", MONEY, nullable=False),
    sa.Column("currency", sa.Text, nullable=False),
    sa.Column("received_on", sa.Date, nullable=False),
    sa.Column("reference", sa.Text, nullable=False, server_default=""),
    sa.Column("note", sa.Text, nullable=False, server_default=""),
    sa.Column("allocated_invoices", MONEY, nullable=False, server_default="0"),
    sa.Column("allocated_instalments", MONEY, nullable=False, server_default="0"),
    sa.Column("owner_id", sa.Text, nullable=False, server_default=""),
    sa.Column("team_id", sa.Text, nullable=False, server_default=""),
    sa.Column("department_path", sa.Text, nullable=False, server_default="/"),
    sa.Column("created_by", sa.Text, nullable=False, server_default=""),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("stated_in", sa.Uuid),
    sa.CheckConstraint("amount > 0", name="payments_amount_positive"),
    sa.CheckConstraint("allocated_invoices >= 0 AND allocated_invoices <= amount",
                       name="payments_invoice_allocations_within_amount"),
    sa.CheckConstraint("allocated_instalments >= 0 AND allocated_instalments <= amount",
                       name="payments_instalment_allocations_within_amount"),
    sa.Index("payments_created_id", "created_at", "id"),
    sa.Index("payments_customer", "customer_id", "currency", "received_on"),
)

allocations = sa.Table(
    "allocations", metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("source_kind", sa.Text, nullable=False),
    sa.Column("source_id", sa.Uuid, nullable=False),
    sa.Column("target_kind", sa.Text, nullable=False),
    sa.Column("target_id", sa.Uuid, nullable=False),
    sa.Column("amount", MONEY, nullable=False),
    sa.Column("currency", sa.Text, nullable=False),
    sa.Column("automatic", sa.Boolean, nullable=False, server_default="false"),
    # Released when the invoice it settled was cancelled.
    sa.Column("released", sa.Boolean, nullable=False, server_default="false"),
    sa.Column("created_by", sa.Text, nullable=False, server_default=""),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.CheckConstraint("amount > 0", name="allocations_amount_positive"),
    sa.Index("allocations_source", "source_id"),
    sa.Index("allocations_target", "target_id"),
)

statements = sa.Table(
    "statements", metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("statement_number", sa.Text, nullable=False, unique=True),
    sa.Column("customer_id", sa.Uuid, nullable=False),
    sa.Column("customer_name", sa.Text, nullable=False, server_default=""),
    sa.Column("currency", sa.Text, nullable=False),
    sa.Column("period_start", sa.Date, nullable=False),
    sa.Column("period_end", sa.Date, nullable=False),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("opening_balance", MONEY, nullable=False),
    sa.Column("invoices", MONEY, nullable=False),
    sa.Column("payments", MONEY, nullable=False),
    sa.Column("adjustments", MONEY, nullable=False),
    sa.Column("closing_balance", MONEY, nullable=False),
    sa.Column("owner_id", sa.Text, nullable=False, server_default=""),
    sa.Column("team_id", sa.Text, nullable=False, server_default=""),
    sa.Column("department_path", sa.Text, nullable=False, server_default="/"),
    sa.Column("version", sa.Integer, nullable=False, server_default="1"),
    sa.Column("created_by", sa.Text, nullable=False, server_default=""),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    sa.Column("issued_at", sa.DateTime(timezone=True)),
    sa.Column("responded_at", sa.DateTime(timezone=True)),
    sa.CheckConstraint("closing_balance = opening_balance + invoices - payments + adjustments",
                       name="statements_balance_reconciles"),
    sa.Index("statements_created_id", "created_at", "id"),
    sa.Index("statements_customer", "customer_id", "currency", "period_end"),
)

statement_lines = sa.Table(
    "statement_lines", metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("statement_id", sa.Uuid, sa.ForeignKey("statements.id", ondelete="CASCADE"), nullable=False),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("document_id", sa.Uuid, nullable=False),
    sa.Column("document_number", sa.Text, nullable=False),
    sa.Column("document_date", sa.Date, nullable=False),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("amount", MONEY, nullable=False),
    sa.Column("disputed", sa.Boolean, nullable=False, server_default="false"),
    sa.Column("dispute_reason", sa.Text, nullable=False, server_default=""),
    sa.Column("resolution", sa.Text, nullable=False, server_default=""),
    sa.Column("resolved_by", sa.Text, nullable=False, server_default=""),
    sa.Column("resolved_at", sa.DateTime(timezone=True)),
    sa.UniqueConstraint("statement_id", "position", name="statement_lines_position"),
)
