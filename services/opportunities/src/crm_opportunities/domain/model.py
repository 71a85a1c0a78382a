"""Pipelines, opportunities and quotes, and the rules of their transitions (R-OPP-01, R-OPP-03).
Pure Python: no I/O. Broken rules raise crmkit errors with a reason naming the rule."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field, replace
from decimal import Decimal
from enum import StrEnum

from crm_opportunities.domain.money import PricedLine, Totals
from crmkit.errors import Conflict, InvalidArgument, StaleVersion


class OpportunityStatus(StrEnum):
    OPEN = "open"
    WON = "won"
    LOST = "lost"


class QuoteStatus(StrEnum):
    DRAFT = "draft"
    SENT = "sent"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    EXPIRED = "expired"


@dataclass(frozen=True)
class Stage:
    id: uuid.UUID
    name: str
    order: int
    default_probability: int
    is_won: bool = False
    is_lost: bool = False

    @property
    def terminal(self) -> bool:
        return self.is_won or self.is_lost


@dataclass(frozen=True)
class Pipeline:
    id: uuid.UUID
    name: str
    is_default: bool
    stages: tuple[Stage, ...]

    def stage(self, stage_id: uuid.UUID) -> Stage | None:
        return next((s for s in self.stages if s.id == stage_id), None)

    @property
    def first_open(self) -> Stage:
        return min((s for s in self.stages if not s.terminal), key=lambda s: s.order)

    @property
    def won(self) -> Stage:
        return next(s for s in self.stages if s.is_won)

    @property
    def lost(self) -> Stage:
        return next(s for s in self.stages if s.is_lost)


def validate_pipeline(name: str, stages: list[tuple[str, int, bool, bool]]) -> list[tuple[str, int, bool, bool]]:
    """(name, default probability, is_won, is_lost) in order: names unique, probabilities 0..100,
    at least one open stage, exactly one won and one lost stage."""
    if not name.strip():
        raise InvalidArgument.of("name", "is required")
    if not any(not won and not lost for _, _, won, lost in stages):
        raise InvalidArgument.of("stages", "needs at least one open stage")
    if sum(1 for s in stages if s[2]) != 1 or sum(1 for s in stages if s[3]) != 1:
        raise InvalidArgument.of("stages", "needs exactly one won stage and one lost stage")
    seen: set[str] = set()
    out = []
    for i, (stage_name, probability, won, lost) in enumerate(stages):
        stage_name = stage_name.strip()
        if not stage_name:
            raise InvalidArgument.of(f"stages[{i}].name", "is required")
        if stage_name.casefold() in seen:
            raise InvalidArgument.of(f"stages[{i}].name", "is used by another stage")
        seen.add(stage_name.casefold())
        if won and lost:
            raise InvalidArgument.of(f"stages[{i}]", "cannot be both won and lost")
        if not 0 <= probability <= 100:
            raise InvalidArgument.of(f"stages[{i}].default_probability", "must be between 0 and 100")
        out.append((stage_name, probability, won, lost))
    return out


@dataclass(frozen=True)
class Opportunity:
    id: uuid.UUID
    customer_id: uuid.UUID
    name: str
    pipeline_id: uuid.UUID
    stage_id: uuid.UUID
    amount: Decimal
    currency: str
    probability: int
    expected_close_date: dt.date | None
    owner_id: str
    team_id: str = ""
    department_path: str = "/"
    status: OpportunityStatus = OpportunityStatus.OPEN
    lost_reason: str = ""
    lost_note: str = ""
    version: int = 1
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    closed_at: dt.datetime | None = None
    created_by: str = ""
    lead_id: uuid.UUID | None = None
    # Who owned it when it was won: the credit, kept when the customer moves to another owner.
    won_by: str = ""


def check_version(opportunity: Opportunity, expected_version: int) -> None:
    if expected_version and expected_version != opportunity.version:
        raise StaleVersion(f"the opportunity is at version {opportunity.version}, not {expected_version}",
                           metadata={"current_version": str(opportunity.version)})


def _require_open(opportunity: Opportunity) -> None:
    if opportunity.status is not OpportunityStatus.OPEN:
        raise Conflict(f"the opportunity is {opportunity.status.value}: a closed opportunity does not move",
                       reason="OPPORTUNITY_CLOSED", metadata={"opportunity_status": opportunity.status.value})


def check_probability(probability: int) -> int:
    if not 0 <= probability <= 100:
        raise InvalidArgument.of("probability", "must be between 0 and 100")
    return probability


def move_stage(opportunity: Opportunity, pipeline: Pipeline, stage_id: uuid.UUID, probability: int) -> Opportunity:
    """An open opportunity moves to another open stage of its own pipeline; won and lost have their
    own commands (lost needs a reason)."""
    _require_open(opportunity)
    stage = pipeline.stage(stage_id)
    if stage is None:
        raise InvalidArgument.of("stage_id", "is not a stage of the opportunity's pipeline")
    if stage.terminal:
        raise Conflict(f"{stage.name!r} is a terminal stage: mark the opportunity won or lost instead",
                       reason="TERMINAL_STAGE_NEEDS_OUTCOME")
    if stage.id == opportunity.stage_id:
        raise Conflict("the opportunity is already in this stage", reason="SAME_STAGE")
    return replace(opportunity, stage_id=stage.id,
                   probability=check_probability(probability) if probability else stage.default_probability,
                   version=opportunity.version + 1)


def win(opportunity: Opportunity, pipeline: Pipeline, now: dt.datetime, amount: Decimal | None = None) -> Opportunity:
    _require_open(opportunity)
    stage = pipeline.won
    return replace(opportunity, stage_id=stage.id, probability=100, status=OpportunityStatus.WON, closed_at=now,
                   amount=opportunity.amount if amount is None else amount, version=opportunity.version + 1,
                   won_by=opportunity.owner_id)


def lose(opportunity: Opportunity, pipeline: Pipeline, now: dt.datetime, reason: str, note: str,
         known_reasons: set[str]) -> Opportunity:
    _require_open(opportunity)
    reason = reason.strip()
    if not reason:
        raise InvalidArgument.of("reason", "is required: pick one from the lost-reason list")
    if reason not in known_reasons:
        raise InvalidArgument.of("reason", f"{reason!r} is not in the lost-reason list")
    stage = pipeline.lost
    return replace(opportunity, stage_id=stage.id, probability=0, status=OpportunityStatus.LOST, closed_at=now,
                   lost_reason=reason, lost_note=note.strip()[:2000], version=opportunity.version + 1)


@dataclass(frozen=True)
class StageChange:
    opportunity_id: uuid.UUID
    from_stage_id: uuid.UUID | None
    to_stage_id: uuid.UUID
    changed_by: str
    changed_at: dt.datetime


@dataclass(frozen=True)
class Quote:
    id: uuid.UUID
    opportunity_id: uuid.UUID
    customer_id: uuid.UUID
    quote_version: int
    status: QuoteStatus
    currency: str
    lines: tuple[PricedLine, ...]
    totals: Totals
    valid_until: dt.date
    owner_id: str
    team_id: str = ""
    department_path: str = "/"
    note: str = ""
    created_at: dt.datetime | None = None
    sent_at: dt.datetime | None = None
    decided_at: dt.datetime | None = None
    created_by: str = ""
    extra: dict[str, str] = field(default_factory=dict)
    requirement_request_id: uuid.UUID | None = None

    def effective_status(self, today: dt.date) -> QuoteStatus:
        """A sent quote past its valid_until is expired, whether or not anyone stored it so."""
        if self.status is QuoteStatus.SENT and today > self.valid_until:
            return QuoteStatus.EXPIRED
        return self.status


def _quote_conflict(quote: Quote, today: dt.date, action: str, need: QuoteStatus) -> None:
    status = quote.effective_status(today)
    if status is QuoteStatus.EXPIRED:
        raise Conflict(f"the quote expired on {quote.valid_until.isoformat()}: it cannot be {action}",
                       reason="QUOTE_EXPIRED", metadata={"valid_until": quote.valid_until.isoformat()})
    if status is not need:
        raise Conflict(f"only a {need.value} quote can be {action}; this one is {status.value}",
                       reason=f"QUOTE_NOT_{need.value.upper()}", metadata={"quote_status": status.value})


def check_valid_until(valid_until: dt.date, today: dt.date) -> dt.date:
    if valid_until < today:
        raise InvalidArgument.of("valid_until", "must not be in the past")
    return valid_until


def send_quote(quote: Quote, now: dt.datetime) -> Quote:
    if quote.status is QuoteStatus.DRAFT and now.date() > quote.valid_until:
        raise Conflict(f"the quote's validity ended on {quote.valid_until.isoformat()}: issue a new version",
                       reason="QUOTE_EXPIRED", metadata={"valid_until": quote.valid_until.isoformat()})
    _quote_conflict(quote, now.date(), "sent", QuoteStatus.DRAFT)
    if not quote.lines:
        raise Conflict("a quote without lines cannot be sent", reason="QUOTE_EMPTY")
    return replace(quote, status=QuoteStatus.SENT, sent_at=now)


def accept_quote(quote: Quote, opportunity: Opportunity, now: dt.datetime) -> Quote:
    _quote_conflict(quote, now.date(), "accepted", QuoteStatus.SENT)
    _require_open(opportunity)
    return replace(quote, status=QuoteStatus.ACCEPTED, decided_at=now)


def reject_quote(quote: Quote, now: dt.datetime) -> Quote:
    _quote_conflict(quote, now.date(), "rejected", QuoteStatus.SENT)
    return replace(quote, status=QuoteStatus.REJECTED, decided_at=now)
