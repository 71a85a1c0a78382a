"""Allocation rules (R-BIL-02), pure: what may be applied to what, and the automatic match.

Two things are settled by money coming in, each on its own track:

* invoices (the receivable as billed: customer balance, statements, aging), settled by payments
  and by credit notes;
* receivable-plan instalments (the contract's collection progress), settled by payments.

A payment may be allocated on both tracks (its 回款 settles an invoice and counts against the
contract's plan); on each track, the sum of its allocations never exceeds its amount. No item is
ever allocated more than its open balance, and source and item must be in the same currency (no
conversion: a foreign-currency receipt is allocated to items in that currency only).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from crm_billing.domain.money import ZERO
from crmkit.errors import Conflict, InvalidArgument


class Track(StrEnum):
    INVOICE = "invoice"
    INSTALMENT = "instalment"


@dataclass(frozen=True)
class OpenItem:
    """An invoice or instalment that can take money: its open balance and what identifies it in
    a remittance reference (invoice number, SAP billing document, contract number…)."""

    id: str
    track: Track
    currency: str
    open_amount: Decimal
    references: tuple[str, ...] = ()
    due_on: dt.date | None = None


def allowed_amount(*, source_unallocated: Decimal, item_open: Decimal, source_currency: str, item_currency: str,
                   requested: Decimal | None) -> Decimal:
    """The amount that will be allocated, or the rule it breaks. `requested` None means as much
    as fits."""
    if source_currency != item_currency:
        raise Conflict(f"the payment is in {source_currency}, the item in {item_currency}: allocate in the same "
                       "currency", reason="CURRENCY_MISMATCH",
                       metadata={"payment_currency": source_currency, "item_currency": item_currency})
    if item_open <= ZERO:
        raise Conflict("the item has nothing open to allocate to", reason="ITEM_SETTLED")
    if source_unallocated <= ZERO:
        raise Conflict("nothing of the payment is left to allocate on this track", reason="PAYMENT_FULLY_ALLOCATED")
    most = min(source_unallocated, item_open)
    if requested is None:
        return most
    if requested <= ZERO:
        raise InvalidArgument.of("amount", "must be more than zero")
    if requested > source_unallocated:
        raise Conflict(f"{requested} is more than the {source_unallocated} left of the payment",
                       reason="OVER_ALLOCATION", metadata={"unallocated": str(source_unallocated)})
    if requested > item_open:
        raise Conflict(f"{requested} is more than the {item_open} open on the item", reason="OVER_ALLOCATION",
                       metadata={"open": str(item_open)})
    return requested


def _mentions(reference: str, keys: Iterable[str]) -> bool:
    ref = reference.casefold()
    return any(k and len(k) >= 3 and k.casefold() in ref for k in keys)


def auto_match(*, amount: Decimal, currency: str, reference: str, items: Sequence[OpenItem]) -> OpenItem | None:
    """The one open item a payment is for, or None (allocate by hand). First by reference: the
    remittance reference names exactly one item. Otherwise by amount: exactly one item's open
    balance equals the payment. Ambiguity is never guessed away."""
    candidates = [i for i in items if i.currency == currency and i.open_amount > ZERO]
    if reference.strip():
        named = [i for i in candidates if _mentions(reference, i.references)]
        if len(named) == 1:
            return named[0]
        if len(named) > 1:
            exact = [i for i in named if i.open_amount == amount]
            return exact[0] if len(exact) == 1 else None
    same = [i for i in candidates if i.open_amount == amount]
    return same[0] if len(same) == 1 else None


# Instalment states ---------------------------------------------------------------------------


class InstalmentState(StrEnum):
    PENDING = "pending"
    PARTIALLY_RECEIVED = "partially_received"
    RECEIVED = "received"
    OVERDUE = "overdue"
    VOID = "void"


def instalment_state(*, amount: Decimal, received: Decimal, due_date: dt.date, today: dt.date,
                     void: bool) -> InstalmentState:
    if void:
        return InstalmentState.VOID
    if received >= amount:
        return InstalmentState.RECEIVED
    if due_date < today:
        return InstalmentState.OVERDUE
    if received > ZERO:
        return InstalmentState.PARTIALLY_RECEIVED
    return InstalmentState.PENDING


# Invoice status ------------------------------------------------------------------------------


class InvoiceStatus(StrEnum):
    OPEN = "open"
    SETTLED = "settled"
    CANCELLED = "cancelled"


def invoice_status(*, total: Decimal, allocated: Decimal, cancelled: bool) -> InvoiceStatus:
    if cancelled:
        return InvoiceStatus.CANCELLED
    return InvoiceStatus.SETTLED if allocated >= total else InvoiceStatus.OPEN
