"""Checking a record another service owns before a write names it (R-SEC-02).

A write that names a customer, an opportunity, a contract, … asks the owner, over a
`Runtime.caller_channel`, for that record *as the caller*: the owner applies the caller's data
scope, so a record out of scope and one that does not exist answer alike, as "not found", and the
answer is current (an event-fed copy may lag behind a record created a moment ago)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import grpc

from crm.customers.v1 import customers_pb2, customers_pb2_grpc
from crm.customers.v1 import events_pb2 as customer_events
from crmkit.errors import NotFound, Unavailable
from crmkit.events.envelope import Event
from crmkit.grpc.status import from_rpc_error

Request = TypeVar("Request")
Response = TypeVar("Response")


async def look_up(call: Callable[[Request], Awaitable[Response]], request: Request, *, what: str) -> Response:
    """`call(request)` on the owning service; "not found" and "not yours" both become
    `NotFound(f"{what} not found")`, an owner out of reach becomes `Unavailable` (503)."""
    try:
        return await call(request)
    except grpc.aio.AioRpcError as exc:
        if exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.PERMISSION_DENIED,
                          grpc.StatusCode.INVALID_ARGUMENT):
            raise NotFound(f"{what} not found", reason="REFERENCE_NOT_FOUND", metadata={"reference": what}) from exc
        if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            raise Unavailable(f"the service that owns the {what} is out of reach; retry shortly",
                              reason="REFERENCE_UNAVAILABLE") from exc
        raise from_rpc_error(exc) from exc


@dataclass(frozen=True)
class CustomerFacts:
    """What other services copy from a customer onto their documents, as its owner says now."""

    id: str
    name: str
    customer_type: str  # "domestic" | "foreign" | "" (not recorded)
    owner_id: str
    team_id: str
    department_path: str
    tier: str = ""


_CUSTOMER_TYPES = {customers_pb2.ORIGIN_DOMESTIC: "domestic", customers_pb2.ORIGIN_FOREIGN: "foreign"}


def customer_type_of(customer: customers_pb2.Customer) -> str:
    """"domestic" or "foreign" from the customer's origin; "" when it is not recorded."""
    return _CUSTOMER_TYPES.get(customer.origin, "")


class CustomerDirectory:
    """The customers service, asked for one customer. Over `Runtime.caller_channel` it answers
    for the caller (out of scope is "not found"); over `Runtime.internal_channel` for the service
    itself (an event handler copying a name onto a draft)."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stub = customers_pb2_grpc.CustomersServiceStub(channel)

    async def customer(self, customer_id: str) -> CustomerFacts:
        reply = await look_up(self._stub.GetCustomer, customers_pb2.GetCustomerRequest(id=str(customer_id)),
                              what="customer")
        c = reply.customer
        return CustomerFacts(id=c.id, name=c.name, customer_type=customer_type_of(c),
                             owner_id=c.owner_id, team_id=c.team_id, department_path=c.department_path or "/",
                             tier=c.tier)


@dataclass(frozen=True)
class CustomerMove:
    """Where the records of `customer_id` now belong: to `into_customer_id` (itself, or the survivor
    of a merge), in the scope of its owner (docs/architecture.md, "Ownership after reassignment and
    merge")."""

    customer_id: str
    into_customer_id: str
    owner_id: str
    team_id: str
    department_path: str


def customer_moves(event: Event) -> list[CustomerMove]:
    """What a `customer.reassigned` or `customer.merged` event means for another service's records:
    a reassigned customer's records move into its new owner's scope; a merged customer's records
    move to the survivor, and the survivor's own follow its owner (a merge may bring a new one)."""
    if event.type == customer_events.CustomerReassigned.DESCRIPTOR.full_name:
        c = event.message(customer_events.CustomerReassigned).customer
        return [CustomerMove(c.id, c.id, c.owner_id, c.team_id, c.department_path or "/")]
    if event.type == customer_events.CustomersMerged.DESCRIPTOR.full_name:
        merged = event.message(customer_events.CustomersMerged)
        s = merged.surviving
        return [CustomerMove(customer_id, merged.surviving_id, s.owner_id, s.team_id, s.department_path or "/")
                for customer_id in (merged.merged_id, merged.surviving_id)]
    return []
