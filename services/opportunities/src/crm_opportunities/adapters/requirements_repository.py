"""Reads and writes of requirement requests (R-OPP-02), inside the caller's data scope."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import asdict
from typing import Any

from sqlalchemy import ColumnElement, func, insert, literal, select, tuple_, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from crm_opportunities.adapters.tables import requirement_requests as rr
from crm_opportunities.domain.requirements import Attachment, RequirementRequest, RequirementStatus
from crmkit.auth import Principal
from crmkit.pagination import invalid_cursor
from crmkit.scopes import scope_clause


def requirement_scope(principal: Principal) -> ColumnElement[bool]:
    return scope_clause(principal, owner=rr.c.owner_id, team=rr.c.team_id, department_path=rr.c.department_path)


def _request(row: Row[Any]) -> RequirementRequest:
    return RequirementRequest(
        id=row.id, opportunity_id=row.opportunity_id, customer_id=row.customer_id, title=row.title,
        specification=row.specification, quantity=row.quantity, unit=row.unit, target_price=row.target_price,
        currency=row.currency, requested_date=row.requested_date,
        attachments=tuple(Attachment(**a) for a in row.attachments), owner_id=row.owner_id, team_id=row.team_id,
        department_path=row.department_path, status=RequirementStatus(row.status), reviewer_id=row.reviewer_id,
        review_notes=row.review_notes, quote_id=row.quote_id, version=row.version, created_at=row.created_at,
        updated_at=row.updated_at, decided_at=row.decided_at, created_by=row.created_by)


def _values(r: RequirementRequest) -> dict[str, Any]:
    return {"opportunity_id": r.opportunity_id, "customer_id": r.customer_id, "title": r.title,
            "specification": r.specification, "quantity": r.quantity, "unit": r.unit,
            "target_price": r.target_price, "currency": r.currency, "requested_date": r.requested_date,
            "attachments": [asdict(a) for a in r.attachments], "status": r.status.value,
            "reviewer_id": r.reviewer_id, "review_notes": r.review_notes, "quote_id": r.quote_id,
            "owner_id": r.owner_id, "team_id": r.team_id, "department_path": r.department_path,
            "version": r.version, "decided_at": r.decided_at}


class RequirementRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, r: RequirementRequest) -> RequirementRequest:
        row = (await self.session.execute(
            insert(rr).values(id=r.id, created_by=r.created_by, **_values(r)).returning(rr))).one()
        return _request(row)

    async def get(self, principal: Principal, request_id: uuid.UUID, *,
                  for_update: bool = False) -> RequirementRequest | None:
        query = select(rr).where(rr.c.id == request_id, requirement_scope(principal))
        if for_update:
            query = query.with_for_update()
        row = (await self.session.execute(query)).first()
        return _request(row) if row else None

    async def get_for_review(self, request_id: uuid.UUID) -> RequirementRequest | None:
        """Reviewers (a role, across the company) see every request they are asked to review."""
        row = (await self.session.execute(select(rr).where(rr.c.id == request_id).with_for_update())).first()
        return _request(row) if row else None

    async def save(self, r: RequirementRequest) -> RequirementRequest:
        row = (await self.session.execute(
            update(rr).where(rr.c.id == r.id).values(updated_at=func.now(), **_values(r)).returning(rr))).one()
        return _request(row)

    async def list(self, principal: Principal, *, reviewer: bool, after: list[Any] | None, limit: int,
                   opportunity_id: uuid.UUID | None, status: str) -> list[RequirementRequest]:
        query = select(rr)
        if not reviewer:
            query = query.where(requirement_scope(principal))
        if opportunity_id:
            query = query.where(rr.c.opportunity_id == opportunity_id)
        if status:
            query = query.where(rr.c.status == status)
        if after is not None:
            try:
                bound = tuple_(literal(dt.datetime.fromisoformat(after[0])), literal(uuid.UUID(after[1])))
            except (ValueError, IndexError, TypeError):
                raise invalid_cursor() from None
            query = query.where(tuple_(rr.c.created_at, rr.c.id) < bound)
        rows = (await self.session.execute(query.order_by(rr.c.created_at.desc(), rr.c.id.desc()).limit(limit))).all()
        return [_request(r) for r in rows]
