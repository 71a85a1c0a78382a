"""Ownership follows the customer (issue 12, docs/architecture.md "Ownership after reassignment
and merge"): when the customers service hands a customer to another owner, or merges it into
another customer, every opportunity, quote and requirement request of it, open or closed, moves
into the new owner's scope (owner, team, department path), so the new owner sees the whole
history; `won_by` keeps the credit for what was won. A redelivered event changes nothing (the
consumer records processed event ids, and rows already moved are left alone)."""

from __future__ import annotations

import uuid

from crm_opportunities.adapters.repository import Repository
from crmkit.db import UnitOfWork
from crmkit.events.envelope import Event
from crmkit.references import customer_moves

CUSTOMER_REASSIGNED_SUBJECT = "crm.customers.customer.reassigned"
CUSTOMERS_MERGED_SUBJECT = "crm.customers.customer.merged"


async def on_customer_moved(uow: UnitOfWork, event: Event) -> None:
    """`customer.reassigned` and `customer.merged` alike (`crmkit.references.customer_moves`)."""
    repo = Repository(uow.session)
    for move in customer_moves(event):
        await repo.move_customer(uuid.UUID(move.customer_id), to_customer_id=uuid.UUID(move.into_customer_id),
                                 owner_id=move.owner_id, team_id=move.team_id, department_path=move.department_path)

