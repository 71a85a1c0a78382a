"""Commands and queries of the billing service (R-BIL-01..04). Each takes a unit of work (and the
calling principal), applies the domain rules, and emits the events of what it changed."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy.engine import Row

from crm.billing.v1 import events_pb2 as ev
from crm.contracts.v1 import events_pb2 as contract_events
from crm.customers.v1 import events_pb2 as customer_events
from crm.orders.v1 import events_pb2 as order_events
from crm.sap.v1 import events_pb2 as sap_events
from crm_billing.adapters.repository import Repository, outstanding_of
from crm_billing.app.messages import iso, money
from crm_billing.app.references import References
from crm_billing.domain import allocation as rules
from crm_billing.domain import statement as st
from crm_billing.domain.allocation import InstalmentState, InvoiceStatus, OpenItem, Track
from crm_billing.domain.money import (
    ZERO,
    InvoiceLineInput,
    cents,
    parse_decimal,
    parse_money_amount,
    price_line,
    totals,
)
from crm_billing.domain.terms import DEFAULT_PAYMENT_TERMS_DAYS, due_date
from crmkit.auth import Principal
from crmkit.db import UnitOfWork
from crmkit.errors import Conflict, InvalidArgument, NotFound, StaleVersion
from crmkit.events.envelope import Event
from crmkit.ids import new_id
from crmkit.money import parse_currency
from crmkit.pagination import decode_cursor, encode_cursor, page_size, time_text, uuid_text
from crmkit.references import CustomerFacts

log = logging.getLogger(__name__)

LIST_SORT = "-create_time"
CONTRACT_SIGNED = "crm.contracts.contract.signed"
CONTRACT_AMENDED = "crm.contracts.contract.amended"
CONTRACT_TERMINATED = "crm.contracts.contract.terminated"
ORDER_SUBJECTS = ["crm.orders.order.submitted", "crm.orders.order.confirmed"]
CUSTOMER_SUBJECTS = ["crm.customers.customer.reassigned", "crm.customers.customer.merged",
                     "crm.customers.customer.updated"]
BILLING_DOCUMENT_CHANGED = "crm.sap.billing_document.changed"
# SAP billing document types that are credit memos (amounts positive, they reduce what is owed).
CREDIT_DOCUMENT_TYPES = frozenset({"G2", "RE", "CR", "S2"})


def today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value) if value else None
    except ValueError:
        return None


def _dec(m: Any) -> Decimal:
    return Decimal(m.amount) if m.amount else ZERO


def _page(rows: list[Row[Any]], size: int) -> tuple[list[Row[Any]], str]:
    token = ""
    if len(rows) > size:
        last = rows[size - 1]
        token = encode_cursor(LIST_SORT, [last.created_at.isoformat(), str(last.id)])
    return rows[:size], token


@dataclass(frozen=True)
class Ownership:
    contract_id: uuid.UUID | None
    owner_id: str = ""
    team_id: str = ""
    department_path: str = "/"

    def values(self) -> dict[str, Any]:
        return {"owner_id": self.owner_id, "team_id": self.team_id, "department_path": self.department_path}


def _ownership_of(contract: Row[Any] | None) -> Ownership:
    if contract is None:
        return Ownership(None)
    return Ownership(contract.id, contract.owner_id, contract.team_id, contract.department_path)


async def _ownership(repo: Repository, customer_id: uuid.UUID, contract_id: uuid.UUID | None) -> Ownership:
    """From the record's contract, else the customer's latest signed contract; the contract id is
    only kept when the record names it."""
    if contract_id is not None:
        contract = await repo.contract(contract_id)
        if contract is not None:
            return _ownership_of(contract)
    fallback = _ownership_of(await repo.latest_contract_of(customer_id))
    return Ownership(contract_id, fallback.owner_id, fallback.team_id, fallback.department_path)


@dataclass(frozen=True)
class Named:
    """The records a write names, checked with their owners: the customer as it is now, and the
    ownership (data scope) the new record takes."""

    customer: CustomerFacts
    owner: Ownership


async def _check_references(repo: Repository, principal: Principal, references: References, customer_id: uuid.UUID,
                            contract_id: uuid.UUID | None, order_id: uuid.UUID | None = None) -> Named:
    """R-SEC-02: the customer, the contract and the order a write names exist, are the caller's to
    use (asked of their owners as the caller; a contract copy held here is checked against the
    caller's scope here) and belong together. Ownership comes from the contract (the order's, when
    only an order is named), else the customer's latest contract, else the customer's owner."""
    customer = await references.customer(customer_id)
    if order_id is not None:
        order = await references.order(order_id)
        if order.customer_id != customer_id:
            raise InvalidArgument.of("order_id", "is an order of another customer")
        if contract_id is not None and order.contract_id != contract_id:
            raise InvalidArgument.of("order_id", "is an order of another contract")
        contract_id = order.contract_id
    if contract_id is not None:
        copy = await repo.contract(contract_id)
        if copy is None:
            # Signed a moment ago, its event not here yet: the contracts service answers.
            facts = await references.contract(contract_id)
            owner, contract_customer = (Ownership(contract_id, facts.owner_id, facts.team_id, facts.department_path),
                                        facts.customer_id)
        elif await repo.visible_contract(principal, contract_id) is None:
            raise NotFound(f"contract {contract_id} not found", metadata={"contract_id": str(contract_id)})
        else:
            owner, contract_customer = _ownership_of(copy), copy.customer_id
        if contract_customer != customer_id:
            raise InvalidArgument.of("contract_id", "is a contract of another customer")
        return Named(customer, owner)
    latest = await repo.latest_contract_of(customer_id)
    if latest is not None:
        return Named(customer, Ownership(None, latest.owner_id, latest.team_id, latest.department_path))
    return Named(customer, Ownership(None, customer.owner_id, customer.team_id, customer.department_path))


# Instalments -----------------------------------------------------------------------------------


async def _set_instalment(uow: UnitOfWork, repo: Repository, row: Row[Any], *, received: Decimal | None = None,
                          void: bool | None = None, on: dt.date | None = None, **changes: Any) -> None:
    """Saves an instalment with its state recomputed; InstalmentStateChanged when the state moves."""
    received = Decimal(row.received) if received is None else received
    amount = Decimal(changes.get("amount", row.amount))
    due = changes.get("due_date", row.due_date)
    is_void = (row.state == InstalmentState.VOID.value) if void is None else void
    state = rules.instalment_state(amount=amount, received=received, due_date=due, today=on or today(),
                                   void=is_void)
    await repo.save_instalment(row.id, received=received, state=state.value, **changes)
    if state.value != row.state:
        uow.emit(ev.InstalmentStateChanged(
            instalment_id=str(row.id), contract_id=str(row.contract_id), customer_id=str(row.customer_id),
            from_state="" if row.state == "new" else row.state, to_state=state.value,
            received=money(received, row.currency),
            outstanding=money(max(amount - received, ZERO) if not is_void else ZERO, row.currency)),
            subject_id=str(row.id))


def _plan(instalments: Any, fallback_currency: str) -> list[dict[str, Any]]:
    plan = []
    for i in instalments:
        due = dt.date.fromisoformat(i.due_date) if i.due_date else None
        amount = cents(Decimal(i.amount.amount or "0"))
        if due is None or amount <= 0:
            log.warning("instalment without due date or amount ignored", extra={"instalment_id": i.instalment_id})
            continue
        plan.append({"id": _uuid(i.instalment_id) or new_id(), "sequence": i.sequence, "due_date": due,
                     "amount": amount, "currency": i.amount.currency or fallback_currency, "label": i.label})
    return plan


# Event handlers: local copies --------------------------------------------------------------------


async def on_contract_signed(uow: UnitOfWork, event: Event) -> None:
    """Keeps the contract and its receivable plan (R-BIL-02); records that arrived before the
    customer's first contract take its owner."""
    m = event.message(contract_events.ContractSigned)
    contract_id, customer_id = _uuid(m.contract_id), _uuid(m.customer_id)
    if contract_id is None or customer_id is None:
        log.warning("contract.signed without contract or customer id ignored", extra={"event_id": event.id})
        return
    repo = Repository(uow.session)
    await repo.lock_customer(customer_id)
    currency = m.amount.currency or "CNY"
    owner = {"owner_id": m.owner_id, "team_id": m.team_ids[0] if m.team_ids else "",
             "department_path": m.department_path or "/"}
    await repo.upsert_contract({
        "id": contract_id, "contract_number": m.contract_number, "customer_id": customer_id,
        "customer_name": m.customer_name, "amount": cents(_dec(m.amount)), "currency": currency,
        "signed_on": m.sign_time.ToDatetime(dt.UTC).date() if m.HasField("sign_time") else today(),
        "status": "signed", **owner})
    existing = {r.id for r in await repo.instalments_of(contract_id)}
    for item in _plan(m.instalments, currency):
        if item["id"] in existing:
            continue
        await repo.add_instalment(contract_id=contract_id, customer_id=customer_id, state="new", received=ZERO,
                                  **item)
        row = await repo.instalment(item["id"], for_update=True)
        assert row is not None
        await _set_instalment(uow, repo, row)
    await repo.backfill_ownership(customer_id=customer_id, owner=owner)


