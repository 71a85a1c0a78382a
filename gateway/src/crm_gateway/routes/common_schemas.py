"""What every route module's schemas share: strict request bodies, money, currencies, line totals
and links. The rules themselves live in crmkit (services apply the same ones)."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, ClassVar
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from crmkit import money
from crmkit.errors import InvalidArgument

# A decimal string with at most 15 integer and 4 fractional digits (money is never a float).
DECIMAL = r"^-?\d{1,15}(\.\d{1,4})?$"


class Strict(BaseModel):
    """A body with a field this API does not know is refused (422), not silently ignored."""

    model_config = ConfigDict(extra="forbid")


def _iso_4217(code: str) -> str:
    if code and not money.is_currency(code):
        raise ValueError("is not an ISO 4217 currency code such as CNY, USD or EUR")
    return code


Currency = Annotated[str, Field(min_length=3, max_length=3, pattern="^[A-Z]{3}$", description="ISO 4217"),
                     AfterValidator(_iso_4217)]
# Empty means a default the operation names (the opportunity's currency, CNY for a new contract).
CurrencyOrEmpty = Annotated[str, Field(max_length=3, pattern="^([A-Z]{3})?$", description="ISO 4217"),
                            AfterValidator(_iso_4217)]


def _url_of(schemes: tuple[str, ...]) -> AfterValidator:
    # Anything else (javascript:, data:, file:) must never become a link someone clicks or a
    # request a service makes.
    def check(url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme.lower() not in schemes or not parts.netloc:
            raise ValueError(f"must be a URL starting with {' or '.join(s + '://' for s in schemes)}")
        return url

    return AfterValidator(check)


HttpUrl = Annotated[str, Field(min_length=1, max_length=2000, description="An http:// or https:// URL"),
                    _url_of(("http", "https"))]
# Attachments may also sit in an object store (s3://bucket/key).
AttachmentUrl = Annotated[str, Field(min_length=1, max_length=2000, description="An http(s):// or s3:// URL"),
                          _url_of(("http", "https", "s3"))]


class Money(Strict):
    amount: str = Field(pattern=DECIMAL, description='Decimal string, e.g. "1234.50"', examples=["1234.50"])
    currency: Currency = "CNY"

    @classmethod
    def of(cls, amount: str, currency: str, *, default_currency: str = "CNY") -> Money:
        """Money a service answered, shown as stored and not validated again: a record saved before
        a rule tightened (a currency outside ISO 4217) must still be readable, not fail the response."""
        return cls.model_construct(amount=amount or "0.00", currency=currency or default_currency)


class BoundedLine(Strict):
    """A line whose quantity × unit price stays below the maximum amount (crmkit.money.line_total),
    each factor being within its own limit or not."""

    # The field holding the unit price: a decimal string, or Money.
    PRICE_FIELD: ClassVar[str] = "unit_price"

    def line_total(self) -> Decimal:
        quantity, price = getattr(self, "quantity", None), getattr(self, self.PRICE_FIELD, None)
        price = getattr(price, "amount", price)
        if quantity is None or price is None:
            return Decimal(0)
        return money.line_total(Decimal(quantity), Decimal(price), self.PRICE_FIELD)

    @model_validator(mode="after")
    def _total_within_maximum(self) -> BoundedLine:
        try:
            self.line_total()
        except InvalidArgument as error:
            raise ValueError(error.violations[0].description) from None
        return self


def _lines_within_maximum(lines: list[BoundedLine]) -> list[BoundedLine]:
    try:
        money.bounded_total(line.line_total() for line in lines)
    except InvalidArgument as error:
        raise ValueError(error.violations[0].description) from None
    return lines


# A document's lines: each line's total and their sum stay below the maximum amount.
LinesWithinMaximum = AfterValidator(_lines_within_maximum)
