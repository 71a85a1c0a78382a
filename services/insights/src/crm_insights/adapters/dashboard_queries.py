"""The dashboard's sums, joined from the read models when asked. Every query includes the caller's
data scope (`crmkit.scopes.scope_clause`) and the level asked for, on the columns that place each
fact: a signature where its signer stood when signing, money received and owed with the customer's
current owner (or, before the customer is known here, the owner the billing event named)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, func, literal, select, true
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.ext.asyncio import AsyncSession

from crm_insights.adapters.tables import (
    customers,
    instalments,
    invoice_allocations,
    invoices,
    payments,
    signed_contracts,
)
from crm_insights.domain.figures import ZERO, PersonFigures
from crm_insights.domain.periods import Period
from crm_insights.domain.targets import Level
from crmkit.auth import Principal
from crmkit.scopes import scope_clause


@dataclass(frozen=True)
class Sums:
    signed: Decimal = ZERO
    signed_new_customers: Decimal = ZERO
    new_customers: int = 0
    due: Decimal = ZERO
    collected: Decimal = ZERO
    outstanding: Decimal = ZERO
    overdue: Decimal = ZERO


def _level_clause(principal: Principal, level: Level, *, owner: Any, team: Any,
                  department_path: Any) -> ColumnElement[bool]:
    match level:
        case Level.PERSON:
            return owner == principal.subject  # type: ignore[no-any-return]
        case Level.TEAM:
            return team.in_(principal.team_ids) if principal.team_ids else owner == principal.subject  # type: ignore[no-any-return]
        case Level.DEPARTMENT:
            return department_path.startswith(principal.department_path, autoescape=True)  # type: ignore[no-any-return]
    return true()


def visible(principal: Principal, level: Level, *, owner: Any, team: Any, department_path: Any,
            signed: Any) -> ColumnElement[bool]:
    """In the caller's data scope, and within the level asked for."""
    return and_(scope_clause(principal, owner=owner, team=team, department_path=department_path, signed=signed),
                _level_clause(principal, level, owner=owner, team=team, department_path=department_path))


def _first_contracts() -> Any:
    """Each customer's first signed contract (R-CUS-08: the signature that made it a new customer)."""
    every = signed_contracts.alias("every_contract")  # an alias: not correlated with the outer query
    return (select(every.c.id).ext(distinct_on(every.c.customer_id))
            .order_by(every.c.customer_id, every.c.signed_at, every.c.id))


def _money_owner() -> tuple[Any, Any, Any]:
    """Owner, team and department money received and owed counts for (customer's place now)."""
    return (customers.c.owner_id, func.coalesce(customers.c.team_id, ""),
            func.coalesce(customers.c.department_path, "/"))


def has_signed(customer_id: Any) -> Any:
    """For finance's SIGNED scope: the customer has a signed contract."""
    signed = signed_contracts.alias("signed")
    return exists().where(signed.c.customer_id == customer_id)


