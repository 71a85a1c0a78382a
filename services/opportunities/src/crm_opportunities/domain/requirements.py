"""Requirement requests (需求申請, R-OPP-02): a customer's request for a customised product and its
feasibility review. Pure Python; broken rules raise crmkit errors naming the rule.

    submitted → under_review → feasible | not_feasible
    feasible → quoted (a quote references it)

Only holders of the reviewer role (setting `reviewer_role`) start a review and decide. A review
in progress belongs to the reviewer who started it; an administrator may decide in their place.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, replace
from decimal import Decimal
from enum import StrEnum

from crmkit.errors import Conflict, FieldViolation, InvalidArgument, StaleVersion
from crmkit.money import line_total

MAX_ATTACHMENTS = 20
MAX_ATTACHMENT_BYTES = 100 * 1024 * 1024


class RequirementStatus(StrEnum):
    SUBMITTED = "submitted"
    UNDER_REVIEW = "under_review"
    FEASIBLE = "feasible"
    NOT_FEASIBLE = "not_feasible"
    QUOTED = "quoted"


@dataclass(frozen=True)
class Attachment:
    name: str
    size_bytes: int
    content_type: str
    url: str


@dataclass(frozen=True)
class RequirementRequest:
    id: uuid.UUID
    opportunity_id: uuid.UUID
    customer_id: uuid.UUID
    title: str
    specification: str
    quantity: Decimal
    unit: str
    target_price: Decimal | None
    currency: str
    requested_date: dt.date | None
    attachments: tuple[Attachment, ...]
    owner_id: str
    team_id: str = ""
    department_path: str = "/"
    status: RequirementStatus = RequirementStatus.SUBMITTED
    reviewer_id: str = ""
    review_notes: str = ""
    quote_id: uuid.UUID | None = None
    version: int = 1
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    decided_at: dt.datetime | None = None
    created_by: str = ""


def validate(title: str, specification: str, quantity: Decimal, unit: str, target_price: Decimal | None,
             requested_date: dt.date | None, attachments: tuple[Attachment, ...], today: dt.date) -> None:
    problems: list[FieldViolation] = []
    if not title.strip() or len(title.strip()) > 200:
        problems.append(FieldViolation("title", "is required, at most 200 characters"))
    if not specification.strip():
        problems.append(FieldViolation("specification", "is required: what the customer needs made"))
    elif len(specification) > 20_000:
        problems.append(FieldViolation("specification", "at most 20000 characters"))
    if quantity <= 0:
        problems.append(FieldViolation("quantity", "must be greater than 0"))
    if len(unit.strip()) > 20:
        problems.append(FieldViolation("unit", "at most 20 characters"))
    if target_price is not None and target_price < 0:
        problems.append(FieldViolation("target_price", "must not be negative"))
    elif target_price is not None and quantity > 0:
        try:
            line_total(quantity, target_price, "target_price")
        except InvalidArgument as too_large:
            problems.extend(too_large.violations)
    if requested_date is not None and requested_date < today:
        problems.append(FieldViolation("requested_date", "must not be in the past"))
    if len(attachments) > MAX_ATTACHMENTS:
        problems.append(FieldViolation("attachments", f"at most {MAX_ATTACHMENTS}"))
    for i, a in enumerate(attachments[:MAX_ATTACHMENTS]):
        if not a.name.strip():
            problems.append(FieldViolation(f"attachments[{i}].name", "is required"))
        if not a.url.strip():
            problems.append(FieldViolation(f"attachments[{i}].url", "is required: where the file is stored"))
        if not 0 <= a.size_bytes <= MAX_ATTACHMENT_BYTES:
            problems.append(FieldViolation(f"attachments[{i}].size_bytes", "must be 0..100 MiB"))
    if problems:
        summary = "; ".join(f"{v.field}: {v.description}" for v in problems)
        raise InvalidArgument(f"the requirement request is not valid: {summary}", violations=problems)


def check_version(request: RequirementRequest, expected_version: int) -> None:
    if expected_version and expected_version != request.version:
        raise StaleVersion(f"the requirement request is at version {request.version}, not {expected_version}",
                           metadata={"current_version": str(request.version)})


def _need(request: RequirementRequest, status: RequirementStatus, action: str) -> None:
    if request.status is not status:
        raise Conflict(f"only a {status.value} requirement request can be {action}; this one is "
                       f"{request.status.value}", reason=f"REQUIREMENT_NOT_{status.value.upper()}",
                       metadata={"requirement_status": request.status.value})


def start_review(request: RequirementRequest, reviewer_id: str) -> RequirementRequest:
    _need(request, RequirementStatus.SUBMITTED, "taken into review")
    return replace(request, status=RequirementStatus.UNDER_REVIEW, reviewer_id=reviewer_id,
                   version=request.version + 1)


def decide(request: RequirementRequest, reviewer_id: str, *, feasible: bool, notes: str, now: dt.datetime,
           override: bool = False) -> RequirementRequest:
    _need(request, RequirementStatus.UNDER_REVIEW, "decided")
    if request.reviewer_id != reviewer_id and not override:
        raise Conflict(f"the review belongs to {request.reviewer_id}", reason="NOT_THE_REVIEWER",
                       metadata={"reviewer_id": request.reviewer_id})
    notes = notes.strip()
    if not feasible and not notes:
        raise InvalidArgument.of("notes", "say why it is not feasible")
    if len(notes) > 10_000:
        raise InvalidArgument.of("notes", "at most 10000 characters")
    return replace(request, status=RequirementStatus.FEASIBLE if feasible else RequirementStatus.NOT_FEASIBLE,
                   review_notes=notes, decided_at=now, reviewer_id=reviewer_id, version=request.version + 1)


def quote(request: RequirementRequest, opportunity_id: uuid.UUID, quote_id: uuid.UUID) -> RequirementRequest:
    """A quote answering the request: it must be feasible (or already quoted: a new quote version
    answers it again) and of the quote's opportunity."""
    if request.opportunity_id != opportunity_id:
        raise InvalidArgument.of("requirement_request_id", "belongs to another opportunity")
    if request.status not in (RequirementStatus.FEASIBLE, RequirementStatus.QUOTED):
        raise Conflict(f"a {request.status.value} requirement request cannot be quoted; it must be feasible",
                       reason="REQUIREMENT_NOT_FEASIBLE", metadata={"requirement_status": request.status.value})
    return replace(request, status=RequirementStatus.QUOTED, quote_id=quote_id, version=request.version + 1)
