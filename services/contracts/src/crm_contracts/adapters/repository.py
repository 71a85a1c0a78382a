"""Reads and writes of contracts, plans, versions, approval rules, steps and delegations. Every
contract read applies the caller's data scope (R-SEC-02); an approver also sees the contracts
whose steps name them."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, exists, func, insert, literal, or_, select, true, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from crm_contracts.adapters.tables import (
    approval_rules,
    approval_steps,
    contract_versions,
    contracts,
    delegations,
    instalments,
    number_counters,
)
from crm_contracts.domain import approvals as ap
from crm_contracts.domain.model import Contract, Instalment, Line, Status
from crmkit.auth import DataScope, Principal
from crmkit.scopes import scope_clause

SIGNED_STATES = [s.value for s in (Status.SIGNED, Status.ACTIVE, Status.EXPIRED, Status.TERMINATED,
                                   Status.RENEWED)]


def contract_scope(principal: Principal) -> ColumnElement[bool]:
    """The data scope, plus: finance (SIGNED) sees signed contracts; anyone sees the contracts
    they are (or were) asked to approve."""
    if principal.data_scope is DataScope.ALL:
        return true()
    own = scope_clause(principal, owner=contracts.c.owner_id, team=contracts.c.team_id,
                       department_path=contracts.c.department_path, signed=contracts.c.status.in_(SIGNED_STATES))
    asked = exists().where(approval_steps.c.contract_id == contracts.c.id,
                           approval_steps.c.approver_ids.contains([principal.subject]))
    delegated = exists().where(
        approval_steps.c.contract_id == contracts.c.id, approval_steps.c.state == ap.StepState.PENDING.value,
        exists().where(delegations.c.delegate_id == principal.subject, delegations.c.revoked.is_(False),
                       delegations.c.start_date <= func.current_date(), delegations.c.end_date >= func.current_date(),
                       approval_steps.c.approver_ids.contains(func.jsonb_build_array(delegations.c.delegator_id))))
    return or_(own, asked, delegated) if principal.kind == "user" else own


def _line_out(d: dict[str, str]) -> Line:
    return Line(product=d["product"], specification=d["specification"], quantity=Decimal(d["quantity"]),
                unit=d.get("unit", "pcs"), unit_price=Decimal(d["unit_price"]),
                discount_percent=Decimal(d["discount_percent"]), tax_rate_percent=Decimal(d["tax_rate_percent"]),
                product_line=d.get("product_line", ""), line_id=d.get("line_id", ""))


def line_in(li: Line) -> dict[str, str]:
    return {"line_id": li.line_id, "product": li.product, "specification": li.specification,
            "quantity": str(li.quantity), "unit": li.unit, "unit_price": str(li.unit_price),
            "discount_percent": str(li.discount_percent), "tax_rate_percent": str(li.tax_rate_percent),
            "product_line": li.product_line}


def _contract(row: Row[Any], plan: tuple[Instalment, ...]) -> Contract:
    return Contract(
        id=row.id, number=row.number, customer_id=row.customer_id, currency=row.currency,
        lines=tuple(_line_out(d) for d in row.lines), owner_id=row.owner_id, team_id=row.team_id,
        department_path=row.department_path, status=Status(row.status), title=row.title,
        customer_name=row.customer_name, customer_type=row.customer_type, opportunity_id=row.opportunity_id,
        quote_id=row.quote_id, predecessor_id=row.predecessor_id, successor_id=row.successor_id,
        start_date=row.start_date, end_date=row.end_date, sign_date=row.sign_date, renewal_date=row.renewal_date,
        instalments=plan, version=row.version, revision=row.revision, termination_reason=row.termination_reason,
        approval_rule_id=row.approval_rule_id, approval_attempt=row.approval_attempt,
        returned_position=row.returned_position, submitted_by=row.submitted_by,
        submitted_department_path=row.submitted_department_path, created_by=row.created_by, created_at=row.created_at,
        updated_at=row.updated_at, expiring_noticed_for=row.expiring_noticed_for, signed_by=row.signed_by)


def _values(c: Contract) -> dict[str, Any]:
    t = c.totals
    return {"number": c.number, "status": c.status.value, "title": c.title, "customer_id": c.customer_id,
            "customer_name": c.customer_name, "customer_type": c.customer_type, "opportunity_id": c.opportunity_id,
            "quote_id": c.quote_id, "predecessor_id": c.predecessor_id, "successor_id": c.successor_id,
            "currency": c.currency, "lines": [line_in(li) for li in c.lines], "net_total": t.net,
            "tax_total": t.tax, "amount": t.gross, "start_date": c.start_date, "end_date": c.end_date,
            "sign_date": c.sign_date, "renewal_date": c.renewal_date, "version": c.version,
            "termination_reason": c.termination_reason, "approval_rule_id": c.approval_rule_id,
            "approval_attempt": c.approval_attempt, "returned_position": c.returned_position,
            "submitted_by": c.submitted_by, "submitted_department_path": c.submitted_department_path,
            "expiring_noticed_for": c.expiring_noticed_for, "owner_id": c.owner_id, "team_id": c.team_id,
            "department_path": c.department_path, "signed_by": c.signed_by}


def _step(row: Row[Any]) -> ap.Step:
    return ap.Step(
        id=row.id, contract_id=row.contract_id, attempt=row.attempt, position=row.position, name=row.name,
        spec=ap.parse_approver(row.spec, "spec"), due_hours=row.due_hours, state=ap.StepState(row.state),
        approver_ids=tuple(row.approver_ids), mode=ap.Mode(row.mode), fallback=row.fallback,
        approved_by=tuple(row.approved_by), decided_by=row.decided_by, acting_for=row.acting_for, reason=row.reason,
        chosen=row.chosen, reached_at=row.reached_at, due_at=row.due_at, decided_at=row.decided_at,
        reminded_at=row.reminded_at)


def _step_values(s: ap.Step) -> dict[str, Any]:
    return {"state": s.state.value, "approver_ids": list(s.approver_ids), "mode": s.mode.value,
            "fallback": s.fallback, "approved_by": list(s.approved_by), "decided_by": s.decided_by,
            "acting_for": s.acting_for, "reason": s.reason, "reached_at": s.reached_at, "due_at": s.due_at,
            "decided_at": s.decided_at, "reminded_at": s.reminded_at}


def _rule(row: Row[Any]) -> ap.Rule:
    return ap.parse_rule(row.id, row.name, row.priority, row.active, row.definition, row.revision)


def _delegation(row: Row[Any]) -> ap.Delegation:
    return ap.Delegation(row.id, row.delegator_id, row.delegate_id, row.start_date, row.end_date, row.revoked)


class Repository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # Numbers --------------------------------------------------------------------------------

    async def next_number(self, year: int) -> int:
        """The year's counter, incremented under its row lock: concurrent drafts queue on it, and
        a rolled-back draft gives its number back, so numbers never repeat."""
        stmt = pg_insert(number_counters).values(year=year, last=1)
        stmt = stmt.on_conflict_do_update(index_elements=["year"], set_={"last": number_counters.c.last + 1})
        return int((await self.session.execute(stmt.returning(number_counters.c.last))).scalar_one())

    # Contracts ------------------------------------------------------------------------------

    async def _plans(self, ids: list[uuid.UUID]) -> dict[uuid.UUID, tuple[Instalment, ...]]:
        if not ids:
            return {}
        rows = await self.session.execute(select(instalments).where(instalments.c.contract_id.in_(ids))
                                          .order_by(instalments.c.contract_id, instalments.c.sequence))
        out: dict[uuid.UUID, list[Instalment]] = {}
        for r in rows:
            out.setdefault(r.contract_id, []).append(Instalment(r.sequence, r.due_date, r.amount, r.label, str(r.id)))
        return {k: tuple(v) for k, v in out.items()}

    async def _many(self, rows: list[Row[Any]]) -> list[Contract]:
        plans = await self._plans([r.id for r in rows])
        return [_contract(r, plans.get(r.id, ())) for r in rows]

    async def add(self, c: Contract) -> Contract:
        row = (await self.session.execute(insert(contracts).values(id=c.id, created_by=c.created_by, revision=1,
                                                                   **_values(c)).returning(contracts))).one()
        await self.replace_plan(c.id, list(c.instalments))
        return _contract(row, await self.plan(c.id))

    async def get(self, principal: Principal | None, contract_id: uuid.UUID, *,
                  for_update: bool = False) -> Contract | None:
        query = select(contracts).where(contracts.c.id == contract_id)
        if principal is not None:
            query = query.where(contract_scope(principal))
        if for_update:
            query = query.with_for_update(of=contracts)
        row = (await self.session.execute(query)).first()
        return _contract(row, await self.plan(row.id)) if row else None

    async def by_quote(self, quote_id: uuid.UUID) -> Contract | None:
        row = (await self.session.execute(select(contracts).where(contracts.c.quote_id == quote_id))).first()
        return _contract(row, await self.plan(row.id)) if row else None

    async def move_customer(self, customer_id: uuid.UUID, *, to_customer_id: uuid.UUID, owner_id: str,
                            team_id: str, department_path: str) -> int:
        """Every contract of a customer, whatever its status, into `to_customer_id` and its
        owner's scope; `signed_by` stays. Contracts already there are left alone (a redelivered
        event changes nothing). Returns how many moved."""
        target = tuple_(literal(to_customer_id), literal(owner_id), literal(team_id), literal(department_path))
        result = await self.session.execute(
            update(contracts).where(
                contracts.c.customer_id == customer_id,
                tuple_(contracts.c.customer_id, contracts.c.owner_id, contracts.c.team_id,
                       contracts.c.department_path).is_distinct_from(target))
            .values(customer_id=to_customer_id, owner_id=owner_id, team_id=team_id, department_path=department_path,
                    revision=contracts.c.revision + 1, updated_at=func.now()))
        return result.rowcount or 0  # type: ignore[attr-defined]

    async def rename_customer(self, customer_id: uuid.UUID, name: str, customer_type: str,
                              statuses: tuple[str, ...]) -> int:
        """The customer's current name and type on its contracts in `statuses` (not yet signed)."""
        result = await self.session.execute(
            update(contracts).where(
                contracts.c.customer_id == customer_id, contracts.c.status.in_(statuses),
                tuple_(contracts.c.customer_name, contracts.c.customer_type).is_distinct_from(
                    tuple_(literal(name), literal(customer_type))))
            .values(customer_name=name, customer_type=customer_type, revision=contracts.c.revision + 1,
                    updated_at=func.now()))
        return result.rowcount or 0  # type: ignore[attr-defined]

    async def save(self, c: Contract) -> Contract:
        row = (await self.session.execute(
            update(contracts).where(contracts.c.id == c.id)
            .values(updated_at=func.now(), revision=contracts.c.revision + 1, **_values(c))
            .returning(contracts))).one()
        return _contract(row, await self.plan(c.id))

    async def list(self, principal: Principal, *, after: list[Any] | None, limit: int,
                   filters: dict[str, Any]) -> list[Contract]:
        query = select(contracts).where(contract_scope(principal))
        for name, value in filters.items():
            if value:
                query = query.where(contracts.c[name] == value)
        if after is not None:
            bound = tuple_(literal(dt.datetime.fromisoformat(after[0])), literal(uuid.UUID(after[1])))
            query = query.where(tuple_(contracts.c.created_at, contracts.c.id) < bound)
        rows = (await self.session.execute(
            query.order_by(contracts.c.created_at.desc(), contracts.c.id.desc()).limit(limit))).all()
        return await self._many(list(rows))

    async def ending_between(self, principal: Principal | None, first: dt.date, last: dt.date, *,
                             limit: int = 1000, for_update: bool = False) -> list[Contract]:
        query = select(contracts).where(contracts.c.status.in_([Status.SIGNED.value, Status.ACTIVE.value]),
                                        contracts.c.end_date >= first, contracts.c.end_date <= last)
        if principal is not None:
            query = query.where(contract_scope(principal))
        query = query.order_by(contracts.c.end_date, contracts.c.id).limit(limit)
        if for_update:
            query = query.with_for_update(skip_locked=True)
        return await self._many(list((await self.session.execute(query)).all()))

    async def due_for_lifecycle(self, today: dt.date, limit: int) -> list[Contract]:
        """Signed contracts whose term began, contracts in force whose term ended."""
        query = (select(contracts).where(or_(
            and_(contracts.c.status == Status.SIGNED.value, contracts.c.start_date <= today),
            and_(contracts.c.status.in_([Status.SIGNED.value, Status.ACTIVE.value]), contracts.c.end_date < today)))
            .order_by(contracts.c.id).limit(limit).with_for_update(skip_locked=True))
        return await self._many(list((await self.session.execute(query)).all()))

    # Plans ----------------------------------------------------------------------------------

    async def plan(self, contract_id: uuid.UUID) -> tuple[Instalment, ...]:
        return (await self._plans([contract_id])).get(contract_id, ())

    async def replace_plan(self, contract_id: uuid.UUID, plan: list[Instalment]) -> None:
        await self.session.execute(delete(instalments).where(instalments.c.contract_id == contract_id))
        if plan:
            await self.session.execute(insert(instalments), [
                {"id": uuid.UUID(i.instalment_id) if i.instalment_id else uuid.uuid4(), "contract_id": contract_id,
                 "sequence": i.sequence, "due_date": i.due_date, "amount": i.amount, "label": i.label}
                for i in plan])

    # Versions -------------------------------------------------------------------------------

    async def add_version(self, contract_id: uuid.UUID, version: int, snapshot: dict[str, Any], reason: str,
                          actor: str) -> None:
        await self.session.execute(insert(contract_versions).values(
            contract_id=contract_id, version=version, snapshot=snapshot, reason=reason, created_by=actor))

    async def versions(self, contract_id: uuid.UUID) -> list[Row[Any]]:
        return list((await self.session.execute(
            select(contract_versions).where(contract_versions.c.contract_id == contract_id)
            .order_by(contract_versions.c.version))).all())

    # Approval rules -------------------------------------------------------------------------

    async def rules(self) -> list[ap.Rule]:
        rows = await self.session.execute(select(approval_rules).order_by(approval_rules.c.priority,
                                                                          approval_rules.c.name))
        return [_rule(r) for r in rows]

    async def rule(self, rule_id: uuid.UUID, *, for_update: bool = False) -> ap.Rule | None:
        query = select(approval_rules).where(approval_rules.c.id == rule_id)
        if for_update:
            query = query.with_for_update()
        row = (await self.session.execute(query)).first()
        return _rule(row) if row else None

    async def rule_name_taken(self, name: str, other_than: uuid.UUID | None = None) -> bool:
        query = select(func.count()).select_from(approval_rules).where(
            func.lower(approval_rules.c.name) == name.lower())
        if other_than is not None:
            query = query.where(approval_rules.c.id != other_than)
        return bool(await self.session.scalar(query))

    async def put_rule(self, rule: ap.Rule, actor: str, *, new: bool) -> ap.Rule:
        values = {"name": rule.name, "priority": rule.priority, "active": rule.active,
                  "definition": rule.definition(), "updated_by": actor}
        if new:
            stmt = insert(approval_rules).values(id=rule.id, revision=1, **values)
        else:
            stmt = (update(approval_rules).where(approval_rules.c.id == rule.id)
                    .values(revision=approval_rules.c.revision + 1, updated_at=func.now(), **values))
        return _rule((await self.session.execute(stmt.returning(approval_rules))).one())

    # Approval steps -------------------------------------------------------------------------

    async def add_steps(self, steps: list[ap.Step]) -> None:
        await self.session.execute(insert(approval_steps), [
            {"id": s.id, "contract_id": s.contract_id, "attempt": s.attempt, "position": s.position, "name": s.name,
             "spec": s.spec.to_dict(), "due_hours": s.due_hours, "chosen": s.chosen, **_step_values(s)}
            for s in steps])

    async def save_step(self, s: ap.Step) -> ap.Step:
        row = (await self.session.execute(update(approval_steps).where(approval_steps.c.id == s.id)
                                          .values(**_step_values(s)).returning(approval_steps))).one()
        return _step(row)

    async def steps(self, contract_id: uuid.UUID, attempt: int | None = None) -> list[ap.Step]:
        query = select(approval_steps).where(approval_steps.c.contract_id == contract_id)
        if attempt is not None:
            query = query.where(approval_steps.c.attempt == attempt)
        rows = await self.session.execute(query.order_by(approval_steps.c.attempt, approval_steps.c.position))
        return [_step(r) for r in rows]

    async def step(self, step_id: uuid.UUID) -> ap.Step | None:
        row = (await self.session.execute(select(approval_steps).where(approval_steps.c.id == step_id))).first()
        return _step(row) if row else None

    async def pending_for(self, user_ids: list[str]) -> list[tuple[ap.Step, Contract]]:
        if not user_ids:
            return []
        rows = (await self.session.execute(
            select(approval_steps).where(approval_steps.c.state == ap.StepState.PENDING.value,
                                         or_(*[approval_steps.c.approver_ids.contains([u]) for u in user_ids]))
            .order_by(approval_steps.c.reached_at, approval_steps.c.id))).all()
        steps = [_step(r) for r in rows]
        found = {c.id: c for c in await self._many(list((await self.session.execute(
            select(contracts).where(contracts.c.id.in_([s.contract_id for s in steps])))).all()))} if steps else {}
        return [(s, found[s.contract_id]) for s in steps if s.contract_id in found]

    async def overdue_steps(self, now: dt.datetime, limit: int) -> list[ap.Step]:
        rows = await self.session.execute(
            select(approval_steps).where(approval_steps.c.state == ap.StepState.PENDING.value,
                                         approval_steps.c.due_at <= now, approval_steps.c.reminded_at.is_(None))
            .order_by(approval_steps.c.due_at).limit(limit).with_for_update(skip_locked=True))
        return [_step(r) for r in rows]

    # Delegations ----------------------------------------------------------------------------

    async def delegations_to(self, delegate_id: str) -> list[ap.Delegation]:
        rows = await self.session.execute(select(delegations).where(delegations.c.delegate_id == delegate_id,
                                                                    delegations.c.revoked.is_(False)))
        return [_delegation(r) for r in rows]

    async def delegations_of(self, user_id: str) -> list[ap.Delegation]:
        rows = await self.session.execute(
            select(delegations).where(or_(delegations.c.delegate_id == user_id, delegations.c.delegator_id == user_id))
            .order_by(delegations.c.start_date, delegations.c.id))
        return [_delegation(r) for r in rows]

    async def add_delegation(self, d: ap.Delegation) -> None:
        await self.session.execute(insert(delegations).values(
            id=d.id, delegator_id=d.delegator_id, delegate_id=d.delegate_id, start_date=d.start_date,
            end_date=d.end_date, revoked=False))

    async def delegation(self, delegation_id: uuid.UUID, *, for_update: bool = False) -> ap.Delegation | None:
        query = select(delegations).where(delegations.c.id == delegation_id)
        if for_update:
            query = query.with_for_update()
        row = (await self.session.execute(query)).first()
        return _delegation(row) if row else None

    async def revoke_delegation(self, delegation_id: uuid.UUID) -> None:
        await self.session.execute(update(delegations).where(delegations.c.id == delegation_id).values(revoked=True))
