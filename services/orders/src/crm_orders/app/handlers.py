"""What the orders service does with other services' events.

- CRM_CONTRACTS: keeps the local, read-only copy of signed contracts orders are placed against.
- CRM_SAP: SAP's sales order confirms the order; its status and outbound deliveries move it on.
- CRM_BILLING: keeps the invoices and payments the order overview shows.
- CRM_CUSTOMERS: contract copies and orders follow their customer's owner, and a merge.

One subscription per stream, so the events of one producer are applied in the order it published
them (an amendment never overtakes the signature it amends). Handlers are idempotent: crmkit's
processed-event log drops redeliveries, and each handler also ignores what it already holds (an
older contract version, an SAP status the order is past, an unchanged delivery). An event about
something this service cannot know (malformed ids, an order of another system) is logged and
dropped: retrying it would never succeed.
"""

from __future__ import annotations

import logging
import uuid
from decimal import Decimal

from crm.billing.v1 import events_pb2 as billing_ev
from crm.contracts.v1 import events_pb2 as contracts_ev
from crm.customers.v1 import customers_pb2
from crm.customers.v1 import events_pb2 as customers_ev
from crm.orders.v1 import events_pb2 as ev
from crm.sap.v1 import events_pb2 as sap_ev
from crm_orders.adapters.repository import Repository
from crm_orders.app.messages import contract_lines, decimal_or, delivery_event, iso_date, snapshot
from crm_orders.app.use_cases import apply_delivery_status, emit_status_change
from crm_orders.domain import model
from crm_orders.domain.model import Contract, ContractState, Delivery, DeliveryLine, Order
from crmkit.auth.principal import SYSTEM
from crmkit.db import UnitOfWork
from crmkit.events.envelope import Event, subject_of
from crmkit.ids import new_id

log = logging.getLogger(__name__)

CONTRACT_SUBJECTS = [subject_of(m) for m in (contracts_ev.ContractSigned, contracts_ev.ContractAmended,
                                             contracts_ev.ContractTerminated)]
SAP_SUBJECTS = [subject_of(m) for m in (sap_ev.SalesOrderCreated, sap_ev.SalesOrderStatusChanged,
                                        sap_ev.OutboundDeliveryChanged)]
CUSTOMER_SUBJECTS = [subject_of(m) for m in (customers_ev.CustomerReassigned, customers_ev.CustomersMerged)]
BILLING_SUBJECTS = [subject_of(m) for m in (billing_ev.InvoiceIssued, billing_ev.PaymentReceived)]


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except (ValueError, TypeError, AttributeError):
        return None


# Contracts ----------------------------------------------------------------------------------------


async def on_contract_event(uow: UnitOfWork, event: Event) -> None:
    match event.type:
        case contracts_ev.ContractSigned.DESCRIPTOR.full_name:
            await _signed(uow, event.message(contracts_ev.ContractSigned), event)
        case contracts_ev.ContractAmended.DESCRIPTOR.full_name:
            await _amended(uow, event.message(contracts_ev.ContractAmended), event)
        case contracts_ev.ContractTerminated.DESCRIPTOR.full_name:
            await _terminated(uow, event.message(contracts_ev.ContractTerminated), event)


async def _signed(uow: UnitOfWork, signed: contracts_ev.ContractSigned, event: Event) -> None:
    contract_id, customer_id = _uuid(signed.contract_id), _uuid(signed.customer_id)
    extra = {"event_id": event.id, "contract_id": signed.contract_id}
    if contract_id is None or customer_id is None:
        log.warning("contract signed with a malformed id; ignored", extra=extra)
        return
    repo = Repository(uow.session)
    if await repo.contract(contract_id) is not None:
        log.info("contract copy already held; signature ignored", extra=extra)
        return
    await repo.put_contract(Contract(
        id=contract_id, number=signed.contract_number, customer_id=customer_id, customer_name=signed.customer_name,
        owner_id=signed.owner_id, team_ids=tuple(signed.team_ids), department_path=signed.department_path or "/",
        amount=decimal_or(signed.amount.amount), currency=signed.amount.currency or "CNY",
        start_date=iso_date(signed.start_date), end_date=iso_date(signed.end_date), state=ContractState.SIGNED,
        version=1, lines=contract_lines(signed.lines)))
    log.info("contract copied", extra=extra)


