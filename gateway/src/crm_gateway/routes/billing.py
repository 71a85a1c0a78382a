"""/api/v1/invoices, /payments, /statements, /reports/aging, /reports/awaiting-payment: REST in
front of crm.billing.v1.BillingService (R-BIL-01..04)."""

from __future__ import annotations

import datetime as dt
from datetime import UTC
from functools import partial
from typing import Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request, Response
from google.protobuf.timestamp_pb2 import Timestamp

from crm.billing.v1 import billing_pb2 as pb
from crm.common.v1 import money_pb2
from crm_gateway import permissions as p
from crm_gateway.api_route import ApiRoute
from crm_gateway.auth import Caller, authenticated, require
from crm_gateway.backends import backend
from crm_gateway.etags import etag_of, expected_version
from crm_gateway.problems import API_ERRORS
from crm_gateway.routes import billing_schemas as s
from crm_gateway.routes.common import IDEMPOTENCY, IF_MATCH
from crm_gateway.routes.common import json_response as _json

_stub = partial(backend, name="billing")
router = APIRouter(prefix="/api/v1", route_class=ApiRoute, tags=["billing"],
                   dependencies=[Depends(authenticated)], responses=API_ERRORS)

_READ = Depends(require(p.BILLING_READ))
_WRITE = Depends(require(p.BILLING_WRITE))
# A rep's own contracts awaiting payment (R-BIL-04) are part of their contracts, not of billing.
_CONTRACTS_READ = Depends(require(p.CONTRACTS_READ))
_CONFLICT = {409: {"description": "The rule named by `reason` forbids it, e.g. OVER_ALLOCATION, CURRENCY_MISMATCH, "
                                  "PAYMENT_FULLY_ALLOCATED, ITEM_SETTLED, STATEMENT_NOT_DRAFT, STATEMENT_STATE, "
                                  "STATEMENT_PERIOD_OVERLAP, DISPUTE_ALREADY_RESOLVED"}}



def _time(t: Timestamp, present: bool = True) -> dt.datetime | None:
    return t.ToDatetime(UTC) if present else None


def _date(value: str) -> dt.date | None:
    return dt.date.fromisoformat(value) if value else None


def _money(m: money_pb2.Money) -> s.Money:
    return s.Money.of(m.amount, m.currency)



def _allocation(m: pb.Allocation) -> s.Allocation:
    return s.Allocation(id=m.id, source_kind=m.source_kind, source_id=m.source_id,  # type: ignore[arg-type]
                        target_kind=m.target_kind, target_id=m.target_id,  # type: ignore[arg-type]
                        amount=_money(m.amount), automatic=m.automatic, created_by=m.created_by,
                        created_at=m.create_time.ToDatetime(UTC))


def _invoice_fields(m: pb.Invoice) -> dict[str, Any]:
    return dict(
        id=m.id, invoice_number=m.invoice_number, kind=m.kind, source=m.source,
        sap_billing_document=m.sap_billing_document or None, customer_id=m.customer_id,
        contract_id=m.contract_id or None, order_id=m.order_id or None, net_amount=_money(m.net_amount),
        tax_amount=_money(m.tax_amount), total=_money(m.total), open_amount=_money(m.open_amount),
        issued_on=dt.date.fromisoformat(m.issued_on), due_on=dt.date.fromisoformat(m.due_on), status=m.status,
        days_overdue=m.days_overdue, lines=[
            s.InvoiceLine(description=li.description, quantity=li.quantity, unit_price=li.unit_price,
                          tax_rate_percent=li.tax_rate_percent, net_amount=li.net_amount,
                          tax_amount=li.tax_amount, gross_amount=li.gross_amount) for li in m.lines],
        note=m.note, owner_id=m.owner_id, team_id=m.team_id, department_path=m.department_path,
        created_by=m.created_by, created_at=m.create_time.ToDatetime(UTC))


