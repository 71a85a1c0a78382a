"""The gRPC face of the service: protobuf in, use case, protobuf out. No rules live here."""

from __future__ import annotations

from typing import Any

import grpc
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm.billing.v1 import billing_pb2 as pb
from crm.billing.v1 import billing_pb2_grpc as pb_grpc
from crm_billing.adapters import export
from crm_billing.app import use_cases
from crm_billing.app.messages import (
    allocation_to_pb,
    instalment_to_pb,
    invoice_to_pb,
    iso,
    money,
    parse_date,
    payment_to_pb,
    statement_to_pb,
)
from crm_billing.app.references import References
from crm_billing.domain.money import parse_line
from crm_billing.domain.statement import AgingRow
from crm_billing.domain.terms import DEFAULT_PAYMENT_TERMS_DAYS
from crmkit.auth import current_principal
from crmkit.db import UnitOfWork
from crmkit.errors import InvalidArgument
from crmkit.ids import parse_id

SOURCE = "crm/billing"
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["BillingService"].full_name


def _optional_id(value: str, field: str) -> Any:
    return parse_id(value, field) if value else None


def _aging_row(r: AgingRow) -> pb.AgingRow:
    c = r.currency
    return pb.AgingRow(key=r.key, currency=c, current=money(r.current, c), days_0_30=money(r.days_0_30, c),
                       days_31_60=money(r.days_31_60, c), days_61_90=money(r.days_61_90, c),
                       days_over_90=money(r.days_over_90, c), unapplied=money(r.unapplied, c),
                       total=money(r.total, c), open_invoices=r.open_invoices, label=r.label)


READ, WRITE = "billing.read", "billing.write"