async def on_contract_amended(uow: UnitOfWork, event: Event) -> None:
    """The new plan replaces the instalments nothing was received on yet; those with money on
    them stay as they are."""
    m = event.message(contract_events.ContractAmended)
    contract_id = _uuid(m.contract_id)
    repo = Repository(uow.session)
    contract = await repo.contract(contract_id, for_update=True) if contract_id else None
    if contract is None:
        log.warning("contract.amended for an unknown contract ignored", extra={"contract_id": m.contract_id})
        return
    if m.version and m.version < contract.plan_version:
        return  # an older amendment arriving late
    current = {r.id: r for r in await repo.instalments_of(contract.id, for_update=True)}
    plan = {item["id"]: item for item in _plan(m.instalments, contract.currency)}
    for row in current.values():
        if row.state == InstalmentState.VOID.value or Decimal(row.received) > 0:
            continue
        if row.id in plan:
            item = plan[row.id]
            await _set_instalment(uow, repo, row, sequence=item["sequence"], due_date=item["due_date"],
                                  amount=item["amount"], label=item["label"])
        else:
            await _set_instalment(uow, repo, row, void=True)
    for item_id, item in plan.items():
        if item_id not in current:
            await repo.add_instalment(contract_id=contract.id, customer_id=contract.customer_id, state="new",
                                      received=ZERO, **item)
            row = await repo.instalment(item_id, for_update=True)
            assert row is not None
            await _set_instalment(uow, repo, row)
    await repo.upsert_contract({"id": contract.id, "customer_id": contract.customer_id,
                                "amount": cents(_dec(m.amount)) if m.amount.amount else contract.amount,
                                "currency": contract.currency, "plan_version": m.version or contract.plan_version})


async def on_contract_terminated(uow: UnitOfWork, event: Event) -> None:
    """What was not received of a terminated contract's plan is void."""
    m = event.message(contract_events.ContractTerminated)
    contract_id = _uuid(m.contract_id)
    repo = Repository(uow.session)
    contract = await repo.contract(contract_id, for_update=True) if contract_id else None
    if contract is None:
        return
    await repo.upsert_contract({"id": contract.id, "customer_id": contract.customer_id, "amount": contract.amount,
                                "currency": contract.currency, "status": "terminated"})
    for row in await repo.instalments_of(contract.id, for_update=True):
        if row.state not in (InstalmentState.VOID.value, InstalmentState.RECEIVED.value):
            await _set_instalment(uow, repo, row, void=True)


