"""Contracts follow their customer (issue 12, docs/architecture.md "Ownership after reassignment and
merge"), fed by the customers service's events:

- `customer.reassigned`: every contract of the customer, whatever its status, moves into the new
  owner's scope (owner, team, department path), so the new owner sees the whole history;
  `signed_by` keeps the credit for what was signed.
- `customer.merged`: the merged customer's contracts are re-pointed to the survivor and follow
  its owner.
- `customer.updated` (name or origin changed): contracts not yet signed take the current name and
  type; a signed contract keeps the name it was signed under (it is the document both signed).

A redelivered event changes nothing (processed event ids, and rows already up to date are left
alone)."""

from __future__ import annotations

import uuid

from crm.customers.v1 import events_pb2 as customer_events
from crm_contracts.adapters.repository import Repository
from crm_contracts.domain.model import Status
from crmkit.db import UnitOfWork
from crmkit.events.envelope import Event
from crmkit.references import customer_type_of

CUSTOMER_REASSIGNED_SUBJECT = "crm.customers.customer.reassigned"
CUSTOMERS_MERGED_SUBJECT = "crm.customers.customer.merged"
CUSTOMER_UPDATED_SUBJECT = "crm.customers.customer.updated"
# Until signed, a contract shows the customer as it is now.
NOT_YET_SIGNED = (Status.DRAFT.value, Status.PENDING_APPROVAL.value, Status.RETURNED.value, Status.APPROVED.value)


async def on_customer_reassigned(uow: UnitOfWork, event: Event) -> None:
    customer = event.message(customer_events.CustomerReassigned).customer
    customer_id = uuid.UUID(customer.id)
    await Repository(uow.session).move_customer(
        customer_id, to_customer_id=customer_id, owner_id=customer.owner_id, team_id=customer.team_id,
        department_path=customer.department_path or "/")


async def on_customers_merged(uow: UnitOfWork, event: Event) -> None:
    merged = event.message(customer_events.CustomersMerged)
    survivor, survivor_id = merged.surviving, uuid.UUID(merged.surviving_id)
    repo = Repository(uow.session)
    for customer_id in (uuid.UUID(merged.merged_id), survivor_id):
        await repo.move_customer(customer_id, to_customer_id=survivor_id, owner_id=survivor.owner_id,
                                 team_id=survivor.team_id, department_path=survivor.department_path or "/")
    await repo.rename_customer(survivor_id, survivor.name, customer_type_of(survivor), NOT_YET_SIGNED)


async def on_customer_updated(uow: UnitOfWork, event: Event) -> None:
    after = event.message(customer_events.CustomerUpdated).after
    await Repository(uow.session).rename_customer(uuid.UUID(after.id), after.name, customer_type_of(after),
                                                  NOT_YET_SIGNED)
