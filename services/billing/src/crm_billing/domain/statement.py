"""Reconciliation statements (對賬單, R-BIL-03), pure: which documents a statement shows and its
balances.

A statement covers one customer, one currency and a period. Once issued it never changes; what
arrives late or is cancelled afterwards goes into the next one:

* the first statement's opening balance is everything dated before the period; each later one
  opens with the previous issued statement's closing balance;
* its lines are every not yet stated document dated up to the period's end (late arrivals dated
  before the period included), and a reversal line for each stated document cancelled since;
* closing = opening + invoices − payments + adjustments (credit notes and reversals, signed).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from crm_billing.domain.money import ZERO
from crmkit.errors import Conflict, InvalidArgument


class DocumentKind(StrEnum):
    INVOICE = "invoice"
    CREDIT_NOTE = "credit_note"
    PAYMENT = "payment"


class LineKind(StrEnum):
    INVOICE = "invoice"
    CREDIT_NOTE = "credit_note"
    PAYMENT = "payment"
    REVERSAL = "reversal"


class StatementStatus(StrEnum):
    DRAFT = "draft"
    ISSUED = "issued"
    CONFIRMED = "confirmed"
    DISPUTED = "disputed"
    RESOLVED = "resolved"


@dataclass(frozen=True)
class LedgerDocument:
    """An invoice, credit note or payment as the customer's ledger sees it (amount positive)."""

    id: str
    kind: DocumentKind
    number: str
    date: dt.date
    amount: Decimal
    currency: str
    description: str = ""
    cancelled: bool = False
    stated: bool = False
    cancellation_stated: bool = False

    @property
    def signed(self) -> Decimal:
        return self.amount if self.kind is DocumentKind.INVOICE else -self.amount


@dataclass(frozen=True)
class Line:
    kind: LineKind
    document_id: str
    document_number: str
    document_date: dt.date
    description: str
    amount: Decimal  # signed effect on the balance


@dataclass(frozen=True)
class Composition:
    opening: Decimal
    lines: tuple[Line, ...]
    # Documents folded into the opening balance (the first statement): stated with it.
    opening_document_ids: tuple[str, ...]
    invoices: Decimal
    payments: Decimal
    adjustments: Decimal
    closing: Decimal


def check_period(start: dt.date | None, end: dt.date | None) -> tuple[dt.date, dt.date]:
    if start is None:
        raise InvalidArgument.of("period_start", "is required")
    if end is None:
        raise InvalidArgument.of("period_end", "is required")
    if end < start:
        raise InvalidArgument.of("period_end", "must not be before period_start")
    if (end - start).days > 366:
        raise InvalidArgument.of("period_end", "a statement covers at most a year")
    return start, end


def compose(documents: Sequence[LedgerDocument], *, currency: str, period_start: dt.date, period_end: dt.date,
            previous_closing: Decimal | None) -> Composition:
    docs = [d for d in documents if d.currency == currency]
    first = previous_closing is None
    opening_docs = [d for d in docs if first and not d.stated and not d.cancelled and d.date < period_start]
    opening = sum((d.signed for d in opening_docs), ZERO) if first else previous_closing
    assert opening is not None
    lines: list[Line] = []
    for d in sorted(docs, key=lambda d: (d.date, d.kind != DocumentKind.INVOICE, d.number, d.id)):
        if not d.stated and not d.cancelled and d.date <= period_end and (not first or d.date >= period_start):
            lines.append(Line(LineKind(d.kind.value), d.id, d.number, d.date, d.description, d.signed))
        elif d.stated and d.cancelled and not d.cancellation_stated:
            lines.append(Line(LineKind.REVERSAL, d.id, d.number, d.date, f"cancelled: {d.number}", -d.signed))
    invoices = sum((li.amount for li in lines if li.kind is LineKind.INVOICE), ZERO)
    payments = -sum((li.amount for li in lines if li.kind is LineKind.PAYMENT), ZERO)
    adjustments = sum((li.amount for li in lines if li.kind in (LineKind.CREDIT_NOTE, LineKind.REVERSAL)), ZERO)
    closing = opening + invoices - payments + adjustments
    assert closing == opening + sum((li.amount for li in lines), ZERO)
    return Composition(opening, tuple(lines), tuple(d.id for d in opening_docs), invoices, payments, adjustments,
                       closing)