def _payment(m: pb.Payment) -> s.Payment:
    return s.Payment(
        id=m.id, customer_id=m.customer_id, contract_id=m.contract_id or None, amount=_money(m.amount),
        received_on=dt.date.fromisoformat(m.received_on), reference=m.reference,
        allocated_to_invoices=_money(m.allocated_to_invoices), unallocated=_money(m.unallocated),
        allocated_to_instalments=_money(m.allocated_to_instalments),
        allocations=[_allocation(a) for a in m.allocations], note=m.note, owner_id=m.owner_id, team_id=m.team_id,
        department_path=m.department_path, created_by=m.created_by, created_at=m.create_time.ToDatetime(UTC))


def _statement(m: pb.Statement) -> s.Statement:
    return s.Statement(
        id=m.id, statement_number=m.statement_number, customer_id=m.customer_id, customer_name=m.customer_name,
        period_start=dt.date.fromisoformat(m.period_start), period_end=dt.date.fromisoformat(m.period_end),
        currency=m.currency, status=m.status,  # type: ignore[arg-type]
        opening_balance=_money(m.opening_balance), invoices=_money(m.invoices), payments=_money(m.payments),
        adjustments=_money(m.adjustments), closing_balance=_money(m.closing_balance), lines=[
            s.StatementLine(id=li.id, position=li.position, kind=li.kind,  # type: ignore[arg-type]
                            document_id=li.document_id, document_number=li.document_number,
                            document_date=dt.date.fromisoformat(li.document_date), description=li.description,
                            amount=_money(li.amount), disputed=li.disputed, dispute_reason=li.dispute_reason,
                            resolution=li.resolution, resolved_by=li.resolved_by) for li in m.lines],
        owner_id=m.owner_id, team_id=m.team_id, department_path=m.department_path, version=m.version,
        created_by=m.created_by, created_at=m.create_time.ToDatetime(UTC),
        issued_at=_time(m.issue_time, m.HasField("issue_time")),
        responded_at=_time(m.respond_time, m.HasField("respond_time")))


def _with_etag(m: pb.Statement, status_code: int = 200) -> Response:
    statement = _statement(m)
    headers = {"ETag": etag_of(statement.version)}
    if status_code == 201:
        headers["Location"] = f"/api/v1/statements/{statement.id}"
    return _json(statement, status_code, headers)


# Invoices (R-BIL-01) ----------------------------------------------------------------------------

@router.post("/invoices", status_code=201, response_model=s.Invoice, responses=_CONFLICT,
             summary="Create an invoice or credit note by hand; tax per line, half-up to the cent")
async def create_invoice(body: s.InvoiceCreate, request: Request, caller: Caller = _WRITE,
                         idempotency_key: str | None = IDEMPOTENCY) -> Response:
    reply = await _stub(request).CreateInvoice(pb.CreateInvoiceRequest(
        customer_id=body.customer_id, contract_id=body.contract_id, order_id=body.order_id, kind=body.kind,
        currency=body.currency, issued_on=body.issued_on.isoformat() if body.issued_on else "",
        payment_terms_days=body.payment_terms_days, note=body.note,
        applies_to_invoice_id=body.applies_to_invoice_id,
        lines=[pb.InvoiceLine(**li.model_dump()) for li in body.lines]), metadata=caller.metadata)
    invoice = s.Invoice(**_invoice_fields(reply.invoice))
    return _json(invoice, 201, {"Location": f"/api/v1/invoices/{invoice.id}"})


@router.get("/invoices", response_model=s.InvoicePage,
            summary="List invoices and credit notes in your data scope, newest first")
async def list_invoices(
    request: Request, caller: Caller = _READ, limit: int = Query(50, ge=1, le=200),
    cursor: str = Query("", max_length=2000), customer_id: UUID | None = None, contract_id: UUID | None = None,
    order_id: UUID | None = Query(None, description="Only the invoices of this sales order"),
    status: s.InvoiceStatus | None = None, kind: s.InvoiceKind | None = None,
    overdue: bool = Query(False, description="Only open invoices past their due date"),
) -> Response:
    reply = await _stub(request).ListInvoices(pb.ListInvoicesRequest(
        page_size=limit, page_token=cursor, customer_id=str(customer_id or ""), contract_id=str(contract_id or ""),
        order_id=str(order_id or ""), status=status or "", kind=kind or "", overdue_only=overdue),
        metadata=caller.metadata)
    return _json(s.InvoicePage(items=[s.Invoice(**_invoice_fields(i)) for i in reply.invoices],
                               next_cursor=reply.next_page_token or None))


