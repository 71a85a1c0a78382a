"""Leads (R-LEAD-01): who, where from, who works them, and the rules that keep them valid.

A lead is the `lead` stage of the one lifecycle vocabulary (R-CUS-11, crm.common.v1.LifecycleStage):
converting it makes a customer record (a `prospect`, or the existing customer it attaches to),
which a signed contract later makes a `customer`.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, replace
from decimal import Decimal
from enum import StrEnum

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from crm_customers.domain.model import MASK_CHAR, LifecycleStage, _Problems
from crm_customers.domain.text import clean
from crmkit.errors import Conflict

MAX_BATCH = 1000
_TEXT_LIMITS = {"name": 100, "company": 200, "title": 100, "region": 100, "source": 50, "campaign": 100,
                "channel": 50}


class LeadStatus(StrEnum):
    NEW = "new"
    WORKING = "working"
    QUALIFIED = "qualified"
    UNQUALIFIED = "unqualified"
    CONVERTED = "converted"


# Status changes a person may make; `converted` only through a conversion, and it is final.
_MOVES: dict[LeadStatus, frozenset[LeadStatus]] = {
    LeadStatus.NEW: frozenset({LeadStatus.WORKING, LeadStatus.QUALIFIED, LeadStatus.UNQUALIFIED}),
    LeadStatus.WORKING: frozenset({LeadStatus.NEW, LeadStatus.QUALIFIED, LeadStatus.UNQUALIFIED}),
    LeadStatus.QUALIFIED: frozenset({LeadStatus.WORKING, LeadStatus.UNQUALIFIED}),
    LeadStatus.UNQUALIFIED: frozenset({LeadStatus.WORKING, LeadStatus.QUALIFIED}),
    LeadStatus.CONVERTED: frozenset(),
}


@dataclass(frozen=True)
class Lead:
    id: uuid.UUID
    name: str
    source: str
    department_path: str
    phone: str = ""
    email: str = ""
    company: str = ""
    title: str = ""
    region: str = ""
    industry: str = ""
    campaign: str = ""
    channel: str = ""
    status: LeadStatus = LeadStatus.NEW
    owner_id: str = ""
    team_id: str = ""
    assignment_rule_id: uuid.UUID | None = None
    unassigned_reason: str = ""
    customer_id: uuid.UUID | None = None
    contact_id: uuid.UUID | None = None
    opportunity_id: uuid.UUID | None = None
    converted_at: dt.datetime | None = None
    won_amount: Decimal | None = None
    won_currency: str = ""
    version: int = 1
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    created_by: str = ""

    @property
    def lifecycle_stage(self) -> LifecycleStage:
        """R-CUS-11: a lead until converted; then its customer carries the stage (prospect first)."""
        return LifecycleStage.PROSPECT if self.status is LeadStatus.CONVERTED else LifecycleStage.LEAD


def normalise_lead(lead: Lead, default_region: str = "CN") -> Lead:
    """Cleans every field; raises InvalidArgument naming every problem at once. A lead needs a
    name, a source, and some way to reach them (phone or email) or a company."""
    problems = _Problems()
    values = {f: clean(getattr(lead, f)) for f in _TEXT_LIMITS}
    for field_name, limit in _TEXT_LIMITS.items():
        if len(values[field_name]) > limit:
            problems.add(field_name, f"must be at most {limit} characters")
    if not values["name"]:
        problems.add("name", "is required")
    values["source"] = values["source"].lower()
    values["channel"] = values["channel"].lower()
    if not values["source"]:
        problems.add("source", "is required (where the lead came from, e.g. website, trade_show)")
    phone = clean(lead.phone)
    if phone:
        if MASK_CHAR in phone:
            problems.add("phone", "is a masked value; send the full phone number")
        else:
            try:
                parsed = phonenumbers.parse(phone, default_region)
                if not phonenumbers.is_valid_number(parsed):
                    raise phonenumbers.NumberParseException(0, "invalid")
                phone = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
            except phonenumbers.NumberParseException:
                problems.add("phone", f"{phone!r} is not a valid phone number")
    email = clean(lead.email)
    if email:
        try:
            email = validate_email(email, check_deliverability=False).normalized
        except EmailNotValidError as exc:
            problems.add("email", str(exc))
    if not (phone or email or values["company"]):
        problems.add("phone", "a lead needs a phone, an email or a company")
    problems.raise_if_any("the lead")
    return replace(lead, phone=phone, email=email, industry=clean(lead.industry).lower(), **values)


def change_status(lead: Lead, status: LeadStatus) -> Lead:
    if lead.status is LeadStatus.CONVERTED:
        raise Conflict("the lead is converted; its status is final", reason="LEAD_CONVERTED")
    if status is LeadStatus.CONVERTED:
        raise Conflict("a lead becomes converted only by converting it (POST /api/v1/leads/{id}/convert)",
                       reason="CONVERT_TO_CONVERT")
    if status not in _MOVES[lead.status]:
        raise Conflict(f"a {lead.status.value} lead cannot become {status.value}", reason="LEAD_STATUS_TRANSITION",
                       metadata={"from": lead.status.value, "to": status.value})
    return replace(lead, status=status)


def check_convertible(lead: Lead) -> None:
    """An unqualified lead is not converted (requalify it first); a converted one converts again
    only as the idempotent replay of its conversion (handled by the caller)."""
    if lead.status is LeadStatus.UNQUALIFIED:
        raise Conflict("an unqualified lead is not converted; move it back to working or qualified first",
                       reason="LEAD_UNQUALIFIED")
