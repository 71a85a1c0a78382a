"""Requirement requests (需求申請, R-OPP-02): submit, review, decide; quoted by a quote.

Reviewers are the holders of one role (OpportunitiesSettings.reviewer_role, default
`sales_director`: in the demo org the head of sales judges feasibility with engineering; a
company with an engineering role names it instead). They are looked up through identity
(ListRoleHolders) when a request is submitted and named in `requirement_request.submitted`, so
notifications can tell them. A reviewer sees and acts on every request (the review is a
company-wide function, not the owner's data scope); everyone else within their scope.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal

from crm.common.v1 import money_pb2
from crm.opportunities.v1 import events_pb2 as ev
from crm.opportunities.v1 import opportunities_pb2 as pb
from crm_opportunities.adapters.repository import Repository
from crm_opportunities.adapters.requirements_repository import RequirementRepository
from crm_opportunities.app.messages import ts
from crm_opportunities.domain import requirements as rules
from crm_opportunities.domain.model import OpportunityStatus
from crm_opportunities.domain.money import parse_decimal
from crm_opportunities.domain.requirements import Attachment, RequirementRequest, RequirementStatus
from crmkit.auth import Principal
from crmkit.db import UnitOfWork
from crmkit.errors import Conflict, NotFound, PermissionDenied
from crmkit.ids import new_id
from crmkit.money import parse_currency
from crmkit.pagination import decode_cursor, encode_cursor, page_size, time_text, uuid_text

log = logging.getLogger(__name__)
LIST_SORT = "-create_time"
DEFAULT_REVIEWER_ROLE = "sales_director"
# (role) -> user ids holding it; None when identity is not configured.
ReviewerLookup = Callable[[str], Awaitable[list[str]]]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def is_reviewer(principal: Principal, reviewer_role: str) -> bool:
    return principal.has_role(reviewer_role) or principal.has_role("admin") or "*" in principal.permissions


def to_pb(r: RequirementRequest) -> pb.RequirementRequest:
    return pb.RequirementRequest(
        id=str(r.id), opportunity_id=str(r.opportunity_id), customer_id=str(r.customer_id), title=r.title,
        specification=r.specification, quantity=f"{r.quantity.normalize():f}", unit=r.unit,
        target_price=money_pb2.Money(amount=_decimal(r.target_price), currency=r.currency)
        if r.target_price is not None else None,
        requested_date=r.requested_date.isoformat() if r.requested_date else "",
        attachments=[pb.Attachment(name=a.name, size_bytes=a.size_bytes, content_type=a.content_type, url=a.url)
                     for a in r.attachments],
        status=pb.RequirementStatus.Value("REQUIREMENT_STATUS_" + r.status.value.upper()),
        reviewer_id=r.reviewer_id, review_notes=r.review_notes, quote_id=str(r.quote_id) if r.quote_id else "",
        owner_id=r.owner_id, team_id=r.team_id, department_path=r.department_path, version=r.version,
        create_time=ts(r.created_at), update_time=ts(r.updated_at), decide_time=ts(r.decided_at),
        created_by=r.created_by)


def _decimal(value: Decimal) -> str:
    """At least two places (money), up to the four a unit price may have, no trailing noise."""
    return f"{value.quantize(Decimal('0.01')) if value == value.quantize(Decimal('0.01')) else value.normalize():f}"


def _status_pb(status: RequirementStatus) -> int:
    return int(pb.RequirementStatus.Value("REQUIREMENT_STATUS_" + status.value.upper()))


@dataclass(frozen=True)
class NewRequirement:
    opportunity_id: uuid.UUID
    title: str
    specification: str
    quantity: str
    unit: str
    target_price: str
    currency: str
    requested_date: dt.date | None
    attachments: tuple[Attachment, ...]


async def create(uow: UnitOfWork, principal: Principal, new: NewRequirement,
                 reviewer_ids: list[str]) -> RequirementRequest:
    """Submitted on an open opportunity in the caller's scope; carries its owner/team/department."""
    quantity = parse_decimal(new.quantity, "quantity")
    target = parse_decimal(new.target_price, "target_price") if new.target_price else None
    rules.validate(new.title, new.specification, quantity, new.unit, target, new.requested_date,
                   new.attachments, _now().date())
    opportunity = await Repository(uow.session).get(principal, new.opportunity_id, for_update=True)
    if opportunity is None:
        raise NotFound(f"opportunity {new.opportunity_id} not found")
    if opportunity.status is not OpportunityStatus.OPEN:
        raise Conflict(f"the opportunity is {opportunity.status.value}: it takes no new requirement requests",
                       reason="OPPORTUNITY_CLOSED", metadata={"opportunity_status": opportunity.status.value})
    saved = await RequirementRepository(uow.session).add(RequirementRequest(
        id=new_id(), opportunity_id=opportunity.id, customer_id=opportunity.customer_id, title=new.title.strip(),
        specification=new.specification.strip(), quantity=quantity, unit=new.unit.strip(), target_price=target,
        currency=parse_currency(new.currency or opportunity.currency, "target_price.currency"),
        requested_date=new.requested_date, attachments=new.attachments, owner_id=opportunity.owner_id,
        team_id=opportunity.team_id, department_path=opportunity.department_path, created_by=principal.subject))
    uow.emit(ev.RequirementRequestSubmitted(requirement_request=to_pb(saved), reviewer_ids=reviewer_ids),
             subject_id=str(saved.id))
    await uow.commit()
    return saved


