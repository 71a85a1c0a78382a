"""What billing asks the services that own the records an invoice, a payment or a statement names
(R-SEC-02). The use cases call this port; `adapters/owners.py` answers it over gRPC as the caller,
so the owner applies the caller's data scope: out of scope and absent are both `NotFound`."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Protocol

from crmkit.references import CustomerFacts


@dataclass(frozen=True)
class ContractFacts:
    """A signed contract as the contracts service has it (for one whose copy has not arrived)."""

    id: uuid.UUID
    customer_id: uuid.UUID
    owner_id: str
    team_id: str
    department_path: str


@dataclass(frozen=True)
class OrderFacts:
    id: uuid.UUID
    contract_id: uuid.UUID
    customer_id: uuid.UUID


class References(Protocol):
    async def customer(self, customer_id: uuid.UUID) -> CustomerFacts:
        """The customer as the caller may see it; `NotFound` otherwise."""

    async def contract(self, contract_id: uuid.UUID) -> ContractFacts:
        """The contract as the caller may see it, once signed; `NotFound` otherwise."""

    async def order(self, order_id: uuid.UUID) -> OrderFacts:
        """The sales order as the caller may see it; `NotFound` otherwise."""
