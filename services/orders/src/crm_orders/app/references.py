"""What orders asks the services that own the records an order names (R-SEC-02). The use cases
call this port; `adapters/owners.py` answers it over gRPC as the caller, so the owner applies the
caller's data scope: a record out of scope and one that does not exist are both `NotFound`."""

from __future__ import annotations

import uuid
from typing import Protocol

from crm_orders.domain.model import Contract
from crmkit.references import CustomerFacts


class References(Protocol):
    async def customer(self, customer_id: uuid.UUID) -> CustomerFacts:
        """The customer as the caller may see it; `NotFound` otherwise."""

    async def signed_contract(self, contract_id: uuid.UUID) -> Contract:
        """The contract as the caller may see it, once signed; `NotFound` otherwise (a draft, a
        contract out of the caller's scope, none at all)."""
