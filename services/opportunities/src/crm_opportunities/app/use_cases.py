"""Commands and queries. Each takes a unit of work and the calling principal, applies the
domain rules, and emits the integration events of what it changed."""

from __future__ import annotations

import datetime as dt
import re
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

from sqlalchemy.exc import IntegrityError

from crm.opportunities.v1 import events_pb2 as ev
from crm_opportunities.adapters.repository import Repository
from crm_opportunities.app import requirements
from crm_opportunities.app.messages import opportunity_to_pb, quote_to_pb
from crm_opportunities.domain import funnel as funnel_maths
from crm_opportunities.domain import model
from crm_opportunities.domain.model import Opportunity, Pipeline, Quote, QuoteStatus, Stage, StageChange
from crm_opportunities.domain.money import LineInput, parse_decimal, price_line, totals
from crmkit.auth import Principal
from crmkit.db import UnitOfWork
from crmkit.errors import AlreadyExists, Conflict, InvalidArgument, NotFound, PermissionDenied
from crmkit.ids import new_id
from crmkit.money import parse_currency
from crmkit.pagination import decode_cursor, encode_cursor, page_size, time_text, uuid_text
from crmkit.references import CustomerFacts
from crmkit.scopes import may_assign

LIST_SORT = "-create_time"
REASON_CODE = re.compile(r"^[a-z][a-z0-9_]{1,39}$")


class CustomerLookup(Protocol):
    """The customers service, asked as the caller (adapters: crmkit.references.CustomerDirectory):
    a customer out of the caller's scope and one that does not exist both raise NotFound."""

    async def customer(self, customer_id: str) -> CustomerFacts: ...


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _require_admin(principal: Principal, what: str) -> None:
    if "admin" not in principal.roles and "*" not in principal.permissions:
        raise PermissionDenied(f"only administrators may {what}")


async def _pipeline(repo: Repository, pipeline_id: uuid.UUID | None) -> Pipeline:
    pipeline = await repo.pipeline(pipeline_id)
    if pipeline is None:
        raise NotFound(f"pipeline {pipeline_id} not found", metadata={"pipeline_id": str(pipeline_id)})
    return pipeline


async def _opportunity(repo: Repository, principal: Principal, opportunity_id: uuid.UUID, *,
                       for_update: bool = False) -> Opportunity:
    found = await repo.get(principal, opportunity_id, for_update=for_update)
    if found is None:
        raise NotFound(f"opportunity {opportunity_id} not found", metadata={"opportunity_id": str(opportunity_id)})
    return found


async def _quote(repo: Repository, principal: Principal, quote_id: uuid.UUID, *, for_update: bool = False) -> Quote:
    found = await repo.get_quote(principal, quote_id, for_update=for_update)
    if found is None:
        raise NotFound(f"quote {quote_id} not found", metadata={"quote_id": str(quote_id)})
    return found


# Pipelines and lost reasons ---------------------------------------------------------------------


async def list_pipelines(uow: UnitOfWork, principal: Principal) -> list[Pipeline]:
    return await Repository(uow.session).pipelines()


async def create_pipeline(uow: UnitOfWork, principal: Principal, name: str,
                          stages: list[tuple[str, int, bool, bool]]) -> Pipeline:
    _require_admin(principal, "create pipelines")
    checked = model.validate_pipeline(name, stages)
    repo = Repository(uow.session)
    if await repo.pipeline_name_taken(name.strip()):
        raise AlreadyExists(f"a pipeline named {name.strip()!r} already exists", reason="DUPLICATE_PIPELINE")
    pipeline = Pipeline(new_id(), name.strip(), False, tuple(
        Stage(new_id(), n, i, p, w, lo) for i, (n, p, w, lo) in enumerate(checked, start=1)))
    await repo.add_pipeline(pipeline)
    await uow.commit()
    return pipeline


async def list_lost_reasons(uow: UnitOfWork, principal: Principal) -> list[tuple[str, str]]:
    return await Repository(uow.session).lost_reasons()


async def create_lost_reason(uow: UnitOfWork, principal: Principal, code: str, name: str) -> tuple[str, str]:
    _require_admin(principal, "edit the lost-reason list")
    code, name = code.strip(), name.strip()
    if not REASON_CODE.match(code):
        raise InvalidArgument.of("code", "must be lower_snake_case, 2 to 40 characters")
    if not name:
        raise InvalidArgument.of("name", "is required")
    if not await Repository(uow.session).add_lost_reason(code, name):
        raise AlreadyExists(f"lost reason {code!r} already exists", reason="DUPLICATE_LOST_REASON")
    await uow.commit()
    return code, name


