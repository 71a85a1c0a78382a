"""Ownership follows the customer (issue 12, docs/architecture.md "Ownership after reassignment
and merge"): when the customers service hands a customer to another owner, or merges it into
another customer, every opportunity, quote and requirement request of it, open or closed, moves
into the new owner's scope (owner, team, department path), so the new owner sees the whole
history; `won_by` keeps the credit for what was won. A redelivered event changes nothing (the
consumer records processed event ids, and rows already moved are left alone)."""

from __future__ import annotations

import uuid

from crm.customers.v1 import events_pb2 as customer_events
from crm_opportunities.adapters.repository import Repository
from crmkit.db import UnitOfWork
from crmkit.events.envelope import Event

CUSTOMER_REASSIGNED_SUBJECT = "crm.customers.customer.reassigned"
CUSTOMERS_MERGED_SUBJECT = "crm.customers.customer.merged"


async def on_customer_reassigned(uow: UnitOfWork, event: Event) -> None:
    customer = event.message(customer_events.CustomerReassigned).customer
    customer_id = uuid.UUID(customer.id)
    await Repository(uow.session).move_customer(
        customer_id, to_customer_id=customer_id, owner_id=customer.owner_id, team_id=customer.team_id,
        department_path=customer.department_path or "/")


async def on_customers_merged(uow: UnitOfWork, event: Event) -> None:
    merged = event.message(customer_events.CustomersMerged)
    survivor = merged.surviving
    await Repository(uow.session).move_customer(
        uuid.UUID(merged.merged_id), to_customer_id=uuid.UUID(merged.surviving_id), owner_id=survivor.owner_id,
        team_id=survivor.team_id, department_path=survivor.department_path or "/")
    # The survivor's own records follow its owner too (a merge may come with a new owner).
    await Repository(uow.session).move_customer(
        uuid.UUID(merged.surviving_id), to_customer_id=uuid.UUID(merged.surviving_id), owner_id=survivor.owner_id,
        team_id=survivor.team_id, department_path=survivor.department_path or "/")
