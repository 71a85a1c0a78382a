"""JSON shapes of the contracts API (R-CON-01..04). Money is a decimal string with its currency,
never a number. Unknown fields are rejected."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, Field

from crm_gateway.routes.common_schemas import BoundedLine, CurrencyOrEmpty, LinesWithinMaximum, Money, Strict

ContractStatus = Literal["draft", "pending_approval", "returned", "rejected", "approved", "signed", "active",
                         "expired", "terminated", "renewed"]
DECIMAL = r"^\d{1,15}(\.\d{1,4})?$"
AMOUNT = r"^\d{1,15}(\.\d{1,2})?$"


class LineInput(BoundedLine):
    product: str = Field(max_length=200)
    specification: str = Field("", max_length=2000)
    quantity: str = Field(pattern=DECIMAL)
    unit: str = Field("pcs", max_length=20)
    unit_price: str = Field(pattern=DECIMAL)
    discount_percent: str = Field("0", pattern=DECIMAL, description="Percent, e.g. 5 for 5 %")
    tax_rate_percent: str = Field("0", pattern=DECIMAL, description="Percent, e.g. 13 for 13 % VAT")
    product_line: str = Field("", max_length=100, description="What approval rules may select on")


class Line(Strict):
    line_id: str
    product: str
    specification: str
    quantity: str
    unit: str
    unit_price: str
    discount_percent: str
    tax_rate: str = Field(description='Fraction, e.g. "0.13"')
    product_line: str
    amount: Money = Field(description="Net: after discount, before tax")
    tax_amount: Money


class InstalmentInput(Strict):
    due_date: dt.date
    amount: str = Field(pattern=AMOUNT)
    label: str = Field("", max_length=200, examples=["deposit", "on delivery", "acceptance"])


class Instalment(Strict):
    instalment_id: str
    sequence: int
    due_date: dt.date
    amount: Money
    label: str


class ContractFields(Strict):
    title: str = Field("", max_length=200)
    customer_name: str = Field("", max_length=300, description="Ignored: the customer's name is copied from "
                               "the customers service (and follows a rename until the contract is signed)")
    customer_type: Literal["", "domestic", "foreign"] = Field(
        "", description="Used only when the customers service records no origin for the customer; otherwise "
        "the customer's own (domestic or foreign) is copied")
    currency: CurrencyOrEmpty = Field("", description="ISO 4217; CNY for a new contract when empty")
    lines: Annotated[list[LineInput], LinesWithinMaximum] = Field(default_factory=list, max_length=500)
    start_date: dt.date | None = None
    end_date: dt.date | None = None
    renewal_date: dt.date | None = None
    instalments: list[InstalmentInput] = Field(default_factory=list, max_length=120,
                                               description="The receivable plan; must add up to the amount")


class ContractCreate(ContractFields):
    customer_id: str = Field(max_length=36)
    opportunity_id: str = Field("", max_length=36)
    owner_id: str = Field("", max_length=100, description="Defaults to the caller")
    team_id: str = Field("", max_length=100, description="Defaults to the caller's team")
    predecessor_id: str = Field("", max_length=36, description="The contract this one renews (R-CON-04)")


class ContractUpdate(ContractFields):
    pass


class Amendment(ContractFields):
    reason: str = Field(min_length=1, max_length=2000)


class Contract(Strict):
    id: str
    contract_number: str = Field(examples=["CON-2026-000123"])
    version: int
    status: ContractStatus
    title: str
    customer_id: str
    customer_name: str
    customer_type: str
    opportunity_id: str | None
    quote_id: str | None
    predecessor_id: str | None
    successor_id: str | None
    currency: str
    lines: list[Line]
    net_total: Money
    tax_total: Money
    amount: Money = Field(description="Net plus tax: what the receivable plan adds up to")
    start_date: dt.date | None
    end_date: dt.date | None
    sign_date: dt.date | None
    renewal_date: dt.date | None
    instalments: list[Instalment]
    owner_id: str
    team_id: str
    department_path: str
    created_by: str
    created_at: AwareDatetime
    updated_at: AwareDatetime
    termination_reason: str
    approval_rule_id: str | None
    approval_attempt: int
    revision: int = Field(description="Bumps on every change; the ETag")
    signed_by: str | None = Field(None, description="Who owned the contract when it was signed: the credit, "
                                  "kept when the customer moves to another owner")


class ContractPage(Strict):
    items: list[Contract]
    next_cursor: str | None


class ContractList(Strict):
    items: list[Contract]


class Submission(Strict):
    chosen_approvers: dict[int, str] = Field(
        default_factory=dict, description="For steps whose approver the submitter picks: step position → user id")


class Signing(Strict):
    sign_date: dt.date | None = Field(None, description="Today when empty")


class Termination(Strict):
    reason: str = Field(min_length=1, max_length=2000)


class ContractVersion(Strict):
    version: int
    contract: dict[str, Any] = Field(description="The contract as it was at this version")
    reason: str
    created_by: str
    created_at: AwareDatetime


class ContractVersions(Strict):
    items: list[ContractVersion]


class ReceivablePlan(Strict):
    instalments: list[Instalment]
    total: Money
    contract_amount: Money


class ReceivablePlanSet(Strict):
    instalments: list[InstalmentInput] = Field(min_length=1, max_length=120)


class ApprovalStep(Strict):
    id: str
    contract_id: str
    contract_number: str | None = None
    amount: Money | None = None
    customer_id: str | None = None
    submitter_id: str | None = None
    attempt: int
    position: int
    name: str
    state: Literal["waiting", "pending", "approved", "rejected", "returned", "cancelled"]
    approver_ids: list[str]
    mode: Literal["any", "all"]
    approved_by: list[str]
    decided_by: str | None
    acting_for: str | None = Field(description="When a delegate decided: whom they stood in for")
    reason: str
    fallback: bool = Field(description="The step resolved to nobody; the rule's fallback approver decides")
    reached_at: AwareDatetime | None
    due_at: AwareDatetime | None
    decided_at: AwareDatetime | None


class ApprovalStepList(Strict):
    items: list[ApprovalStep]


class DecisionBody(Strict):
    reason: str = Field("", max_length=2000, description="Required to reject or return")


class Decided(Strict):
    step: ApprovalStep
    contract: Contract


class Approver(Strict):
    kind: Literal["manager", "manager_level", "department_head", "role", "user", "submitter_choice"]
    levels: int | None = Field(None, ge=1, le=10, description="manager_level: how far up (1 = the manager)")
    role: str | None = Field(None, max_length=100, description="role: the role whose holders approve")
    mode: Literal["any", "all"] | None = Field(None, description="role: any one holder, or all of them")
    user_id: str | None = Field(None, max_length=100, description="user: the named approver")
    allowed_user_ids: list[str] | None = Field(None, max_length=50, description="submitter_choice: the choices")


class RuleStep(Strict):
    name: str = Field(max_length=100)
    approver: Approver
    due_hours: int = Field(48, ge=1, le=1440, description="After this, approval.step_overdue reminds")
    min_amount: str | None = Field(None, pattern=DECIMAL, description="The step applies from this amount")


class RuleConditions(Strict):
    min_amount: str | None = Field(None, pattern=DECIMAL, description="Inclusive")
    max_amount: str | None = Field(None, pattern=DECIMAL, description="Exclusive")
    discount_over_percent: str | None = Field(None, pattern=DECIMAL,
                                              description="Matches when some line's discount is above it")
    product_lines: list[str] | None = Field(None, max_length=50)
    customer_types: list[Literal["domestic", "foreign"]] | None = None
    department_prefix: str | None = Field(None, max_length=500)


class RuleFields(Strict):
    name: str = Field(max_length=200)
    priority: int = Field(ge=0, le=1_000_000, description="Lower first")
    active: bool = True
    conditions: RuleConditions = Field(default_factory=RuleConditions)
    steps: list[RuleStep] = Field(min_length=1, max_length=10)
    fallback: Approver | None = Field(None, description="Who decides a step that resolves to nobody")
    restart: Literal["first", "returning_step"] = Field("first", description="Where a resubmission starts")


class Rule(RuleFields):
    id: str
    revision: int


class RuleList(Strict):
    items: list[Rule]


class DelegationCreate(Strict):
    delegate_id: str = Field(max_length=100)
    start_date: dt.date
    end_date: dt.date


class Delegation(Strict):
    id: str
    delegator_id: str
    delegate_id: str
    start_date: dt.date
    end_date: dt.date
    revoked: bool


class DelegationList(Strict):
    items: list[Delegation]