# Opportunities --------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewOpportunity:
    customer_id: uuid.UUID
    name: str
    pipeline_id: uuid.UUID | None
    amount: str
    currency: str
    probability: int
    expected_close_date: dt.date | None
    owner_id: str = ""
    team_id: str = ""
    # Converted from this lead: one opportunity per lead, so a retried conversion gets it back.
    lead_id: uuid.UUID | None = None


async def create_opportunity(uow: UnitOfWork, principal: Principal, new: NewOpportunity, *,
                             customers: CustomerLookup) -> Opportunity:
    """R-SEC-02: the customer must exist and be in the caller's scope, as the customers service
    says now (404 alike for both, so nothing leaks)."""
    name = new.name.strip()
    if not name:
        raise InvalidArgument.of("name", "is required")
    if len(name) > 200:
        raise InvalidArgument.of("name", "must be at most 200 characters")
    amount = parse_decimal(new.amount, "amount", default="0", places=2)
    currency = parse_currency(new.currency or "CNY", "amount.currency")
    repo = Repository(uow.session)
    if new.lead_id is not None:
        existing = await repo.by_lead(new.lead_id)
        if existing is not None:
            if await repo.get(principal, existing.id) is None:
                raise AlreadyExists("the lead was already converted into an opportunity you cannot see",
                                    reason="LEAD_HAS_OPPORTUNITY")
            return existing
    pipeline = await _pipeline(repo, new.pipeline_id)
    await customers.customer(str(new.customer_id))
    stage = pipeline.first_open
    owner = new.owner_id or principal.subject
    team = new.team_id or (principal.team_ids[0] if principal.team_ids else "")
    if not may_assign(principal, owner_id=owner, team_id=team, department_path=principal.department_path):
        raise PermissionDenied("you may not assign an opportunity to this owner or team",
                               reason="ASSIGNMENT_OUT_OF_SCOPE")
    now = _now()
    draft = Opportunity(
        id=new_id(), customer_id=new.customer_id, name=name, pipeline_id=pipeline.id, stage_id=stage.id,
        amount=amount, currency=currency,
        probability=model.check_probability(new.probability) if new.probability else stage.default_probability,
        expected_close_date=new.expected_close_date, owner_id=owner, team_id=team,
        department_path=principal.department_path, created_by=principal.subject, lead_id=new.lead_id)
    try:
        async with uow.session.begin_nested():
            opportunity = await repo.add(draft)
    except IntegrityError:
        # A concurrent conversion of the same lead won the race: answer with its opportunity.
        existing = await repo.by_lead(new.lead_id) if new.lead_id else None
        if existing is None or await repo.get(principal, existing.id) is None:
            raise
        return existing
    await repo.record_stage_change(StageChange(opportunity.id, None, stage.id, principal.subject, now))
    uow.emit(ev.OpportunityCreated(opportunity=opportunity_to_pb(opportunity)), subject_id=str(opportunity.id))
    await uow.commit()
    return opportunity


async def get_opportunity(uow: UnitOfWork, principal: Principal, opportunity_id: uuid.UUID) -> Opportunity:
    return await _opportunity(Repository(uow.session), principal, opportunity_id)


async def list_opportunities(uow: UnitOfWork, principal: Principal, *, page_token: str, limit: int,
                             **filters: Any) -> tuple[list[Opportunity], str]:
    size = page_size(limit)
    cursor = decode_cursor(page_token, LIST_SORT, (time_text, uuid_text))
    items = await Repository(uow.session).list(principal, after=cursor.values if cursor else None,
                                               limit=size + 1, filters=filters)
    token = ""
    if len(items) > size:
        last = items[size - 1]
        token = encode_cursor(LIST_SORT, [last.created_at.isoformat() if last.created_at else "", str(last.id)])
    return items[:size], token


async def move_stage(uow: UnitOfWork, principal: Principal, opportunity_id: uuid.UUID, stage_id: uuid.UUID,
                     probability: int, expected_version: int) -> Opportunity:
    repo = Repository(uow.session)
    current = await _opportunity(repo, principal, opportunity_id, for_update=True)
    model.check_version(current, expected_version)
    moved = model.move_stage(current, await _pipeline(repo, current.pipeline_id), stage_id, probability)
    saved = await repo.save(moved)
    await repo.record_stage_change(StageChange(saved.id, current.stage_id, saved.stage_id, principal.subject, _now()))
    uow.emit(ev.OpportunityStageChanged(opportunity=opportunity_to_pb(saved), from_stage_id=str(current.stage_id),
                                        to_stage_id=str(saved.stage_id)), subject_id=str(saved.id))
    await uow.commit()
    return saved


