"""Money as every service handles it: Decimal only (never a float), cents rounded half up, and
decimal strings from clients checked one way (ARCHITECTURE: money is a decimal string with a currency)."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

import pycountry

from crmkit.errors import InvalidArgument

CENT = Decimal("0.01")
HUNDRED = Decimal(100)
# Every amount, a line's total and a document's total included, stays below this: it is what the
# services' NUMERIC columns hold, and what the gateway's decimal strings (15 integer digits) allow.
MAX_AMOUNT = Decimal("1e15")
# ISO 4217 as maintained by pycountry, less the codes that mean "no currency" and "testing".
CURRENCIES = frozenset(c.alpha_3 for c in pycountry.currencies) - {"XXX", "XTS"}


def is_currency(code: str) -> bool:
    return code in CURRENCIES


def check_currency(code: str, field: str = "currency") -> str:
    if not is_currency(code):
        raise InvalidArgument.of(field, f"{code[:10]!r} is not an ISO 4217 currency code such as CNY, USD or EUR")
    return code


def parse_currency(text: str, field: str = "currency") -> str:
    """A currency code as a client sent it, trimmed and upper-cased, checked against ISO 4217."""
    return check_currency((text or "").strip().upper(), field)


def line_total(quantity: Decimal, unit_price: Decimal, field: str = "unit_price") -> Decimal:
    """quantity × unit price, refused (InvalidArgument naming `field`) when it reaches the maximum
    amount: each factor may be within its own limit while the product is not."""
    total = quantity * unit_price
    if abs(total) >= MAX_AMOUNT:
        raise InvalidArgument.of(field, f"the line total (quantity × unit price) exceeds the maximum amount "
                                        f"of {MAX_AMOUNT:,.0f}")
    return total


def bounded_total(amounts: Iterable[Decimal], field: str = "lines") -> Decimal:
    """The sum of a document's lines, refused when it reaches the maximum amount."""
    total = sum(amounts, Decimal(0))
    if abs(total) >= MAX_AMOUNT:
        raise InvalidArgument.of(field, f"the total of the lines exceeds the maximum amount of {MAX_AMOUNT:,.0f}")
    return total


def cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def parse_decimal(text: str, field: str, *, default: str | None = None, minimum: Decimal | None = Decimal(0),
                  maximum: Decimal | None = None, places: int = 4) -> Decimal:
    """A decimal string from a client. Empty means `default` (or an error naming `field`)."""
    raw = (text or "").strip()
    if not raw:
        if default is None:
            raise InvalidArgument.of(field, "is required")
        raw = default
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise InvalidArgument.of(field, f"{text!r} is not a decimal number") from None
    if not value.is_finite():
        raise InvalidArgument.of(field, "must be a finite number")
    if value.as_tuple().exponent < -places:  # type: ignore[operator]
        raise InvalidArgument.of(field, f"has more than {places} decimal places")
    if minimum is not None and value < minimum:
        raise InvalidArgument.of(field, f"must be at least {minimum}")
    if maximum is not None and value > maximum:
        raise InvalidArgument.of(field, f"must be at most {maximum}")
    if abs(value) >= MAX_AMOUNT:
        raise InvalidArgument.of(field, "is too large")
    return value
