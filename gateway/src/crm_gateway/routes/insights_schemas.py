"""JSON shapes of the dashboard and targets API (R-DASH-01, R-DASH-06, R-CUS-08). Money is a
decimal string with its currency; rates are percent strings with two decimals, null when there is
nothing to divide by. Unknown fields are rejected."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import AwareDatetime, Field

from crm_gateway.routes.common_schemas import Money, Strict

Period = Literal["month", "quarter", "year", "custom"]
TargetPeriod = Literal["month", "quarter", "year"]
DashboardLevel = Literal["me", "team", "department", "company"]
TargetLevel = Literal["person", "team", "department", "company"]
TargetKind = Literal["signing", "collection", "new_customers"]
VALUE = r"^\s*-?\d{1,18}(\.\d{1,6})?\s*$"


class Figures(Strict):
    from_date: dt.date = Field(description="The period's first day")
    to_date: dt.date = Field(description="The period's last day (included)")
    signing_target: Money | None = Field(description="null when no target is set for the period")
    signed: Money
    signed_new_customers: Money = Field(description="R-CUS-08: contracts that were their customer's first")
    signed_existing_customers: Money
    completion_percent: str | None = Field(description="signed ÷ signing target")
    collection_target: Money | None
    collected: Money = Field(description="Payments received in the period")
    due: Money = Field(description="Receivable-plan instalments falling due in the period")
    collection_rate_percent: str | None = Field(description="collected ÷ due")
    collected_of_signed_percent: str | None = Field(description="collected ÷ signed")
    receivables_outstanding: Money = Field(description="Invoiced and unpaid at the period's end (or today)")
    receivables_overdue: Money = Field(description="The part of it past its due date")
    new_customers: int = Field(description="Customers whose first contract was signed in the period")
    new_customer_target: int | None
    new_customer_completion_percent: str | None


class LeaderboardEntry(Strict):
    person_id: str
    rank: int = Field(description="1 = most signed; equal figures share a rank")
    previous_rank: int | None = Field(description="The rank in the previous period; null when not ranked then")
    rank_change: int | None = Field(description="Places gained (positive) or lost since the previous period")
    signed: Money
    collected: Money
    new_customers: int


class Dashboard(Strict):
    level: DashboardLevel
    period: Period
    currency: str = Field(description="Every figure is in this currency")
    current: Figures
    previous_period: Figures
    same_period_last_year: Figures
    leaderboard: list[LeaderboardEntry]


class TargetCreate(Strict):
    kind: TargetKind
    level: TargetLevel
    subject_id: str = Field("", max_length=500, description="The user id (person), team id (team) or department "
                            "path such as /sales/east/ (department); empty for the company")
    period: TargetPeriod
    period_start: dt.date = Field(description="The first day of the month, quarter or year")
    value: str = Field(pattern=VALUE, description='An amount in the company currency ("1200000.00"), or a whole '
                       "number of new customers")


class TargetUpdate(Strict):
    value: str = Field(pattern=VALUE)


class Target(Strict):
    id: str
    kind: TargetKind
    level: TargetLevel
    subject_id: str
    period: TargetPeriod
    period_start: dt.date
    value: str
    currency: str | None = Field(description="null for a new-customer target (a count)")
    version: int
    set_by: str
    created_at: AwareDatetime
    updated_at: AwareDatetime


class TargetList(Strict):
    items: list[Target]


class KeyRenewal(Strict):
    customer_id: str
    customer_name: str
    owner_id: str
    signed_two_years: Money = Field(description="Signed over the last two years (the order of the list)")
    contract_id: str = Field(description="The contract ending first within six months")
    end_date: dt.date
    last_follow_up_at: AwareDatetime | None
    open_opportunities: int = Field(description="Open opportunities of the customer: a renewal in the making")
    open_opportunity_amount: Money
    overdue_receivables: Money


class KeyRenewalList(Strict):
    items: list[KeyRenewal]


class PipelineCell(Strict):
    pipeline_id: str
    stage_id: str
    person_id: str
    count: int
    amount: Money
    weighted_amount: Money = Field(description="amount × the opportunity's probability")


class PipelineMatrix(Strict):
    level: DashboardLevel
    cells: list[PipelineCell]