@router.get("/invoices/{invoice_id}", response_model=s.InvoiceDetail,
            summary="Read an invoice or credit note with what was allocated to it")
async def get_invoice(invoice_id: UUID, request: Request, caller: Caller = _READ) -> Response:
    reply = await _stub(request).GetInvoice(pb.GetInvoiceRequest(id=str(invoice_id)), metadata=caller.metadata)
    return _json(s.InvoiceDetail(**_invoice_fields(reply.invoice),
                                 allocations=[_allocation(a) for a in reply.allocations]))


# Payments (R-BIL-02) --------------------------------------------------------------------------------

@router.post("/payments", status_code=201, response_model=s.Payment,
             summary="Record a payment received (回款); allocated automatically when exactly one open item matches")
async def record_payment(body: s.PaymentCreate, request: Request, caller: Caller = _WRITE,
                         idempotency_key: str | None = IDEMPOTENCY) -> Response:
    reply = await _stub(request).RecordPayment(pb.RecordPaymentRequest(
        customer_id=body.customer_id, contract_id=body.contract_id,
        amount=money_pb2.Money(amount=body.amount.amount, currency=body.amount.currency),
        received_on=body.received_on.isoformat() if body.received_on else "", reference=body.reference,
        note=body.note), metadata=caller.metadata)
    payment = _payment(reply.payment)
    return _json(payment, 201, {"Location": f"/api/v1/payments/{payment.id}"})


@router.get("/payments", response_model=s.PaymentPage, summary="List payments in your data scope, newest first")
async def list_payments(
    request: Request, caller: Caller = _READ, limit: int = Query(50, ge=1, le=200),
    cursor: str = Query("", max_length=2000), customer_id: UUID | None = None, contract_id: UUID | None = None,
    unallocated: bool = Query(False, description="Only payments with money not yet allocated to invoices"),
) -> Response:
    reply = await _stub(request).ListPayments(pb.ListPaymentsRequest(
        page_size=limit, page_token=cursor, customer_id=str(customer_id or ""), contract_id=str(contract_id or ""),
        unallocated_only=unallocated), metadata=caller.metadata)
    return _json(s.PaymentPage(items=[_payment(x) for x in reply.payments], next_cursor=reply.next_page_token or None))


@router.get("/payments/{payment_id}", response_model=s.Payment, summary="Read a payment with its allocations")
async def get_payment(payment_id: UUID, request: Request, caller: Caller = _READ) -> Response:
    reply = await _stub(request).GetPayment(pb.GetPaymentRequest(id=str(payment_id)), metadata=caller.metadata)
    return _json(_payment(reply.payment))


@router.post("/payments/{payment_id}/allocations", status_code=201, response_model=s.AllocationResult,
             responses=_CONFLICT,
             summary="Allocate part of a payment to an invoice or an instalment by hand (same currency; never "
                     "more than the payment's rest or the item's open balance)")
async def allocate_payment(payment_id: UUID, body: s.AllocationCreate, request: Request, caller: Caller = _WRITE,
                           idempotency_key: str | None = IDEMPOTENCY) -> Response:
    reply = await _stub(request).AllocatePayment(pb.AllocatePaymentRequest(
        payment_id=str(payment_id), target_kind=body.target_kind, target_id=body.target_id, amount=body.amount),
        metadata=caller.metadata)
    return _json(s.AllocationResult(payment=_payment(reply.payment), allocation=_allocation(reply.allocation)), 201)


@router.get("/instalments", response_model=s.InstalmentList,
            summary="A contract's receivable-plan instalments as billing tracks them: received, outstanding, state")
