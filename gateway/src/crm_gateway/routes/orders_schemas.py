"""JSON shapes of the orders API (R-ORD-01, R-ORD-02). Money is a decimal string with its
currency, quantities are decimal strings, never numbers. Unknown fields are rejected."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import AwareDatetime, Field

from crm_gateway.routes.common_schemas import Money, Strict

OrderStatus = Literal["submitted", "confirmed", "in_production", "shipped", "delivered", "closed", "cancelled"]
QUANTITY = r"^\d{1,12}(\.\d{1,4})?$"


class OrderLineCreate(Strict):
    contract_line_id: str = Field(min_length=1, max_length=100, description="The contract line drawn on")
    quantity: str = Field(pattern=QUANTITY, description='Decimal string, more than zero, e.g. "12.5"')
    requested_delivery_date: dt.date | None = Field(None, description="The order's date when empty")


class OrderCreate(Strict):
    contract_id: str = Field(max_length=36)
    lines: list[OrderLineCreate] = Field(min_length=1, max_length=500)
    requested_delivery_date: dt.date
    customer_reference: str = Field("", max_length=100, description="The customer's purchase-order number")
    note: str = Field("", max_length=2000)


class OrderLine(Strict):
    id: str
    line_number: int
    contract_line_id: str
    product: str
    specification: str
    quantity: str
    unit: str
    unit_price: Money
    amount: Money
    requested_delivery_date: dt.date | None
    delivered_quantity: str = Field(description="What goods-issued deliveries carried of this line")
    sap_item: str | None


class Order(Strict):
    id: str
    order_number: str = Field(examples=["SO-2026-000045"])
    contract_id: str
    contract_number: str
    customer_id: str
    customer_name: str
    owner_id: str
    team_ids: list[str]
    department_path: str
    status: OrderStatus
    amount: Money
    lines: list[OrderLine]
    requested_delivery_date: dt.date
    customer_reference: str
    note: str
    sap_sales_order: str | None
    cancel_reason: str | None
    version: int
    created_at: AwareDatetime
    updated_at: AwareDatetime
    created_by: str


class OrderPage(Strict):
    items: list[Order]
    next_cursor: str | None


class Cancellation(Strict):
    reason: str = Field(min_length=1, max_length=500)


class DeliveryLine(Strict):
    order_line_id: str = Field(max_length=36)
    quantity: str = Field(pattern=QUANTITY)


class DeliveryCreate(Strict):
    order_id: str = Field(max_length=36)
    shipped_on: dt.date = Field(description="The day the goods left")
    carrier: str = Field("", max_length=200)
    tracking_number: str = Field("", max_length=200)
    lines: list[DeliveryLine] = Field(min_length=1, max_length=500)


class Delivery(Strict):
    id: str
    order_id: str
    order_number: str
    customer_id: str
    source: Literal["sap", "manual"]
    sap_delivery: str | None
    status: Literal["planned", "shipped"] = Field(description="planned: in SAP, goods not issued yet")
    shipped_on: dt.date | None
    carrier: str
    tracking_number: str
    lines: list[DeliveryLine]
    created_at: AwareDatetime
    updated_at: AwareDatetime
    created_by: str


class DeliveryPage(Strict):
    items: list[Delivery]
    next_cursor: str | None


class Invoice(Strict):
    invoice_id: str
    invoice_number: str
    kind: str = Field(description="invoice or credit_note")
    order_id: str | None
    contract_id: str | None
    net_amount: Money
    tax_amount: Money
    total: Money
    issued_on: dt.date | None
    due_on: dt.date | None
    sap_billing_document: str | None


class Payment(Strict):
    payment_id: str
    amount: Money
    allocated: Money
    unallocated: Money
    received_on: dt.date | None
    reference: str
    contract_ids: list[str]


class OverviewEntry(Strict):
    order: Order
    deliveries: list[Delivery]
    invoices: list[Invoice]


class OrderOverview(Strict):
    customer_id: str
    orders: list[OverviewEntry] = Field(description="Newest first, each with its deliveries and invoices")
    contract_invoices: list[Invoice] = Field(description="Invoices of these orders' contracts naming no order")
    payments: list[Payment] = Field(description="Payments received on these orders' contracts")
    truncated: bool = Field(description="More orders exist than `limit` included")
