"""Money as every service handles it: Decimal only (never a float), cents rounded half up, and
decimal strings from clients checked one way (ARCHITECTURE: money is a decimal string with a currency)."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from crmkit.errors import InvalidArgument

CENT = Decimal("0.01")
HUNDRED = Decimal(100)
MAX_AMOUNT = Decimal("1e15")


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
