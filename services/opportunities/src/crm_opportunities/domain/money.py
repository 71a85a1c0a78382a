"""Money arithmetic for quotes (R-OPP-03): Decimal only, cents, ROUND_HALF_UP."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from crmkit.errors import InvalidArgument

CENT = Decimal("0.01")
HUNDRED = Decimal(100)
MAX_AMOUNT = Decimal("1e15")


def cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def parse_decimal(text: str, field: str, *, default: str | None = None, minimum: Decimal | None = Decimal(0),
                  maximum: Decimal | None = None, places: int = 4) -> Decimal:
    """A decimal string from a client; never a float. Empty means `default` (or an error)."""
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


def parse_currency(code: str, field: str = "currency") -> str:
    code = (code or "").strip().upper()
    if len(code) != 3 or not code.isascii() or not code.isalpha():
        raise InvalidArgument.of(field, "must be an ISO 4217 code such as CNY")
    return code


@dataclass(frozen=True)
class LineInput:
    product: str
    specification: str
    quantity: Decimal
    unit_price: Decimal
    discount_percent: Decimal
    tax_rate_percent: Decimal


@dataclass(frozen=True)
class PricedLine:
    product: str
    specification: str
    quantity: Decimal
    unit_price: Decimal
    discount_percent: Decimal
    tax_rate_percent: Decimal
    net_amount: Decimal
    tax_amount: Decimal
    gross_amount: Decimal


@dataclass(frozen=True)
class Totals:
    net: Decimal
    tax: Decimal
    gross: Decimal


def price_line(line: LineInput) -> PricedLine:
    """net = qty × price × (1 − discount), to cents half up; tax per line on the rounded net."""
    net = cents(line.quantity * line.unit_price * (1 - line.discount_percent / HUNDRED))
    tax = cents(net * line.tax_rate_percent / HUNDRED)
    return PricedLine(line.product, line.specification, line.quantity, line.unit_price, line.discount_percent,
                      line.tax_rate_percent, net, tax, net + tax)


def totals(lines: list[PricedLine]) -> Totals:
    net = sum((li.net_amount for li in lines), Decimal("0.00"))
    tax = sum((li.tax_amount for li in lines), Decimal("0.00"))
    return Totals(cents(net), cents(tax), cents(net + tax))


def parse_line(index: int, product: str, specification: str, quantity: str, unit_price: str, discount: str,
               tax_rate: str) -> LineInput:
    prefix = f"lines[{index}]"
    product = (product or "").strip()
    if not product:
        raise InvalidArgument.of(f"{prefix}.product", "is required")
    if len(product) > 200:
        raise InvalidArgument.of(f"{prefix}.product", "must be at most 200 characters")
    qty = parse_decimal(quantity, f"{prefix}.quantity")
    if qty <= 0:
        raise InvalidArgument.of(f"{prefix}.quantity", "must be greater than 0")
    return LineInput(
        product=product, specification=(specification or "").strip()[:2000], quantity=qty,
        unit_price=parse_decimal(unit_price, f"{prefix}.unit_price"),
        discount_percent=parse_decimal(discount, f"{prefix}.discount_percent", default="0", maximum=HUNDRED),
        tax_rate_percent=parse_decimal(tax_rate, f"{prefix}.tax_rate_percent", default="0", maximum=HUNDRED))
