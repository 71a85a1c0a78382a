"""The insights database schema (SQLAlchemy Core). Alembic migrations are written from it.

The read models keep the facts other services publish, one row per fact and keyed by the
producer's id, and the dashboard joins them when it is asked: a fact that arrives before the one
it refers to (a payment before its customer, an allocation before its invoice) simply joins once
both are there, so arrival order never changes a figure.
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    Index,
    Integer,
    MetaData,
    Numeric,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    func,
)

metadata = MetaData()

# crm.contracts.contract.signed (amended, terminated): the credit for a signature stays with the
# person who signed and their team and department at that moment (docs/architecture.md).
signed_contracts = Table(
    "signed_contracts", metadata,
    Column("id", Uuid, primary_key=True),
    Column("customer_id", Uuid, nullable=False),
    Column("currency", Text, nullable=False),
    Column("amount", Numeric(18, 2), nullable=False),
    Column("signed_at", DateTime(timezone=True), nullable=False),
    Column("signed_on", Date, nullable=False),
    Column("signed_by", Text, nullable=False),
    Column("team_id", Text, nullable=False, server_default=""),
    Column("department_path", Text, nullable=False, server_default="/"),
    Column("end_date", Date, nullable=True),
    Column("version", Integer, nullable=False, server_default="1"),
    Column("terminated", Boolean, nullable=False, server_default="false"),
)
Index("signed_contracts_customer", signed_contracts.c.customer_id, signed_contracts.c.signed_at)
Index("signed_contracts_signed_on", signed_contracts.c.signed_on)

# The receivable plan of each signed contract (what falls due when).
instalments = Table(
    "instalments", metadata,
    Column("id", Uuid, primary_key=True),
    Column("contract_id", Uuid, nullable=False),
    Column("due_date", Date, nullable=False),
    Column("currency", Text, nullable=False),
    Column("amount", Numeric(18, 2), nullable=False),
)
Index("instalments_contract", instalments.c.contract_id)
Index("instalments_due", instalments.c.due_date)

# crm.customers.customer.*: whose the customer is now; money received and owed follows it.
customers = Table(
    "customers", metadata,
    Column("id", Uuid, primary_key=True),
    Column("owner_id", Text, nullable=False),
    Column("team_id", Text, nullable=False, server_default=""),
    Column("department_path", Text, nullable=False, server_default="/"),
    Column("version", Integer, nullable=False, server_default="0"),
    Column("name", Text, nullable=False, server_default=""),
)

# crm.customers.followup.recorded: when each customer was last followed up (key renewals).
follow_ups = Table(
    "follow_ups", metadata,
    Column("id", Uuid, primary_key=True),
    Column("customer_id", Uuid, nullable=False),
    Column("occurred_at", DateTime(timezone=True), nullable=False),
    Column("author_id", Text, nullable=False, server_default=""),
)
Index("follow_ups_customer", follow_ups.c.customer_id, follow_ups.c.occurred_at)

# crm.opportunities.opportunity.*: the latest snapshot of each opportunity (the pipeline matrix).
# Like the opportunities service, insights moves a customer's opportunities with the customer.
opportunities = Table(
    "opportunities", metadata,
    Column("id", Uuid, primary_key=True),
    Column("customer_id", Uuid, nullable=False),
    Column("pipeline_id", Text, nullable=False),
    Column("stage_id", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("currency", Text, nullable=False),
    Column("amount", Numeric(18, 2), nullable=False),
    Column("probability", Integer, nullable=False),
    Column("owner_id", Text, nullable=False),
    Column("team_id", Text, nullable=False, server_default=""),
    Column("department_path", Text, nullable=False, server_default="/"),
    Column("version", Integer, nullable=False),
)
Index("opportunities_customer", opportunities.c.customer_id)

# crm.billing.invoice.issued / cancelled.
invoices = Table(
    "invoices", metadata,
    Column("id", Uuid, primary_key=True),
    Column("kind", Text, nullable=False),
    Column("customer_id", Uuid, nullable=False),
    Column("contract_id", Uuid, nullable=True),
    Column("owner_id", Text, nullable=False, server_default=""),
    Column("currency", Text, nullable=False),
    Column("total", Numeric(18, 2), nullable=False),
    Column("issued_on", Date, nullable=False),
    Column("due_on", Date, nullable=True),
    Column("cancelled", Boolean, nullable=False, server_default="false"),
)
Index("invoices_customer", invoices.c.customer_id)

# crm.billing.payment.received.
payments = Table(
    "payments", metadata,
    Column("id", Uuid, primary_key=True),
    Column("customer_id", Uuid, nullable=False),
    Column("owner_id", Text, nullable=False, server_default=""),
    Column("currency", Text, nullable=False),
    Column("amount", Numeric(18, 2), nullable=False),
    Column("received_on", Date, nullable=False),
)
Index("payments_customer", payments.c.customer_id)
Index("payments_received_on", payments.c.received_on)

# crm.billing.payment.allocated onto invoices: what of an invoice is paid, and since when.
invoice_allocations = Table(
    "invoice_allocations", metadata,
    Column("id", Uuid, primary_key=True),
    Column("payment_id", Uuid, nullable=False),
    Column("invoice_id", Uuid, nullable=False),
    Column("amount", Numeric(18, 2), nullable=False),
)
Index("invoice_allocations_invoice", invoice_allocations.c.invoice_id)

# Targets managers set (R-DASH-06). owner/team/department place the target's subject in the org
# chart so that data scopes apply to targets as to any record.
targets = Table(
    "targets", metadata,
    Column("id", Uuid, primary_key=True),
    Column("kind", Text, nullable=False),
    Column("level", Text, nullable=False),
    Column("subject_id", Text, nullable=False),
    Column("period", Text, nullable=False),
    Column("period_start", Date, nullable=False),
    Column("value", Numeric(18, 2), nullable=False),
    Column("currency", Text, nullable=False),
    Column("owner_id", Text, nullable=False, server_default=""),
    Column("team_id", Text, nullable=False, server_default=""),
    Column("department_path", Text, nullable=False, server_default="/"),
    Column("version", Integer, nullable=False, server_default="1"),
    Column("set_by", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    UniqueConstraint("kind", "level", "subject_id", "period", "period_start", name="targets_one_per_subject"),
)