async def on_order(uow: UnitOfWork, event: Event) -> None:
    """order → contract and customer, for SAP billing documents that name only the order."""
    if event.type == order_events.OrderConfirmed.DESCRIPTOR.full_name:
        confirmed = event.message(order_events.OrderConfirmed)
        order, sap_order = confirmed.order, confirmed.sap_sales_order
    else:
        order, sap_order = event.message(order_events.OrderSubmitted).order, ""
    order_id = _uuid(order.order_id)
    if order_id is None:
        return
    repo = Repository(uow.session)
    contract_id, customer_id = _uuid(order.contract_id), _uuid(order.customer_id)
    known = await repo.order(order_id)
    await repo.upsert_order(order_id, order_number=order.order_number, contract_id=contract_id,
                            customer_id=customer_id, sap_sales_order=sap_order or (known.sap_sales_order if known
                                                                                  else ""))
    if contract_id is not None:
        await repo.backfill_order(order_id, contract_id, _ownership_of(await repo.contract(contract_id)).values())


async def on_customer_event(uow: UnitOfWork, event: Event) -> None:
    """Ownership follows the customer (docs/architecture.md): after a reassignment every billing
    record of the customer, open or closed, is in the new owner's scope; after a merge the merged
    customer's records are the survivor's and follow its owner. A rename reaches the contract
    copies the reports name customers from; issued statements keep the name they were issued with."""
    if event.type == customer_events.CustomersMerged.DESCRIPTOR.full_name:
        merged = event.message(customer_events.CustomersMerged)
        merged_id, surviving_id = _uuid(merged.merged_id), _uuid(merged.surviving_id)
        if merged_id is None or surviving_id is None:
            log.warning("customer.merged with a malformed id ignored", extra={"event_id": event.id})
            return
        repo = Repository(uow.session)
        for locked in sorted((merged_id, surviving_id)):
            await repo.lock_customer(locked)
        await repo.repoint_customer(merged_id, surviving_id)
        await _follow(repo, merged.surviving)
        await repo.rename_customer(surviving_id, merged.surviving.name)
    elif event.type == customer_events.CustomerReassigned.DESCRIPTOR.full_name:
        await _follow(Repository(uow.session), event.message(customer_events.CustomerReassigned).customer)
    elif event.type == customer_events.CustomerUpdated.DESCRIPTOR.full_name:
        after = event.message(customer_events.CustomerUpdated).after
        customer_id = _uuid(after.id)
        if customer_id is not None and after.name:
            await Repository(uow.session).rename_customer(customer_id, after.name)


async def _follow(repo: Repository, customer: Any) -> None:
    customer_id = _uuid(customer.id)
    if customer_id is None or not customer.owner_id:
        log.warning("customer without id or owner ignored", extra={"customer_id": customer.id})
        return
    await repo.lock_customer(customer_id)
    await repo.follow_customer(customer_id, {"owner_id": customer.owner_id, "team_id": customer.team_id,
                                             "department_path": customer.department_path or "/"})


# Invoices (R-BIL-01) ------------------------------------------------------------------------------


def _issued_event(r: Row[Any]) -> ev.InvoiceIssued:
    return ev.InvoiceIssued(
        invoice_id=str(r.id), invoice_number=r.invoice_number, kind=r.kind, customer_id=str(r.customer_id),
        contract_id=str(r.contract_id or ""), order_id=str(r.order_id or ""),
        net_amount=money(r.net_amount, r.currency), tax_amount=money(r.tax_amount, r.currency),
        total=money(r.total, r.currency), issued_on=iso(r.issued_on), due_on=iso(r.due_on), owner_id=r.owner_id,
        sap_billing_document=r.sap_billing_document or "")


async def _move_invoice(repo: Repository, invoice: Row[Any], delta: Decimal) -> Row[Any]:
    allocated = Decimal(invoice.allocated) + delta
    if allocated < 0 or allocated > Decimal(invoice.total):
        raise Conflict(f"{invoice.invoice_number} would be allocated {allocated} of {invoice.total}",
                       reason="OVER_ALLOCATION")
    status = rules.invoice_status(total=Decimal(invoice.total), allocated=allocated,
                                  cancelled=invoice.status == InvoiceStatus.CANCELLED.value)
    extra: dict[str, Any] = {}
    if status is InvoiceStatus.SETTLED:
        extra["overdue_notified_on"] = None  # a later overdue spell is a new transition
    return await repo.save_invoice(invoice.id, allocated=allocated, status=status.value, **extra)


async def _apply_credit(uow: UnitOfWork, repo: Repository, credit: Row[Any], invoice: Row[Any],
                        amount: Decimal | None, *, automatic: bool) -> Decimal:
    """A credit note settles part of an invoice (same currency); returns what was applied."""
    applied = rules.allowed_amount(source_unallocated=Decimal(credit.total) - Decimal(credit.allocated),
                                   item_open=Decimal(invoice.total) - Decimal(invoice.allocated),
                                   source_currency=credit.currency, item_currency=invoice.currency,
                                   requested=amount)
    allocation = await repo.add_allocation(id=new_id(), source_kind="credit_note", source_id=credit.id,
                                           target_kind="invoice", target_id=invoice.id, amount=applied,
                                           currency=credit.currency, automatic=automatic, created_by=uow.actor)
    await _move_invoice(repo, invoice, applied)
    await _move_invoice(repo, credit, applied)
    uow.emit(ev.PaymentAllocated(payment_id=str(credit.id), allocation_id=str(allocation.id), target_kind="invoice",
                                 target_id=str(invoice.id), amount=money(applied, credit.currency),
                                 unallocated=money(Decimal(credit.total) - Decimal(credit.allocated) - applied,
                                                   credit.currency),
                                 customer_id=str(credit.customer_id), automatic=automatic),
             subject_id=str(credit.id))
    return applied


async def _auto_apply_credit(uow: UnitOfWork, repo: Repository, credit: Row[Any]) -> None:
    """A credit memo for an order settles that order's one open invoice; otherwise it stays
    unapplied credit (it still reduces the customer's balance and aging)."""
    if credit.order_id is None:
        return
    candidates = await repo.open_invoices_of_customer(credit.customer_id, credit.currency, order_id=credit.order_id)
    if len(candidates) == 1:
        target = await repo.invoice(candidates[0].id, for_update=True)
        assert target is not None
        await _apply_credit(uow, repo, credit, target, None, automatic=True)