async def _visible(uow: UnitOfWork, principal: Principal, request_id: uuid.UUID, reviewer_role: str, *,
                   for_update: bool = False) -> RequirementRequest:
    repo = RequirementRepository(uow.session)
    if is_reviewer(principal, reviewer_role):
        found = await repo.get_for_review(request_id)
    else:
        found = await repo.get(principal, request_id, for_update=for_update)
    if found is None:
        raise NotFound(f"requirement request {request_id} not found",
                       metadata={"requirement_request_id": str(request_id)})
    return found


async def get(uow: UnitOfWork, principal: Principal, request_id: uuid.UUID, reviewer_role: str) -> RequirementRequest:
    return await _visible(uow, principal, request_id, reviewer_role)


async def list_requests(uow: UnitOfWork, principal: Principal, reviewer_role: str, *, page_token: str, limit: int,
                        opportunity_id: uuid.UUID | None, status: str) -> tuple[list[RequirementRequest], str]:
    size = page_size(limit)
    cursor = decode_cursor(page_token, LIST_SORT, (time_text, uuid_text))
    items = await RequirementRepository(uow.session).list(
        principal, reviewer=is_reviewer(principal, reviewer_role), after=cursor.values if cursor else None,
        limit=size + 1, opportunity_id=opportunity_id, status=status)
    token = ""
    if len(items) > size:
        last = items[size - 1]
        token = encode_cursor(LIST_SORT, [last.created_at.isoformat() if last.created_at else "", str(last.id)])
    return items[:size], token


async def _transition(uow: UnitOfWork, before: RequirementRequest, after: RequirementRequest) -> RequirementRequest:
    saved = await RequirementRepository(uow.session).save(after)
    uow.emit(ev.RequirementRequestStatusChanged(requirement_request=to_pb(saved),
                                                previous_status=_status_pb(before.status)),  # type: ignore[arg-type]
             subject_id=str(saved.id))
    return saved


def _require_reviewer(principal: Principal, reviewer_role: str) -> None:
    if not is_reviewer(principal, reviewer_role):
        raise PermissionDenied(f"only the {reviewer_role} role reviews requirement requests",
                               reason="NOT_A_REVIEWER")


async def start_review(uow: UnitOfWork, principal: Principal, request_id: uuid.UUID, reviewer_role: str,
                       expected_version: int) -> RequirementRequest:
    _require_reviewer(principal, reviewer_role)
    before = await _visible(uow, principal, request_id, reviewer_role, for_update=True)
    rules.check_version(before, expected_version)
    saved = await _transition(uow, before, rules.start_review(before, principal.subject))
    await uow.commit()
    return saved


async def decide(uow: UnitOfWork, principal: Principal, request_id: uuid.UUID, reviewer_role: str, *,
                 feasible: bool, notes: str, expected_version: int) -> RequirementRequest:
    _require_reviewer(principal, reviewer_role)
    before = await _visible(uow, principal, request_id, reviewer_role, for_update=True)
    rules.check_version(before, expected_version)
    after = rules.decide(before, principal.subject, feasible=feasible, notes=notes, now=_now(),
                         override=principal.has_role("admin"))
    saved = await _transition(uow, before, after)
    await uow.commit()
    return saved


async def mark_quoted(uow: UnitOfWork, principal: Principal, request_id: uuid.UUID, opportunity_id: uuid.UUID,
                      quote_id: uuid.UUID) -> None:
    """Within the quote's transaction (create_quote commits)."""
    repo = RequirementRepository(uow.session)
    before = await repo.get(principal, request_id, for_update=True)
    if before is None:
        raise NotFound(f"requirement request {request_id} not found",
                       metadata={"requirement_request_id": str(request_id)})
    await _transition(uow, before, rules.quote(before, opportunity_id, quote_id))

