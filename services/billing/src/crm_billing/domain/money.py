"""Money for billing (R-BIL-01): Decimal only, two places, ROUND_HALF_UP, always with a currency."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from crmkit.errors import InvalidArgument
from crmkit.money import HUNDRED, bounded_total, cents, line_total, parse_decimal

ZERO = Decimal("0.00")





def parse_money_amount(text: str, field: str) -> Decimal:
    """A positive amount in cents (payments, allocations)."""
    value = parse_decimal(text, field, places=2)
    if value <= 0:
        raise InvalidArgument.of(field, "must be more than zero")
    return cents(value)


@dataclass(frozen=True)
class InvoiceLineInput:
    description: str
    quantity: Decimal
    unit_price: Decimal
    tax_rate_percent: Decimal


@dataclass(frozen=True)
class PricedInvoiceLine:
    description: str
    quantity: Decimal
    unit_price: Decimal
    tax_rate_percent: Decimal
    net_amount: Decimal
    tax_amount: Decimal
    gross_amount: Decimal


@dataclass(frozen=True)
class Totals:
    net: Decimal
    tax: Decimal
    gross: Decimal


def parse_line(index: int, description: str, quantity: str, unit_price: str, tax_rate_percent: str) -> InvoiceLineInput:
    where = f"lines[{index}]"
    description = description.strip()
    if not description:
        raise InvalidArgument.of(f"{where}.description", "is required")
    if len(description) > 500:
        raise InvalidArgument.of(f"{where}.description", "must be at most 500 characters")
    qty = parse_decimal(quantity, f"{where}.quantity")
    if qty <= 0:
        raise InvalidArgument.of(f"{where}.quantity", "must be more than zero")
    price = parse_decimal(unit_price, f"{where}.unit_price")
    line_total(qty, price, f"{where}.unit_price")
    rate = parse_decimal(tax_rate_percent, f"{where}.tax_rate_percent", default="0")
    if rate > HUNDRED:
        raise InvalidArgument.of(f"{where}.tax_rate_percent", "must be at most 100")
    return InvoiceLineInput(description, qty, price, rate)


def price_line(line: InvoiceLineInput) -> PricedInvoiceLine:
    """Net = quantity × unit price, tax = net × rate; each rounded half-up to the cent, per line
    (Chinese VAT invoices state tax per line; the invoice's tax is the sum of the lines')."""
    net = cents(line.quantity * line.unit_price)
    tax = cents(net * line.tax_rate_percent / HUNDRED)
    return PricedInvoiceLine(line.description, line.quantity, line.unit_price, line.tax_rate_percent, net, tax,
                             net + tax)


def totals(lines: list[PricedInvoiceLine]) -> Totals:
    """The invoice's totals; the gross stays below the maximum amount."""
    bounded_total((li.gross_amount for li in lines), "lines")
    net = sum((li.net_amount for li in lines), ZERO)
    tax = sum((li.tax_amount for li in lines), ZERO)
    return Totals(net, tax, net + tax)
