"""Rows ⇄ the protobuf messages of proto/crm/billing/v1 (API and events)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy.engine import Row

from crm.billing.v1 import billing_pb2 as pb
from crm.common.v1 import money_pb2
from crmkit.errors import InvalidArgument


def ts(value: dt.datetime | None) -> Timestamp | None:
    if value is None:
        return None
    out = Timestamp()
    out.FromDatetime(value.astimezone(dt.UTC))
    return out


def money(amount: Decimal | int, currency: str) -> money_pb2.Money:
    return money_pb2.Money(amount=f"{Decimal(amount):.2f}", currency=currency)


def iso(value: dt.date | None) -> str:
    return value.isoformat() if value else ""


def parse_date(value: str, field: str) -> dt.date | None:
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise InvalidArgument.of(field, f"{value!r} is not an ISO 8601 date (YYYY-MM-DD)") from None


def invoice_to_pb(r: Row[Any], today: dt.date) -> pb.Invoice:
    open_amount = Decimal(r.total) - Decimal(r.allocated) if r.status == "open" else Decimal(0)
    overdue = (today - r.due_on).days if r.kind == "invoice" and r.status == "open" and r.due_on < today else 0
    return pb.Invoice(
        id=str(r.id), invoice_number=r.invoice_number, kind=r.kind, source=r.source,
        sap_billing_document=r.sap_billing_document or "", customer_id=str(r.customer_id),
        contract_id=str(r.contract_id or ""), order_id=str(r.order_id or ""),
        net_amount=money(r.net_amount, r.currency), tax_amount=money(r.tax_amount, r.currency),
        total=money(r.total, r.currency), open_amount=money(open_amount, r.currency), issued_on=iso(r.issued_on),
        due_on=iso(r.due_on), status=r.status, lines=[pb.InvoiceLine(**li) for li in r.lines],
        owner_id=r.owner_id, team_id=r.team_id, department_path=r.department_path, created_by=r.created_by,
        create_time=ts(r.created_at), days_overdue=overdue, note=r.note)


def allocation_to_pb(r: Row[Any]) -> pb.Allocation:
    return pb.Allocation(id=str(r.id), source_kind=r.source_kind, source_id=str(r.source_id),
                         target_kind=r.target_kind, target_id=str(r.target_id), amount=money(r.amount, r.currency),
                         automatic=r.automatic, created_by=r.created_by, create_time=ts(r.created_at))


def payment_to_pb(r: Row[Any], allocations: list[Row[Any]] | None = None) -> pb.Payment:
    return pb.Payment(
        id=str(r.id), customer_id=str(r.customer_id), contract_id=str(r.contract_id or ""),
        amount=money(r.amount, r.currency), received_on=iso(r.received_on), reference=r.reference,
        allocated_to_invoices=money(r.allocated_invoices, r.currency),
        unallocated=money(Decimal(r.amount) - Decimal(r.allocated_invoices), r.currency),
        allocated_to_instalments=money(r.allocated_instalments, r.currency),
        allocations=[allocation_to_pb(a) for a in allocations or []], owner_id=r.owner_id, team_id=r.team_id,
        department_path=r.department_path, created_by=r.created_by, create_time=ts(r.created_at), note=r.note)


def instalment_to_pb(r: Row[Any]) -> pb.Instalment:
    return pb.Instalment(
        id=str(r.id), contract_id=str(r.contract_id), customer_id=str(r.customer_id), sequence=r.sequence,
        due_date=iso(r.due_date), amount=money(r.amount, r.currency), received=money(r.received, r.currency),
        outstanding=money(Decimal(r.amount) - Decimal(r.received), r.currency), state=r.state, label=r.label)


def statement_to_pb(r: Row[Any], lines: list[Row[Any]]) -> pb.Statement:
    c = r.currency
    return pb.Statement(
        id=str(r.id), statement_number=r.statement_number, customer_id=str(r.customer_id),
        customer_name=r.customer_name, period_start=iso(r.period_start), period_end=iso(r.period_end), currency=c,
        status=r.status, opening_balance=money(r.opening_balance, c), invoices=money(r.invoices, c),
        payments=money(r.payments, c), adjustments=money(r.adjustments, c), closing_balance=money(r.closing_balance, c),
        lines=[pb.StatementLine(
            id=str(li.id), position=li.position, kind=li.kind, document_id=str(li.document_id),
            document_number=li.document_number, document_date=iso(li.document_date), description=li.description,
            amount=money(li.amount, c), disputed=li.disputed, dispute_reason=li.dispute_reason,
            resolution=li.resolution, resolved_by=li.resolved_by) for li in lines],
        owner_id=r.owner_id, team_id=r.team_id, department_path=r.department_path, created_by=r.created_by,
        create_time=ts(r.created_at), issue_time=ts(r.issued_at), respond_time=ts(r.responded_at),
        version=r.version)
