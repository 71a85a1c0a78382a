"""Event handlers: what the CRM did, queued for SAP. They only write to this service's database
(the copy and a change row), so a CRM user is never held up by SAP (R-SAP-02)."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert

from crm.customers.v1 import customers_pb2, events_pb2
from crm.orders.v1 import events_pb2 as order_events
from crm_sap.adapters.tables import changes, customers, orders, sync_records
from crm_sap.domain.model import Kind, Operation, SyncState
from crmkit.db import UnitOfWork
from crmkit.events.envelope import Event

ADDRESS_PREFERENCE = (customers_pb2.ADDRESS_KIND_REGISTERED, customers_pb2.ADDRESS_KIND_BILLING,
                      customers_pb2.ADDRESS_KIND_OFFICE, customers_pb2.ADDRESS_KIND_SHIPPING,
                      customers_pb2.ADDRESS_KIND_UNSPECIFIED)


def customer_data(c: customers_pb2.Customer) -> dict[str, Any]:
    address = None
    for kind in ADDRESS_PREFERENCE:
        address = next((a for a in c.addresses if a.kind == kind), None)
        if address is not None:
            break
    return {"name": c.name, "country": address.country if address else "", "region": address.province if address
            else "", "city": address.city if address else "", "postal_code": address.postal_code if address else "",
            "street": address.line if address else ""}


async def enqueue(uow: UnitOfWork, kind: Kind, crm_id: uuid.UUID, operation: Operation, event_id: str, *,
                  customer_id: uuid.UUID | None = None) -> None:
    await uow.session.execute(changes.insert().values(kind=kind, crm_id=crm_id, operation=operation,
                                                      event_id=event_id))
    await uow.session.execute(
        insert(sync_records).values(kind=kind, crm_id=crm_id, state=SyncState.PENDING, customer_id=customer_id)
        .on_conflict_do_update(index_elements=["kind", "crm_id"], set_={
            "state": SyncState.PENDING, "updated_at": func.now()}, where=sync_records.c.state == SyncState.SYNCED))


async def _keep_customer(uow: UnitOfWork, c: customers_pb2.Customer) -> bool:
    """Stores the newest copy; False when the event is older than what we have (redelivered late)."""
    customer_id = uuid.UUID(c.id)
    current = (await uow.session.execute(
        select(customers.c.version).where(customers.c.customer_id == customer_id))).scalar_one_or_none()
    if current is not None and current >= c.version and c.version:
        return False
    await uow.session.execute(
        insert(customers).values(customer_id=customer_id, data=customer_data(c), version=c.version)
        .on_conflict_do_update(index_elements=["customer_id"], set_={
            "data": customer_data(c), "version": c.version, "updated_at": func.now()}))
    return True


async def on_customer_created(uow: UnitOfWork, event: Event) -> None:
    c = event.message(events_pb2.CustomerCreated).customer
    if await _keep_customer(uow, c):
        await enqueue(uow, Kind.BUSINESS_PARTNER, uuid.UUID(c.id), Operation.UPSERT, event.id)


async def on_customer_updated(uow: UnitOfWork, event: Event) -> None:
    msg = event.message(events_pb2.CustomerUpdated)
    before, after = customer_data(msg.before), customer_data(msg.after)
    if not await _keep_customer(uow, msg.after):
        return
    if before != after:  # only what SAP holds: name and address
        await enqueue(uow, Kind.BUSINESS_PARTNER, uuid.UUID(msg.after.id), Operation.UPSERT, event.id)


def order_data(o: order_events.OrderSnapshot) -> dict[str, Any]:
    return {
        "order_number": o.order_number, "customer_id": o.customer_id,
        "currency": o.amount.currency or (o.lines[0].unit_price.currency if o.lines else "CNY"),
        "requested_delivery_date": o.requested_delivery_date, "customer_reference": o.customer_reference,
        "lines": [{"line_id": li.line_id, "line_number": li.line_number, "product": li.product,
                   "description": (li.specification or li.product), "quantity": str(Decimal(li.quantity or "0")),
                   "unit": li.unit, "unit_price": str(Decimal(li.unit_price.amount or "0"))} for li in o.lines],
    }


async def on_order_submitted(uow: UnitOfWork, event: Event) -> None:
    o = event.message(order_events.OrderSubmitted).order
    order_id, customer_id = uuid.UUID(o.order_id), uuid.UUID(o.customer_id)
    await uow.session.execute(
        insert(orders).values(order_id=order_id, customer_id=customer_id, data=order_data(o))
        .on_conflict_do_update(index_elements=["order_id"], set_={"data": order_data(o), "customer_id": customer_id}))
    await enqueue(uow, Kind.SALES_ORDER, order_id, Operation.UPSERT, event.id, customer_id=customer_id)


async def on_order_cancelled(uow: UnitOfWork, event: Event) -> None:
    o = event.message(order_events.OrderCancelled).order
    order_id = uuid.UUID(o.order_id)
    known = (await uow.session.execute(select(orders.c.order_id).where(orders.c.order_id == order_id))).first()
    if known is None:
        return  # never submitted: nothing in SAP to cancel
    await enqueue(uow, Kind.SALES_ORDER, order_id, Operation.CANCEL, event.id, customer_id=uuid.UUID(o.customer_id))
