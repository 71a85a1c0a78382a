"""The customer tier (R-CUS-06): A/B/C by the cumulative amount of signed contracts, recomputed
on each `contract.signed`; thresholds are settings (CustomersSettings.tier_*)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from sqlalchemy import select, update

from crm_customers.adapters.tables import customers
from crmkit.db import UnitOfWork


def tier_of(signed_total: Decimal, *, a_from: Decimal, b_from: Decimal) -> str:
    """R-CUS-06: A from `a_from`, B from `b_from`, C below (any signed contract makes at least C)."""
    if signed_total >= a_from:
        return "A"
    if signed_total >= b_from:
        return "B"
    return "C"


@dataclass(frozen=True)
class TierRule:
    currency: str = "CNY"
    a_from: Decimal = Decimal("5000000")
    b_from: Decimal = Decimal("1000000")


_tiers = TierRule()


def configure_tiers(currency: str, *, a_from: Decimal, b_from: Decimal) -> None:
    global _tiers
    if a_from < b_from:
        raise ValueError("tier_a_from must be at least tier_b_from")
    _tiers = TierRule(currency.upper(), a_from, b_from)


async def add_signed_amount(uow: UnitOfWork, customer_id: uuid.UUID, amount: str, currency: str) -> tuple[str, str]:
    """Adds a signed contract's amount to the customer's cumulative total and recomputes the tier
    (R-CUS-06). Amounts in another currency than the tier's do not count (no FX here; logged by
    the caller). Returns (tier before, tier after)."""
    row = (await uow.session.execute(
        select(customers.c.signed_amount, customers.c.tier).where(customers.c.id == customer_id))).one()
    if currency.upper() != _tiers.currency:
        return row.tier, row.tier
    try:
        value = Decimal(amount or "0")
    except InvalidOperation:
        return row.tier, row.tier
    total = Decimal(row.signed_amount) + value
    tier = tier_of(total, a_from=_tiers.a_from, b_from=_tiers.b_from)
    await uow.session.execute(update(customers).where(customers.c.id == customer_id)
                              .values(signed_amount=total, signed_currency=_tiers.currency, tier=tier))
    return row.tier, tier