async def on_billing_document(uow: UnitOfWork, event: Event, *,
                              terms_days: int = DEFAULT_PAYMENT_TERMS_DAYS) -> None:
    """An SAP billing document becomes an invoice or credit note, upserted by its SAP number: a
    repeat changes nothing, a cancellation cancels it (releasing what was allocated to it)."""
    m = event.message(sap_events.BillingDocumentChanged)
    number = m.billing_document.strip()
    customer_id = _uuid(m.customer_id)
    repo = Repository(uow.session)
    order_id = _uuid(m.order_id)
    order = await repo.order(order_id) if order_id else None
    if customer_id is None and order is not None:
        customer_id = order.customer_id
    if not number or customer_id is None:
        log.warning("billing document without number or customer ignored", extra={"billing_document": number})
        return
    await repo.lock_customer(customer_id)
    existing = await repo.invoice_by_sap(number)
    if existing is not None:
        if m.cancelled and existing.status != InvoiceStatus.CANCELLED.value:
            await _cancel(uow, repo, existing)
        return
    if m.cancelled:
        return  # cancelled before we ever saw it: nothing is owed
    kind = "credit_note" if m.credit or m.document_type.upper() in CREDIT_DOCUMENT_TYPES else "invoice"
    currency = parse_currency(m.total.currency or m.net_amount.currency or "CNY")
    net, tax = cents(abs(_dec(m.net_amount))), cents(abs(_dec(m.tax_amount)))
    total = cents(abs(_dec(m.total))) if m.total.amount else net + tax
    issued = dt.date.fromisoformat(m.billing_date) if m.billing_date else today()
    owner = await _ownership(repo, customer_id, order.contract_id if order else None)
    row = await repo.add_invoice(
        id=new_id(), invoice_number=number, kind=kind, source="sap", sap_billing_document=number,
        customer_id=customer_id, contract_id=owner.contract_id, order_id=order_id, currency=currency,
        net_amount=net, tax_amount=tax, total=total, allocated=ZERO, issued_on=issued,
        due_on=due_date(issued, terms_days), status=InvoiceStatus.SETTLED.value if total == 0 else "open",
        note=f"SAP {m.document_type}".strip(), created_by=event.actor or "sap", **owner.values())
    uow.emit(_issued_event(row), subject_id=str(row.id))
    if kind == "credit_note" and total > 0:
        await _auto_apply_credit(uow, repo, row)


async def _cancel(uow: UnitOfWork, repo: Repository, invoice: Row[Any]) -> None:
    for a in await repo.allocations_touching(invoice.id):
        await repo.release_allocation(a.id)
        if a.source_kind == "payment":
            payment = await repo.payment(a.source_id, for_update=True)
            assert payment is not None
            await repo.save_payment(payment.id, allocated_invoices=Decimal(payment.allocated_invoices) - a.amount)
        other_id = a.target_id if a.source_id == invoice.id else a.source_id
        if a.source_kind == "credit_note" and other_id != invoice.id:
            other = await repo.invoice(other_id, for_update=True)
            assert other is not None
            await _move_invoice(repo, other, -Decimal(a.amount))
    cancelled = await repo.save_invoice(invoice.id, status=InvoiceStatus.CANCELLED.value, allocated=ZERO,
                                        cancelled_on=today())
    uow.emit(ev.InvoiceCancelled(invoice_id=str(cancelled.id), invoice_number=cancelled.invoice_number,
                                 customer_id=str(cancelled.customer_id),
                                 sap_billing_document=cancelled.sap_billing_document or ""),
             subject_id=str(cancelled.id))


@dataclass(frozen=True)
class NewInvoice:
    customer_id: uuid.UUID
    contract_id: uuid.UUID | None
    order_id: uuid.UUID | None
    kind: str
    currency: str
    issued_on: dt.date | None
    payment_terms_days: int
    lines: list[InvoiceLineInput]
    note: str = ""
    applies_to_invoice_id: uuid.UUID | None = None


async def create_invoice(uow: UnitOfWork, principal: Principal, new: NewInvoice, *, references: References,
                         default_terms_days: int = DEFAULT_PAYMENT_TERMS_DAYS) -> Row[Any]:
    kind = new.kind or "invoice"
    if kind not in ("invoice", "credit_note"):
        raise InvalidArgument.of("kind", "must be invoice or credit_note")
    if not new.lines:
        raise InvalidArgument.of("lines", "at least one line is required")
    if len(new.lines) > 500:
        raise InvalidArgument.of("lines", "at most 500 lines")
    if new.applies_to_invoice_id is not None and kind != "credit_note":
        raise InvalidArgument.of("applies_to_invoice_id", "only a credit note applies to an invoice")
    currency = parse_currency(new.currency or "CNY")
    repo = Repository(uow.session)
    named = await _check_references(repo, principal, references, new.customer_id, new.contract_id, new.order_id)
    owner = named.owner
    await repo.lock_customer(new.customer_id)
    priced = [price_line(li) for li in new.lines]
    sums = totals(priced)
    issued = new.issued_on or today()
    prefix = "CN" if kind == "credit_note" else "INV"
    row = await repo.add_invoice(
        id=new_id(), invoice_number=await repo.next_number(prefix, issued.year), kind=kind, source="crm",
        customer_id=new.customer_id, contract_id=owner.contract_id, order_id=new.order_id, currency=currency,
        net_amount=sums.net, tax_amount=sums.tax, total=sums.gross, allocated=ZERO, issued_on=issued,
        due_on=due_date(issued, new.payment_terms_days or default_terms_days),
        status=InvoiceStatus.SETTLED.value if sums.gross == 0 else InvoiceStatus.OPEN.value,
        lines=[{"description": li.description, "quantity": str(li.quantity), "unit_price": str(li.unit_price),
                "tax_rate_percent": str(li.tax_rate_percent), "net_amount": f"{li.net_amount:.2f}",
                "tax_amount": f"{li.tax_amount:.2f}", "gross_amount": f"{li.gross_amount:.2f}"} for li in priced],
        note=new.note.strip()[:2000], created_by=principal.subject, **owner.values())
    uow.emit(_issued_event(row), subject_id=str(row.id))
    if new.applies_to_invoice_id is not None and sums.gross > 0:
        target = await repo.invoice(new.applies_to_invoice_id, principal, for_update=True)
        if target is None or target.customer_id != new.customer_id or target.kind != "invoice":
            raise NotFound(f"invoice {new.applies_to_invoice_id} of this customer not found",
                           metadata={"invoice_id": str(new.applies_to_invoice_id)})
        await _apply_credit(uow, repo, row, target, None, automatic=False)
    saved = await repo.invoice(row.id)
    await uow.commit()
    assert saved is not None
    return saved


