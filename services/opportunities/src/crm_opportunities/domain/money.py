"""Money arithmetic for quotes (R-OPP-03): Decimal only, cents, ROUND_HALF_UP."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from crmkit.errors import InvalidArgument
from crmkit.money import HUNDRED, bounded_total, cents, line_total, parse_decimal


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
    """The quote's totals; the gross (what the customer is asked to pay) stays below the maximum amount."""
    bounded_total((li.gross_amount for li in lines), "lines")
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
    price = parse_decimal(unit_price, f"{prefix}.unit_price")
    line_total(qty, price, f"{prefix}.unit_price")
    return LineInput(
        product=product, specification=(specification or "").strip()[:2000], quantity=qty, unit_price=price,
        discount_percent=parse_decimal(discount, f"{prefix}.discount_percent", default="0", maximum=HUNDRED),
        tax_rate_percent=parse_decimal(tax_rate, f"{prefix}.tax_rate_percent", default="0", maximum=HUNDRED))
