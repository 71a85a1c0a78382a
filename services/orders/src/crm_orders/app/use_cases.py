"""Commands and queries of orders and deliveries. Each takes a unit of work and the calling
principal, applies the domain rules, and emits the integration events of what it changed."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from crm.orders.v1 import events_pb2 as ev
from crm_orders.adapters.repository import InvoiceRow, PaymentRow, Repository
from crm_orders.app.messages import delivery_event, snapshot
from crm_orders.app.references import References
from crm_orders.domain import model
from crm_orders.domain.model import Delivery, DeliveryLine, DeliverySource, DeliveryStatus, Order, OrderStatus
from crmkit.auth import Principal
from crmkit.db import UnitOfWork
from crmkit.errors import InvalidArgument, NotFound
from crmkit.ids import new_id
from crmkit.money import bounded_total
from crmkit.pagination import decode_cursor, encode_cursor, page_size, time_text, uuid_text

LIST_SORT = "-create_time"
OVERVIEW_DEFAULT = 50
OVERVIEW_MAX = 200


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _today() -> dt.date:
    return _now().date()


@dataclass(frozen=True)
class OrderView:
    """An order and what goods-issued deliveries carried of each of its lines."""

    order: Order
    delivered: dict[uuid.UUID, Decimal] = field(default_factory=dict)


async def _order(repo: Repository, principal: Principal, order_id: uuid.UUID, *, for_update: bool = False) -> Order:
    found = await repo.order(principal, order_id, for_update=for_update)
    if found is None:
        raise NotFound(f"order {order_id} not found", metadata={"order_id": str(order_id)})
    return found


async def _view(repo: Repository, order: Order) -> OrderView:
    return OrderView(order, model.shipped_quantities(await repo.deliveries_of([order.id])))


def emit_status_change(uow: UnitOfWork, before: Order, after: Order) -> None:
    """Every move of an order's status is an OrderStatusChanged; confirmation and cancellation
    are also announced by their own events (what the SAP integration and billing react to)."""
    if before.status is after.status:
        return
    uow.emit(ev.OrderStatusChanged(order=snapshot(after), from_status=before.status.value,
                                   to_status=after.status.value), subject_id=str(after.id))


# Orders -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewOrder:
    contract_id: uuid.UUID
    lines: list[model.RequestedLine]
    requested_delivery_date: dt.date | None
    customer_reference: str = ""
    note: str = ""


async def create_order(uow: UnitOfWork, principal: Principal, new: NewOrder, references: References) -> OrderView:
    """R-ORD-01: an order against a signed, live contract. The contract row is locked while the
    cap is checked and the order written, so concurrent orders of one contract are placed one at
    a time and can never together order more than the contract allows."""
    today = _today()
    if new.requested_delivery_date is None:
        raise InvalidArgument.of("requested_delivery_date", "is required")
    model.check_requested_date(new.requested_delivery_date, today, "requested_delivery_date")
    for i, li in enumerate(new.lines):
        model.check_requested_date(li.requested_delivery_date, today, f"lines[{i}].requested_delivery_date")
    reference = new.customer_reference.strip()
    if len(reference) > 100:
        raise InvalidArgument.of("customer_reference", "must be at most 100 characters")
    note = new.note.strip()
    if len(note) > 2000:
        raise InvalidArgument.of("note", "must be at most 2000 characters")
    repo = Repository(uow.session)
    copy = await repo.contract(new.contract_id)
    if copy is None:
        # Signed a moment ago, its event not here yet: the contracts service answers (as the
        # caller, so its scope applies) and its answer becomes the copy; the event then finds it held.
        copy = await references.signed_contract(new.contract_id)
        await repo.put_contract(copy, replace_existing=False)
    absent = NotFound(f"contract {new.contract_id} not found (or not signed yet)", reason="CONTRACT_NOT_FOUND",
                      metadata={"contract_id": str(new.contract_id)})
    # Only a contract in the caller's scope: its copy carries the owner, teams and department.
    # Checked before anything else is asked, and again under the lock the cap is checked with.
    if await repo.contract(new.contract_id, principal=principal) is None:
        raise absent
    # The name is the customers service's, as it is now (a rename reaches later orders); a
    # customer the caller may not see is not theirs to order for.
    customer = await references.customer(copy.customer_id)
    contract = await repo.contract(new.contract_id, principal=principal, for_update=True)
    if contract is None:
        raise absent
    model.check_orderable(contract, today)
    ordered = await repo.ordered_so_far(contract.id)
    lines = model.price_lines(contract, new.lines, ordered)
    model.check_within_contract(contract, lines, ordered)
    sequence = await repo.next_order_sequence()
    order = await repo.add_order(Order(
        id=new_id(), number=model.order_number(today.year, sequence), contract_id=contract.id,
        contract_number=contract.number, customer_id=contract.customer_id, customer_name=customer.name,
        owner_id=contract.owner_id, team_ids=contract.team_ids, department_path=contract.department_path,
        status=OrderStatus.SUBMITTED, currency=contract.currency, amount=bounded_total(li.amount for li in lines),
        lines=lines, requested_delivery_date=new.requested_delivery_date, customer_reference=reference, note=note,
        created_by=principal.subject))
    uow.emit(ev.OrderSubmitted(order=snapshot(order)), subject_id=str(order.id))
    await uow.commit()
    return OrderView(order)


async def get_order(uow: UnitOfWork, principal: Principal, order_id: uuid.UUID) -> OrderView:
    repo = Repository(uow.session)
    return await _view(repo, await _order(repo, principal, order_id))


async def list_orders(uow: UnitOfWork, principal: Principal, *, page_token: str, limit: int,
                      customer_id: uuid.UUID | None = None, contract_id: uuid.UUID | None = None,
                      status: str = "") -> tuple[list[OrderView], str]:
    size = page_size(limit)
    cursor = decode_cursor(page_token, LIST_SORT, (time_text, uuid_text))
    repo = Repository(uow.session)
    items = await repo.list_orders(principal, after=cursor.values if cursor else None, limit=size + 1,
                                   customer_id=customer_id, contract_id=contract_id, status=status)
    token = ""
    if len(items) > size:
        last = items[size - 1]
        token = encode_cursor(LIST_SORT, [last.created_at.isoformat() if last.created_at else "", str(last.id)])
    items = items[:size]
    shipped = _shipped_by_order(await repo.deliveries_of([o.id for o in items]))
    return [OrderView(o, shipped.get(o.id, {})) for o in items], token


def _shipped_by_order(deliveries: list[Delivery]) -> dict[uuid.UUID, dict[uuid.UUID, Decimal]]:
    grouped: dict[uuid.UUID, list[Delivery]] = {}
    for d in deliveries:
        grouped.setdefault(d.order_id, []).append(d)
    return {oid: model.shipped_quantities(ds) for oid, ds in grouped.items()}


async def _change(uow: UnitOfWork, principal: Principal, order_id: uuid.UUID, expected_version: int,
                  change: Callable[[Order], Order]) -> OrderView:
    repo = Repository(uow.session)
    before = await _order(repo, principal, order_id, for_update=True)
    model.check_version(before, expected_version)
    after = await repo.save_order(change(before))
    emit_status_change(uow, before, after)
    if after.status is OrderStatus.CANCELLED:
        uow.emit(ev.OrderCancelled(order=snapshot(after), reason=after.cancel_reason), subject_id=str(after.id))
    if after.status is OrderStatus.CONFIRMED:
        uow.emit(ev.OrderConfirmed(order=snapshot(after), sap_sales_order=after.sap_sales_order),
                 subject_id=str(after.id))
    await uow.commit()
    return await _view(repo, after)


async def cancel_order(uow: UnitOfWork, principal: Principal, order_id: uuid.UUID, reason: str,
                       expected_version: int = 0) -> OrderView:
    """Only before it shipped; its quantities are free to order again."""
    return await _change(uow, principal, order_id, expected_version, lambda o: model.cancel(o, reason))


async def confirm_order(uow: UnitOfWork, principal: Principal, order_id: uuid.UUID,
                        expected_version: int = 0) -> OrderView:
    return await _change(uow, principal, order_id, expected_version, model.confirm_by_hand)


async def start_production(uow: UnitOfWork, principal: Principal, order_id: uuid.UUID,
                           expected_version: int = 0) -> OrderView:
    return await _change(uow, principal, order_id, expected_version, model.start_production)


async def close_order(uow: UnitOfWork, principal: Principal, order_id: uuid.UUID,
                      expected_version: int = 0) -> OrderView:
    return await _change(uow, principal, order_id, expected_version, model.close)


# Deliveries ---------------------------------------------------------------------------------------


async def apply_delivery_status(uow: UnitOfWork, repo: Repository, order: Order) -> Order:
    """Moves the order to shipped / delivered when its deliveries say so (never backwards)."""
    target = model.status_from_deliveries(order, await repo.deliveries_of([order.id]))
    moved = model.advance(order, target) if target else None
    if moved is None:
        return order
    saved = await repo.save_order(moved)
    emit_status_change(uow, order, saved)
    return saved


@dataclass(frozen=True)
class NewDelivery:
    order_id: uuid.UUID
    shipped_on: dt.date | None
    lines: list[DeliveryLine]
    carrier: str = ""
    tracking_number: str = ""


async def create_delivery(uow: UnitOfWork, principal: Principal, new: NewDelivery) -> Delivery:
    """R-ORD-02 without SAP: a delivery recorded by hand; its goods left on `shipped_on`."""
    if new.shipped_on is None:
        raise InvalidArgument.of("shipped_on", "is required")
    if new.shipped_on > _today() + dt.timedelta(days=1):
        raise InvalidArgument.of("shipped_on", "must not be in the future")
    carrier, tracking = new.carrier.strip(), new.tracking_number.strip()
    if len(carrier) > 200 or len(tracking) > 200:
        raise InvalidArgument.of("carrier" if len(carrier) > 200 else "tracking_number",
                                 "must be at most 200 characters")
    repo = Repository(uow.session)
    order = await _order(repo, principal, new.order_id, for_update=True)
    model.check_manual_delivery(order, new.lines, await repo.deliveries_of([order.id]))
    delivery = await repo.put_delivery(Delivery(
        id=new_id(), order_id=order.id, source=DeliverySource.MANUAL, status=DeliveryStatus.SHIPPED,
        lines=tuple(new.lines), shipped_on=new.shipped_on, carrier=carrier, tracking_number=tracking,
        created_by=principal.subject), replace_existing=False)
    uow.emit(delivery_event(delivery), subject_id=str(delivery.id))
    await apply_delivery_status(uow, repo, order)
    await uow.commit()
    return delivery


async def get_delivery(uow: UnitOfWork, principal: Principal, delivery_id: uuid.UUID) -> Delivery:
    found = await Repository(uow.session).delivery(principal, delivery_id)
    if found is None:
        raise NotFound(f"delivery {delivery_id} not found", metadata={"delivery_id": str(delivery_id)})
    return found


async def list_deliveries(uow: UnitOfWork, principal: Principal, *, order_id: uuid.UUID | None, page_token: str,
                          limit: int) -> tuple[list[Delivery], str]:
    size = page_size(limit)
    cursor = decode_cursor(page_token, LIST_SORT, (time_text, uuid_text))
    repo = Repository(uow.session)
    if order_id is not None:
        await _order(repo, principal, order_id)
    items = await repo.list_deliveries(principal, order_id=order_id, after=cursor.values if cursor else None,
                                       limit=size + 1)
    token = ""
    if len(items) > size:
        last = items[size - 1]
        token = encode_cursor(LIST_SORT, [last.created_at.isoformat() if last.created_at else "", str(last.id)])
    return items[:size], token


# The order overview (R-ORD-02) -------------------------------------------------------------------


@dataclass(frozen=True)
class OverviewEntry:
    view: OrderView
    deliveries: list[Delivery]
    invoices: list[InvoiceRow]


@dataclass(frozen=True)
class Overview:
    customer_id: uuid.UUID
    entries: list[OverviewEntry]
    # Invoices of these orders' contracts that name no order.
    contract_invoices: list[InvoiceRow]
    payments: list[PaymentRow]
    truncated: bool


async def order_overview(uow: UnitOfWork, principal: Principal, customer_id: uuid.UUID, references: References,
                         *, limit: int = 0) -> Overview:
    """One screen for "where is this customer's order": the customer's orders in the caller's
    scope, newest first, each with its deliveries and invoices, and the payments received on
    their contracts. A customer that does not exist or that the caller may not see is `NotFound`
    (asked of the customers service, as the caller), not an empty overview."""
    if limit < 0 or limit > OVERVIEW_MAX:
        raise InvalidArgument.of("limit", f"must be between 1 and {OVERVIEW_MAX}")
    await references.customer(customer_id)
    size = limit or OVERVIEW_DEFAULT
    repo = Repository(uow.session)
    found = await repo.list_orders(principal, after=None, limit=size + 1, customer_id=customer_id)
    orders = found[:size]
    ids = [o.id for o in orders]
    contract_ids = list(dict.fromkeys(o.contract_id for o in orders))
    deliveries = await repo.deliveries_of(ids)
    invoices = await repo.invoices_of(ids, contract_ids)
    by_order: dict[uuid.UUID, list[Delivery]] = {}
    for d in deliveries:
        by_order.setdefault(d.order_id, []).append(d)
    entries = []
    for o in orders:
        mine = by_order.get(o.id, [])
        entries.append(OverviewEntry(OrderView(o, model.shipped_quantities(mine)), mine,
                                     [i for i in invoices if i.order_id == o.id]))
    return Overview(customer_id, entries, [i for i in invoices if i.order_id is None],
                    await repo.payments_of(customer_id, contract_ids), len(found) > size)

