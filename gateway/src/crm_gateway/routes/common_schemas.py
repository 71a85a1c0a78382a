"""What every route module's schemas share: strict request bodies and money."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

# A decimal string with at most 15 integer and 4 fractional digits (money is never a float).
DECIMAL = r"^-?\d{1,15}(\.\d{1,4})?$"


class Strict(BaseModel):
    """A body with a field this API does not know is refused (422), not silently ignored."""

    model_config = ConfigDict(extra="forbid")


class Money(Strict):
    amount: str = Field(pattern=DECIMAL, description='Decimal string, e.g. "1234.50"', examples=["1234.50"])
    currency: str = Field("CNY", min_length=3, max_length=3, description="ISO 4217")