class DashboardQueries:
    def __init__(self, session: AsyncSession, currency: str) -> None:
        self._s = session
        self._currency = currency

    def _signatures(self, principal: Principal, level: Level, period: Period) -> ColumnElement[bool]:
        c = signed_contracts.c
        return and_(c.signed_on.between(period.start, period.end), c.currency == self._currency,
                    visible(principal, level, owner=c.signed_by, team=c.team_id, department_path=c.department_path,
                             signed=literal(True)))

    def _payments(self, principal: Principal, level: Level, period: Period) -> tuple[Any, ColumnElement[bool]]:
        owner, team, department = _money_owner()
        owner = func.coalesce(owner, payments.c.owner_id)
        clause = and_(payments.c.received_on.between(period.start, period.end), payments.c.currency == self._currency,
                      visible(principal, level, owner=owner, team=team, department_path=department,
                               signed=has_signed(payments.c.customer_id)))
        return owner, clause

    async def sums(self, principal: Principal, level: Level, period: Period, today: dt.date) -> Sums:
        c = signed_contracts.c
        is_first = c.id.in_(_first_contracts())
        signed = (await self._s.execute(
            select(func.coalesce(func.sum(c.amount), 0),
                   func.coalesce(func.sum(c.amount).filter(is_first), 0),
                   func.count().filter(is_first))
            .where(self._signatures(principal, level, period)))).one()
        due = await self._s.scalar(
            select(func.coalesce(func.sum(instalments.c.amount), 0))
            .select_from(instalments.join(signed_contracts, c.id == instalments.c.contract_id))
            .where(instalments.c.due_date.between(period.start, period.end), instalments.c.currency == self._currency,
                   c.terminated.is_(False),
                   visible(principal, level, owner=c.signed_by, team=c.team_id, department_path=c.department_path,
                            signed=literal(True))))
        _, paid_in_period = self._payments(principal, level, period)
        collected = await self._s.scalar(
            select(func.coalesce(func.sum(payments.c.amount), 0))
            .select_from(payments.outerjoin(customers, customers.c.id == payments.c.customer_id))
            .where(paid_in_period))
        outstanding, overdue = await self._receivables(principal, level, min(period.end, today))
        return Sums(signed=Decimal(signed[0]), signed_new_customers=Decimal(signed[1]), new_customers=int(signed[2]),
                    due=Decimal(due or 0), collected=Decimal(collected or 0), outstanding=outstanding,
                    overdue=overdue)

    async def _receivables(self, principal: Principal, level: Level, as_of: dt.date) -> tuple[Decimal, Decimal]:
        """Invoiced by `as_of` and not paid by then (payments received, credit notes issued by
        then), and the part of it past due on that day."""
        credit_notes = invoices.alias("credit_notes")
        paid_on = func.coalesce(payments.c.received_on, credit_notes.c.issued_on)
        paid = (select(func.coalesce(func.sum(invoice_allocations.c.amount), 0))
                .select_from(invoice_allocations
                             .outerjoin(payments, payments.c.id == invoice_allocations.c.payment_id)
                             .outerjoin(credit_notes, credit_notes.c.id == invoice_allocations.c.payment_id))
                .where(invoice_allocations.c.invoice_id == invoices.c.id, paid_on <= as_of)
                .scalar_subquery())
        open_amount = func.greatest(invoices.c.total - paid, 0)
        owner, team, department = _money_owner()
        owner = func.coalesce(owner, invoices.c.owner_id)
        row = (await self._s.execute(
            select(func.coalesce(func.sum(open_amount), 0),
                   func.coalesce(func.sum(open_amount).filter(invoices.c.due_on < as_of), 0))
            .select_from(invoices.outerjoin(customers, customers.c.id == invoices.c.customer_id))
            .where(invoices.c.kind == "invoice", invoices.c.cancelled.is_(False),
                   invoices.c.currency == self._currency, invoices.c.issued_on <= as_of,
                   visible(principal, level, owner=owner, team=team, department_path=department,
                            signed=has_signed(invoices.c.customer_id))))).one()
        return Decimal(row[0]), Decimal(row[1])

    async def people(self, principal: Principal, level: Level, period: Period) -> list[PersonFigures]:
        """Each person's signed amount, new customers and collected amount in the period."""
        c = signed_contracts.c
        is_first = c.id.in_(_first_contracts())
        found: dict[str, PersonFigures] = {}
        for person, amount, new in await self._s.execute(
                select(c.signed_by, func.sum(c.amount), func.count().filter(is_first))
                .where(self._signatures(principal, level, period)).group_by(c.signed_by)):
            found[person] = PersonFigures(person, signed=Decimal(amount), new_customers=int(new))
        owner, paid_in_period = self._payments(principal, level, period)
        for person, amount in await self._s.execute(
                select(owner, func.sum(payments.c.amount))
                .select_from(payments.outerjoin(customers, customers.c.id == payments.c.customer_id))
                .where(paid_in_period).group_by(owner)):
            found.setdefault(person, PersonFigures(person)).collected = Decimal(amount)
        return list(found.values())
