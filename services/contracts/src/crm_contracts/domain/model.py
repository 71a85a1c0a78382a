"""Contracts (R-CON-01), their lifecycle and receivable plans (R-CON-03): pure rules, no I/O.

Money: the contract amount is what the customer pays, net plus tax (Chinese B2B contracts state
the tax-inclusive total); line amounts are net (after discount, before tax), each rounded to cents
half up; the receivable plan must add up to the amount exactly.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field, replace
from decimal import Decimal
from enum import StrEnum

from crmkit.errors import Conflict, FieldViolation, InvalidArgument, StaleVersion
from crmkit.money import HUNDRED, bounded_total, cents, line_total, parse_decimal

MAX_LINES = 500
MAX_INSTALMENTS = 120
CUSTOMER_TYPES = ("", "domestic", "foreign")





def parse_date(value: str, field_name: str) -> dt.date | None:
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise InvalidArgument.of(field_name, f"{value!r} is not an ISO 8601 date (YYYY-MM-DD)") from None


class Status(StrEnum):
    DRAFT = "draft"
    PENDING_APPROVAL = "pending_approval"
    RETURNED = "returned"
    REJECTED = "rejected"
    APPROVED = "approved"
    SIGNED = "signed"
    ACTIVE = "active"
    EXPIRED = "expired"
    TERMINATED = "terminated"
    RENEWED = "renewed"


EDITABLE = frozenset({Status.DRAFT, Status.RETURNED})
IN_FORCE = frozenset({Status.SIGNED, Status.ACTIVE})
EVER_SIGNED = frozenset({Status.SIGNED, Status.ACTIVE, Status.EXPIRED, Status.TERMINATED, Status.RENEWED})

# The lifecycle: draft → pending_approval → approved → signed → active → expired / terminated /
# renewed; an approver may return (→ returned, editable, resubmittable) or reject (final).
TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.DRAFT: frozenset({Status.PENDING_APPROVAL}),
    Status.RETURNED: frozenset({Status.PENDING_APPROVAL}),
    Status.PENDING_APPROVAL: frozenset({Status.APPROVED, Status.RETURNED, Status.REJECTED}),
    Status.APPROVED: frozenset({Status.SIGNED}),
    Status.SIGNED: frozenset({Status.ACTIVE, Status.TERMINATED, Status.RENEWED, Status.EXPIRED}),
    Status.ACTIVE: frozenset({Status.EXPIRED, Status.TERMINATED, Status.RENEWED}),
    Status.EXPIRED: frozenset({Status.RENEWED}),
    Status.REJECTED: frozenset(),
    Status.TERMINATED: frozenset(),
    Status.RENEWED: frozenset(),
}

# Why a transition is refused: the rule's name is the `reason` clients branch on.
RULE_OF_TARGET: dict[Status, str] = {
    Status.PENDING_APPROVAL: "SUBMIT_ONLY_FROM_DRAFT_OR_RETURNED",
    Status.APPROVED: "APPROVE_ONLY_WHILE_PENDING",
    Status.RETURNED: "RETURN_ONLY_WHILE_PENDING",
    Status.REJECTED: "REJECT_ONLY_WHILE_PENDING",
    Status.SIGNED: "SIGN_ONLY_WHEN_APPROVED",
    Status.ACTIVE: "ACTIVATE_ONLY_WHEN_SIGNED",
    Status.EXPIRED: "EXPIRE_ONLY_IN_FORCE",
    Status.TERMINATED: "TERMINATE_ONLY_IN_FORCE",
    Status.RENEWED: "RENEW_ONLY_SIGNED_ACTIVE_OR_EXPIRED",
}


def check_transition(current: Status, target: Status) -> None:
    if target not in TRANSITIONS[current]:
        reason = RULE_OF_TARGET.get(target, "INVALID_TRANSITION")
        raise Conflict(f"a {current.value} contract cannot become {target.value} ({reason})", reason=reason,
                       metadata={"contract_status": current.value, "target_status": target.value})


def check_editable(current: Status) -> None:
    if current not in EDITABLE:
        raise Conflict(f"a {current.value} contract cannot be edited; only draft or returned ones can "
                       "(EDIT_ONLY_DRAFT_OR_RETURNED)", reason="EDIT_ONLY_DRAFT_OR_RETURNED",
                       metadata={"contract_status": current.value})


@dataclass(frozen=True)
class Line:
    product: str
    specification: str
    quantity: Decimal
    unit: str
    unit_price: Decimal
    discount_percent: Decimal
    tax_rate_percent: Decimal
    product_line: str = ""
    line_id: str = ""

    @property
    def amount(self) -> Decimal:
        """Net: quantity × unit price × (1 − discount), to cents."""
        return cents(self.quantity * self.unit_price * (HUNDRED - self.discount_percent) / HUNDRED)

    @property
    def tax_amount(self) -> Decimal:
        return cents(self.amount * self.tax_rate_percent / HUNDRED)


def parse_line(i: int, product: str, specification: str, quantity: str, unit: str, unit_price: str,
               discount_percent: str, tax_rate_percent: str, product_line: str = "", line_id: str = "") -> Line:
    prefix = f"lines[{i}]"
    product = (product or "").strip()
    if not product:
        raise InvalidArgument.of(f"{prefix}.product", "is required")
    if len(product) > 200:
        raise InvalidArgument.of(f"{prefix}.product", "must be at most 200 characters")
    qty = parse_decimal(quantity, f"{prefix}.quantity")
    if qty <= 0:
        raise InvalidArgument.of(f"{prefix}.quantity", "must be positive")
    price = parse_decimal(unit_price, f"{prefix}.unit_price")
    line_total(qty, price, f"{prefix}.unit_price")
    return Line(product=product, specification=(specification or "").strip()[:2000], quantity=qty,
                unit=(unit or "").strip()[:20] or "pcs", unit_price=price,
                discount_percent=parse_decimal(discount_percent, f"{prefix}.discount_percent", default="0",
                                               maximum=HUNDRED),
                tax_rate_percent=parse_decimal(tax_rate_percent, f"{prefix}.tax_rate_percent", default="0",
                                               maximum=HUNDRED),
                product_line=(product_line or "").strip().lower()[:100], line_id=line_id or str(uuid.uuid4()))


@dataclass(frozen=True)
class Totals:
    net: Decimal
    tax: Decimal

    @property
    def gross(self) -> Decimal:
        return self.net + self.tax


def check_lines_total(lines: tuple[Line, ...] | list[Line]) -> None:
    """The contract amount (net plus tax of every line) stays below the maximum amount."""
    bounded_total((li.amount + li.tax_amount for li in lines), "lines")


def totals(lines: tuple[Line, ...] | list[Line]) -> Totals:
    return Totals(sum((li.amount for li in lines), Decimal("0.00")), sum((li.tax_amount for li in lines),
                                                                         Decimal("0.00")))


@dataclass(frozen=True)
class Instalment:
    sequence: int
    due_date: dt.date
    amount: Decimal
    label: str
    instalment_id: str = ""


def check_plan(instalments: list[Instalment], amount: Decimal) -> None:
    """R-CON-03: instalments add up exactly to the contract amount, each positive, due dates in
    order."""
    if len(instalments) > MAX_INSTALMENTS:
        raise InvalidArgument.of("instalments", f"at most {MAX_INSTALMENTS}")
    for i, inst in enumerate(instalments):
        if inst.amount <= 0:
            raise InvalidArgument.of(f"instalments[{i}].amount", "must be positive")
        if inst.amount != cents(inst.amount):
            raise InvalidArgument.of(f"instalments[{i}].amount", "must be in whole cents")
        if i and inst.due_date < instalments[i - 1].due_date:
            raise InvalidArgument.of(f"instalments[{i}].due_date", "must not be before the previous instalment's")
    total = sum((inst.amount for inst in instalments), Decimal("0.00"))
    if instalments and total != amount:
        raise InvalidArgument(f"instalments add up to {total}, the contract amount is {amount}",
                              reason="PLAN_TOTAL_MISMATCH",
                              violations=[FieldViolation("instalments", f"add up to {total}, not {amount}")])


def check_term(start: dt.date | None, end: dt.date | None) -> None:
    if start and end and end < start:
        raise InvalidArgument.of("end_date", "must not be before start_date")


@dataclass(frozen=True)
class Contract:
    id: uuid.UUID
    number: str
    customer_id: uuid.UUID
    currency: str
    lines: tuple[Line, ...]
    owner_id: str
    team_id: str
    department_path: str
    status: Status = Status.DRAFT
    title: str = ""
    customer_name: str = ""
    customer_type: str = ""
    opportunity_id: uuid.UUID | None = None
    quote_id: uuid.UUID | None = None
    predecessor_id: uuid.UUID | None = None
    successor_id: uuid.UUID | None = None
    start_date: dt.date | None = None
    end_date: dt.date | None = None
    sign_date: dt.date | None = None
    renewal_date: dt.date | None = None
    instalments: tuple[Instalment, ...] = ()
    version: int = 1
    revision: int = 1
    termination_reason: str = ""
    approval_rule_id: uuid.UUID | None = None
    approval_attempt: int = 0
    returned_position: int = 0
    submitted_by: str = ""
    submitted_department_path: str = ""
    created_by: str = ""
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    expiring_noticed_for: dt.date | None = None
    # Who owned it when it was signed: the credit, kept when the customer moves to another owner.
    signed_by: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def totals(self) -> Totals:
        return totals(self.lines)

    @property
    def amount(self) -> Decimal:
        return self.totals.gross

    @property
    def max_discount(self) -> Decimal:
        return max((li.discount_percent for li in self.lines), default=Decimal(0))


def check_revision(contract: Contract, expected: int) -> None:
    if expected and expected != contract.revision:
        raise StaleVersion(f"the contract is at revision {contract.revision}, not {expected}",
                           metadata={"current_revision": str(contract.revision)})


def check_submittable(contract: Contract) -> None:
    """Before approval: lines, a term, and a receivable plan that adds up (decided: the plan is
    required before submission, because billing takes it from contract.signed)."""
    check_transition(contract.status, Status.PENDING_APPROVAL)
    if not contract.lines:
        raise Conflict("a contract needs at least one line before submission", reason="LINES_REQUIRED")
    if contract.start_date is None or contract.end_date is None:
        raise Conflict("a contract needs a start and an end date before submission", reason="TERM_REQUIRED")
    if not contract.instalments:
        raise Conflict("a contract needs a receivable plan before submission (R-CON-03)", reason="PLAN_REQUIRED")
    total = sum((i.amount for i in contract.instalments), Decimal("0.00"))
    if total != contract.amount:
        raise Conflict(f"the receivable plan adds up to {total}, the contract amount is {contract.amount}",
                       reason="PLAN_TOTAL_MISMATCH")


def sign(contract: Contract, sign_date: dt.date, today: dt.date) -> Contract:
    check_transition(contract.status, Status.SIGNED)
    if sign_date > today:
        raise InvalidArgument.of("sign_date", "must not be in the future")
    return replace(contract, status=Status.SIGNED, sign_date=sign_date, signed_by=contract.owner_id)


def due_for_activation(contract: Contract, today: dt.date) -> bool:
    return contract.status is Status.SIGNED and contract.start_date is not None and contract.start_date <= today


def due_for_expiry(contract: Contract, today: dt.date) -> bool:
    return contract.status in IN_FORCE and contract.end_date is not None and contract.end_date < today


def add_months(day: dt.date, months: int) -> dt.date:
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    for d in (day.day, 30, 29, 28):
        try:
            return dt.date(year, month, d)
        except ValueError:
            continue
    raise AssertionError("unreachable")


def renewal_term(contract: Contract) -> tuple[dt.date | None, dt.date | None]:
    """The renewal's term: from the day after the predecessor ends, for as long."""
    if contract.start_date is None or contract.end_date is None:
        return None, None
    if (dt.date.max - contract.end_date).days <= (contract.end_date - contract.start_date).days:
        raise Conflict("the renewal's term would end after 9999-12-31, the last date there is",
                       reason="RENEWAL_BEYOND_CALENDAR")
    start = contract.end_date + dt.timedelta(days=1)
    return start, start + (contract.end_date - contract.start_date)


def format_number(year: int, counter: int) -> str:
    return f"CON-{year}-{counter:06d}"