async def get_invoice(uow: UnitOfWork, principal: Principal, invoice_id: uuid.UUID) -> tuple[Row[Any], list[Row[Any]]]:
    repo = Repository(uow.session)
    row = await repo.invoice(invoice_id, principal)
    if row is None:
        raise NotFound(f"invoice {invoice_id} not found", metadata={"invoice_id": str(invoice_id)})
    allocations = [*await repo.allocations_of(target_id=row.id), *await repo.allocations_of(source_id=row.id)]
    return row, allocations


async def list_invoices(uow: UnitOfWork, principal: Principal, *, page_token: str, limit: int,
                        customer_id: uuid.UUID | None = None, contract_id: uuid.UUID | None = None,
                        status: str = "", kind: str = "", overdue_only: bool = False,
                        order_id: uuid.UUID | None = None) -> tuple[list[Row[Any]], str]:
    size = page_size(limit)
    cursor = decode_cursor(page_token, LIST_SORT, (time_text, uuid_text))
    rows = await Repository(uow.session).list_invoices(
        principal, after=cursor.values if cursor else None, limit=size + 1, customer_id=customer_id,
        contract_id=contract_id, status=status, kind=kind, overdue_on=today() if overdue_only else None,
        order_id=order_id)
    return _page(rows, size)


# Payments (R-BIL-02) ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewPayment:
    customer_id: uuid.UUID
    contract_id: uuid.UUID | None
    amount: str
    currency: str
    received_on: dt.date | None
    reference: str = ""
    note: str = ""


async def _allocate(uow: UnitOfWork, repo: Repository, payment: Row[Any], track: Track, target_id: uuid.UUID,
                    requested: Decimal | None, *, automatic: bool) -> tuple[Row[Any], Row[Any]]:
    """Applies part of a payment to one item, every rule checked against locked rows."""
    if track is Track.INVOICE:
        target = await repo.invoice(target_id, for_update=True)
        if target is None or target.customer_id != payment.customer_id or target.kind != "invoice":
            raise NotFound(f"invoice {target_id} of this customer not found", metadata={"target_id": str(target_id)})
        item_open = (Decimal(target.total) - Decimal(target.allocated)
                     if target.status == InvoiceStatus.OPEN.value else ZERO)
        done = Decimal(payment.allocated_invoices)
    else:
        target = await repo.instalment(target_id, for_update=True)
        if target is None or target.customer_id != payment.customer_id:
            raise NotFound(f"instalment {target_id} of this customer not found",
                           metadata={"target_id": str(target_id)})
        item_open = outstanding_of(target) if target.state != InstalmentState.VOID.value else ZERO
        done = Decimal(payment.allocated_instalments)
    amount = rules.allowed_amount(source_unallocated=Decimal(payment.amount) - done, item_open=item_open,
                                  source_currency=payment.currency, item_currency=target.currency,
                                  requested=requested)
    allocation = await repo.add_allocation(
        id=new_id(), source_kind="payment", source_id=payment.id, target_kind=track.value, target_id=target.id,
        amount=amount, currency=payment.currency, automatic=automatic, created_by=uow.actor)
    if track is Track.INVOICE:
        await _move_invoice(repo, target, amount)
        payment = await repo.save_payment(payment.id, allocated_invoices=done + amount)
    else:
        await _set_instalment(uow, repo, target, received=Decimal(target.received) + amount)
        payment = await repo.save_payment(payment.id, allocated_instalments=done + amount)
    uow.emit(ev.PaymentAllocated(
        payment_id=str(payment.id), allocation_id=str(allocation.id), target_kind=track.value,
        target_id=str(target.id), amount=money(amount, payment.currency),
        unallocated=money(Decimal(payment.amount) - (done + amount), payment.currency),
        customer_id=str(payment.customer_id), automatic=automatic), subject_id=str(payment.id))
    return payment, allocation


async def _auto_allocate(uow: UnitOfWork, repo: Repository, payment: Row[Any]) -> Row[Any]:
    """Automatic allocation on each track when the reference or the amount names exactly one open
    item; anything else waits for a person."""
    amount = Decimal(payment.amount)
    open_invoices = await repo.open_invoices_of_customer(payment.customer_id, payment.currency)
    if payment.contract_id is not None:
        open_invoices = [r for r in open_invoices if r.contract_id in (None, payment.contract_id)]
    invoice = rules.auto_match(amount=amount, currency=payment.currency, reference=payment.reference, items=[
        OpenItem(str(r.id), Track.INVOICE, r.currency, Decimal(r.total) - Decimal(r.allocated),
                 tuple(x for x in (r.invoice_number, r.sap_billing_document, r.order_number) if x), r.due_on)
        for r in open_invoices])
    if invoice is not None:
        payment, _ = await _allocate(uow, repo, payment, Track.INVOICE, uuid.UUID(invoice.id), None, automatic=True)
    open_plan = await repo.open_instalments_of_customer(payment.customer_id, payment.contract_id, payment.currency)
    instalment = rules.auto_match(amount=amount, currency=payment.currency, reference=payment.reference, items=[
        OpenItem(str(r.id), Track.INSTALMENT, r.currency, outstanding_of(r),
                 # the contract number names a plan, not one of its instalments: only a lone one
                 (r.contract_number,) if sum(1 for x in open_plan if x.contract_id == r.contract_id) == 1 else (),
                 r.due_date)
        for r in open_plan])
    if instalment is not None:
        payment, _ = await _allocate(uow, repo, payment, Track.INSTALMENT, uuid.UUID(instalment.id), None,
                                     automatic=True)
    return payment