async def list_instalments(request: Request, contract_id: UUID = Query(...), caller: Caller = _READ) -> Response:
    reply = await _stub(request).ListInstalments(pb.ListInstalmentsRequest(contract_id=str(contract_id)),
                                                 metadata=caller.metadata)
    return _json(s.InstalmentList(items=[s.Instalment(
        id=i.id, contract_id=i.contract_id, customer_id=i.customer_id, sequence=i.sequence,
        due_date=dt.date.fromisoformat(i.due_date), amount=_money(i.amount), received=_money(i.received),
        outstanding=_money(i.outstanding), state=i.state, label=i.label)  # type: ignore[arg-type]
        for i in reply.instalments]))


# Statements (R-BIL-03) --------------------------------------------------------------------------------

@router.post("/statements", status_code=201, response_model=s.Statement, responses=_CONFLICT,
             summary="Draft a reconciliation statement (對賬單) of a customer for a period and currency")
async def create_statement(body: s.StatementCreate, request: Request, caller: Caller = _WRITE,
                           idempotency_key: str | None = IDEMPOTENCY) -> Response:
    reply = await _stub(request).CreateStatement(pb.CreateStatementRequest(
        customer_id=body.customer_id, period_start=body.period_start.isoformat(),
        period_end=body.period_end.isoformat(), currency=body.currency), metadata=caller.metadata)
    return _with_etag(reply.statement, 201)


@router.get("/statements", response_model=s.StatementPage, summary="List statements in your data scope")
async def list_statements(request: Request, caller: Caller = _READ, limit: int = Query(50, ge=1, le=200),
                          cursor: str = Query("", max_length=2000), customer_id: UUID | None = None,
                          status: s.StatementStatus | None = None) -> Response:
    reply = await _stub(request).ListStatements(pb.ListStatementsRequest(
        page_size=limit, page_token=cursor, customer_id=str(customer_id or ""), status=status or ""),
        metadata=caller.metadata)
    return _json(s.StatementPage(items=[s.StatementSummary(
        id=m.id, statement_number=m.statement_number, customer_id=m.customer_id, customer_name=m.customer_name,
        period_start=dt.date.fromisoformat(m.period_start), period_end=dt.date.fromisoformat(m.period_end),
        currency=m.currency, status=m.status, closing_balance=_money(m.closing_balance),  # type: ignore[arg-type]
        version=m.version, created_at=m.create_time.ToDatetime(UTC)) for m in reply.statements],
        next_cursor=reply.next_page_token or None))


@router.get("/statements/{statement_id}", response_model=s.Statement, summary="Read a statement with its lines")
async def get_statement(statement_id: UUID, request: Request, caller: Caller = _READ) -> Response:
    reply = await _stub(request).GetStatement(pb.GetStatementRequest(id=str(statement_id)), metadata=caller.metadata)
    return _with_etag(reply.statement)


@router.post("/statements/{statement_id}/issue", response_model=s.Statement, responses=_CONFLICT,
             summary="Issue a draft to the customer: its lines are recomputed and frozen (immutable afterwards)")
async def issue_statement(statement_id: UUID, request: Request, caller: Caller = _WRITE,
                          if_match: str | None = IF_MATCH) -> Response:
    reply = await _stub(request).IssueStatement(pb.IssueStatementRequest(
        id=str(statement_id), expected_version=expected_version(if_match)), metadata=caller.metadata)
    return _with_etag(reply.statement)


@router.post("/statements/{statement_id}/confirm", response_model=s.Statement, responses=_CONFLICT,
             summary="Record the customer's confirmation of an issued (or resolved) statement")
async def confirm_statement(statement_id: UUID, request: Request, caller: Caller = _WRITE,
                            if_match: str | None = IF_MATCH) -> Response:
    reply = await _stub(request).ConfirmStatement(pb.ConfirmStatementRequest(
        id=str(statement_id), expected_version=expected_version(if_match)), metadata=caller.metadata)
    return _with_etag(reply.statement)


@router.post("/statements/{statement_id}/dispute", response_model=s.Statement, responses=_CONFLICT,
             summary="Record the customer's dispute of lines of an issued statement, a reason per line")
async def dispute_statement(statement_id: UUID, body: s.StatementDispute, request: Request,
                            caller: Caller = _WRITE, if_match: str | None = IF_MATCH) -> Response:
    reply = await _stub(request).DisputeStatement(pb.DisputeStatementRequest(
        id=str(statement_id), expected_version=expected_version(if_match),
        lines=[pb.LineDispute(line_id=d.line_id, reason=d.reason) for d in body.lines]), metadata=caller.metadata)
    return _with_etag(reply.statement)


