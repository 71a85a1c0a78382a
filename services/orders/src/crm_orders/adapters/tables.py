"""The orders database schema (SQLAlchemy Core). Alembic migrations are written from it."""

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
    Sequence,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY

metadata = MetaData()

# People-facing order numbers (SO-2026-000045): one sequence, never reused.
order_number_seq = Sequence("order_number_seq", metadata=metadata, start=1)

# The local, read-only copy of signed contracts (crm.contracts.contract.* events).
contracts = Table(
    "contracts", metadata,
    Column("id", Uuid, primary_key=True),
    Column("number", Text, nullable=False),
    Column("customer_id", Uuid, nullable=False),
    Column("customer_name", Text, nullable=False, server_default=""),
    Column("owner_id", Text, nullable=False),
    Column("team_ids", ARRAY(Text), nullable=False, server_default="{}"),
    Column("department_path", Text, nullable=False, server_default="/"),
    Column("amount", Numeric(18, 2), nullable=False),
    Column("currency", Text, nullable=False),
    Column("start_date", Date),
    Column("end_date", Date),
    # signed | terminated
    Column("state", Text, nullable=False),
    # The contract version the copy holds (1 when signed, then each amendment's).
    Column("version", Integer, nullable=False),
    Column("terminated_reason", Text, nullable=False, server_default=""),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("contracts_customer", "customer_id"),
)

contract_lines = Table(
    "contract_lines", metadata,
    Column("contract_id", Uuid, ForeignKey("contracts.id", ondelete="CASCADE"), primary_key=True),
    Column("line_id", Text, primary_key=True),
    Column("position", Integer, nullable=False),
    Column("product", Text, nullable=False),
    Column("specification", Text, nullable=False, server_default=""),
    Column("quantity", Numeric(18, 4), nullable=False),
    Column("unit", Text, nullable=False, server_default=""),
    Column("unit_price", Numeric(18, 4), nullable=False),
    Column("amount", Numeric(18, 2), nullable=False),
    Column("active", Boolean, nullable=False, server_default="true"),
)

orders = Table(
    "orders", metadata,
    Column("id", Uuid, primary_key=True),
    Column("number", Text, nullable=False, unique=True),
    Column("contract_id", Uuid, ForeignKey("contracts.id"), nullable=False),
    Column("contract_number", Text, nullable=False),
    Column("customer_id", Uuid, nullable=False),
    Column("customer_name", Text, nullable=False, server_default=""),
    # Owner, teams and department come from the contract: its data scope is the order's.
    Column("owner_id", Text, nullable=False),
    Column("team_ids", ARRAY(Text), nullable=False, server_default="{}"),
    Column("department_path", Text, nullable=False, server_default="/"),
    Column("status", Text, nullable=False),
    Column("currency", Text, nullable=False),
    Column("amount", Numeric(18, 2), nullable=False),
    Column("requested_delivery_date", Date, nullable=False),
    Column("customer_reference", Text, nullable=False, server_default=""),
    Column("note", Text, nullable=False, server_default=""),
    Column("sap_sales_order", Text, nullable=False, server_default=""),
    Column("cancel_reason", Text, nullable=False, server_default=""),
    Column("version", Integer, nullable=False),
    Column("created_by", Text, nullable=False, server_default=""),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("orders_created_id", "created_at", "id"),
    Index("orders_customer_created", "customer_id", "created_at"),
    Index("orders_contract", "contract_id"),
    Index("orders_owner", "owner_id"),
    Index("orders_team_ids", "team_ids", postgresql_using="gin"),
    Index("orders_sap_sales_order", "sap_sales_order", postgresql_where=text("sap_sales_order <> ''")),
)

order_lines = Table(
    "order_lines", metadata,
    Column("id", Uuid, primary_key=True),
    Column("order_id", Uuid, ForeignKey("orders.id", ondelete="CASCADE"), nullable=False),
    Column("line_number", Integer, nullable=False),
    Column("contract_line_id", Text, nullable=False),
    Column("product", Text, nullable=False),
    Column("specification", Text, nullable=False, server_default=""),
    Column("quantity", Numeric(18, 4), nullable=False),
    Column("unit", Text, nullable=False, server_default=""),
    Column("unit_price", Numeric(18, 4), nullable=False),
    Column("amount", Numeric(18, 2), nullable=False),
    Column("requested_delivery_date", Date),
    Column("sap_item", Text, nullable=False, server_default=""),
    UniqueConstraint("order_id", "line_number", name="order_lines_order_number"),
)

deliveries = Table(
    "deliveries", metadata,
    Column("id", Uuid, primary_key=True),
    Column("order_id", Uuid, ForeignKey("orders.id", ondelete="CASCADE"), nullable=False),
    # sap | manual
    Column("source", Text, nullable=False),
    # planned | shipped
    Column("status", Text, nullable=False),
    # The SAP outbound delivery number; SAP's deliveries are upserted by it.
    Column("sap_delivery", Text, unique=True),
    Column("shipped_on", Date),
    Column("carrier", Text, nullable=False, server_default=""),
    Column("tracking_number", Text, nullable=False, server_default=""),
    Column("created_by", Text, nullable=False, server_default=""),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("deliveries_order", "order_id", "created_at"),
    Index("deliveries_created_id", "created_at", "id"),
)

delivery_lines = Table(
    "delivery_lines", metadata,
    Column("delivery_id", Uuid, ForeignKey("deliveries.id", ondelete="CASCADE"), primary_key=True),
    Column("order_line_id", Uuid, ForeignKey("order_lines.id"), primary_key=True),
    Column("quantity", Numeric(18, 4), nullable=False),
    Column("sap_item", Text, nullable=False, server_default=""),
)

# The read model of billing's invoices and payments (crm.billing.* events), for the overview.
invoices = Table(
    "invoices", metadata,
    Column("id", Uuid, primary_key=True),
    Column("number", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("customer_id", Uuid),
    Column("contract_id", Uuid),
    Column("order_id", Uuid),
    Column("currency", Text, nullable=False),
    Column("net_amount", Numeric(18, 2), nullable=False),
    Column("tax_amount", Numeric(18, 2), nullable=False),
    Column("total", Numeric(18, 2), nullable=False),
    Column("issued_on", Date),
    Column("due_on", Date),
    Column("sap_billing_document", Text, nullable=False, server_default=""),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("invoices_order", "order_id"),
    Index("invoices_contract", "contract_id"),
)

payments = Table(
    "payments", metadata,
    Column("id", Uuid, primary_key=True),
    Column("customer_id", Uuid),
    Column("currency", Text, nullable=False),
    Column("amount", Numeric(18, 2), nullable=False),
    Column("allocated", Numeric(18, 2), nullable=False),
    Column("unallocated", Numeric(18, 2), nullable=False),
    Column("received_on", Date),
    Column("reference", Text, nullable=False, server_default=""),
    Column("contract_ids", ARRAY(Uuid), nullable=False, server_default="{}"),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Index("payments_customer", "customer_id"),
    Index("payments_contract_ids", "contract_ids", postgresql_using="gin"),
)