async def _amended(uow: UnitOfWork, amended: contracts_ev.ContractAmended, event: Event) -> None:
    extra = {"event_id": event.id, "contract_id": amended.contract_id, "version": amended.version}
    contract_id = _uuid(amended.contract_id)
    repo = Repository(uow.session)
    current = await repo.contract(contract_id, for_update=True) if contract_id else None
    if current is None:
        log.warning("amendment of a contract never signed here; ignored", extra=extra)
        return
    changed = model.amend(current, amended.version, decimal_or(amended.amount.amount), amended.amount.currency,
                          contract_lines(amended.lines))
    if changed is None:
        log.info("amendment not newer than the copy; ignored", extra=extra)
        return
    await repo.put_contract(changed)
    log.info("contract amended", extra=extra)


async def _terminated(uow: UnitOfWork, terminated: contracts_ev.ContractTerminated, event: Event) -> None:
    contract_id = _uuid(terminated.contract_id)
    if contract_id is None or not await Repository(uow.session).terminate_contract(contract_id, terminated.reason):
        log.warning("termination of a contract never signed here; ignored",
                    extra={"event_id": event.id, "contract_id": terminated.contract_id})


# SAP ------------------------------------------------------------------------------------------------


async def on_sap_event(uow: UnitOfWork, event: Event) -> None:
    match event.type:
        case sap_ev.SalesOrderCreated.DESCRIPTOR.full_name:
            await _sales_order_created(uow, event.message(sap_ev.SalesOrderCreated), event)
        case sap_ev.SalesOrderStatusChanged.DESCRIPTOR.full_name:
            await _sales_order_status(uow, event.message(sap_ev.SalesOrderStatusChanged), event)
        case sap_ev.OutboundDeliveryChanged.DESCRIPTOR.full_name:
            await _outbound_delivery(uow, event.message(sap_ev.OutboundDeliveryChanged), event)


async def _sap_order(repo: Repository, order_id: str, sales_order: str) -> Order | None:
    oid = _uuid(order_id)
    found = await repo.order(SYSTEM, oid, for_update=True) if oid else None
    if found is None and sales_order:
        found = await repo.order_by_sap_number(sales_order, for_update=True)
    return found


async def _sales_order_created(uow: UnitOfWork, created: sap_ev.SalesOrderCreated, event: Event) -> None:
    repo = Repository(uow.session)
    order = await _sap_order(repo, created.order_id, "")
    if order is None:
        log.warning("SAP sales order for an unknown order; ignored",
                    extra={"event_id": event.id, "order_id": created.order_id, "sales_order": created.sales_order})
        return
    changed = model.confirm_from_sap(order, created.sales_order, dict(created.item_numbers))
    if changed is None:
        return
    saved = await repo.save_order(changed)
    _announce_confirmation(uow, order, saved)


def _announce_confirmation(uow: UnitOfWork, before: Order, after: Order) -> None:
    """OrderConfirmed whenever SAP's sales-order number is newly known (an order confirmed by
    hand before gets its number too); the status move, if any, as usual. A cancelled order only
    keeps the number: it is not confirmed again."""
    emit_status_change(uow, before, after)
    if after.status is model.OrderStatus.CANCELLED:
        log.warning("SAP created a sales order for a cancelled order",
                    extra={"order_id": str(after.id), "sales_order": after.sap_sales_order})
        return
    if before.sap_sales_order != after.sap_sales_order:
        uow.emit(ev.OrderConfirmed(order=snapshot(after), sap_sales_order=after.sap_sales_order),
                 subject_id=str(after.id))


