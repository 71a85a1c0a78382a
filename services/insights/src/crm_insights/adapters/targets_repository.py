"""Targets in PostgreSQL. Reads include the caller's data scope on the place of the target's
subject: out of scope is not found."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, delete, select, true, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from crm_insights.adapters.tables import targets
from crm_insights.domain.periods import PeriodKind
from crm_insights.domain.targets import Level, Place, Target, TargetKind
from crmkit.auth import Principal
from crmkit.scopes import scope_clause


def _target(row: Any) -> Target:
    return Target(id=row.id, kind=TargetKind(row.kind), level=Level(row.level), subject_id=row.subject_id,
                  period=PeriodKind(row.period), period_start=row.period_start, value=Decimal(row.value),
                  place=Place(row.owner_id, row.team_id, row.department_path), version=row.version,
                  set_by=row.set_by)


def _in_scope(principal: Principal) -> Any:
    c = targets.c
    return scope_clause(principal, owner=c.owner_id, team=c.team_id, department_path=c.department_path,
                        signed=true())


class TargetsRepository:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def add(self, target: Target, currency: str) -> bool:
        """False when that subject already has a target of that kind for that period."""
        added = await self._s.execute(insert(targets).values(
            id=target.id, kind=target.kind.value, level=target.level.value, subject_id=target.subject_id,
            period=target.period.value, period_start=target.period_start, value=target.value, currency=currency,
            owner_id=target.place.owner_id, team_id=target.place.team_id,
            department_path=target.place.department_path, version=target.version, set_by=target.set_by,
        ).on_conflict_do_nothing(constraint="targets_one_per_subject").returning(targets.c.id))
        return added.first() is not None

    async def get(self, principal: Principal, target_id: uuid.UUID, *, for_update: bool = False) -> Target | None:
        query = select(targets).where(targets.c.id == target_id, _in_scope(principal))
        row = (await self._s.execute(query.with_for_update() if for_update else query)).first()
        return _target(row) if row is not None else None

    async def times(self, target_id: uuid.UUID) -> tuple[dt.datetime, dt.datetime]:
        row = (await self._s.execute(select(targets.c.created_at, targets.c.updated_at)
                                     .where(targets.c.id == target_id))).one()
        return row.created_at, row.updated_at

    async def change_value(self, target: Target, value: Decimal, set_by: str) -> None:
        await self._s.execute(update(targets).where(targets.c.id == target.id).values(
            value=value, version=target.version + 1, set_by=set_by, updated_at=dt.datetime.now(dt.UTC)))

    async def remove(self, target_id: uuid.UUID) -> None:
        await self._s.execute(delete(targets).where(targets.c.id == target_id))

    async def visible(self, principal: Principal, *, period: PeriodKind | None, period_start: dt.date | None,
                      kind: TargetKind | None) -> list[Target]:
        c = targets.c
        conditions = [_in_scope(principal)]
        if period is not None:
            conditions.append(c.period == period.value)
        if period_start is not None:
            conditions.append(c.period_start == period_start)
        if kind is not None:
            conditions.append(c.kind == kind.value)
        rows = await self._s.execute(select(targets).where(*conditions)
                                     .order_by(c.period_start, c.kind, c.level, c.subject_id))
        return [_target(r) for r in rows]

    async def of_subjects(self, level: Level, subject_ids: Sequence[str], start: dt.date,
                          end: dt.date) -> list[Target]:
        """The targets of these subjects whose periods start within [start, end]."""
        c = targets.c
        rows = await self._s.execute(select(targets).where(and_(
            c.level == level.value, c.subject_id.in_(list(subject_ids)), c.period_start.between(start, end))))
        return [_target(r) for r in rows]
