"""Reads and writes of pipelines, opportunities, stage history and quotes, always inside the
caller's data scope; and the funnel as one SQL aggregate (R-OPP-04)."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, insert, literal, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from crm_opportunities.adapters.tables import (
    lost_reasons,
    opportunities,
    pipelines,
    quotes,
    requirement_requests,
    stage_history,
    stages,
)
from crm_opportunities.domain.model import (
    Opportunity,
    OpportunityStatus,
    Pipeline,
    Quote,
    QuoteStatus,
    Stage,
    StageChange,
)
from crm_opportunities.domain.money import PricedLine, Totals
from crmkit.auth import Principal
from crmkit.scopes import scope_clause


def opportunity_scope(principal: Principal) -> ColumnElement[bool]:
    return scope_clause(principal, owner=opportunities.c.owner_id, team=opportunities.c.team_id,
                        department_path=opportunities.c.department_path)


def quote_scope(principal: Principal) -> ColumnElement[bool]:
    return scope_clause(principal, owner=quotes.c.owner_id, team=quotes.c.team_id,
                        department_path=quotes.c.department_path)


def _opportunity(row: Row[Any]) -> Opportunity:
    return Opportunity(
        id=row.id, customer_id=row.customer_id, name=row.name, pipeline_id=row.pipeline_id, stage_id=row.stage_id,
        amount=row.amount, currency=row.currency, probability=row.probability,
        expected_close_date=row.expected_close_date, owner_id=row.owner_id, team_id=row.team_id,
        department_path=row.department_path, status=OpportunityStatus(row.status), lost_reason=row.lost_reason or "",
        lost_note=row.lost_note, version=row.version, created_at=row.created_at, updated_at=row.updated_at,
        closed_at=row.closed_at, created_by=row.created_by, lead_id=row.lead_id, won_by=row.won_by)


def _opportunity_values(o: Opportunity) -> dict[str, Any]:
    return {"customer_id": o.customer_id, "name": o.name, "pipeline_id": o.pipeline_id, "stage_id": o.stage_id,
            "amount": o.amount, "currency": o.currency, "probability": o.probability,
            "expected_close_date": o.expected_close_date, "status": o.status.value,
            "lost_reason": o.lost_reason or None, "lost_note": o.lost_note, "owner_id": o.owner_id,
            "team_id": o.team_id, "department_path": o.department_path, "version": o.version,
            "closed_at": o.closed_at, "lead_id": o.lead_id, "won_by": o.won_by}


def _line_out(d: dict[str, str]) -> PricedLine:
    return PricedLine(product=d["product"], specification=d["specification"], quantity=Decimal(d["quantity"]),
                      unit_price=Decimal(d["unit_price"]), discount_percent=Decimal(d["discount_percent"]),
                      tax_rate_percent=Decimal(d["tax_rate_percent"]), net_amount=Decimal(d["net_amount"]),
                      tax_amount=Decimal(d["tax_amount"]), gross_amount=Decimal(d["gross_amount"]))


def _line_in(li: PricedLine) -> dict[str, str]:
    return {"product": li.product, "specification": li.specification, "quantity": str(li.quantity),
            "unit_price": str(li.unit_price), "discount_percent": str(li.discount_percent),
            "tax_rate_percent": str(li.tax_rate_percent), "net_amount": str(li.net_amount),
            "tax_amount": str(li.tax_amount), "gross_amount": str(li.gross_amount)}


def _quote(row: Row[Any]) -> Quote:
    return Quote(
        id=row.id, opportunity_id=row.opportunity_id, customer_id=row.customer_id, quote_version=row.quote_version,
        status=QuoteStatus(row.status), currency=row.currency, lines=tuple(_line_out(d) for d in row.lines),
        totals=Totals(row.net_total, row.tax_total, row.gross_total), valid_until=row.valid_until,
        owner_id=row.owner_id, team_id=row.team_id, department_path=row.department_path, note=row.note,
        created_at=row.created_at, sent_at=row.sent_at, decided_at=row.decided_at, created_by=row.created_by,
        requirement_request_id=row.requirement_request_id)


class Repository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # Pipelines ------------------------------------------------------------------------------

    async def pipelines(self) -> list[Pipeline]:
        rows = (await self.session.execute(
            select(pipelines.c.id.label("pid"), pipelines.c.name.label("pname"), pipelines.c.is_default, stages)
            .join(stages, stages.c.pipeline_id == pipelines.c.id)
            .order_by(pipelines.c.is_default.desc(), pipelines.c.name, stages.c.position))).all()
        out: dict[uuid.UUID, tuple[str, bool, list[Stage]]] = {}
        for r in rows:
            out.setdefault(r.pid, (r.pname, r.is_default, []))[2].append(
                Stage(r.id, r.name, r.position, r.default_probability, r.is_won, r.is_lost))
        return [Pipeline(pid, name, default, tuple(st)) for pid, (name, default, st) in out.items()]

    async def pipeline(self, pipeline_id: uuid.UUID | None) -> Pipeline | None:
        """The pipeline with this id, or the default one."""
        for p in await self.pipelines():
            if (pipeline_id is None and p.is_default) or p.id == pipeline_id:
                return p
        return None

    async def pipeline_name_taken(self, name: str) -> bool:
        return bool(await self.session.scalar(
            select(func.count()).select_from(pipelines).where(func.lower(pipelines.c.name) == name.lower())))

    async def add_pipeline(self, pipeline: Pipeline) -> None:
        await self.session.execute(insert(pipelines).values(id=pipeline.id, name=pipeline.name, is_default=False))
        await self.session.execute(insert(stages), [
            {"id": s.id, "pipeline_id": pipeline.id, "name": s.name, "position": s.order,
             "default_probability": s.default_probability, "is_won": s.is_won, "is_lost": s.is_lost}
            for s in pipeline.stages])

    # Lost reasons ---------------------------------------------------------------------------

    async def lost_reasons(self) -> list[tuple[str, str]]:
        rows = await self.session.execute(select(lost_reasons).order_by(lost_reasons.c.code))
        return [(r.code, r.name) for r in rows]

    async def add_lost_reason(self, code: str, name: str) -> bool:
        result = await self.session.execute(pg_insert(lost_reasons).values(code=code, name=name)
                                            .on_conflict_do_nothing().returning(lost_reasons.c.code))
        return result.first() is not None

    # Opportunities --------------------------------------------------------------------------

    async def add(self, o: Opportunity) -> Opportunity:
        row = (await self.session.execute(
            insert(opportunities).values(id=o.id, created_by=o.created_by, **_opportunity_values(o))
            .returning(opportunities))).one()
        return _opportunity(row)

    async def get(self, principal: Principal, opportunity_id: uuid.UUID, *,
                  for_update: bool = False) -> Opportunity | None:
        query = select(opportunities).where(opportunities.c.id == opportunity_id, opportunity_scope(principal))
        if for_update:
            query = query.with_for_update()
        row = (await self.session.execute(query)).first()
        return _opportunity(row) if row else None

    async def by_lead(self, lead_id: uuid.UUID) -> Opportunity | None:
        row = (await self.session.execute(select(opportunities).where(opportunities.c.lead_id == lead_id))).first()
        return _opportunity(row) if row else None

    async def move_customer(self, customer_id: uuid.UUID, *, to_customer_id: uuid.UUID, owner_id: str,
                            team_id: str, department_path: str) -> int:
        """Every opportunity, quote and requirement request of a customer, open or closed, into
        `to_customer_id` and its owner's scope; `won_by` stays. Rows already there are left
        alone (a redelivered event changes nothing). Returns how many opportunities moved."""
        moved = 0
        for table in (opportunities, quotes, requirement_requests):
            changes: dict[str, Any] = {"customer_id": to_customer_id, "owner_id": owner_id, "team_id": team_id,
                                       "department_path": department_path}
            if table is opportunities:
                changes |= {"version": table.c.version + 1, "updated_at": func.now()}
            result = await self.session.execute(
                update(table).where(table.c.customer_id == customer_id,
                                    tuple_(table.c.customer_id, table.c.owner_id, table.c.team_id,
                                           table.c.department_path).is_distinct_from(
                                        tuple_(literal(to_customer_id), literal(owner_id), literal(team_id),
                                               literal(department_path))))
                .values(**changes))
            if table is opportunities:
                moved = result.rowcount or 0  # type: ignore[attr-defined]
        return moved

    async def save(self, o: Opportunity) -> Opportunity:
        row = (await self.session.execute(
            update(opportunities).where(opportunities.c.id == o.id)
            .values(updated_at=func.now(), **_opportunity_values(o)).returning(opportunities))).one()
        return _opportunity(row)

    async def list(self, principal: Principal, *, after: list[Any] | None, limit: int,
                   filters: dict[str, Any]) -> list[Opportunity]:
        query = select(opportunities).where(opportunity_scope(principal))
        for name, value in filters.items():
            if value:
                query = query.where(opportunities.c[name] == value)
        if after is not None:
            bound = tuple_(literal(dt.datetime.fromisoformat(after[0])), literal(uuid.UUID(after[1])))
            query = query.where(tuple_(opportunities.c.created_at, opportunities.c.id) < bound)
        rows = (await self.session.execute(
            query.order_by(opportunities.c.created_at.desc(), opportunities.c.id.desc()).limit(limit))).all()
        return [_opportunity(r) for r in rows]

    async def record_stage_change(self, change: StageChange) -> None:
        """Ends the current stay, records the new one, and keeps the opportunity's furthest
        non-lost stage (the funnel reads these instead of walking the history)."""
        await self.session.execute(
            update(stage_history).where(stage_history.c.opportunity_id == change.opportunity_id,
                                        stage_history.c.left_at.is_(None))
            .values(left_at=change.changed_at))
        await self.session.execute(insert(stage_history).values(
            opportunity_id=change.opportunity_id, from_stage_id=change.from_stage_id,
            to_stage_id=change.to_stage_id, changed_by=change.changed_by, changed_at=change.changed_at))
        entered = (select(stages.c.position).where(stages.c.id == change.to_stage_id, stages.c.is_lost.is_(False))
                   .scalar_subquery())
        await self.session.execute(
            update(opportunities).where(opportunities.c.id == change.opportunity_id)
            .values(furthest_position=func.greatest(opportunities.c.furthest_position,
                                                    func.coalesce(entered, 0))))

    async def stage_history(self, opportunity_id: uuid.UUID) -> list[StageChange]:
        rows = await self.session.execute(
            select(stage_history).where(stage_history.c.opportunity_id == opportunity_id)
            .order_by(stage_history.c.changed_at, stage_history.c.id))
        return [StageChange(r.opportunity_id, r.from_stage_id, r.to_stage_id, r.changed_by, r.changed_at)
                for r in rows]

    # Quotes ---------------------------------------------------------------------------------

    async def next_quote_version(self, opportunity_id: uuid.UUID) -> int:
        current = await self.session.scalar(
            select(func.max(quotes.c.quote_version)).where(quotes.c.opportunity_id == opportunity_id))
        return int(current or 0) + 1

    async def add_quote(self, q: Quote) -> Quote:
        row = (await self.session.execute(insert(quotes).values(
            id=q.id, opportunity_id=q.opportunity_id, customer_id=q.customer_id, quote_version=q.quote_version,
            status=q.status.value, currency=q.currency, lines=[_line_in(li) for li in q.lines],
            net_total=q.totals.net, tax_total=q.totals.tax, gross_total=q.totals.gross, valid_until=q.valid_until,
            note=q.note, owner_id=q.owner_id, team_id=q.team_id, department_path=q.department_path,
            created_by=q.created_by, requirement_request_id=q.requirement_request_id).returning(quotes))).one()
        return _quote(row)

    async def get_quote(self, principal: Principal, quote_id: uuid.UUID, *, for_update: bool = False) -> Quote | None:
        query = select(quotes).where(quotes.c.id == quote_id, quote_scope(principal))
        if for_update:
            query = query.with_for_update()
        row = (await self.session.execute(query)).first()
        return _quote(row) if row else None

    async def save_quote_status(self, q: Quote) -> Quote:
        row = (await self.session.execute(
            update(quotes).where(quotes.c.id == q.id)
            .values(status=q.status.value, sent_at=q.sent_at, decided_at=q.decided_at).returning(quotes))).one()
        return _quote(row)

    async def list_quotes(self, principal: Principal, *, opportunity_id: uuid.UUID | None, after: list[Any] | None,
                          limit: int) -> list[Quote]:
        query = select(quotes).where(quote_scope(principal))
        if opportunity_id is not None:
            query = query.where(quotes.c.opportunity_id == opportunity_id)
        if after is not None:
            bound = tuple_(literal(dt.datetime.fromisoformat(after[0])), literal(uuid.UUID(after[1])))
            query = query.where(tuple_(quotes.c.created_at, quotes.c.id) < bound)
        rows = (await self.session.execute(
            query.order_by(quotes.c.created_at.desc(), quotes.c.id.desc()).limit(limit))).all()
        return [_quote(r) for r in rows]

    # Funnel ---------------------------------------------------------------------------------

    async def funnel(self, principal: Principal, pipeline_id: uuid.UUID, *, owner_id: str, team_id: str,
                     since: dt.datetime | None, until: dt.datetime | None, currency: str) -> list[Row[Any]]:
        """One statement: per stage of the pipeline, the opportunities now in it and their amount,
        how many ever reached it (or a later non-lost stage), and the total seconds and count of
        ended stays in it. Filters and the data scope apply to the opportunities.

        Nothing walks the history in order: each opportunity keeps its furthest non-lost stage
        (`furthest_position`) and each stay its end (`left_at`), both written by the stage change
        itself, so the statement is plain aggregates (hash joins) over the rows in scope."""
        conditions = [opportunities.c.pipeline_id == pipeline_id, opportunity_scope(principal)]
        if owner_id:
            conditions.append(opportunities.c.owner_id == owner_id)
        if team_id:
            conditions.append(opportunities.c.team_id == team_id)
        if since is not None:
            conditions.append(opportunities.c.created_at >= since)
        if until is not None:
            conditions.append(opportunities.c.created_at < until)
        opps = (select(opportunities.c.id, opportunities.c.stage_id, opportunities.c.amount,
                       opportunities.c.currency, opportunities.c.furthest_position)
                .where(and_(*conditions)).cte("opps"))
        current = (select(opps.c.stage_id, func.count().label("n"),
                          func.coalesce(func.sum(case((opps.c.currency == currency, opps.c.amount), else_=0)), 0)
                          .label("amount"))
                   .group_by(opps.c.stage_id).subquery("current"))
        furthest = (select(opps.c.furthest_position.label("position"), func.count().label("n"))
                    .group_by(opps.c.furthest_position).subquery("furthest"))
        # Per stage: the opportunities whose furthest stage is this one or a later one (a join of
        # the stages with the few grouped rows, one pass over the opportunities).
        passed = (select(stages.c.id.label("stage_id"), func.sum(furthest.c.n).label("n"))
                  .select_from(stages.join(furthest, furthest.c.position >= stages.c.position))
                  .where(stages.c.pipeline_id == pipeline_id).group_by(stages.c.id).subquery("passed"))
        durations = (select(stage_history.c.to_stage_id.label("stage_id"),
                            func.sum(func.extract("epoch", stage_history.c.left_at - stage_history.c.changed_at))
                            .label("seconds"),
                            func.count().label("ended"))
                     .join(opps, opps.c.id == stage_history.c.opportunity_id)
                     .where(stage_history.c.left_at.is_not(None))
                     .group_by(stage_history.c.to_stage_id).subquery("durations"))
        # Lost is terminal: those that entered the lost stage are those in it now.
        reached = case((stages.c.is_lost, func.coalesce(current.c.n, 0)), else_=func.coalesce(passed.c.n, 0))
        query = (select(stages.c.id, stages.c.name, stages.c.position, stages.c.is_won, stages.c.is_lost,
                        func.coalesce(current.c.n, 0).label("count"),
                        func.coalesce(current.c.amount, 0).label("amount"),
                        reached.label("reached"), durations.c.seconds, func.coalesce(durations.c.ended, 0)
                        .label("ended"))
                 .select_from(stages.outerjoin(current, current.c.stage_id == stages.c.id)
                              .outerjoin(passed, passed.c.stage_id == stages.c.id)
                              .outerjoin(durations, durations.c.stage_id == stages.c.id))
                 .where(stages.c.pipeline_id == pipeline_id).order_by(stages.c.position))
        return list((await self.session.execute(query)).all())