async def _sales_order_status(uow: UnitOfWork, changed: sap_ev.SalesOrderStatusChanged, event: Event) -> None:
    repo = Repository(uow.session)
    order = await _sap_order(repo, changed.order_id, changed.sales_order)
    if order is None:
        log.warning("SAP status of an unknown order; ignored",
                    extra={"event_id": event.id, "order_id": changed.order_id, "sales_order": changed.sales_order})
        return
    target = model.status_from_sap(changed.overall_status, changed.delivery_status)
    if not order.sap_sales_order and changed.sales_order:
        # The status overtook the creation report: SAP has the order, so it is confirmed.
        confirmed = model.confirm_from_sap(order, changed.sales_order, {})
        if confirmed is not None:
            saved = await repo.save_order(confirmed)
            _announce_confirmation(uow, order, saved)
            order = saved
    moved = model.advance(order, target) if target else None
    if moved is None:
        return
    emit_status_change(uow, order, await repo.save_order(moved))


def _sap_lines(order: Order, changed: sap_ev.OutboundDeliveryChanged, event: Event) -> tuple[DeliveryLine, ...]:
    """SAP's items as order lines: by the CRM line id SAP carries, else by the SAP item number.
    Items of one line (batch splits) add up."""
    by_id = {str(li.id): li for li in order.lines}
    by_item = {(li.sap_item or str(li.line_number * 10)).lstrip("0"): li for li in order.lines}
    out: dict[uuid.UUID, tuple[Decimal, str]] = {}
    for item in changed.items:
        line = by_id.get(item.order_line_id) or by_item.get(item.sales_order_item.lstrip("0"))
        if line is None:
            log.warning("SAP delivery item matches no order line; left out",
                        extra={"event_id": event.id, "delivery": changed.delivery_document,
                               "sales_order_item": item.sales_order_item})
            continue
        before, _ = out.get(line.id, (Decimal(0), ""))
        out[line.id] = (before + decimal_or(item.quantity), item.sales_order_item or line.sap_item)
    return tuple(DeliveryLine(order_line_id=k, quantity=q, sap_item=i) for k, (q, i) in out.items() if q > 0)


def _same(a: Delivery, b: Delivery) -> bool:
    def key(d: Delivery) -> object:
        return (d.status, d.shipped_on, d.carrier, d.tracking_number,
                sorted((li.order_line_id, li.quantity.normalize()) for li in d.lines))

    return key(a) == key(b)


async def _outbound_delivery(uow: UnitOfWork, changed: sap_ev.OutboundDeliveryChanged, event: Event) -> None:
    """An SAP outbound delivery: upserted by its number. Goods issued ("B"/"C") makes it a
    shipment; the order then becomes shipped, and delivered once every line is fully shipped."""
    extra = {"event_id": event.id, "delivery": changed.delivery_document, "order_id": changed.order_id}
    if not changed.delivery_document:
        log.warning("SAP delivery without a number; ignored", extra=extra)
        return
    repo = Repository(uow.session)
    order = await _sap_order(repo, changed.order_id, changed.sales_order)
    if order is None:
        log.warning("SAP delivery of an unknown order; ignored", extra=extra)
        return
    existing = await repo.delivery_by_sap_number(changed.delivery_document)
    status = model.sap_delivery_status(changed.goods_movement_status)
    incoming = Delivery(
        id=existing.id if existing else new_id(), order_id=order.id, source=model.DeliverySource.SAP, status=status,
        lines=_sap_lines(order, changed, event), sap_delivery=changed.delivery_document,
        shipped_on=iso_date(changed.goods_movement_date) if status is model.DeliveryStatus.SHIPPED else None,
        carrier=changed.carrier, tracking_number=changed.tracking_number, created_by="sap")
    if existing is not None and _same(existing, incoming):
        return
    saved = await repo.put_delivery(incoming, replace_existing=existing is not None)
    uow.emit(delivery_event(saved), subject_id=str(saved.id))
    await apply_delivery_status(uow, repo, order)


