"""JSON shapes of the opportunities API (R-OPP-01, R-OPP-03, R-OPP-04). Money is a decimal string
with its currency, never a number. Unknown fields are rejected."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, ClassVar, Literal

from pydantic import AwareDatetime, Field

from crm_gateway.routes.common_schemas import (
    DECIMAL,
    AttachmentUrl,
    BoundedLine,
    CurrencyOrEmpty,
    LinesWithinMaximum,
    Money,
    Strict,
)

OpportunityStatus = Literal["open", "won", "lost"]
QuoteStatus = Literal["draft", "sent", "accepted", "rejected", "expired"]


class Stage(Strict):
    id: str
    name: str
    order: int
    default_probability: int
    is_won: bool
    is_lost: bool


class StageFields(Strict):
    name: str = Field(max_length=100)
    default_probability: int = Field(ge=0, le=100)
    is_won: bool = False
    is_lost: bool = False


class Pipeline(Strict):
    id: str
    name: str
    is_default: bool
    stages: list[Stage]


class PipelineCreate(Strict):
    name: str = Field(max_length=100)
    stages: list[StageFields] = Field(min_length=3, max_length=30, description="In order; one won, one lost")


class PipelineList(Strict):
    items: list[Pipeline]


class LostReason(Strict):
    code: str = Field(max_length=40, pattern=r"^[a-z][a-z0-9_]{1,39}$")
    name: str = Field(max_length=200)


class LostReasonList(Strict):
    items: list[LostReason]


class OpportunityCreate(Strict):
    customer_id: str = Field(max_length=36)
    name: str = Field(max_length=200)
    pipeline_id: str = Field("", max_length=36, description="The default pipeline when empty")
    amount: Money = Field(default_factory=lambda: Money(amount="0"))
    probability: int = Field(0, ge=0, le=100, description="Percent; the first stage's default when 0")
    expected_close_date: dt.date | None = None
    owner_id: str = Field("", max_length=100, description="Defaults to the caller")
    team_id: str = Field("", max_length=100, description="Defaults to the caller's team")


class Opportunity(Strict):
    id: str
    customer_id: str
    name: str
    pipeline_id: str
    stage_id: str
    amount: Money
    probability: int
    expected_close_date: dt.date | None
    status: OpportunityStatus
    lost_reason: str | None
    lost_note: str
    owner_id: str
    team_id: str
    department_path: str
    version: int
    created_at: AwareDatetime
    updated_at: AwareDatetime
    closed_at: AwareDatetime | None
    created_by: str
    lead_id: str | None = Field(None, description="The lead it was converted from")
    won_by: str | None = Field(None, description="Who owned it when it was won: the credit, kept when the customer "
                               "moves to another owner")


class OpportunityPage(Strict):
    items: list[Opportunity]
    next_cursor: str | None


class StageMove(Strict):
    stage_id: str = Field(max_length=36)
    probability: int = Field(0, ge=0, le=100, description="Percent; the stage's default when 0")


class LostOutcome(Strict):
    reason: str = Field(max_length=40, description="A code from GET /api/v1/lost-reasons")
    note: str = Field("", max_length=2000)


class StageChange(Strict):
    from_stage_id: str | None
    to_stage_id: str
    changed_by: str
    changed_at: AwareDatetime


class StageHistory(Strict):
    items: list[StageChange]


class QuoteLineFields(BoundedLine):
    product: str = Field(max_length=200)
    specification: str = Field("", max_length=2000)
    quantity: str = Field(pattern=DECIMAL)
    unit_price: str = Field(pattern=DECIMAL)
    discount_percent: str = Field("0", pattern=DECIMAL)
    tax_rate_percent: str = Field("0", pattern=DECIMAL)


class QuoteLine(QuoteLineFields):
    net_amount: str
    tax_amount: str
    gross_amount: str


class QuoteCreate(Strict):
    opportunity_id: str = Field(max_length=36)
    currency: CurrencyOrEmpty = Field("", description="The opportunity's when empty")
    valid_until: dt.date
    lines: Annotated[list[QuoteLineFields], LinesWithinMaximum] = Field(min_length=1, max_length=500)
    note: str = Field("", max_length=2000)
    requirement_request_id: str = Field("", max_length=36, description="The feasible requirement request it answers")


class Quote(Strict):
    id: str
    opportunity_id: str
    customer_id: str
    quote_version: int
    status: QuoteStatus
    currency: str
    lines: list[QuoteLine]
    net_total: Money
    tax_total: Money
    gross_total: Money
    valid_until: dt.date
    note: str
    owner_id: str
    team_id: str
    department_path: str
    created_at: AwareDatetime
    sent_at: AwareDatetime | None
    decided_at: AwareDatetime | None
    created_by: str
    requirement_request_id: str | None = None


class QuotePage(Strict):
    items: list[Quote]
    next_cursor: str | None


class AcceptanceLinks(Strict):
    contract: str = Field(description="The list filter that finds the contract drafted from this quote "
                                      "(`GET /api/v1/contracts?quote_id=…`); it appears within seconds")


class QuoteAcceptance(Strict):
    quote: Quote
    opportunity: Opportunity
    links: AcceptanceLinks


class FunnelStage(Strict):
    stage_id: str
    name: str
    order: int
    is_won: bool
    is_lost: bool
    count: int = Field(description="Opportunities now in the stage")
    amount: Money = Field(description="Their amount, in the report's currency")
    reached: int = Field(description="Opportunities that reached the stage or a later non-lost one")
    conversion_to_next: str | None = Field(description="Percent reaching the next stage, one decimal")
    average_days: str | None = Field(description="Average days of ended stays in the stage")


class Funnel(Strict):
    pipeline_id: str
    currency: str
    stages: list[FunnelStage]


# Requirement requests (需求申請, R-OPP-02) ----------------------------------------------------------

RequirementStatus = Literal["submitted", "under_review", "feasible", "not_feasible", "quoted"]


class Attachment(Strict):
    name: str = Field(min_length=1, max_length=255)
    size_bytes: int = Field(ge=0, le=100 * 1024 * 1024)
    content_type: str = Field("", max_length=100)
    url: AttachmentUrl = Field(description="Where the file is stored: an http(s) or s3 URL")


class RequirementRequestCreate(BoundedLine):
    PRICE_FIELD: ClassVar[str] = "target_price"

    opportunity_id: str = Field(max_length=36)
    title: str = Field(max_length=200)
    specification: str = Field(max_length=20000, description="What the customer needs made")
    quantity: str = Field(pattern=DECIMAL)
    unit: str = Field("", max_length=20, examples=["pcs"])
    target_price: Money | None = Field(None, description="Unit price the customer aims for")
    requested_date: dt.date | None = Field(None, description="When the customer wants it")
    attachments: list[Attachment] = Field(default_factory=list, max_length=20)


class RequirementRequest(Strict):
    id: str
    opportunity_id: str
    customer_id: str
    title: str
    specification: str
    quantity: str
    unit: str
    target_price: Money | None
    requested_date: dt.date | None
    attachments: list[Attachment]
    status: RequirementStatus
    reviewer_id: str | None
    review_notes: str
    quote_id: str | None
    owner_id: str
    team_id: str
    department_path: str
    version: int
    created_at: AwareDatetime
    updated_at: AwareDatetime
    decided_at: AwareDatetime | None
    created_by: str


class RequirementRequestCreated(RequirementRequest):
    reviewer_ids: list[str] = Field(description="Holders of the reviewer role, who are told")


class RequirementRequestPage(Strict):
    items: list[RequirementRequest]
    next_cursor: str | None


class RequirementDecision(Strict):
    feasible: bool
    notes: str = Field("", max_length=10000, description="Required when not feasible")
