"""Reads and writes of leads and assignment rules, inside the caller's data scope; the locks
that keep round-robin assignment fair under concurrency."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, and_, func, insert, literal, select, text, tuple_, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from crm_customers.adapters import sensitive
from crm_customers.adapters.lead_tables import lead_assignment_rules, lead_assignments, leads
from crm_customers.domain.assignment import Pool, Rule
from crm_customers.domain.leads import Lead, LeadStatus
from crmkit.auth import Principal
from crmkit.pagination import invalid_cursor
from crmkit.scopes import scope_clause

# Bound into each sealed lead phone (R-SEC-04), like contacts' phones.
LEAD_PHONE = "leads.phone"


def leads_in_scope(principal: Principal) -> ColumnElement[bool]:
    return scope_clause(principal, owner=leads.c.owner_id, team=leads.c.team_id,
                        department_path=leads.c.department_path)


def _lead(row: Row[Any]) -> Lead:
    return Lead(
        id=row.id, name=row.name, source=row.source, department_path=row.department_path,
        phone=sensitive.reveal(row.phone, LEAD_PHONE), email=row.email, company=row.company, title=row.title,
        region=row.region, industry=row.industry, campaign=row.campaign, channel=row.channel,
        status=LeadStatus(row.status), owner_id=row.owner_id, team_id=row.team_id,
        assignment_rule_id=row.assignment_rule_id, unassigned_reason=row.unassigned_reason,
        customer_id=row.customer_id, contact_id=row.contact_id, opportunity_id=row.opportunity_id,
        converted_at=row.converted_at, won_amount=row.won_amount, won_currency=row.won_currency,
        version=row.version, created_at=row.created_at, updated_at=row.updated_at, created_by=row.created_by)


def _lead_values(lead: Lead) -> dict[str, Any]:
    return {
        "name": lead.name, "phone": sensitive.seal(lead.phone, LEAD_PHONE) if lead.phone else "",
        "email": lead.email, "company": lead.company, "title": lead.title, "region": lead.region,
        "industry": lead.industry, "source": lead.source, "campaign": lead.campaign, "channel": lead.channel,
        "status": lead.status.value, "owner_id": lead.owner_id, "team_id": lead.team_id,
        "department_path": lead.department_path, "assignment_rule_id": lead.assignment_rule_id,
        "unassigned_reason": lead.unassigned_reason, "customer_id": lead.customer_id,
        "contact_id": lead.contact_id, "opportunity_id": lead.opportunity_id, "converted_at": lead.converted_at,
        "won_amount": lead.won_amount, "won_currency": lead.won_currency, "version": lead.version,
    }


def _rule(row: Row[Any]) -> Rule:
    return Rule(id=row.id, name=row.name, priority=row.priority, regions=tuple(row.regions),
                industries=tuple(row.industries), user_ids=tuple(row.user_ids), team_id=row.team_id,
                department_path=row.department_path, cap_count=row.cap_count, cap_days=row.cap_days,
                active=row.active, cursor=row.cursor, version=row.version)


def _rule_values(rule: Rule) -> dict[str, Any]:
    return {"name": rule.name, "priority": rule.priority, "regions": list(rule.regions),
            "industries": list(rule.industries), "user_ids": list(rule.user_ids), "team_id": rule.team_id,
            "department_path": rule.department_path, "cap_count": rule.cap_count, "cap_days": rule.cap_days,
            "active": rule.active, "version": rule.version}


class LeadRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # Leads ------------------------------------------------------------------------------------

    async def add_many(self, items: Sequence[Lead]) -> list[Lead]:
        if not items:
            return []
        rows = (await self.session.execute(
            insert(leads).returning(leads),
            [{"id": lead.id, "created_by": lead.created_by, **_lead_values(lead)} for lead in items])).all()
        by_id = {row.id: _lead(row) for row in rows}
        return [by_id[lead.id] for lead in items]

    async def get(self, principal: Principal, lead_id: uuid.UUID, *, for_update: bool = False) -> Lead | None:
        query = select(leads).where(leads.c.id == lead_id, leads_in_scope(principal))
        if for_update:
            query = query.with_for_update()
        row = (await self.session.execute(query)).first()
        return _lead(row) if row else None

    async def save(self, lead: Lead) -> Lead:
        row = (await self.session.execute(
            update(leads).where(leads.c.id == lead.id)
            .values(**_lead_values(lead), updated_at=func.now()).returning(leads))).one()
        return _lead(row)

    async def list(self, principal: Principal, *, after: list[Any] | None, limit: int,
                   filters: dict[str, Any]) -> list[Lead]:
        query = select(leads).where(leads_in_scope(principal))
        for name in ("owner_id", "source", "campaign"):
            if filters.get(name):
                query = query.where(leads.c[name] == filters[name])
        if filters.get("status"):
            query = query.where(leads.c.status == filters["status"])
        if filters.get("unassigned"):
            query = query.where(leads.c.owner_id == "")
        if after:
            try:
                key = (dt.datetime.fromisoformat(after[0]), uuid.UUID(after[1]))
            except (ValueError, IndexError, TypeError):
                raise invalid_cursor() from None
            query = query.where(tuple_(leads.c.created_at, leads.c.id) < key)
        rows = (await self.session.execute(
            query.order_by(leads.c.created_at.desc(), leads.c.id.desc()).limit(limit))).all()
        return [_lead(r) for r in rows]

    async def by_opportunity(self, opportunity_id: uuid.UUID, *, for_update: bool = False) -> Lead | None:
        query = select(leads).where(leads.c.opportunity_id == opportunity_id)
        if for_update:
            query = query.with_for_update()
        row = (await self.session.execute(query)).first()
        return _lead(row) if row else None

    async def record_assignments(self, items: Sequence[tuple[uuid.UUID, str, uuid.UUID | None]],
                                 assigned_by: str) -> None:
        if items:
            await self.session.execute(insert(lead_assignments), [
                {"lead_id": lead_id, "owner_id": owner, "rule_id": rule_id, "assigned_by": assigned_by}
                for lead_id, owner, rule_id in items])

    async def attribution(self, principal: Principal, since: dt.datetime | None,
                          until: dt.datetime | None) -> list[Row[Any]]:
        """Per source/campaign/channel: leads, conversions, wins, and won amounts per currency."""
        conditions = [leads_in_scope(principal)]
        if since:
            conditions.append(leads.c.created_at >= since)
        if until:
            conditions.append(leads.c.created_at < until)
        won = leads.c.won_amount.is_not(None)
        query = (
            select(leads.c.source, leads.c.campaign, leads.c.channel, leads.c.won_currency,
                   func.count().label("leads"),
                   func.count().filter(leads.c.status == LeadStatus.CONVERTED.value).label("converted"),
                   func.count().filter(won).label("won"),
                   func.coalesce(func.sum(leads.c.won_amount), literal(Decimal(0))).label("won_amount"))
            .where(and_(*conditions))
            .group_by(leads.c.source, leads.c.campaign, leads.c.channel, leads.c.won_currency)
            .order_by(leads.c.source, leads.c.campaign, leads.c.channel, leads.c.won_currency))
        return list((await self.session.execute(query)).all())

    # Rules -------------------------------------------------------------------------------------

    async def rules(self) -> list[Rule]:
        rows = (await self.session.execute(
            select(lead_assignment_rules).order_by(lead_assignment_rules.c.priority,
                                                   lead_assignment_rules.c.id))).all()
        return [_rule(r) for r in rows]

    async def rule(self, rule_id: uuid.UUID, *, for_update: bool = False) -> Rule | None:
        query = select(lead_assignment_rules).where(lead_assignment_rules.c.id == rule_id)
        if for_update:
            query = query.with_for_update()
        row = (await self.session.execute(query)).first()
        return _rule(row) if row else None

    async def add_rule(self, rule: Rule, created_by: str) -> Rule:
        row = (await self.session.execute(
            insert(lead_assignment_rules).values(id=rule.id, created_by=created_by, **_rule_values(rule))
            .returning(lead_assignment_rules))).one()
        return _rule(row)

    async def save_rule(self, rule: Rule) -> Rule:
        row = (await self.session.execute(
            update(lead_assignment_rules).where(lead_assignment_rules.c.id == rule.id)
            .values(**_rule_values(rule), updated_at=func.now()).returning(lead_assignment_rules))).one()
        return _rule(row)

    async def lock_pools(self, rule_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Pool]:
        """Locks the rules' cursor rows, then each person of their pools, and reads the cursors and
        each person's rolling count (assignments by any rule within the rule's cap_days).

        Concurrent assigners take turns per pool: the rule row (FOR UPDATE) serialises the
        rotation, a transaction-scoped advisory lock per person serialises the capacity count of
        someone who is in several pools. Locks are always taken in one order (rules by id, then
        people by name), so two transactions never wait on each other in a cycle."""
        if not rule_ids:
            return {}
        rows = (await self.session.execute(
            select(lead_assignment_rules).where(lead_assignment_rules.c.id.in_(rule_ids))
            .order_by(lead_assignment_rules.c.id).with_for_update())).all()
        rules = [_rule(r) for r in rows]
        people = sorted({p for r in rules for p in r.user_ids})
        for person in people:
            await self.session.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
                                       {"key": f"crm.customers.lead-capacity:{person}"})
        pools: dict[uuid.UUID, Pool] = {}
        for rule in rules:
            loads = dict.fromkeys(rule.user_ids, 0)
            if rule.cap_count:
                since = func.now() - dt.timedelta(days=rule.cap_days)
                counted = (await self.session.execute(
                    select(lead_assignments.c.owner_id, func.count())
                    .where(lead_assignments.c.owner_id.in_(rule.user_ids), lead_assignments.c.assigned_at > since)
                    .group_by(lead_assignments.c.owner_id))).all()
                loads.update({owner: int(n) for owner, n in counted})
            pools[rule.id] = Pool(rule=rule, cursor=rule.cursor, loads=loads)
        return pools

    async def save_cursors(self, pools: dict[uuid.UUID, Pool]) -> None:
        for pool in pools.values():
            if pool.cursor != pool.rule.cursor:
                await self.session.execute(update(lead_assignment_rules)
                                           .where(lead_assignment_rules.c.id == pool.rule.id)
                                           .values(cursor=pool.cursor))
