"""Handing a customer to another owner (R-CUS-01 ownership)."""

from __future__ import annotations

import uuid
from dataclasses import replace

from crm.customers.v1 import events_pb2 as ev
from crm_customers.adapters.repository import CustomerRepository
from crm_customers.app.messages import customer_to_pb
from crm_customers.app.use_cases import _check_references, _check_version, _customer_in_scope
from crm_customers.domain.model import Customer
from crm_customers.domain.text import clean
from crmkit.auth import Principal
from crmkit.db import UnitOfWork
from crmkit.errors import InvalidArgument


async def reassign_customer(uow: UnitOfWork, principal: Principal, customer_id: uuid.UUID, owner_id: str,
                            team_id: str, expected_version: int) -> Customer:
    """The new owner (and team, unchanged when not given) must be within what the caller may
    assign; emits `customer.reassigned` with the old and new owner (notifications tell both)."""
    owner_id, team_id = clean(owner_id), clean(team_id)
    if not owner_id:
        raise InvalidArgument.of("owner_id", "is required")
    repo = CustomerRepository(uow.session)
    before = await _customer_in_scope(repo, principal, customer_id, for_update=True)
    _check_version(expected_version, before.version, "the customer")
    after = replace(before, owner_id=owner_id, team_id=team_id or before.team_id)
    if (after.owner_id, after.team_id) == (before.owner_id, before.team_id):
        return before
    await _check_references(repo, principal, after)
    saved = await repo.save(replace(after, version=before.version + 1))
    uow.emit(ev.CustomerReassigned(customer=customer_to_pb(saved), previous_owner_id=before.owner_id,
                                   owner_id=saved.owner_id, previous_team_id=before.team_id),
             subject_id=str(saved.id))
    await uow.commit()
    return saved
