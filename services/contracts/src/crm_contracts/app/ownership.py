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
from crmkit.references import customer_moves, customer_type_of

CUSTOMER_REASSIGNED_SUBJECT = "crm.customers.customer.reassigned"
CUSTOMERS_MERGED_SUBJECT = "crm.customers.customer.merged"
CUSTOMER_UPDATED_SUBJECT = "crm.customers.customer.updated"
# Until signed, a contract shows the customer as it is now.
NOT_YET_SIGNED = (Status.DRAFT.value, Status.PENDING_APPROVAL.value, Status.RETURNED.value, Status.APPROVED.value)


async def on_customer_moved(uow: UnitOfWork, event: Event) -> None:
    """`customer.reassigned` and `customer.merged` alike (`crmkit.references.customer_moves`); after
    a merge, contracts not yet signed also show the survivor as it is now."""
    repo = Repository(uow.session)
    for move in customer_moves(event):
        await repo.move_customer(uuid.UUID(move.customer_id), to_customer_id=uuid.UUID(move.into_customer_id),
                                 owner_id=move.owner_id, team_id=move.team_id, department_path=move.department_path)
    if event.type == customer_events.CustomersMerged.DESCRIPTOR.full_name:
        merged = event.message(customer_events.CustomersMerged)
        await repo.rename_customer(uuid.UUID(merged.surviving_id), merged.surviving.name,
                                   customer_type_of(merged.surviving), NOT_YET_SIGNED)


async def on_customer_updated(uow: UnitOfWork, event: Event) -> None:
    after = event.message(customer_events.CustomerUpdated).after
    await Repository(uow.session).rename_customer(uuid.UUID(after.id), after.name, customer_type_of(after),
                                                  NOT_YET_SIGNED)
