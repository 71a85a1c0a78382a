"""JSON shapes of the billing API (R-BIL-01..04). Money is a decimal string with its currency,
never a number. Unknown fields are rejected."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import AwareDatetime, Field

from crm_gateway.routes.common_schemas import DECIMAL, BoundedLine, Currency, LinesWithinMaximum, Money, Strict

POSITIVE_CENTS = r"^\d{1,15}(\.\d{1,2})?$"
InvoiceKind = Literal["invoice", "credit_note"]
InvoiceStatus = Literal["open", "settled", "cancelled"]
StatementStatus = Literal["draft", "issued", "confirmed", "disputed", "resolved"]
InstalmentState = Literal["pending", "partially_received", "received", "overdue", "void"]


class InvoiceLineIn(BoundedLine):
    description: str = Field(min_length=1, max_length=500)
    quantity: str = Field(pattern=DECIMAL, examples=["3"])
    unit_price: str = Field(pattern=DECIMAL, examples=["33.335"])
    tax_rate_percent: str = Field("0", pattern=DECIMAL, description="e.g. 13 for 13 % VAT", examples=["13"])


class InvoiceLine(InvoiceLineIn):
    net_amount: str = Field(description="quantity × unit price, half-up to the cent")
    tax_amount: str = Field(description="net × rate, half-up to the cent (tax is computed per line)")
    gross_amount: str


class InvoiceCreate(Strict):
    customer_id: str = Field(max_length=36)
    contract_id: str = Field("", max_length=36, description="Owner, team and department come from the contract")
    order_id: str = Field("", max_length=36)
    kind: InvoiceKind = "invoice"
    currency: Currency = "CNY"
    issued_on: dt.date | None = Field(None, description="Today when empty")
    payment_terms_days: int = Field(0, ge=0, le=365, description="0: the default terms (net 30)")
    lines: Annotated[list[InvoiceLineIn], LinesWithinMaximum] = Field(min_length=1, max_length=500)
    note: str = Field("", max_length=2000)
    applies_to_invoice_id: str = Field("", max_length=36, description="A credit note: the invoice it settles")


class Invoice(Strict):
    id: str
    invoice_number: str
    kind: InvoiceKind
    source: Literal["crm", "sap"]
    sap_billing_document: str | None
    customer_id: str
    contract_id: str | None
    order_id: str | None
    net_amount: Money
    tax_amount: Money
    total: Money
    open_amount: Money = Field(description="Still owed (an invoice) or still to apply (a credit note)")
    issued_on: dt.date
    due_on: dt.date
    status: InvoiceStatus
    days_overdue: int
    lines: list[InvoiceLine]
    note: str
    owner_id: str
    team_id: str
    department_path: str
    created_by: str
    created_at: AwareDatetime


class Allocation(Strict):
    id: str
    source_kind: Literal["payment", "credit_note"]
    source_id: str
    target_kind: Literal["invoice", "instalment"]
    target_id: str
    amount: Money
    automatic: bool
    created_by: str
    created_at: AwareDatetime


class InvoiceDetail(Invoice):
    allocations: list[Allocation]


class InvoicePage(Strict):
    items: list[Invoice]
    next_cursor: str | None


class PaymentCreate(Strict):
    customer_id: str = Field(max_length=36)
    contract_id: str = Field("", max_length=36)
    amount: Money
    received_on: dt.date | None = Field(None, description="Today when empty")
    reference: str = Field("", max_length=200, description="Bank or remittance reference; an invoice number in "
                           "it allocates the payment to that invoice")
    note: str = Field("", max_length=2000)


class Payment(Strict):
    id: str
    customer_id: str
    contract_id: str | None
    amount: Money
    received_on: dt.date
    reference: str
    allocated_to_invoices: Money
    unallocated: Money = Field(description="Not yet allocated to invoices (an open credit of the customer)")
    allocated_to_instalments: Money
    allocations: list[Allocation]
    note: str
    owner_id: str
    team_id: str
    department_path: str
    created_by: str
    created_at: AwareDatetime


class PaymentPage(Strict):
    items: list[Payment]
    next_cursor: str | None


class AllocationCreate(Strict):
    target_kind: Literal["invoice", "instalment"]
    target_id: str = Field(max_length=36)
    amount: str = Field("", pattern=r"^(\d{1,15}(\.\d{1,2})?)?$",
                        description="Empty: as much as fits (the payment's rest, the item's open balance)")


class AllocationResult(Strict):
    payment: Payment
    allocation: Allocation


class Instalment(Strict):
    id: str
    contract_id: str
    customer_id: str
    sequence: int
    due_date: dt.date
    amount: Money
    received: Money
    outstanding: Money
    state: InstalmentState
    label: str


class InstalmentList(Strict):
    items: list[Instalment]


class StatementCreate(Strict):
    customer_id: str = Field(max_length=36)
    period_start: dt.date
    period_end: dt.date
    currency: Currency = "CNY"


class StatementLine(Strict):
    id: str
    position: int
    kind: Literal["invoice", "payment", "credit_note", "reversal"]
    document_id: str
    document_number: str
    document_date: dt.date
    description: str
    amount: Money = Field(description="Signed effect on the balance")
    disputed: bool
    dispute_reason: str
    resolution: str
    resolved_by: str


class Statement(Strict):
    id: str
    statement_number: str
    customer_id: str
    customer_name: str
    period_start: dt.date
    period_end: dt.date
    currency: str
    status: StatementStatus
    opening_balance: Money
    invoices: Money
    payments: Money
    adjustments: Money
    closing_balance: Money = Field(description="opening + invoices − payments + adjustments")
    lines: list[StatementLine]
    owner_id: str
    team_id: str
    department_path: str
    version: int
    created_by: str
    created_at: AwareDatetime
    issued_at: AwareDatetime | None
    responded_at: AwareDatetime | None


class StatementSummary(Strict):
    id: str
    statement_number: str
    customer_id: str
    customer_name: str
    period_start: dt.date
    period_end: dt.date
    currency: str
    status: StatementStatus
    closing_balance: Money
    version: int
    created_at: AwareDatetime


class StatementPage(Strict):
    items: list[StatementSummary]
    next_cursor: str | None


class LineDispute(Strict):
    line_id: str = Field(max_length=36)
    reason: str = Field(min_length=1, max_length=2000)


class StatementDispute(Strict):
    lines: list[LineDispute] = Field(min_length=1, max_length=500)


class DisputeResolution(Strict):
    line_id: str = Field(max_length=36)
    resolution: str = Field(min_length=1, max_length=2000)


class AgingRow(Strict):
    key: str = Field(description="The customer id, owner id or team id")
    label: str = Field(description="The customer's name when grouped by customer; empty otherwise")
    currency: str
    current: Money = Field(description="Not yet due")
    days_0_30: Money
    days_31_60: Money
    days_61_90: Money
    days_over_90: Money
    unapplied: Money = Field(description="Unallocated payments and unapplied credit notes")
    total: Money = Field(description="current + buckets − unapplied")
    open_invoices: int


class Aging(Strict):
    as_of: dt.date
    group_by: Literal["customer", "owner", "team"]
    rows: list[AgingRow]
    totals: list[AgingRow] = Field(description="One per currency: the exact sums of the rows")


class AwaitingContract(Strict):
    contract_id: str
    contract_number: str
    customer_id: str
    customer_name: str
    owner_id: str
    contract_amount: Money
    received: Money
    outstanding: Money
    overdue: Money
    next_due_date: dt.date | None
    overdue_instalments: int


class AwaitingPayment(Strict):
    as_of: dt.date | None
    items: list[AwaitingContract]