def _received_event(p: Row[Any], contract_ids: list[str]) -> ev.PaymentReceived:
    return ev.PaymentReceived(
        payment_id=str(p.id), customer_id=str(p.customer_id), amount=money(p.amount, p.currency),
        received_on=iso(p.received_on), reference=p.reference, allocated=money(p.allocated_invoices, p.currency),
        unallocated=money(Decimal(p.amount) - Decimal(p.allocated_invoices), p.currency),
        contract_ids=contract_ids, owner_id=p.owner_id)


async def record_payment(uow: UnitOfWork, principal: Principal, new: NewPayment, *,
                         references: References) -> tuple[Row[Any], list[Row[Any]]]:
    amount = parse_money_amount(new.amount, "amount.amount")
    currency = parse_currency(new.currency or "CNY", "amount.currency")
    reference = new.reference.strip()
    if len(reference) > 200:
        raise InvalidArgument.of("reference", "must be at most 200 characters")
    repo = Repository(uow.session)
    owner = (await _check_references(repo, principal, references, new.customer_id, new.contract_id)).owner
    await repo.lock_customer(new.customer_id)
    payment = await repo.add_payment(
        id=new_id(), customer_id=new.customer_id, contract_id=owner.contract_id, amount=amount, currency=currency,
        received_on=new.received_on or today(), reference=reference, note=new.note.strip()[:2000],
        created_by=principal.subject, **owner.values())
    payment = await _auto_allocate(uow, repo, payment)
    allocations = await repo.allocations_of(source_id=payment.id)
    contract_ids = sorted({str(payment.contract_id)} if payment.contract_id else set())
    uow.emit(_received_event(payment, contract_ids), subject_id=str(payment.id))
    await uow.commit()
    return payment, allocations


async def allocate_payment(uow: UnitOfWork, principal: Principal, payment_id: uuid.UUID, target_kind: str,
                           target_id: uuid.UUID, amount: str) -> tuple[Row[Any], Row[Any], list[Row[Any]]]:
    try:
        track = Track(target_kind)
    except ValueError:
        raise InvalidArgument.of("target_kind", "must be invoice or instalment") from None
    requested = parse_money_amount(amount, "amount") if amount.strip() else None
    repo = Repository(uow.session)
    payment = await repo.payment(payment_id, principal)
    if payment is None:
        raise NotFound(f"payment {payment_id} not found", metadata={"payment_id": str(payment_id)})
    # Every write to a customer's ledger takes the customer's lock first, then rows: no deadlocks
    # between an allocation and, say, a cancellation of the same invoice.
    await repo.lock_customer(payment.customer_id)
    payment = await repo.payment(payment_id, principal, for_update=True)
    assert payment is not None
    if not await repo.target_visible(principal, track.value, target_id):
        raise NotFound(f"{track.value} {target_id} of this customer not found", metadata={"target_id": str(target_id)})
    payment, allocation = await _allocate(uow, repo, payment, track, target_id, requested, automatic=False)
    allocations = await repo.allocations_of(source_id=payment.id)
    await uow.commit()
    return payment, allocation, allocations


async def get_payment(uow: UnitOfWork, principal: Principal, payment_id: uuid.UUID) -> tuple[Row[Any], list[Row[Any]]]:
    repo = Repository(uow.session)
    row = await repo.payment(payment_id, principal)
    if row is None:
        raise NotFound(f"payment {payment_id} not found", metadata={"payment_id": str(payment_id)})
    return row, await repo.allocations_of(source_id=row.id)


async def list_payments(uow: UnitOfWork, principal: Principal, *, page_token: str, limit: int,
                        customer_id: uuid.UUID | None = None, contract_id: uuid.UUID | None = None,
                        unallocated_only: bool = False) -> tuple[list[Row[Any]], str]:
    size = page_size(limit)
    cursor = decode_cursor(page_token, LIST_SORT, (time_text, uuid_text))
    rows = await Repository(uow.session).list_payments(
        principal, after=cursor.values if cursor else None, limit=size + 1, customer_id=customer_id,
        contract_id=contract_id, unallocated_only=unallocated_only)
    return _page(rows, size)


async def list_instalments(uow: UnitOfWork, principal: Principal, contract_id: uuid.UUID) -> list[Row[Any]]:
    repo = Repository(uow.session)
    if await repo.visible_contract(principal, contract_id) is None:
        raise NotFound(f"contract {contract_id} not found", metadata={"contract_id": str(contract_id)})
    return await repo.instalments_of(contract_id)


# Statements (R-BIL-03) ----------------------------------------------------------------------------------


def _line_rows(statement_id: uuid.UUID, composition: st.Composition) -> list[dict[str, Any]]:
    return [{"id": new_id(), "statement_id": statement_id, "position": i, "kind": li.kind.value,
             "document_id": uuid.UUID(li.document_id), "document_number": li.document_number,
             "document_date": li.document_date, "description": li.description, "amount": li.amount}
            for i, li in enumerate(composition.lines, start=1)]


def _balances(c: st.Composition) -> dict[str, Any]:
    return {"opening_balance": c.opening, "invoices": c.invoices, "payments": c.payments,
            "adjustments": c.adjustments, "closing_balance": c.closing}