@router.post("/statements/{statement_id}/resolve", response_model=s.Statement, responses=_CONFLICT,
             summary="Record how a disputed line was resolved; the statement is resolved when every line is")
async def resolve_dispute(statement_id: UUID, body: s.DisputeResolution, request: Request, caller: Caller = _WRITE,
                          if_match: str | None = IF_MATCH) -> Response:
    reply = await _stub(request).ResolveStatementDispute(pb.ResolveStatementDisputeRequest(
        id=str(statement_id), line_id=body.line_id, resolution=body.resolution,
        expected_version=expected_version(if_match)), metadata=caller.metadata)
    return _with_etag(reply.statement)


@router.get("/statements/{statement_id}/export", response_class=Response,
            responses={200: {"description": "The statement as a PDF or an Excel workbook",
                             "content": {"application/pdf": {},
                                         "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": {}}}},
            summary="Export a statement as PDF (Chinese rendered) or Excel")
async def export_statement(statement_id: UUID, request: Request, caller: Caller = _READ,
                           format: Literal["pdf", "xlsx"] = Query("pdf")) -> Response:
    reply = await _stub(request).ExportStatement(pb.ExportStatementRequest(id=str(statement_id), format=format),
                                                 metadata=caller.metadata)
    return Response(reply.content, media_type=reply.content_type,
                    headers={"Content-Disposition": f'attachment; filename="{reply.filename}"'})


# Reports (R-BIL-04) ----------------------------------------------------------------------------------

@router.get("/reports/aging", response_model=s.Aging,
            summary="Open receivables by days past due (0–30, 31–60, 61–90, 90+) per customer, owner or team")
async def aging(request: Request, caller: Caller = _READ,
                group_by: Literal["customer", "owner", "team"] = Query("customer"),
                as_of: dt.date | None = Query(None, description="Today when empty"),
                currency: str = Query("", max_length=3, description="Every currency when empty")) -> Response:
    reply = await _stub(request).GetAging(pb.GetAgingRequest(
        group_by=group_by, as_of=as_of.isoformat() if as_of else "", currency=currency), metadata=caller.metadata)

    def row(r: pb.AgingRow) -> s.AgingRow:
        return s.AgingRow(key=r.key, currency=r.currency, current=_money(r.current), days_0_30=_money(r.days_0_30),
                          days_31_60=_money(r.days_31_60), days_61_90=_money(r.days_61_90),
                          days_over_90=_money(r.days_over_90), unapplied=_money(r.unapplied),
                          total=_money(r.total), open_invoices=r.open_invoices, label=r.label)

    return _json(s.Aging(as_of=dt.date.fromisoformat(reply.as_of), group_by=group_by,
                         rows=[row(r) for r in reply.rows], totals=[row(r) for r in reply.totals]))


@router.get("/reports/awaiting-payment", response_model=s.AwaitingPayment,
            summary="Signed contracts with money still to collect, most overdue first (R-BIL-04); a rep sees "
                    "their own")
async def awaiting_payment(request: Request, caller: Caller = _CONTRACTS_READ,
                           owner_id: str = Query("", max_length=100),
                           as_of: dt.date | None = Query(None, description="Today when empty")) -> Response:
    reply = await _stub(request).ListAwaitingPayment(pb.ListAwaitingPaymentRequest(
        owner_id=owner_id, as_of=as_of.isoformat() if as_of else ""), metadata=caller.metadata)
    return _json(s.AwaitingPayment(as_of=as_of, items=[s.AwaitingContract(
        contract_id=c.contract_id, contract_number=c.contract_number, customer_id=c.customer_id,
        customer_name=c.customer_name, owner_id=c.owner_id, contract_amount=_money(c.contract_amount),
        received=_money(c.received), outstanding=_money(c.outstanding), overdue=_money(c.overdue),
        next_due_date=_date(c.next_due_date), overdue_instalments=c.overdue_instalments) for c in reply.contracts]))
