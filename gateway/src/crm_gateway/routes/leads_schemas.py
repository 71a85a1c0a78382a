"""JSON shapes of the leads API (R-LEAD-01): leads, assignment rules, conversion, attribution.
Unknown fields are rejected."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import AwareDatetime, Field

from crm_gateway.routes import customer_schemas as cs
from crm_gateway.routes import opportunities_schemas as os_
from crm_gateway.routes.common_schemas import Strict

LeadStatus = Literal["new", "working", "qualified", "unqualified", "converted"]
LifecycleStage = Literal["lead", "prospect", "customer", "churned"]


class LeadCreate(Strict):
    name: str = Field(max_length=100, description="The person's name")
    phone: str = Field("", max_length=40, description="Any format; stored as E.164 (China by default)")
    email: str = Field("", max_length=254)
    company: str = Field("", max_length=200)
    title: str = Field("", max_length=100)
    region: str = Field("", max_length=100)
    industry: str = Field("", max_length=50, description="A code from GET /api/v1/industries")
    source: str = Field(max_length=50, description="Where it came from, e.g. website, trade_show")
    campaign: str = Field("", max_length=100)
    channel: str = Field("", max_length=50)
    owner_id: str = Field("", max_length=100, description="Assign by hand; empty: the assignment rules choose")
    team_id: str = Field("", max_length=100)


class LeadBatchCreate(Strict):
    leads: list[LeadCreate] = Field(min_length=1, max_length=1000)


class Lead(Strict):
    id: str
    name: str
    phone: str = Field(description="Masked unless you see sensitive values")
    email: str
    company: str
    title: str
    region: str
    industry: str
    source: str
    campaign: str
    channel: str
    status: LeadStatus
    lifecycle_stage: LifecycleStage = Field(description="R-CUS-11: lead until converted, then prospect")
    owner_id: str | None = Field(description="None while unassigned")
    team_id: str
    department_path: str
    assignment_rule_id: str | None = Field(description="The rule that chose the owner")
    unassigned_reason: str | None = Field(description="Why nobody was assigned")
    customer_id: str | None
    contact_id: str | None
    opportunity_id: str | None
    converted_at: AwareDatetime | None
    version: int
    created_at: AwareDatetime
    updated_at: AwareDatetime
    created_by: str


class LeadPage(Strict):
    items: list[Lead]
    next_cursor: str | None


class LeadBatch(Strict):
    items: list[Lead]


class LeadStatusChange(Strict):
    status: Literal["new", "working", "qualified", "unqualified"]


class LeadAssign(Strict):
    owner_id: str = Field("", max_length=100, description="Empty: run the assignment rules again")
    team_id: str = Field("", max_length=100)


class OpportunityFields(Strict):
    name: str = Field("", max_length=200, description="The customer's name when empty")
    pipeline_id: str = Field("", max_length=36)
    amount: os_.Money = Field(default_factory=lambda: os_.Money(amount="0"))
    expected_close_date: dt.date | None = None


class LeadConvert(Strict):
    customer_id: str = Field("", max_length=36, description="Attach to this customer")
    tax_id: str = Field("", max_length=30, description="Find the customer by it, or give it to the new one")
    customer_name: str = Field("", max_length=200, description="The lead's company when empty")
    opportunity: OpportunityFields = Field(default_factory=OpportunityFields)


class LeadConversion(Strict):
    lead: Lead
    customer: cs.Customer
    customer_created: bool = Field(description="False: the lead attached to an existing customer")
    contact: cs.Contact
    opportunity: os_.Opportunity


class RuleFields(Strict):
    name: str = Field(max_length=100)
    priority: int = Field(100, ge=-1_000_000, le=1_000_000, description="Lower is tried first")
    regions: list[str] = Field(default_factory=list, max_length=100, description="Empty: any region")
    industries: list[str] = Field(default_factory=list, max_length=100, description="Empty: any industry")
    user_ids: list[str] = Field(min_length=1, max_length=200, description="The pool, in rotation order")
    team_id: str = Field("", max_length=100, description="Assigned leads get this team")
    department_path: str = Field("/", max_length=500)
    cap_count: int = Field(0, ge=0, le=100_000, description="Leads per person per cap_days; 0: no cap")
    cap_days: int = Field(7, ge=1, le=365)
    active: bool = True


class Rule(RuleFields):
    id: str
    version: int


class RuleList(Strict):
    items: list[Rule]


class AttributionRow(Strict):
    source: str
    campaign: str
    channel: str
    leads: int
    converted: int
    won: int
    won_amounts: list[os_.Money] = Field(description="One per currency")


class Attribution(Strict):
    items: list[AttributionRow]


class CustomerReassign(Strict):
    owner_id: str = Field(min_length=1, max_length=100)
    team_id: str = Field("", max_length=100, description="Unchanged when empty")