async def _compose(repo: Repository, customer_id: uuid.UUID, currency: str, start: dt.date, end: dt.date,
                   exclude: uuid.UUID | None) -> st.Composition:
    previous = await repo.last_statement(customer_id, currency, exclude=exclude)
    if previous is not None and previous.period_end >= start:
        raise Conflict(f"statement {previous.statement_number} already covers up to {previous.period_end}; "
                       "a new one starts after it", reason="STATEMENT_PERIOD_OVERLAP",
                       metadata={"statement_id": str(previous.id), "period_end": iso(previous.period_end)})
    return st.compose(await repo.ledger(customer_id, currency), currency=currency, period_start=start,
                      period_end=end, previous_closing=Decimal(previous.closing_balance) if previous else None)


async def _statement(repo: Repository, principal: Principal, statement_id: uuid.UUID, *,
                     for_update: bool = False) -> Row[Any]:
    row = await repo.statement(statement_id, principal, for_update=for_update)
    if row is None:
        raise NotFound(f"statement {statement_id} not found", metadata={"statement_id": str(statement_id)})
    return row


def _check_version(row: Row[Any], expected: int) -> None:
    if expected and expected != row.version:
        raise StaleVersion(f"the statement is at version {row.version}, not {expected}",
                           metadata={"version": str(row.version)})


async def create_statement(uow: UnitOfWork, principal: Principal, customer_id: uuid.UUID,
                           period_start: dt.date | None, period_end: dt.date | None,
                           currency: str, *, references: References) -> tuple[Row[Any], list[Row[Any]]]:
    start, end = st.check_period(period_start, period_end)
    currency = parse_currency(currency or "CNY")
    repo = Repository(uow.session)
    # The customer's name as its owner has it now; an issued statement keeps it (never rewritten).
    named = await _check_references(repo, principal, references, customer_id, None)
    await repo.lock_customer(customer_id)
    composition = await _compose(repo, customer_id, currency, start, end, None)
    statement_id = new_id()
    number = await repo.next_number("ST", end.year, statement=True)
    await repo.add_statement(
        id=statement_id, statement_number=number, customer_id=customer_id, customer_name=named.customer.name,
        currency=currency, period_start=start, period_end=end, status=st.StatementStatus.DRAFT.value,
        created_by=principal.subject, **named.owner.values(), **_balances(composition))
    await repo.replace_lines(statement_id, _line_rows(statement_id, composition))
    uow.emit(ev.StatementDrafted(statement_id=str(statement_id), statement_number=number,
                                 customer_id=str(customer_id), period_start=iso(start), period_end=iso(end),
                                 closing_balance=money(composition.closing, currency)),
             subject_id=str(statement_id))
    row = await _statement(repo, principal, statement_id)
    lines = await repo.lines_of(statement_id)
    await uow.commit()
    return row, lines


async def get_statement(uow: UnitOfWork, principal: Principal,
                        statement_id: uuid.UUID) -> tuple[Row[Any], list[Row[Any]]]:
    repo = Repository(uow.session)
    row = await _statement(repo, principal, statement_id)
    return row, await repo.lines_of(row.id)


async def list_statements(uow: UnitOfWork, principal: Principal, *, page_token: str, limit: int,
                          customer_id: uuid.UUID | None = None, status: str = "") -> tuple[list[Row[Any]], str]:
    size = page_size(limit)
    cursor = decode_cursor(page_token, LIST_SORT, (time_text, uuid_text))
    rows = await Repository(uow.session).list_statements(
        principal, after=cursor.values if cursor else None, limit=size + 1, customer_id=customer_id, status=status)
    return _page(rows, size)


async def issue_statement(uow: UnitOfWork, principal: Principal, statement_id: uuid.UUID,
                          expected_version: int) -> tuple[Row[Any], list[Row[Any]]]:
    """The draft's lines are recomputed from the ledger as it is now, then frozen: the documents
    on it are stated, and nothing changes it afterwards."""
    repo = Repository(uow.session)
    row = await _statement(repo, principal, statement_id)
    await repo.lock_customer(row.customer_id)
    row = await _statement(repo, principal, statement_id, for_update=True)
    _check_version(row, expected_version)
    st.check_transition(st.StatementStatus(row.status), "issue")
    composition = await _compose(repo, row.customer_id, row.currency, row.period_start, row.period_end, row.id)
    await repo.replace_lines(row.id, _line_rows(row.id, composition))
    stated = [uuid.UUID(li.document_id) for li in composition.lines if li.kind is not st.LineKind.REVERSAL]
    stated += [uuid.UUID(d) for d in composition.opening_document_ids]
    cancellations = [uuid.UUID(li.document_id) for li in composition.lines if li.kind is st.LineKind.REVERSAL]
    await repo.mark_stated(row.id, stated, cancellations)
    await repo.save_statement(row.id, status=st.StatementStatus.ISSUED.value, issued_at=_now(),
                              **_balances(composition))
    saved = await _statement(repo, principal, row.id)
    uow.emit(ev.StatementIssued(statement_id=str(saved.id), statement_number=saved.statement_number,
                                customer_id=str(saved.customer_id), period_start=iso(saved.period_start),
                                period_end=iso(saved.period_end),
                                closing_balance=money(saved.closing_balance, saved.currency)),
             subject_id=str(saved.id))
    lines = await repo.lines_of(saved.id)
    await uow.commit()
    return saved, lines


async def confirm_statement(uow: UnitOfWork, principal: Principal, statement_id: uuid.UUID,
                            expected_version: int) -> tuple[Row[Any], list[Row[Any]]]:
    repo = Repository(uow.session)
    row = await _statement(repo, principal, statement_id, for_update=True)
    _check_version(row, expected_version)
    target = st.check_transition(st.StatementStatus(row.status), "confirm")
    await repo.save_statement(row.id, status=target.value, responded_at=_now())
    uow.emit(ev.StatementConfirmed(statement_id=str(row.id), statement_number=row.statement_number,
                                   customer_id=str(row.customer_id)), subject_id=str(row.id))
    saved = await _statement(repo, principal, row.id)
    lines = await repo.lines_of(row.id)
    await uow.commit()
    return saved, lines