async def _win(uow: UnitOfWork, repo: Repository, principal: Principal, current: Opportunity, *,
               amount: Decimal | None = None, quote_id: str = "") -> Opportunity:
    now = _now()
    won = model.win(current, await _pipeline(repo, current.pipeline_id), now, amount)
    saved = await repo.save(won)
    await repo.record_stage_change(StageChange(saved.id, current.stage_id, saved.stage_id, principal.subject, now))
    uow.emit(ev.OpportunityStageChanged(opportunity=opportunity_to_pb(saved), from_stage_id=str(current.stage_id),
                                        to_stage_id=str(saved.stage_id)), subject_id=str(saved.id))
    uow.emit(ev.OpportunityWon(opportunity=opportunity_to_pb(saved), quote_id=quote_id), subject_id=str(saved.id))
    return saved


async def mark_won(uow: UnitOfWork, principal: Principal, opportunity_id: uuid.UUID,
                   expected_version: int) -> Opportunity:
    repo = Repository(uow.session)
    current = await _opportunity(repo, principal, opportunity_id, for_update=True)
    model.check_version(current, expected_version)
    saved = await _win(uow, repo, principal, current)
    await uow.commit()
    return saved


async def mark_lost(uow: UnitOfWork, principal: Principal, opportunity_id: uuid.UUID, reason: str, note: str,
                    expected_version: int) -> Opportunity:
    repo = Repository(uow.session)
    current = await _opportunity(repo, principal, opportunity_id, for_update=True)
    model.check_version(current, expected_version)
    now = _now()
    known = {code for code, _ in await repo.lost_reasons()}
    lost = model.lose(current, await _pipeline(repo, current.pipeline_id), now, reason, note, known)
    saved = await repo.save(lost)
    await repo.record_stage_change(StageChange(saved.id, current.stage_id, saved.stage_id, principal.subject, now))
    uow.emit(ev.OpportunityStageChanged(opportunity=opportunity_to_pb(saved), from_stage_id=str(current.stage_id),
                                        to_stage_id=str(saved.stage_id)), subject_id=str(saved.id))
    uow.emit(ev.OpportunityLost(opportunity=opportunity_to_pb(saved)), subject_id=str(saved.id))
    await uow.commit()
    return saved


async def stage_history(uow: UnitOfWork, principal: Principal, opportunity_id: uuid.UUID) -> list[StageChange]:
    repo = Repository(uow.session)
    await _opportunity(repo, principal, opportunity_id)
    return await repo.stage_history(opportunity_id)


# Quotes ---------------------------------------------------------------------------------------


async def create_quote(uow: UnitOfWork, principal: Principal, opportunity_id: uuid.UUID, currency: str,
                       lines: list[LineInput], valid_until: dt.date | None, note: str = "",
                       requirement_request_id: uuid.UUID | None = None) -> Quote:
    if valid_until is None:
        raise InvalidArgument.of("valid_until", "is required")
    if not lines:
        raise InvalidArgument.of("lines", "at least one line is required")
    if len(lines) > 500:
        raise InvalidArgument.of("lines", "at most 500 lines")
    model.check_valid_until(valid_until, _now().date())
    repo = Repository(uow.session)
    # Locked, so two concurrent quotes of one opportunity get consecutive versions.
    opportunity = await _opportunity(repo, principal, opportunity_id, for_update=True)
    if opportunity.status is not model.OpportunityStatus.OPEN:
        raise Conflict(f"the opportunity is {opportunity.status.value}: it takes no new quotes",
                             reason="OPPORTUNITY_CLOSED", metadata={"opportunity_status": opportunity.status.value})
    priced = tuple(price_line(li) for li in lines)
    quote = await repo.add_quote(Quote(
        id=new_id(), opportunity_id=opportunity.id, customer_id=opportunity.customer_id,
        quote_version=await repo.next_quote_version(opportunity.id), status=QuoteStatus.DRAFT,
        currency=parse_currency(currency or opportunity.currency), lines=priced, totals=totals(list(priced)),
        valid_until=valid_until, owner_id=opportunity.owner_id, team_id=opportunity.team_id,
        department_path=opportunity.department_path, note=note.strip()[:2000], created_by=principal.subject,
        requirement_request_id=requirement_request_id))
    if requirement_request_id is not None:
        # R-OPP-02: the request it answers must be feasible; it becomes quoted with this quote.
        await requirements.mark_quoted(uow, principal, requirement_request_id, opportunity.id, quote.id)
    await uow.commit()
    return quote


