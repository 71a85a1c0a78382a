"""Handing a customer to another owner (R-CUS-01 ownership)."""

from __future__ import annotations

import uuid
from dataclasses import replace

from crm.customers.v1 import events_pb2 as ev
from crm_customers.adapters.repository import CustomerRepository
from crm_customers.app.imports import known_owner
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
    assign; the department path becomes the new owner's (from identity's org chart, when wired),
    so data scopes follow; emits `customer.reassigned` with the old and new owner (notifications
    tell both; opportunities, contracts, orders and billing move the customer's records)."""
    owner_id, team_id = clean(owner_id), clean(team_id)
    if not owner_id:
        raise InvalidArgument.of("owner_id", "is required")
    repo = CustomerRepository(uow.session)
    before = await _customer_in_scope(repo, principal, customer_id, for_update=True)
    _check_version(expected_version, before.version, "the customer")
    new_owner = await known_owner(owner_id)
    after = replace(before, owner_id=owner_id, team_id=team_id or before.team_id,
                    department_path=new_owner.department_path if new_owner else before.department_path)
    if (after.owner_id, after.team_id, after.department_path) == (
            before.owner_id, before.team_id, before.department_path):
        return before
    await _check_references(repo, principal, after)
    saved = await repo.save(replace(after, version=before.version + 1))
    uow.emit(ev.CustomerReassigned(customer=customer_to_pb(saved), previous_owner_id=before.owner_id,
                                   owner_id=saved.owner_id, previous_team_id=before.team_id),
             subject_id=str(saved.id))
    await uow.commit()
    return saved
