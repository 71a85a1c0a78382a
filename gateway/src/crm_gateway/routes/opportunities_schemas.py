"""JSON shapes of the opportunities API (R-OPP-01, R-OPP-03, R-OPP-04). Money is a decimal string
with its currency, never a number. Unknown fields are rejected."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

OpportunityStatus = Literal["open", "won", "lost"]
QuoteStatus = Literal["draft", "sent", "accepted", "rejected", "expired"]
DECIMAL = r"^-?\d{1,15}(\.\d{1,4})?$"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Money(Strict):
    amount: str = Field(pattern=DECIMAL, description='Decimal string, e.g. "1234.50"', examples=["1234.50"])
    currency: str = Field("CNY", min_length=3, max_length=3, description="ISO 4217")


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


class QuoteLineFields(Strict):
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
    currency: str = Field("", max_length=3, description="The opportunity's when empty")
    valid_until: dt.date
    lines: list[QuoteLineFields] = Field(min_length=1, max_length=500)
    note: str = Field("", max_length=2000)


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


class QuotePage(Strict):
    items: list[Quote]
    next_cursor: str | None


class QuoteAcceptance(Strict):
    quote: Quote
    opportunity: Opportunity


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