async def get_quote(uow: UnitOfWork, principal: Principal, quote_id: uuid.UUID) -> Quote:
    return await _quote(Repository(uow.session), principal, quote_id)


async def list_quotes(uow: UnitOfWork, principal: Principal, *, opportunity_id: uuid.UUID | None, page_token: str,
                      limit: int) -> tuple[list[Quote], str]:
    size = page_size(limit)
    cursor = decode_cursor(page_token, LIST_SORT, (time_text, uuid_text))
    items = await Repository(uow.session).list_quotes(principal, opportunity_id=opportunity_id,
                                                      after=cursor.values if cursor else None, limit=size + 1)
    token = ""
    if len(items) > size:
        last = items[size - 1]
        token = encode_cursor(LIST_SORT, [last.created_at.isoformat() if last.created_at else "", str(last.id)])
    return items[:size], token


async def send_quote(uow: UnitOfWork, principal: Principal, quote_id: uuid.UUID) -> Quote:
    repo = Repository(uow.session)
    now = _now()
    saved = await repo.save_quote_status(model.send_quote(await _quote(repo, principal, quote_id, for_update=True),
                                                          now))
    uow.emit(ev.QuoteSent(quote=quote_to_pb(saved, now.date())), subject_id=str(saved.id))
    await uow.commit()
    return saved


async def accept_quote(uow: UnitOfWork, principal: Principal, quote_id: uuid.UUID) -> tuple[Quote, Opportunity]:
    """R-OPP-03: the accepted quote wins the opportunity (its amount becomes the quote's net total)
    and quote.accepted carries everything a contract is drafted from."""
    repo = Repository(uow.session)
    now = _now()
    quote = await _quote(repo, principal, quote_id, for_update=True)
    opportunity = await _opportunity(repo, principal, quote.opportunity_id, for_update=True)
    accepted = await repo.save_quote_status(model.accept_quote(quote, opportunity, now))
    won = await _win(uow, repo, principal, opportunity, amount=accepted.totals.net, quote_id=str(accepted.id))
    uow.emit(ev.QuoteAccepted(quote=quote_to_pb(accepted, now.date()), opportunity_name=opportunity.name),
             subject_id=str(accepted.id))
    await uow.commit()
    return accepted, won


async def reject_quote(uow: UnitOfWork, principal: Principal, quote_id: uuid.UUID) -> Quote:
    repo = Repository(uow.session)
    saved = await repo.save_quote_status(model.reject_quote(await _quote(repo, principal, quote_id, for_update=True),
                                                            _now()))
    await uow.commit()
    return saved


# Funnel (R-OPP-04) ----------------------------------------------------------------------------


@dataclass(frozen=True)
class FunnelStage:
    stage_id: uuid.UUID
    name: str
    order: int
    is_won: bool
    is_lost: bool
    count: int
    amount: Decimal
    reached: int
    conversion_to_next: Decimal | None
    average_days: Decimal | None


async def funnel(uow: UnitOfWork, principal: Principal, *, pipeline_id: uuid.UUID | None, owner_id: str = "",
                 team_id: str = "", from_date: dt.date | None = None, to_date: dt.date | None = None,
                 currency: str = "") -> tuple[Pipeline, str, list[FunnelStage]]:
    if from_date and to_date and from_date >= to_date:
        raise InvalidArgument.of("to_date", "must be after from_date")
    currency = parse_currency(currency or "CNY")
    repo = Repository(uow.session)
    pipeline = await _pipeline(repo, pipeline_id)

    def start(d: dt.date | None) -> dt.datetime | None:
        return dt.datetime.combine(d, dt.time(), dt.UTC) if d else None

    rows = await repo.funnel(principal, pipeline.id, owner_id=owner_id, team_id=team_id, since=start(from_date),
                             until=start(to_date), currency=currency)
    rates = funnel_maths.conversions([(r.position, r.is_won, r.is_lost, int(r.reached)) for r in rows])
    return pipeline, currency, [
        FunnelStage(r.id, r.name, r.position, r.is_won, r.is_lost, int(r.count), Decimal(r.amount), int(r.reached),
                    rate, funnel_maths.average_days(r.seconds, int(r.ended)))
        for r, rate in zip(rows, rates, strict=True)]