# State machine ------------------------------------------------------------------------------


def check_transition(current: StatementStatus, action: str) -> StatementStatus:
    """issue: draft → issued; confirm: issued|resolved → confirmed; dispute: issued → disputed;
    resolve: disputed → disputed|resolved (the caller decides which, by what is left open)."""
    allowed = {
        "issue": ({StatementStatus.DRAFT}, StatementStatus.ISSUED),
        "confirm": ({StatementStatus.ISSUED, StatementStatus.RESOLVED}, StatementStatus.CONFIRMED),
        "dispute": ({StatementStatus.ISSUED}, StatementStatus.DISPUTED),
        "resolve": ({StatementStatus.DISPUTED}, StatementStatus.DISPUTED),
    }
    sources, target = allowed[action]
    if current not in sources:
        reason = "STATEMENT_NOT_DRAFT" if action == "issue" else "STATEMENT_STATE"
        raise Conflict(f"a {current.value} statement cannot be {action}d here", reason=reason,
                       metadata={"statement_status": current.value})
    return target


# Aging (R-BIL-04) ------------------------------------------------------------------------------

BUCKETS = ("current", "days_0_30", "days_31_60", "days_61_90", "days_over_90")


def bucket_of(due_on: dt.date, as_of: dt.date) -> str:
    """Days past due: not yet due is `current`; 0–30 (due today up to 30 days late), 31–60,
    61–90, over 90."""
    days = (as_of - due_on).days
    if days < 0:
        return "current"
    if days <= 30:
        return "days_0_30"
    if days <= 60:
        return "days_31_60"
    if days <= 90:
        return "days_61_90"
    return "days_over_90"


@dataclass
class AgingRow:
    key: str
    currency: str
    current: Decimal = ZERO
    days_0_30: Decimal = ZERO
    days_31_60: Decimal = ZERO
    days_61_90: Decimal = ZERO
    days_over_90: Decimal = ZERO
    unapplied: Decimal = ZERO
    open_invoices: int = 0
    label: str = ""

    @property
    def total(self) -> Decimal:
        return (self.current + self.days_0_30 + self.days_31_60 + self.days_61_90 + self.days_over_90
                - self.unapplied)


@dataclass(frozen=True)
class AgingItem:
    """An open invoice balance (due_on set) or an unapplied payment / credit (due_on None)."""

    key: str
    currency: str
    amount: Decimal
    due_on: dt.date | None


def aging(items: Sequence[AgingItem], as_of: dt.date) -> tuple[list[AgingRow], list[AgingRow]]:
    """Rows per (key, currency), sorted by total descending, and one totals row per currency
    that is the exact sum of the rows."""
    rows: dict[tuple[str, str], AgingRow] = {}
    for item in items:
        row = rows.setdefault((item.key, item.currency), AgingRow(item.key, item.currency))
        if item.due_on is None:
            row.unapplied += item.amount
        else:
            name = bucket_of(item.due_on, as_of)
            setattr(row, name, getattr(row, name) + item.amount)
            row.open_invoices += 1
    ordered = sorted(rows.values(), key=lambda r: (r.currency, -r.total, r.key))
    totals: dict[str, AgingRow] = {}
    for r in ordered:
        t = totals.setdefault(r.currency, AgingRow("", r.currency))
        for name in (*BUCKETS, "unapplied"):
            setattr(t, name, getattr(t, name) + getattr(r, name))
        t.open_invoices += r.open_invoices
    return ordered, [totals[c] for c in sorted(totals)]
