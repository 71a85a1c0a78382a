"""Reads and writes of the contract copy, orders, deliveries and the billing read model. Every
read of orders and deliveries is filtered by the caller's data scope inside the query."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, Text, and_, cast, delete, func, insert, or_, select, true, tuple_, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from crm_orders.adapters.tables import (
    contract_lines,
    contracts,
    deliveries,
    delivery_lines,
    invoices,
    order_lines,
    order_number_seq,
    orders,
    payments,
)
from crm_orders.domain.model import (
    Contract,
    ContractLine,
    ContractState,
    Delivery,
    DeliveryLine,
    DeliverySource,
    DeliveryStatus,
    Order,
    Ordered,
    OrderLine,
    OrderStatus,
)
from crmkit.auth import DataScope, Principal
from crmkit.scopes import scope_clause


def _scope(principal: Principal, owner: Any, teams: Any, department_path: Any) -> ColumnElement[bool]:
    """R-SEC-02 on a record with an owner, the owner's teams (an array) and department. Finance
    (SIGNED) sees all of them: a contract copy or an order only exists once a contract is signed."""
    if principal.data_scope is DataScope.TEAM:
        if not principal.team_ids:
            return owner == principal.subject  # type: ignore[no-any-return]
        return or_(teams.overlap(cast(list(principal.team_ids), ARRAY(Text))), owner == principal.subject)
    if principal.data_scope is DataScope.SIGNED:
        return true()
    return scope_clause(principal, owner=owner, team=None, department_path=department_path)


def order_scope(principal: Principal) -> ColumnElement[bool]:
    """Owner, teams and department of an order are its contract's."""
    return _scope(principal, orders.c.owner_id, orders.c.team_ids, orders.c.department_path)


def contract_scope(principal: Principal) -> ColumnElement[bool]:
    return _scope(principal, contracts.c.owner_id, contracts.c.team_ids, contracts.c.department_path)


@dataclass(frozen=True)
class InvoiceRow:
    id: uuid.UUID
    number: str
    kind: str
    order_id: uuid.UUID | None
    contract_id: uuid.UUID | None
    currency: str
    net_amount: Decimal
    tax_amount: Decimal
    total: Decimal
    issued_on: dt.date | None
    due_on: dt.date | None
    sap_billing_document: str


@dataclass(frozen=True)
class PaymentRow:
    id: uuid.UUID
    currency: str
    amount: Decimal
    allocated: Decimal
    unallocated: Decimal
    received_on: dt.date | None
    reference: str
    contract_ids: tuple[uuid.UUID, ...]


def _order(row: Row[Any], lines: Sequence[OrderLine]) -> Order:
    return Order(
        id=row.id, number=row.number, contract_id=row.contract_id, contract_number=row.contract_number,
        customer_id=row.customer_id, customer_name=row.customer_name, owner_id=row.owner_id,
        team_ids=tuple(row.team_ids or ()), department_path=row.department_path, status=OrderStatus(row.status),
        currency=row.currency, amount=row.amount, lines=tuple(lines),
        requested_delivery_date=row.requested_delivery_date, customer_reference=row.customer_reference,
        note=row.note, sap_sales_order=row.sap_sales_order, cancel_reason=row.cancel_reason, version=row.version,
        created_by=row.created_by, created_at=row.created_at, updated_at=row.updated_at)


def _order_line(row: Row[Any]) -> OrderLine:
    return OrderLine(
        id=row.id, line_number=row.line_number, contract_line_id=row.contract_line_id, product=row.product,
        specification=row.specification, quantity=row.quantity.normalize() if row.quantity else row.quantity,
        unit=row.unit, unit_price=row.unit_price, amount=row.amount,
        requested_delivery_date=row.requested_delivery_date, sap_item=row.sap_item)