class BillingServicer(pb_grpc.BillingServiceServicer):
    # R-SEC-03, defence in depth: the service refuses a caller without the permission itself. A
    # rep's contracts awaiting payment are part of their contracts (contracts.read), as at the gateway.
    permissions = {
        "CreateInvoice": WRITE, "GetInvoice": READ, "ListInvoices": READ, "RecordPayment": WRITE,
        "GetPayment": READ, "ListPayments": READ, "AllocatePayment": WRITE, "ListInstalments": READ,
        "CreateStatement": WRITE, "GetStatement": READ, "ListStatements": READ, "IssueStatement": WRITE,
        "ConfirmStatement": WRITE, "DisputeStatement": WRITE, "ResolveStatementDispute": WRITE,
        "ExportStatement": READ, "GetAging": READ, "ListAwaitingPayment": "contracts.read"}

    def __init__(self, sessions: async_sessionmaker[AsyncSession], references: References, *,
                 default_terms_days: int = DEFAULT_PAYMENT_TERMS_DAYS) -> None:
        self._sessions = sessions
        self._references = references
        self._terms = default_terms_days

    def _uow(self) -> UnitOfWork:
        return UnitOfWork(self._sessions, SOURCE, actor=current_principal().subject)

    async def CreateInvoice(self, request: pb.CreateInvoiceRequest, context: grpc.aio.ServicerContext) -> Any:
        new = use_cases.NewInvoice(
            customer_id=parse_id(request.customer_id, "customer_id"),
            contract_id=_optional_id(request.contract_id, "contract_id"),
            order_id=_optional_id(request.order_id, "order_id"), kind=request.kind, currency=request.currency,
            issued_on=parse_date(request.issued_on, "issued_on"), payment_terms_days=request.payment_terms_days,
            lines=[parse_line(i, li.description, li.quantity, li.unit_price, li.tax_rate_percent)
                   for i, li in enumerate(request.lines)],
            note=request.note, applies_to_invoice_id=_optional_id(request.applies_to_invoice_id,
                                                                  "applies_to_invoice_id"))
        async with self._uow() as uow:
            row = await use_cases.create_invoice(uow, current_principal(), new, references=self._references,
                                                 default_terms_days=self._terms)
        return pb.CreateInvoiceResponse(invoice=invoice_to_pb(row, use_cases.today()))

    async def GetInvoice(self, request: pb.GetInvoiceRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            row, allocations = await use_cases.get_invoice(uow, current_principal(), parse_id(request.id))
        return pb.GetInvoiceResponse(invoice=invoice_to_pb(row, use_cases.today()),
                                     allocations=[allocation_to_pb(a) for a in allocations])

    async def ListInvoices(self, request: pb.ListInvoicesRequest, context: grpc.aio.ServicerContext) -> Any:
        if request.status and request.status not in ("open", "settled", "cancelled"):
            raise InvalidArgument.of("status", "must be open, settled or cancelled")
        if request.kind and request.kind not in ("invoice", "credit_note"):
            raise InvalidArgument.of("kind", "must be invoice or credit_note")
        async with self._uow() as uow:
            rows, token = await use_cases.list_invoices(
                uow, current_principal(), page_token=request.page_token, limit=request.page_size,
                customer_id=_optional_id(request.customer_id, "customer_id"),
                contract_id=_optional_id(request.contract_id, "contract_id"), status=request.status,
                kind=request.kind, overdue_only=request.overdue_only,
                order_id=_optional_id(request.order_id, "order_id"))
        day = use_cases.today()
        return pb.ListInvoicesResponse(invoices=[invoice_to_pb(r, day) for r in rows], next_page_token=token)

    async def RecordPayment(self, request: pb.RecordPaymentRequest, context: grpc.aio.ServicerContext) -> Any:
        new = use_cases.NewPayment(
            customer_id=parse_id(request.customer_id, "customer_id"),
            contract_id=_optional_id(request.contract_id, "contract_id"), amount=request.amount.amount,
            currency=request.amount.currency, received_on=parse_date(request.received_on, "received_on"),
            reference=request.reference, note=request.note)
        async with self._uow() as uow:
            row, allocations = await use_cases.record_payment(uow, current_principal(), new,
                                                               references=self._references)
        return pb.RecordPaymentResponse(payment=payment_to_pb(row, allocations))

    async def GetPayment(self, request: pb.GetPaymentRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            row, allocations = await use_cases.get_payment(uow, current_principal(), parse_id(request.id))
        return pb.GetPaymentResponse(payment=payment_to_pb(row, allocations))

    async def ListPayments(self, request: pb.ListPaymentsRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            rows, token = await use_cases.list_payments(
                uow, current_principal(), page_token=request.page_token, limit=request.page_size,
                customer_id=_optional_id(request.customer_id, "customer_id"),
                contract_id=_optional_id(request.contract_id, "contract_id"),
                unallocated_only=request.unallocated_only)
        return pb.ListPaymentsResponse(payments=[payment_to_pb(r) for r in rows], next_page_token=token)

    async def AllocatePayment(self, request: pb.AllocatePaymentRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            payment, allocation, allocations = await use_cases.allocate_payment(
                uow, current_principal(), parse_id(request.payment_id, "payment_id"), request.target_kind,
                parse_id(request.target_id, "target_id"), request.amount)
        return pb.AllocatePaymentResponse(payment=payment_to_pb(payment, allocations),
                                          allocation=allocation_to_pb(allocation))

    async def ListInstalments(self, request: pb.ListInstalmentsRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            rows = await use_cases.list_instalments(uow, current_principal(),
                                                    parse_id(request.contract_id, "contract_id"))
        return pb.ListInstalmentsResponse(instalments=[instalment_to_pb(r) for r in rows])

    async def CreateStatement(self, request: pb.CreateStatementRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            row, lines = await use_cases.create_statement(
                uow, current_principal(), parse_id(request.customer_id, "customer_id"),
                parse_date(request.period_start, "period_start"), parse_date(request.period_end, "period_end"),
                request.currency, references=self._references)
        return pb.CreateStatementResponse(statement=statement_to_pb(row, lines))

    async def GetStatement(self, request: pb.GetStatementRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            row, lines = await use_cases.get_statement(uow, current_principal(), parse_id(request.id))
        return pb.GetStatementResponse(statement=statement_to_pb(row, lines))

    async def ListStatements(self, request: pb.ListStatementsRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            rows, token = await use_cases.list_statements(
                uow, current_principal(), page_token=request.page_token, limit=request.page_size,
                customer_id=_optional_id(request.customer_id, "customer_id"), status=request.status)
        return pb.ListStatementsResponse(statements=[statement_to_pb(r, []) for r in rows], next_page_token=token)

    async def IssueStatement(self, request: pb.IssueStatementRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            row, lines = await use_cases.issue_statement(uow, current_principal(), parse_id(request.id),
                                                         request.expected_version)
        return pb.IssueStatementResponse(statement=statement_to_pb(row, lines))

    async def ConfirmStatement(self, request: pb.ConfirmStatementRequest,
                               context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            row, lines = await use_cases.confirm_statement(uow, current_principal(), parse_id(request.id),
                                                           request.expected_version)
        return pb.ConfirmStatementResponse(statement=statement_to_pb(row, lines))

    async def DisputeStatement(self, request: pb.DisputeStatementRequest,
                               context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            row, lines = await use_cases.dispute_statement(
                uow, current_principal(), parse_id(request.id), [(d.line_id, d.reason) for d in request.lines],
                request.expected_version)
        return pb.DisputeStatementResponse(statement=statement_to_pb(row, lines))

    async def ResolveStatementDispute(self, request: pb.ResolveStatementDisputeRequest,
                                      context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            row, lines = await use_cases.resolve_dispute(uow, current_principal(), parse_id(request.id),
                                                         request.line_id, request.resolution,
                                                         request.expected_version)
        return pb.ResolveStatementDisputeResponse(statement=statement_to_pb(row, lines))

    async def ExportStatement(self, request: pb.ExportStatementRequest, context: grpc.aio.ServicerContext) -> Any:
        fmt = request.format or "pdf"
        if fmt not in ("pdf", "xlsx"):
            raise InvalidArgument.of("format", "must be pdf or xlsx")
        async with self._uow() as uow:
            row, lines = await use_cases.get_statement(uow, current_principal(), parse_id(request.id))
        content = export.to_pdf(row, lines) if fmt == "pdf" else export.to_xlsx(row, lines)
        return pb.ExportStatementResponse(content=content, content_type=export.PDF if fmt == "pdf" else export.XLSX,
                                          filename=export.filename(row, fmt))

    async def GetAging(self, request: pb.GetAgingRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            day, rows, sums = await use_cases.aging(uow, current_principal(), request.group_by,
                                                    parse_date(request.as_of, "as_of"), request.currency)
        return pb.GetAgingResponse(as_of=iso(day), rows=[_aging_row(r) for r in rows],
                                   totals=[_aging_row(r) for r in sums])

    async def ListAwaitingPayment(self, request: pb.ListAwaitingPaymentRequest,
                                  context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            rows = await use_cases.awaiting_payment(uow, current_principal(), request.owner_id,
                                                    parse_date(request.as_of, "as_of"))
        return pb.ListAwaitingPaymentResponse(contracts=[pb.AwaitingContract(
            contract_id=str(r.id), contract_number=r.contract_number, customer_id=str(r.customer_id),
            customer_name=r.customer_name, owner_id=r.owner_id, contract_amount=money(r.amount, r.currency),
            received=money(r.received, r.currency), outstanding=money(r.outstanding, r.currency),
            overdue=money(r.overdue, r.currency), next_due_date=iso(r.next_due),
            overdue_instalments=int(r.overdue_count)) for r in rows])