async def dispute_statement(uow: UnitOfWork, principal: Principal, statement_id: uuid.UUID,
                            disputes: list[tuple[str, str]], expected_version: int) -> tuple[Row[Any], list[Row[Any]]]:
    if not disputes:
        raise InvalidArgument.of("lines", "name at least one disputed line")
    repo = Repository(uow.session)
    row = await _statement(repo, principal, statement_id, for_update=True)
    _check_version(row, expected_version)
    target = st.check_transition(st.StatementStatus(row.status), "dispute")
    lines = {str(li.id): li for li in await repo.lines_of(row.id)}
    reasons: list[str] = []
    for i, (line_id, reason) in enumerate(disputes):
        reason = reason.strip()
        if line_id not in lines:
            raise InvalidArgument.of(f"lines[{i}].line_id", "is not a line of this statement")
        if not reason:
            raise InvalidArgument.of(f"lines[{i}].reason", "a reason is required for each disputed line")
        await repo.save_line(lines[line_id].id, disputed=True, dispute_reason=reason[:2000])
        reasons.append(reason[:2000])
    await repo.save_statement(row.id, status=target.value, responded_at=_now())
    uow.emit(ev.StatementDisputed(statement_id=str(row.id), statement_number=row.statement_number,
                                  customer_id=str(row.customer_id), disputed_lines=len(reasons), reasons=reasons),
             subject_id=str(row.id))
    saved = await _statement(repo, principal, row.id)
    out = await repo.lines_of(row.id)
    await uow.commit()
    return saved, out


async def resolve_dispute(uow: UnitOfWork, principal: Principal, statement_id: uuid.UUID, line_id: str,
                          resolution: str, expected_version: int) -> tuple[Row[Any], list[Row[Any]]]:
    """A disputed line's resolution (e.g. "credit note CN-… in the next statement"). The statement
    stays immutable: corrections are new documents that the next statement shows."""
    resolution = resolution.strip()
    if not resolution:
        raise InvalidArgument.of("resolution", "is required")
    repo = Repository(uow.session)
    row = await _statement(repo, principal, statement_id, for_update=True)
    _check_version(row, expected_version)
    st.check_transition(st.StatementStatus(row.status), "resolve")
    lines = {str(li.id): li for li in await repo.lines_of(row.id)}
    line = lines.get(line_id)
    if line is None or not line.disputed:
        raise InvalidArgument.of("line_id", "is not a disputed line of this statement")
    if line.resolution:
        raise Conflict("this line's dispute is already resolved", reason="DISPUTE_ALREADY_RESOLVED")
    await repo.save_line(line.id, resolution=resolution[:2000], resolved_by=principal.subject, resolved_at=_now())
    all_resolved = all(li.resolution for lid, li in lines.items() if li.disputed and lid != line_id)
    status = st.StatementStatus.RESOLVED if all_resolved else st.StatementStatus.DISPUTED
    await repo.save_statement(row.id, status=status.value)
    uow.emit(ev.StatementDisputeResolved(statement_id=str(row.id), statement_number=row.statement_number,
                                         customer_id=str(row.customer_id), line_id=line_id,
                                         resolution=resolution[:2000], all_resolved=all_resolved),
             subject_id=str(row.id))
    saved = await _statement(repo, principal, row.id)
    out = await repo.lines_of(row.id)
    await uow.commit()
    return saved, out


# Reports (R-BIL-04) ---------------------------------------------------------------------------------

GROUP_COLUMNS = {"customer": "customer_id", "owner": "owner_id", "team": "team_id"}


async def aging(uow: UnitOfWork, principal: Principal, group_by: str, as_of: dt.date | None,
                currency: str) -> tuple[dt.date, list[st.AgingRow], list[st.AgingRow]]:
    column = GROUP_COLUMNS.get(group_by or "customer")
    if column is None:
        raise InvalidArgument.of("group_by", "must be customer, owner or team")
    currency = parse_currency(currency) if currency else ""
    day = as_of or today()
    rows = await Repository(uow.session).aging_items(principal, column, currency)
    items = [st.AgingItem(str(r.key or ""), r.currency, Decimal(r.amount), r.due_on) for r in rows]
    ordered, sums = st.aging(items, day)
    if column == "customer_id":
        ids = [uuid.UUID(r.key) for r in ordered if _uuid(r.key)]
        names = await Repository(uow.session).customer_names(ids) if ids else {}
        for r in ordered:
            r.label = names.get(r.key, "")
    return day, ordered, sums


async def awaiting_payment(uow: UnitOfWork, principal: Principal, owner_id: str,
                           as_of: dt.date | None) -> list[Row[Any]]:
    return await Repository(uow.session).awaiting_payment(principal, owner_id.strip(), as_of or today())


# The daily overdue pass (R-BIL-04) ------------------------------------------------------------------------


async def overdue_pass(uow: UnitOfWork, on: dt.date | None = None) -> tuple[int, int]:
    """Publishes invoice.overdue once per overdue spell of an invoice (cleared when it is settled)
    and moves instalments past their due date to `overdue`. Idempotent: a second pass on the same
    day, or the next day, finds nothing new. Returns (invoices notified, instalments moved)."""
    day = on or today()
    repo = Repository(uow.session)
    invoices = await repo.invoices_becoming_overdue(day)
    for r in invoices:
        await repo.save_invoice(r.id, overdue_notified_on=day)
        uow.emit(ev.InvoiceOverdue(invoice_id=str(r.id), invoice_number=r.invoice_number,
                                   customer_id=str(r.customer_id), owner_id=r.owner_id,
                                   outstanding=money(Decimal(r.total) - Decimal(r.allocated), r.currency),
                                   due_on=iso(r.due_on), days_overdue=(day - r.due_on).days),
                 subject_id=str(r.id))
    instalments = await repo.instalments_becoming_overdue(day)
    for row in instalments:
        await _set_instalment(uow, repo, row, on=day)
    await uow.commit()
    return len(invoices), len(instalments)


def parse_amount_or_empty(value: str, field: str) -> Decimal | None:
    return parse_decimal(value, field, places=2) if value.strip() else None