# Customers ----------------------------------------------------------------------------------------


async def on_customer_event(uow: UnitOfWork, event: Event) -> None:
    """Ownership follows the customer (docs/architecture.md): after a reassignment every contract
    copy and order of the customer, open or closed, is in the new owner's scope; after a merge the
    merged customer's are the survivor's and follow its owner. Credit for closed work stays with
    whoever earned it: the events of that moment (order.submitted, contract.signed) carry it."""
    match event.type:
        case customers_ev.CustomerReassigned.DESCRIPTOR.full_name:
            reassigned = event.message(customers_ev.CustomerReassigned)
            await _follow(uow, reassigned.customer, event)
        case customers_ev.CustomersMerged.DESCRIPTOR.full_name:
            merged = event.message(customers_ev.CustomersMerged)
            merged_id, surviving_id = _uuid(merged.merged_id), _uuid(merged.surviving_id)
            if merged_id is None or surviving_id is None:
                log.warning("merge with a malformed id; ignored", extra={"event_id": event.id})
                return
            await Repository(uow.session).repoint_customer(merged_id, surviving_id, merged.surviving.name)
            await _follow(uow, merged.surviving, event)


async def _follow(uow: UnitOfWork, customer: customers_pb2.Customer, event: Event) -> None:
    customer_id = _uuid(customer.id)
    if customer_id is None or not customer.owner_id:
        log.warning("customer without id or owner; ignored", extra={"event_id": event.id})
        return
    moved = await Repository(uow.session).follow_customer(
        customer_id, owner_id=customer.owner_id, team_ids=(customer.team_id,) if customer.team_id else (),
        department_path=customer.department_path or "/")
    log.info("orders follow their customer", extra={"event_id": event.id, "customer_id": customer.id,
                                                    "owner_id": customer.owner_id, "orders": moved})


# Billing --------------------------------------------------------------------------------------------


async def on_billing_event(uow: UnitOfWork, event: Event) -> None:
    repo = Repository(uow.session)
    match event.type:
        case billing_ev.InvoiceIssued.DESCRIPTOR.full_name:
            inv = event.message(billing_ev.InvoiceIssued)
            invoice_id = _uuid(inv.invoice_id)
            if invoice_id is None:
                log.warning("invoice with a malformed id; ignored", extra={"event_id": event.id})
                return
            await repo.put_invoice({
                "id": invoice_id, "number": inv.invoice_number, "kind": inv.kind or "invoice",
                "customer_id": _uuid(inv.customer_id), "contract_id": _uuid(inv.contract_id),
                "order_id": _uuid(inv.order_id), "currency": inv.total.currency or "CNY",
                "net_amount": decimal_or(inv.net_amount.amount), "tax_amount": decimal_or(inv.tax_amount.amount),
                "total": decimal_or(inv.total.amount), "issued_on": iso_date(inv.issued_on),
                "due_on": iso_date(inv.due_on),
                "sap_billing_document": inv.sap_billing_document})
        case billing_ev.PaymentReceived.DESCRIPTOR.full_name:
            pay = event.message(billing_ev.PaymentReceived)
            payment_id = _uuid(pay.payment_id)
            if payment_id is None:
                log.warning("payment with a malformed id; ignored", extra={"event_id": event.id})
                return
            await repo.put_payment({
                "id": payment_id, "customer_id": _uuid(pay.customer_id), "currency": pay.amount.currency or "CNY",
                "amount": decimal_or(pay.amount.amount), "allocated": decimal_or(pay.allocated.amount),
                "unallocated": decimal_or(pay.unallocated.amount), "received_on": iso_date(pay.received_on),
                "reference": pay.reference,
                "contract_ids": [c for c in (_uuid(x) for x in pay.contract_ids) if c is not None]})
