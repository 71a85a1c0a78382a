"""What a contract names that another service owns (R-SEC-02, issue 12): the customer (customers
service) and the opportunity (opportunities service). Use cases ask these ports; the adapters ask
the owners as the caller, so a record out of the caller's scope and a missing one both raise
NotFound, and a record created a moment ago is found at once."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Protocol

from crmkit.errors import InvalidArgument
from crmkit.references import CustomerFacts


@dataclass(frozen=True)
class OpportunityFacts:
    id: str
    customer_id: str


class CustomerLookup(Protocol):
    async def customer(self, customer_id: str) -> CustomerFacts: ...


class OpportunityLookup(Protocol):
    async def opportunity(self, opportunity_id: str) -> OpportunityFacts: ...


@dataclass(frozen=True)
class Owners:
    """The owners of what a contract names (adapters: crmkit.references.CustomerDirectory and
    crm_contracts.adapters.opportunities.OpportunityDirectory)."""

    customers: CustomerLookup
    opportunities: OpportunityLookup

    async def check(self, customer_id: uuid.UUID, opportunity_id: uuid.UUID | None) -> CustomerFacts:
        """The customer, as its owner says now, after checking that it and the opportunity (if
        any) are the caller's to use and that the opportunity is that customer's."""
        customer = await self.customers.customer(str(customer_id))
        if opportunity_id is not None:
            opportunity = await self.opportunities.opportunity(str(opportunity_id))
            if opportunity.customer_id != str(customer_id):
                raise InvalidArgument.of("opportunity_id", "is an opportunity of another customer")
        return customer
