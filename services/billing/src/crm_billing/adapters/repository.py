"""Reads and writes of the billing tables, always inside the caller's data scope where a caller
is involved. Amounts stay Decimal from the database to the wire."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy import ColumnElement, Table, func, literal, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from crm_billing.adapters.tables import (
    allocations,
    contracts,
    instalments,
    invoice_numbers,
    invoices,
    orders,
    payments,
    statement_lines,
    statement_numbers,
    statements,
)
from crm_billing.domain.allocation import InstalmentState
from crm_billing.domain.statement import DocumentKind, LedgerDocument
from crmkit.auth import Principal
from crmkit.scopes import scope_clause


def scope_of(principal: Principal, table: Table) -> ColumnElement[bool]:
    """Owner, team and department come from the contract copy. Finance's SIGNED scope sees every
    billing record: there is nothing to bill without a signed contract."""
    return scope_clause(principal, owner=table.c.owner_id, team=table.c.team_id,
                        department_path=table.c.department_path, signed=literal(True))


def _after(table: Table, after: list[Any] | None) -> ColumnElement[bool] | None:
    if after is None:
        return None
    bound = tuple_(literal(dt.datetime.fromisoformat(after[0])), literal(uuid.UUID(after[1])))
    return tuple_(table.c.created_at, table.c.id) < bound


class Repository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def one(self, query: Any) -> Row[Any] | None:
        return (await self.session.execute(query)).first()

    async def all(self, query: Any) -> list[Row[Any]]:
        return list((await self.session.execute(query)).all())

    async def lock_customer(self, customer_id: uuid.UUID) -> None:
        """Serialises whatever resolves or back-fills a customer's ownership (a contract event and
        a billing document handled at the same moment by two consumers) and its statements."""
        await self.session.execute(sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:k, 0))"),
                                   {"k": f"billing-customer:{customer_id}"})

    # Contracts and orders (local copies) ---------------------------------------------------------

    async def upsert_contract(self, values: dict[str, Any]) -> None:
        stmt = pg_insert(contracts).values(**values)
        update_values = {k: stmt.excluded[k] for k in values if k != "id"} | {"updated_at": func.now()}
        await self.session.execute(stmt.on_conflict_do_update(index_elements=[contracts.c.id], set_=update_values))

    async def contract(self, contract_id: uuid.UUID, *, for_update: bool = False) -> Row[Any] | None:
        query = select(contracts).where(contracts.c.id == contract_id)
        return await self.one(query.with_for_update() if for_update else query)

    async def visible_contract(self, principal: Principal, contract_id: uuid.UUID) -> Row[Any] | None:
        return await self.one(select(contracts).where(contracts.c.id == contract_id, scope_of(principal, contracts)))

    async def latest_contract_of(self, customer_id: uuid.UUID) -> Row[Any] | None:
        return await self.one(select(contracts).where(contracts.c.customer_id == customer_id)
                              .order_by(contracts.c.signed_on.desc().nulls_last(), contracts.c.updated_at.desc())
                              .limit(1))

    async def upsert_order(self, order_id: uuid.UUID, **values: Any) -> None:
        stmt = pg_insert(orders).values(id=order_id, **values)
        await self.session.execute(stmt.on_conflict_do_update(
            index_elements=[orders.c.id], set_={k: stmt.excluded[k] for k in values}))

    async def order(self, order_id: uuid.UUID) -> Row[Any] | None:
        return await self.one(select(orders).where(orders.c.id == order_id))

    async def backfill_ownership(self, *, customer_id: uuid.UUID, owner: dict[str, Any]) -> None:
        """Records that arrived before the customer's first contract get its owner."""
        for table in (invoices, payments, statements):
            await self.session.execute(update(table).where(table.c.customer_id == customer_id,
                                                           table.c.owner_id == "").values(**owner))

    async def backfill_order(self, order_id: uuid.UUID, contract_id: uuid.UUID, owner: dict[str, Any]) -> None:
        await self.session.execute(update(invoices).where(invoices.c.order_id == order_id,
                                                          invoices.c.contract_id.is_(None))
                                   .values(contract_id=contract_id, **owner))

    async def follow_customer(self, customer_id: uuid.UUID, owner: dict[str, Any]) -> None:
        """Every record of the customer, open or closed, moves into its owner's scope (the policy
        in docs/architecture.md): the new owner sees the receivables and the history."""
        for table in (contracts, invoices, payments, statements):
            await self.session.execute(update(table).where(table.c.customer_id == customer_id).values(**owner))

    async def repoint_customer(self, merged_id: uuid.UUID, surviving_id: uuid.UUID) -> None:
        """A merged customer's records are the survivor's (statements keep the name they were
        drafted with: an issued one stays as issued)."""
        for table in (contracts, orders, instalments, invoices, payments, statements):
            await self.session.execute(update(table).where(table.c.customer_id == merged_id)
                                       .values(customer_id=surviving_id))

    async def rename_customer(self, customer_id: uuid.UUID, name: str) -> None:
        """The contract copies carry the name reports show (aging, awaiting payment)."""
        await self.session.execute(update(contracts).where(contracts.c.customer_id == customer_id)
                                   .values(customer_name=name, updated_at=func.now()))

    async def target_visible(self, principal: Principal, target_kind: str, target_id: uuid.UUID) -> bool:
        """Whether an allocation's target (an invoice, or an instalment through its contract) is
        in the caller's scope."""
        if target_kind == "invoice":
            query = select(invoices.c.id).where(invoices.c.id == target_id, scope_of(principal, invoices))
        else:
            query = (select(instalments.c.id).join(contracts, contracts.c.id == instalments.c.contract_id)
                     .where(instalments.c.id == target_id, scope_of(principal, contracts)))
        return await self.one(query) is not None

    # Instalments ---------------------------------------------------------------------------------

    async def instalments_of(self, contract_id: uuid.UUID, *, for_update: bool = False) -> list[Row[Any]]:
        query = select(instalments).where(instalments.c.contract_id == contract_id).order_by(
            instalments.c.sequence, instalments.c.id)
        return await self.all(query.with_for_update() if for_update else query)

    async def instalment(self, instalment_id: uuid.UUID, *, for_update: bool = False) -> Row[Any] | None:
        query = select(instalments).where(instalments.c.id == instalment_id)
        return await self.one(query.with_for_update() if for_update else query)

    async def add_instalment(self, **values: Any) -> None:
        await self.session.execute(pg_insert(instalments).values(**values).on_conflict_do_nothing())

    async def save_instalment(self, instalment_id: uuid.UUID, **values: Any) -> None:
        await self.session.execute(update(instalments).where(instalments.c.id == instalment_id).values(**values))

    async def open_instalments_of_customer(self, customer_id: uuid.UUID, contract_id: uuid.UUID | None,
                                           currency: str) -> list[Row[Any]]:
        query = (select(instalments, contracts.c.contract_number)
                 .join(contracts, contracts.c.id == instalments.c.contract_id)
                 .where(instalments.c.customer_id == customer_id, instalments.c.currency == currency,
                        instalments.c.state != InstalmentState.VOID.value,
                        instalments.c.received < instalments.c.amount)
                 .order_by(instalments.c.due_date, instalments.c.sequence))
        if contract_id is not None:
            query = query.where(instalments.c.contract_id == contract_id)
        return await self.all(query)

    async def instalments_becoming_overdue(self, today: dt.date) -> list[Row[Any]]:
        return await self.all(
            select(instalments).where(instalments.c.due_date < today, instalments.c.state.in_(
                [InstalmentState.PENDING.value, InstalmentState.PARTIALLY_RECEIVED.value]))
            .order_by(instalments.c.due_date).with_for_update(skip_locked=True).limit(500))

    # Invoices ----------------------------------------------------------------------------------

    async def next_number(self, prefix: str, year: int, *, statement: bool = False) -> str:
        n = await self.session.scalar(select((statement_numbers if statement else invoice_numbers).next_value()))
        return f"{prefix}-{year}-{int(n or 0):06d}"

    async def add_invoice(self, **values: Any) -> Row[Any]:
        return (await self.session.execute(sa.insert(invoices).values(**values).returning(invoices))).one()

    async def invoice(self, invoice_id: uuid.UUID, principal: Principal | None = None, *,
                      for_update: bool = False) -> Row[Any] | None:
        query = select(invoices).where(invoices.c.id == invoice_id)
        if principal is not None:
            query = query.where(scope_of(principal, invoices))
        return await self.one(query.with_for_update() if for_update else query)

    async def invoice_by_sap(self, billing_document: str) -> Row[Any] | None:
        return await self.one(select(invoices).where(invoices.c.sap_billing_document == billing_document)
                              .with_for_update())

    async def save_invoice(self, invoice_id: uuid.UUID, **values: Any) -> Row[Any]:
        return (await self.session.execute(update(invoices).where(invoices.c.id == invoice_id).values(**values)
                                           .returning(invoices))).one()

    async def list_invoices(self, principal: Principal, *, after: list[Any] | None, limit: int,
                            customer_id: uuid.UUID | None, contract_id: uuid.UUID | None, status: str, kind: str,
                            overdue_on: dt.date | None, order_id: uuid.UUID | None = None) -> list[Row[Any]]:
        query = select(invoices).where(scope_of(principal, invoices))
        if order_id is not None:
            query = query.where(invoices.c.order_id == order_id)
        if customer_id is not None:
            query = query.where(invoices.c.customer_id == customer_id)
        if contract_id is not None:
            query = query.where(invoices.c.contract_id == contract_id)
        if status:
            query = query.where(invoices.c.status == status)
        if kind:
            query = query.where(invoices.c.kind == kind)
        if overdue_on is not None:
            query = query.where(invoices.c.status == "open", invoices.c.kind == "invoice",
                                invoices.c.due_on < overdue_on)
        if (bound := _after(invoices, after)) is not None:
            query = query.where(bound)
        return await self.all(query.order_by(invoices.c.created_at.desc(), invoices.c.id.desc()).limit(limit))

    async def open_invoices_of_customer(self, customer_id: uuid.UUID, currency: str, *,
                                        order_id: uuid.UUID | None = None) -> list[Row[Any]]:
        query = (select(invoices, orders.c.order_number)
                 .outerjoin(orders, orders.c.id == invoices.c.order_id)
                 .where(invoices.c.customer_id == customer_id, invoices.c.currency == currency,
                        invoices.c.kind == DocumentKind.INVOICE.value, invoices.c.status == "open")
                 .order_by(invoices.c.due_on, invoices.c.invoice_number))
        if order_id is not None:
            query = query.where(invoices.c.order_id == order_id)
        return await self.all(query)

    async def invoices_becoming_overdue(self, today: dt.date) -> list[Row[Any]]:
        return await self.all(
            select(invoices).where(invoices.c.status == "open", invoices.c.kind == DocumentKind.INVOICE.value,
                                   invoices.c.due_on < today, invoices.c.overdue_notified_on.is_(None))
            .order_by(invoices.c.due_on).with_for_update(skip_locked=True).limit(500))

    # Payments and allocations -----------------------------------------------------------------------

    async def add_payment(self, **values: Any) -> Row[Any]:
        return (await self.session.execute(sa.insert(payments).values(**values).returning(payments))).one()

    async def payment(self, payment_id: uuid.UUID, principal: Principal | None = None, *,
                      for_update: bool = False) -> Row[Any] | None:
        query = select(payments).where(payments.c.id == payment_id)
        if principal is not None:
            query = query.where(scope_of(principal, payments))
        return await self.one(query.with_for_update() if for_update else query)

    async def save_payment(self, payment_id: uuid.UUID, **values: Any) -> Row[Any]:
        return (await self.session.execute(update(payments).where(payments.c.id == payment_id).values(**values)
                                           .returning(payments))).one()

    async def list_payments(self, principal: Principal, *, after: list[Any] | None, limit: int,
                            customer_id: uuid.UUID | None, contract_id: uuid.UUID | None,
                            unallocated_only: bool) -> list[Row[Any]]:
        query = select(payments).where(scope_of(principal, payments))
        if customer_id is not None:
            query = query.where(payments.c.customer_id == customer_id)
        if contract_id is not None:
            query = query.where(payments.c.contract_id == contract_id)
        if unallocated_only:
            query = query.where(payments.c.allocated_invoices < payments.c.amount)
        if (bound := _after(payments, after)) is not None:
            query = query.where(bound)
        return await self.all(query.order_by(payments.c.created_at.desc(), payments.c.id.desc()).limit(limit))

    async def add_allocation(self, **values: Any) -> Row[Any]:
        return (await self.session.execute(sa.insert(allocations).values(**values).returning(allocations))).one()

    async def allocations_of(self, *, source_id: uuid.UUID | None = None,
                             target_id: uuid.UUID | None = None) -> list[Row[Any]]:
        query = select(allocations).where(allocations.c.released.is_(False))
        if source_id is not None:
            query = query.where(allocations.c.source_id == source_id)
        if target_id is not None:
            query = query.where(allocations.c.target_id == target_id)
        return await self.all(query.order_by(allocations.c.created_at, allocations.c.id))

    async def allocations_touching(self, document_id: uuid.UUID) -> list[Row[Any]]:
        return await self.all(select(allocations).where(
            allocations.c.released.is_(False),
            sa.or_(allocations.c.source_id == document_id, allocations.c.target_id == document_id))
            .with_for_update())

    async def release_allocation(self, allocation_id: uuid.UUID) -> None:
        await self.session.execute(update(allocations).where(allocations.c.id == allocation_id)
                                   .values(released=True))

    # Statements ---------------------------------------------------------------------------------

    async def ledger(self, customer_id: uuid.UUID, currency: str) -> list[LedgerDocument]:
        docs: list[LedgerDocument] = []
        rows = await self.all(select(invoices).where(invoices.c.customer_id == customer_id,
                                                     invoices.c.currency == currency).with_for_update())
        for r in rows:
            docs.append(LedgerDocument(
                id=str(r.id), kind=DocumentKind(r.kind), number=r.invoice_number, date=r.issued_on, amount=r.total,
                currency=r.currency, description=_invoice_description(r), cancelled=r.status == "cancelled",
                stated=r.stated_in is not None, cancellation_stated=r.cancellation_stated_in is not None))
        rows = await self.all(select(payments).where(payments.c.customer_id == customer_id,
                                                     payments.c.currency == currency).with_for_update())
        for r in rows:
            docs.append(LedgerDocument(
                id=str(r.id), kind=DocumentKind.PAYMENT, number=r.reference or f"PAY-{str(r.id)[-8:]}",
                date=r.received_on, amount=r.amount, currency=r.currency, description="payment received",
                stated=r.stated_in is not None))
        return docs

    async def mark_stated(self, statement_id: uuid.UUID, document_ids: list[uuid.UUID],
                          cancellation_ids: list[uuid.UUID]) -> None:
        if document_ids:
            for table in (invoices, payments):
                await self.session.execute(update(table).where(table.c.id.in_(document_ids),
                                                               table.c.stated_in.is_(None))
                                           .values(stated_in=statement_id))
        if cancellation_ids:
            await self.session.execute(update(invoices).where(invoices.c.id.in_(cancellation_ids))
                                       .values(cancellation_stated_in=statement_id))

    async def last_statement(self, customer_id: uuid.UUID, currency: str, *,
                             exclude: uuid.UUID | None = None) -> Row[Any] | None:
        """The latest statement that is no longer a draft."""
        query = (select(statements).where(statements.c.customer_id == customer_id,
                                          statements.c.currency == currency, statements.c.status != "draft")
                 .order_by(statements.c.period_end.desc(), statements.c.issued_at.desc()).limit(1))
        if exclude is not None:
            query = query.where(statements.c.id != exclude)
        return await self.one(query)

    async def add_statement(self, **values: Any) -> None:
        await self.session.execute(sa.insert(statements).values(**values))

    async def save_statement(self, statement_id: uuid.UUID, **values: Any) -> None:
        await self.session.execute(update(statements).where(statements.c.id == statement_id)
                                   .values(version=statements.c.version + 1, **values))

    async def replace_lines(self, statement_id: uuid.UUID, lines: list[dict[str, Any]]) -> None:
        await self.session.execute(sa.delete(statement_lines).where(statement_lines.c.statement_id == statement_id))
        if lines:
            await self.session.execute(sa.insert(statement_lines), lines)

    async def statement(self, statement_id: uuid.UUID, principal: Principal | None = None, *,
                        for_update: bool = False) -> Row[Any] | None:
        query = select(statements).where(statements.c.id == statement_id)
        if principal is not None:
            query = query.where(scope_of(principal, statements))
        return await self.one(query.with_for_update() if for_update else query)

    async def lines_of(self, statement_id: uuid.UUID) -> list[Row[Any]]:
        return await self.all(select(statement_lines).where(statement_lines.c.statement_id == statement_id)
                              .order_by(statement_lines.c.position))

    async def save_line(self, line_id: uuid.UUID, **values: Any) -> None:
        await self.session.execute(update(statement_lines).where(statement_lines.c.id == line_id).values(**values))

    async def list_statements(self, principal: Principal, *, after: list[Any] | None, limit: int,
                              customer_id: uuid.UUID | None, status: str) -> list[Row[Any]]:
        query = select(statements).where(scope_of(principal, statements))
        if customer_id is not None:
            query = query.where(statements.c.customer_id == customer_id)
        if status:
            query = query.where(statements.c.status == status)
        if (bound := _after(statements, after)) is not None:
            query = query.where(bound)
        return await self.all(query.order_by(statements.c.created_at.desc(), statements.c.id.desc()).limit(limit))

    # Reports ------------------------------------------------------------------------------------

    async def aging_items(self, principal: Principal, group_column: str, currency: str) -> list[Row[Any]]:
        """Open invoice balances (with due dates) and unapplied credit (without)."""
        inv_key = invoices.c[group_column]
        open_invoices = (select(inv_key.label("key"), invoices.c.currency,
                                (invoices.c.total - invoices.c.allocated).label("amount"),
                                invoices.c.due_on)
                         .where(scope_of(principal, invoices), invoices.c.kind == "invoice",
                                invoices.c.status == "open"))
        credits = (select(inv_key.label("key"), invoices.c.currency,
                          (invoices.c.total - invoices.c.allocated).label("amount"),
                          sa.null().cast(sa.Date).label("due_on"))
                   .where(scope_of(principal, invoices), invoices.c.kind == "credit_note",
                          invoices.c.status == "open"))
        unallocated = (select(payments.c[group_column].label("key"), payments.c.currency,
                              (payments.c.amount - payments.c.allocated_invoices).label("amount"),
                              sa.null().cast(sa.Date).label("due_on"))
                       .where(scope_of(principal, payments), payments.c.allocated_invoices < payments.c.amount))
        if currency:
            open_invoices = open_invoices.where(invoices.c.currency == currency)
            credits = credits.where(invoices.c.currency == currency)
            unallocated = unallocated.where(payments.c.currency == currency)
        return await self.all(sa.union_all(open_invoices, credits, unallocated))

    async def customer_names(self, customer_ids: list[uuid.UUID]) -> dict[str, str]:
        rows = await self.all(select(contracts.c.customer_id, contracts.c.customer_name)
                              .where(contracts.c.customer_id.in_(customer_ids), contracts.c.customer_name != "")
                              .order_by(contracts.c.signed_on))
        return {str(r.customer_id): r.customer_name for r in rows}  # the latest contract's name wins

    async def awaiting_payment(self, principal: Principal, owner_id: str, today: dt.date) -> list[Row[Any]]:
        outstanding = instalments.c.amount - instalments.c.received
        live = instalments.c.state != InstalmentState.VOID.value
        query = (select(contracts.c.id, contracts.c.contract_number, contracts.c.customer_id,
                        contracts.c.customer_name, contracts.c.owner_id, contracts.c.amount, contracts.c.currency,
                        func.sum(sa.case((live, instalments.c.received), else_=0)).label("received"),
                        func.sum(sa.case((live, outstanding), else_=0)).label("outstanding"),
                        func.sum(sa.case((sa.and_(live, instalments.c.due_date < today), outstanding), else_=0))
                        .label("overdue"),
                        func.min(sa.case((sa.and_(live, outstanding > 0), instalments.c.due_date))).label("next_due"),
                        func.count().filter(sa.and_(live, outstanding > 0, instalments.c.due_date < today))
                        .label("overdue_count"))
                 .join(instalments, instalments.c.contract_id == contracts.c.id)
                 .where(scope_of(principal, contracts), contracts.c.status == "signed")
                 .group_by(contracts.c.id)
                 .having(func.sum(sa.case((live, outstanding), else_=0)) > 0)
                 .order_by(sa.text("overdue DESC"), sa.text("next_due"), contracts.c.contract_number))
        if owner_id:
            query = query.where(contracts.c.owner_id == owner_id)
        return await self.all(query)


def _invoice_description(r: Row[Any]) -> str:
    label = "credit note" if r.kind == "credit_note" else "invoice"
    return f"{label} {r.sap_billing_document}" if r.sap_billing_document else label


def outstanding_of(row: Row[Any]) -> Decimal:
    return Decimal(row.amount) - Decimal(row.received)
