"""Key-customer renewals (R-DASH-02) and the pipeline matrix (R-DASH-03), joined from the read
models when asked, within the caller's data scope and the level asked for. Customers and their
opportunities are placed where the customer is now."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import and_, func, literal, select
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.ext.asyncio import AsyncSession

from crm_insights.adapters.dashboard_queries import has_signed, visible
from crm_insights.adapters.tables import (
    customers,
    follow_ups,
    invoice_allocations,
    invoices,
    opportunities,
    signed_contracts,
)
from crm_insights.domain.targets import Level
from crmkit.auth import Principal

RENEWAL_HORIZON_MONTHS = 6
HISTORY_YEARS = 2


@dataclass(frozen=True)
class KeyRenewal:
    customer_id: uuid.UUID
    customer_name: str
    owner_id: str
    signed_two_years: Decimal
    contract_id: uuid.UUID
    end_date: dt.date
    last_follow_up: dt.datetime | None
    open_opportunities: int
    open_opportunity_amount: Decimal
    overdue: Decimal


@dataclass(frozen=True)
class PipelineCell:
    pipeline_id: str
    stage_id: str
    person_id: str
    count: int
    amount: Decimal
    weighted: Decimal


def _months_later(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + day.month - 1 + months
    year, month = index // 12, index % 12 + 1
    for last in (day.day, 30, 29, 28):
        try:
            return dt.date(year, month, last)
        except ValueError:
            continue
    raise AssertionError("unreachable")


class ListQueries:
    def __init__(self, session: AsyncSession, currency: str) -> None:
        self._s = session
        self._currency = currency

    async def key_renewals(self, principal: Principal, level: Level, today: dt.date, limit: int) -> list[KeyRenewal]:
        c, k = customers.c, signed_contracts.c
        horizon = _months_later(today, RENEWAL_HORIZON_MONTHS)
        since = _months_later(today, -12 * HISTORY_YEARS)
        ending = (select(k.customer_id, k.id.label("contract_id"), k.end_date)
                  .where(k.end_date.between(today, horizon), k.terminated.is_(False))
                  .order_by(k.customer_id, k.end_date, k.id)
                  .ext(distinct_on(k.customer_id)).subquery("ending"))
        history = signed_contracts.alias("history")
        signed_total = (select(func.coalesce(func.sum(history.c.amount), 0))
                        .where(history.c.customer_id == c.id, history.c.signed_on >= since,
                               history.c.currency == self._currency).scalar_subquery())
        last_follow_up = select(func.max(follow_ups.c.occurred_at)).where(
            follow_ups.c.customer_id == c.id).scalar_subquery()
        open_count = select(func.count()).where(opportunities.c.customer_id == c.id,
                                                opportunities.c.status == "open").scalar_subquery()
        open_amount = select(func.coalesce(func.sum(opportunities.c.amount), 0)).where(
            opportunities.c.customer_id == c.id, opportunities.c.status == "open",
            opportunities.c.currency == self._currency).scalar_subquery()
        paid = (select(func.coalesce(func.sum(invoice_allocations.c.amount), 0))
                .where(invoice_allocations.c.invoice_id == invoices.c.id).scalar_subquery())
        overdue = (select(func.coalesce(func.sum(func.greatest(invoices.c.total - paid, 0)), 0))
                   .where(invoices.c.customer_id == c.id, invoices.c.kind == "invoice",
                          invoices.c.cancelled.is_(False), invoices.c.currency == self._currency,
                          invoices.c.due_on < today).scalar_subquery())
        rows = await self._s.execute(
            select(c.id, c.name, c.owner_id, signed_total.label("signed"), ending.c.contract_id, ending.c.end_date,
                   last_follow_up.label("last_follow_up"), open_count.label("open_count"),
                   open_amount.label("open_amount"), overdue.label("overdue"))
            .select_from(customers.join(ending, ending.c.customer_id == c.id))
            .where(visible(principal, level, owner=c.owner_id, team=c.team_id, department_path=c.department_path,
                           signed=literal(True)))
            .order_by(signed_total.desc(), ending.c.end_date, c.id).limit(limit))
        return [KeyRenewal(customer_id=r.id, customer_name=r.name, owner_id=r.owner_id,
                           signed_two_years=Decimal(r.signed), contract_id=r.contract_id, end_date=r.end_date,
                           last_follow_up=r.last_follow_up, open_opportunities=int(r.open_count),
                           open_opportunity_amount=Decimal(r.open_amount), overdue=Decimal(r.overdue))
                for r in rows]

    async def pipeline(self, principal: Principal, level: Level) -> list[PipelineCell]:
        o = opportunities.c
        weighted = func.sum(o.amount * o.probability / 100)
        rows = await self._s.execute(
            select(o.pipeline_id, o.stage_id, o.owner_id, func.count(), func.sum(o.amount), weighted)
            .where(and_(o.status == "open", o.currency == self._currency,
                        visible(principal, level, owner=o.owner_id, team=o.team_id, department_path=o.department_path,
                                signed=has_signed(o.customer_id))))
            .group_by(o.pipeline_id, o.stage_id, o.owner_id).order_by(o.pipeline_id, o.stage_id, o.owner_id))
        return [PipelineCell(pipeline_id=p, stage_id=s, person_id=person, count=int(n), amount=Decimal(a),
                             weighted=Decimal(w).quantize(Decimal("0.01"))) for p, s, person, n, a, w in rows]