class Repository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # The contract copy ------------------------------------------------------------------------

    async def contract(self, contract_id: uuid.UUID, *, principal: Principal | None = None,
                       for_update: bool = False) -> Contract | None:
        """The copy; with a principal, only when it is in their data scope."""
        query = select(contracts).where(contracts.c.id == contract_id)
        if principal is not None:
            query = query.where(contract_scope(principal))
        if for_update:
            # Orders of one contract are placed one at a time: the cap is checked under this lock.
            query = query.with_for_update()
        row = (await self.session.execute(query)).first()
        if row is None:
            return None
        lines = (await self.session.execute(
            select(contract_lines).where(contract_lines.c.contract_id == contract_id)
            .order_by(contract_lines.c.position))).all()
        return Contract(
            id=row.id, number=row.number, customer_id=row.customer_id, customer_name=row.customer_name,
            owner_id=row.owner_id, team_ids=tuple(row.team_ids or ()), department_path=row.department_path,
            amount=row.amount, currency=row.currency, start_date=row.start_date, end_date=row.end_date,
            state=ContractState(row.state), version=row.version, lines=tuple(
                ContractLine(id=li.line_id, product=li.product, specification=li.specification,
                             quantity=li.quantity, unit=li.unit, unit_price=li.unit_price, amount=li.amount,
                             active=li.active) for li in lines))

    async def put_contract(self, c: Contract, *, replace_existing: bool = True) -> None:
        """Inserts or replaces the copy with its lines; with `replace_existing` off, a copy
        already held (its event arrived meanwhile) stays as it is."""
        values = {"number": c.number, "customer_id": c.customer_id, "customer_name": c.customer_name,
                  "owner_id": c.owner_id, "team_ids": list(c.team_ids), "department_path": c.department_path,
                  "amount": c.amount, "currency": c.currency, "start_date": c.start_date, "end_date": c.end_date,
                  "state": c.state.value, "version": c.version, "updated_at": func.now()}
        insert_copy = pg_insert(contracts).values(id=c.id, **values)
        if not replace_existing:
            inserted = await self.session.execute(insert_copy.on_conflict_do_nothing().returning(contracts.c.id))
            if inserted.first() is None:
                return
        else:
            await self.session.execute(insert_copy.on_conflict_do_update(index_elements=[contracts.c.id], set_=values))
        await self.session.execute(delete(contract_lines).where(contract_lines.c.contract_id == c.id))
        if c.lines:
            await self.session.execute(insert(contract_lines), [
                {"contract_id": c.id, "line_id": li.id, "position": i, "product": li.product,
                 "specification": li.specification, "quantity": li.quantity, "unit": li.unit,
                 "unit_price": li.unit_price, "amount": li.amount, "active": li.active}
                for i, li in enumerate(c.lines)])

    async def terminate_contract(self, contract_id: uuid.UUID, reason: str) -> bool:
        result = await self.session.execute(
            update(contracts).where(contracts.c.id == contract_id)
            .values(state=ContractState.TERMINATED.value, terminated_reason=reason, updated_at=func.now()))
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def follow_customer(self, customer_id: uuid.UUID, *, owner_id: str, team_ids: tuple[str, ...],
                              department_path: str) -> int:
        """Every contract copy and order of the customer, open or closed, moves into the scope of
        the customer's owner (the policy in docs/architecture.md); returns the orders moved."""
        values = {"owner_id": owner_id, "team_ids": list(team_ids), "department_path": department_path,
                  "updated_at": func.now()}
        await self.session.execute(update(contracts).where(contracts.c.customer_id == customer_id).values(**values))
        moved = await self.session.execute(update(orders).where(orders.c.customer_id == customer_id).values(**values))
        return int(moved.rowcount)  # type: ignore[attr-defined]

    async def repoint_customer(self, merged_id: uuid.UUID, surviving_id: uuid.UUID, surviving_name: str) -> None:
        """The merged customer's records are the survivor's now (its orders take its name)."""
        await self.session.execute(update(contracts).where(contracts.c.customer_id == merged_id)
                                   .values(customer_id=surviving_id, customer_name=surviving_name,
                                           updated_at=func.now()))
        await self.session.execute(update(orders).where(orders.c.customer_id == merged_id)
                                   .values(customer_id=surviving_id, customer_name=surviving_name,
                                           updated_at=func.now()))
        for table in (invoices, payments):
            await self.session.execute(update(table).where(table.c.customer_id == merged_id)
                                       .values(customer_id=surviving_id))

    async def ordered_so_far(self, contract_id: uuid.UUID) -> Ordered:
        """Quantity and net amount ordered per contract line, and the net total, across the
        contract's non-cancelled orders."""
        live = and_(orders.c.contract_id == contract_id, orders.c.status != OrderStatus.CANCELLED.value)
        per_line = (await self.session.execute(
            select(order_lines.c.contract_line_id, func.sum(order_lines.c.quantity), func.sum(order_lines.c.amount))
            .join(orders, orders.c.id == order_lines.c.order_id).where(live)
            .group_by(order_lines.c.contract_line_id))).all()
        amount = await self.session.scalar(select(func.coalesce(func.sum(orders.c.amount), 0)).where(live))
        return Ordered({r[0]: r[1] for r in per_line}, {r[0]: r[2] for r in per_line}, Decimal(amount))

    # Orders -----------------------------------------------------------------------------------

    async def next_order_sequence(self) -> int:
        return int(await self.session.scalar(select(order_number_seq.next_value())))

    async def add_order(self, o: Order) -> Order:
        row = (await self.session.execute(insert(orders).values(
            id=o.id, number=o.number, contract_id=o.contract_id, contract_number=o.contract_number,
            customer_id=o.customer_id, customer_name=o.customer_name, owner_id=o.owner_id, team_ids=list(o.team_ids),
            department_path=o.department_path, status=o.status.value, currency=o.currency, amount=o.amount,
            requested_delivery_date=o.requested_delivery_date, customer_reference=o.customer_reference, note=o.note,
            sap_sales_order=o.sap_sales_order, cancel_reason=o.cancel_reason, version=o.version,
            created_by=o.created_by).returning(orders))).one()
        await self.session.execute(insert(order_lines), [
            {"id": li.id, "order_id": o.id, "line_number": li.line_number, "contract_line_id": li.contract_line_id,
             "product": li.product, "specification": li.specification, "quantity": li.quantity, "unit": li.unit,
             "unit_price": li.unit_price, "amount": li.amount, "requested_delivery_date": li.requested_delivery_date,
             "sap_item": li.sap_item} for li in o.lines])
        return _order(row, o.lines)

    async def save_order(self, o: Order) -> Order:
        row = (await self.session.execute(
            update(orders).where(orders.c.id == o.id)
            .values(status=o.status.value, sap_sales_order=o.sap_sales_order, cancel_reason=o.cancel_reason,
                    version=o.version, updated_at=func.now()).returning(orders))).one()
        for li in o.lines:
            await self.session.execute(update(order_lines).where(order_lines.c.id == li.id,
                                                                 order_lines.c.sap_item != li.sap_item)
                                       .values(sap_item=li.sap_item))
        return _order(row, o.lines)

    async def _with_lines(self, rows: Sequence[Row[Any]]) -> list[Order]:
        if not rows:
            return []
        lines: dict[uuid.UUID, list[OrderLine]] = {}
        for li in (await self.session.execute(
                select(order_lines).where(order_lines.c.order_id.in_([r.id for r in rows]))
                .order_by(order_lines.c.order_id, order_lines.c.line_number))).all():
            lines.setdefault(li.order_id, []).append(_order_line(li))
        return [_order(r, lines.get(r.id, [])) for r in rows]

    async def order(self, principal: Principal, order_id: uuid.UUID, *, for_update: bool = False) -> Order | None:
        query = select(orders).where(orders.c.id == order_id, order_scope(principal))
        if for_update:
            query = query.with_for_update()
        rows = (await self.session.execute(query)).all()
        found = await self._with_lines(rows)
        return found[0] if found else None

    async def order_by_sap_number(self, sales_order: str, *, for_update: bool = False) -> Order | None:
        query = select(orders).where(orders.c.sap_sales_order == sales_order)
        if for_update:
            query = query.with_for_update()
        found = await self._with_lines((await self.session.execute(query.limit(1))).all())
        return found[0] if found else None

    async def list_orders(self, principal: Principal, *, after: list[str] | None, limit: int,
                          customer_id: uuid.UUID | None = None, contract_id: uuid.UUID | None = None,
                          status: str = "") -> list[Order]:
        query = select(orders).where(order_scope(principal))
        if customer_id is not None:
            query = query.where(orders.c.customer_id == customer_id)
        if contract_id is not None:
            query = query.where(orders.c.contract_id == contract_id)
        if status:
            query = query.where(orders.c.status == status)
        if after:
            query = query.where(tuple_(orders.c.created_at, orders.c.id)
                                < tuple_(dt.datetime.fromisoformat(after[0]), uuid.UUID(after[1])))
        query = query.order_by(orders.c.created_at.desc(), orders.c.id.desc()).limit(limit)
        return await self._with_lines((await self.session.execute(query)).all())

    # Deliveries -------------------------------------------------------------------------------

    async def _deliveries(self, where: Iterable[ColumnElement[bool]], *, limit: int | None = None,
                          order_desc: bool = True) -> list[Delivery]:
        query = (select(deliveries, orders.c.number.label("order_number"), orders.c.customer_id)
                 .join(orders, orders.c.id == deliveries.c.order_id).where(*where))
        if order_desc:
            query = query.order_by(deliveries.c.created_at.desc(), deliveries.c.id.desc())
        else:
            query = query.order_by(deliveries.c.created_at, deliveries.c.id)
        if limit is not None:
            query = query.limit(limit)
        rows = (await self.session.execute(query)).all()
        if not rows:
            return []
        lines: dict[uuid.UUID, list[DeliveryLine]] = {}
        for li in (await self.session.execute(
                select(delivery_lines, order_lines.c.line_number)
                .join(order_lines, order_lines.c.id == delivery_lines.c.order_line_id)
                .where(delivery_lines.c.delivery_id.in_([r.id for r in rows]))
                .order_by(delivery_lines.c.delivery_id, order_lines.c.line_number))).all():
            lines.setdefault(li.delivery_id, []).append(
                DeliveryLine(order_line_id=li.order_line_id, quantity=li.quantity.normalize(), sap_item=li.sap_item))
        return [Delivery(
            id=r.id, order_id=r.order_id, source=DeliverySource(r.source), status=DeliveryStatus(r.status),
            lines=tuple(lines.get(r.id, [])), sap_delivery=r.sap_delivery or "", shipped_on=r.shipped_on,
            carrier=r.carrier, tracking_number=r.tracking_number, created_by=r.created_by, created_at=r.created_at,
            updated_at=r.updated_at, order_number=r.order_number, customer_id=r.customer_id) for r in rows]

    async def deliveries_of(self, order_ids: Sequence[uuid.UUID]) -> list[Delivery]:
        """Every delivery of these orders, oldest first (scope was checked on the orders)."""
        if not order_ids:
            return []
        return await self._deliveries([deliveries.c.order_id.in_(list(order_ids))], order_desc=False)

    async def delivery(self, principal: Principal, delivery_id: uuid.UUID) -> Delivery | None:
        found = await self._deliveries([deliveries.c.id == delivery_id, order_scope(principal)])
        return found[0] if found else None

    async def delivery_by_sap_number(self, sap_delivery: str) -> Delivery | None:
        found = await self._deliveries([deliveries.c.sap_delivery == sap_delivery])
        return found[0] if found else None

    async def list_deliveries(self, principal: Principal, *, order_id: uuid.UUID | None, after: list[str] | None,
                              limit: int) -> list[Delivery]:
        where: list[ColumnElement[bool]] = [order_scope(principal)]
        if order_id is not None:
            where.append(deliveries.c.order_id == order_id)
        if after:
            where.append(tuple_(deliveries.c.created_at, deliveries.c.id)
                         < tuple_(dt.datetime.fromisoformat(after[0]), uuid.UUID(after[1])))
        return await self._deliveries(where, limit=limit)

    async def put_delivery(self, d: Delivery, *, replace_existing: bool) -> Delivery:
        values = {"order_id": d.order_id, "source": d.source.value, "status": d.status.value,
                  "sap_delivery": d.sap_delivery or None, "shipped_on": d.shipped_on, "carrier": d.carrier,
                  "tracking_number": d.tracking_number}
        if replace_existing:
            await self.session.execute(update(deliveries).where(deliveries.c.id == d.id)
                                       .values(**values, updated_at=func.now()))
            await self.session.execute(delete(delivery_lines).where(delivery_lines.c.delivery_id == d.id))
        else:
            await self.session.execute(insert(deliveries).values(id=d.id, created_by=d.created_by, **values))
        if d.lines:
            await self.session.execute(insert(delivery_lines), [
                {"delivery_id": d.id, "order_line_id": li.order_line_id, "quantity": li.quantity,
                 "sap_item": li.sap_item} for li in d.lines])
        found = await self._deliveries([deliveries.c.id == d.id])
        return found[0]

    # The billing read model -------------------------------------------------------------------

    async def put_invoice(self, values: dict[str, Any]) -> None:
        rest = {k: v for k, v in values.items() if k != "id"} | {"updated_at": func.now()}
        await self.session.execute(pg_insert(invoices).values(**values)
                                   .on_conflict_do_update(index_elements=[invoices.c.id], set_=rest))

    async def put_payment(self, values: dict[str, Any]) -> None:
        rest = {k: v for k, v in values.items() if k != "id"} | {"updated_at": func.now()}
        await self.session.execute(pg_insert(payments).values(**values)
                                   .on_conflict_do_update(index_elements=[payments.c.id], set_=rest))

    async def invoices_of(self, order_ids: Sequence[uuid.UUID], contract_ids: Sequence[uuid.UUID]) -> list[InvoiceRow]:
        """Invoices of these orders, and contract-level invoices (no order) of these contracts."""
        if not order_ids:
            return []
        rows = (await self.session.execute(
            select(invoices).where(or_(invoices.c.order_id.in_(list(order_ids)),
                                       and_(invoices.c.order_id.is_(None),
                                            invoices.c.contract_id.in_(list(contract_ids)))))
            .order_by(invoices.c.issued_on, invoices.c.number))).all()
        return [InvoiceRow(r.id, r.number, r.kind, r.order_id, r.contract_id, r.currency, r.net_amount,
                           r.tax_amount, r.total, r.issued_on, r.due_on, r.sap_billing_document) for r in rows]

    async def payments_of(self, customer_id: uuid.UUID, contract_ids: Sequence[uuid.UUID]) -> list[PaymentRow]:
        """The customer's payments allocated to any of these contracts."""
        if not contract_ids:
            return []
        rows = (await self.session.execute(
            select(payments).where(payments.c.customer_id == customer_id,
                                   payments.c.contract_ids.overlap(cast(list(contract_ids), ARRAY(payments.c.id.type))))
            .order_by(payments.c.received_on, payments.c.id))).all()
        return [PaymentRow(r.id, r.currency, r.amount, r.allocated, r.unallocated, r.received_on, r.reference,
                           tuple(r.contract_ids)) for r in rows]
