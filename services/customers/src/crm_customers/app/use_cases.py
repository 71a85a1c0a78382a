"""Commands and queries. Each takes a unit of work and the calling principal, applies the
domain rules, and emits the integration events of what it changed."""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import replace
from typing import Any

from sqlalchemy.exc import IntegrityError

from crm.contracts.v1 import events_pb2 as contracts_ev
from crm.customers.v1 import events_pb2 as ev
from crm_customers.adapters.repository import SORTS, CustomerRepository, sort_key
from crm_customers.app import tiers
from crm_customers.app.messages import contact_to_pb, customer_scope, customer_to_pb, follow_up_to_pb
from crm_customers.domain.model import (
    CONTACT_UPDATABLE_FIELDS,
    OWNERSHIP_FIELDS,
    UPDATABLE_FIELDS,
    Contact,
    Customer,
    FollowUp,
    LifecycleStage,
    changed_fields,
    normalise_contact,
    normalise_customer,
    normalise_follow_up,
)
from crm_customers.domain.text import clean
from crmkit.auth import Principal
from crmkit.auth.principal import SYSTEM
from crmkit.db import UnitOfWork
from crmkit.errors import AlreadyExists, InvalidArgument, NotFound, PermissionDenied, StaleVersion
from crmkit.events.envelope import Event
from crmkit.ids import new_id
from crmkit.pagination import decode_cursor, encode_cursor, page_size, text_key, time_text, uuid_text
from crmkit.scopes import may_assign

log = logging.getLogger(__name__)

def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def _customer_in_scope(repo: CustomerRepository, principal: Principal, customer_id: uuid.UUID, *,
                             for_update: bool = False) -> Customer:
    customer = await repo.get(principal, customer_id, for_update=for_update)
    if customer is None:
        raise NotFound(f"customer {customer_id} not found", metadata={"customer_id": str(customer_id)})
    return customer


def _check_version(expected: int, actual: int, what: str) -> None:
    if expected and expected != actual:
        raise StaleVersion(f"{what} is at version {actual}, not {expected}: reload it and apply your change again",
                           metadata={"current_version": str(actual)})


async def _check_references(repo: CustomerRepository, principal: Principal, customer: Customer) -> None:
    if customer.industry and not await repo.industry_exists(customer.industry):
        raise InvalidArgument.of("industry", f"unknown industry {customer.industry!r}; see GET /api/v1/industries")
    if not may_assign(principal, owner_id=customer.owner_id, team_id=customer.team_id,
                      department_path=customer.department_path):
        raise PermissionDenied("you may not assign a customer to this owner or team",
                               reason="ASSIGNMENT_OUT_OF_SCOPE")


async def _reject_duplicate(repo: CustomerRepository, principal: Principal, tax_id: str,
                            except_id: uuid.UUID | None = None) -> None:
    """R-CUS-01: one customer per tax ID. The error names the holder when the caller may see it,
    and otherwise only says that someone else holds it (R-SEC-02: nothing leaks)."""
    if not tax_id:
        return
    holder = await repo.holder_of_tax_id(tax_id)
    if holder is None or holder.id == except_id:
        return
    visible = await repo.get(principal, holder.id) is not None
    if visible:
        raise AlreadyExists(
            f"customer {holder.name!r} ({holder.id}) already has tax ID {tax_id}",
            reason="DUPLICATE_TAX_ID", metadata={"existing_customer_id": str(holder.id),
                                                 "existing_customer_name": holder.name})
    raise AlreadyExists(f"a customer with tax ID {tax_id} already exists and is owned by another team; "
                        "ask your manager to have it shared with you", reason="DUPLICATE_TAX_ID")


async def create_customer(uow: UnitOfWork, principal: Principal, fields: dict[str, Any]) -> Customer:
    repo = CustomerRepository(uow.session)
    customer = normalise_customer(Customer(
        id=new_id(), department_path=principal.department_path, created_by=principal.subject,
        **(fields | {"owner_id": fields.get("owner_id") or principal.subject,
                     "team_id": fields.get("team_id") or (principal.team_ids[0] if principal.team_ids else "")})))
    await _check_references(repo, principal, customer)
    await _reject_duplicate(repo, principal, customer.tax_id)
    try:
        async with uow.session.begin_nested():
            created = await repo.add(customer)
    except IntegrityError:
        # A concurrent create of the same tax ID won the race; report it as the duplicate it is.
        await _reject_duplicate(repo, principal, customer.tax_id)
        raise
    uow.emit(ev.CustomerCreated(customer=customer_to_pb(created)), subject_id=str(created.id))
    await uow.commit()
    return created


async def get_customer(uow: UnitOfWork, principal: Principal, customer_id: uuid.UUID) -> Customer:
    return await _customer_in_scope(CustomerRepository(uow.session), principal, customer_id)


async def update_customer(uow: UnitOfWork, principal: Principal, customer_id: uuid.UUID, fields: dict[str, Any],
                          mask: list[str], expected_version: int) -> Customer:
    unknown = sorted(set(mask) - UPDATABLE_FIELDS)
    if unknown:
        raise InvalidArgument.of("update_mask", f"cannot update {', '.join(unknown)}")
    repo = CustomerRepository(uow.session)
    before = await _customer_in_scope(repo, principal, customer_id, for_update=True)
    _check_version(expected_version, before.version, "the customer")
    after = normalise_customer(replace(before, **{f: fields[f] for f in mask}))
    changed = changed_fields(before, after)
    if not changed:
        return before
    if OWNERSHIP_FIELDS & set(changed) or "industry" in changed:
        await _check_references(repo, principal, after)
    if "tax_id" in changed:
        await _reject_duplicate(repo, principal, after.tax_id, except_id=before.id)
    try:
        async with uow.session.begin_nested():
            saved = await repo.save(replace(after, version=before.version + 1))
    except IntegrityError:
        # As in create: a concurrent change took the tax ID after our check.
        await _reject_duplicate(repo, principal, after.tax_id, except_id=before.id)
        raise
    uow.emit(ev.CustomerUpdated(before=customer_to_pb(before), after=customer_to_pb(saved), changed_fields=changed),
             subject_id=str(saved.id))
    await uow.commit()
    return saved


async def delete_customer(uow: UnitOfWork, principal: Principal, customer_id: uuid.UUID,
                          expected_version: int) -> None:
    repo = CustomerRepository(uow.session)
    customer = await _customer_in_scope(repo, principal, customer_id, for_update=True)
    _check_version(expected_version, customer.version, "the customer")
    await repo.mark_deleted(customer_id)
    uow.emit(ev.CustomerDeleted(customer=customer_to_pb(customer)), subject_id=str(customer_id))
    await uow.commit()


async def list_customers(uow: UnitOfWork, principal: Principal, *, page_token: str, limit: int, order_by: str,
                         **filters: str) -> tuple[list[Customer], str]:
    descending = order_by.startswith("-")
    sort = order_by.removeprefix("-") or "create_time"
    if not order_by:
        descending = True
    if sort not in SORTS:
        raise InvalidArgument.of("sort", f"must be one of {', '.join(SORTS)} (prefix - for descending)")
    size = page_size(limit)
    sort_name = ("-" if descending else "") + sort
    cursor = decode_cursor(page_token, sort_name, (text_key if sort == "name" else time_text, uuid_text))
    # Filters are cleaned like the values they match (a full-width search finds the folded name).
    filters = {key: clean(value) for key, value in filters.items()}
    items = await CustomerRepository(uow.session).list(
        principal, sort=sort, descending=descending, after=cursor.values if cursor else None, limit=size + 1,
        **filters)
    next_token = encode_cursor(sort_name, sort_key(sort, items[size - 1])) if len(items) > size else ""
    return items[:size], next_token


async def export_customers(uow: UnitOfWork, principal: Principal, *, page_token: str,
                           limit: int) -> tuple[list[tuple[Customer, list[Contact]]], str]:
    """A page of customers in the caller's data scope, oldest first, with their contacts
    (R-CUS-03 export; the scope is the one every list honours, R-SEC-02)."""
    items, token = await list_customers(uow, principal, page_token=page_token, limit=limit, order_by="create_time")
    found = await CustomerRepository(uow.session).contacts_of([c.id for c in items])
    return [(c, found.get(c.id, [])) for c in items], token


async def list_tags(uow: UnitOfWork, principal: Principal) -> list[tuple[str, int]]:
    return await CustomerRepository(uow.session).tag_usage(principal)


async def list_industries(uow: UnitOfWork) -> list[tuple[str, str, str]]:
    return await CustomerRepository(uow.session).list_industries()


async def create_industry(uow: UnitOfWork, principal: Principal, code: str, name: str,
                          name_zh: str) -> tuple[str, str, str]:
    if "admin" not in principal.roles:
        raise PermissionDenied("only administrators extend the industry list")
    code = code.strip().lower()
    if not code.replace("_", "").isalnum() or not code.isascii() or len(code) > 50:
        raise InvalidArgument.of("code", "must be 1-50 lowercase ASCII letters, digits or _")
    name, name_zh = clean(name), clean(name_zh)
    if not name:
        raise InvalidArgument.of("name", "is required")
    if not await CustomerRepository(uow.session).add_industry(code, name, name_zh):
        raise AlreadyExists(f"industry {code!r} already exists", reason="DUPLICATE_INDUSTRY")
    await uow.commit()
    return code, name, name_zh


# Contacts ----------------------------------------------------------------------------------

async def add_contact(uow: UnitOfWork, principal: Principal, customer_id: uuid.UUID,
                      fields: dict[str, Any]) -> Contact:
    repo = CustomerRepository(uow.session)
    customer = await _customer_in_scope(repo, principal, customer_id, for_update=True)
    contact = await repo.add_contact(normalise_contact(Contact(id=new_id(), customer_id=customer_id, **fields)))
    uow.emit(ev.ContactAdded(contact=contact_to_pb(contact), customer_scope=customer_scope(customer)),
             subject_id=str(customer_id))
    await uow.commit()
    return contact


async def _contact_of(repo: CustomerRepository, customer_id: uuid.UUID, contact_id: uuid.UUID) -> Contact:
    contact = await repo.get_contact(customer_id, contact_id, for_update=True)
    if contact is None:
        raise NotFound(f"contact {contact_id} not found on customer {customer_id}")
    return contact


async def update_contact(uow: UnitOfWork, principal: Principal, customer_id: uuid.UUID, contact_id: uuid.UUID,
                         fields: dict[str, Any], mask: list[str], expected_version: int) -> Contact:
    unknown = sorted(set(mask) - CONTACT_UPDATABLE_FIELDS)
    if unknown:
        raise InvalidArgument.of("update_mask", f"cannot update {', '.join(unknown)}")
    repo = CustomerRepository(uow.session)
    customer = await _customer_in_scope(repo, principal, customer_id)
    before = await _contact_of(repo, customer_id, contact_id)
    _check_version(expected_version, before.version, "the contact")
    after = normalise_contact(replace(before, **{f: fields[f] for f in mask}))
    changed = sorted(f for f in CONTACT_UPDATABLE_FIELDS if getattr(before, f) != getattr(after, f))
    if not changed:
        return before
    saved = await repo.save_contact(replace(after, version=before.version + 1))
    uow.emit(ev.ContactUpdated(before=contact_to_pb(before), after=contact_to_pb(saved), changed_fields=changed,
                               customer_scope=customer_scope(customer)), subject_id=str(customer_id))
    await uow.commit()
    return saved


async def remove_contact(uow: UnitOfWork, principal: Principal, customer_id: uuid.UUID,
                         contact_id: uuid.UUID) -> None:
    repo = CustomerRepository(uow.session)
    customer = await _customer_in_scope(repo, principal, customer_id)
    contact = await _contact_of(repo, customer_id, contact_id)
    await repo.remove_contact(contact_id)
    uow.emit(ev.ContactRemoved(contact=contact_to_pb(contact), customer_scope=customer_scope(customer)),
             subject_id=str(customer_id))
    await uow.commit()


async def list_contacts(uow: UnitOfWork, principal: Principal, customer_id: uuid.UUID) -> list[Contact]:
    repo = CustomerRepository(uow.session)
    await _customer_in_scope(repo, principal, customer_id)
    return await repo.list_contacts(customer_id)


# Follow-ups --------------------------------------------------------------------------------

async def record_follow_up(uow: UnitOfWork, principal: Principal, customer_id: uuid.UUID,
                           fields: dict[str, Any]) -> FollowUp:
    repo = CustomerRepository(uow.session)
    customer = await _customer_in_scope(repo, principal, customer_id)
    if fields.get("contact_id") and await repo.get_contact(customer_id, fields["contact_id"]) is None:
        raise InvalidArgument.of("contact_id", "is not a contact of this customer")
    follow_up = normalise_follow_up(FollowUp(id=new_id(), customer_id=customer_id, author_id=principal.subject,
                                             author_name=principal.name, **fields), _now())
    saved = await repo.add_follow_up(follow_up)
    uow.emit(ev.FollowUpRecorded(follow_up=follow_up_to_pb(saved), customer_scope=customer_scope(customer)),
             subject_id=str(customer_id))
    await uow.commit()
    return saved


async def list_follow_ups(uow: UnitOfWork, principal: Principal, customer_id: uuid.UUID, *, page_token: str,
                          limit: int) -> tuple[list[FollowUp], str]:
    repo = CustomerRepository(uow.session)
    await _customer_in_scope(repo, principal, customer_id)
    size = page_size(limit)
    cursor = decode_cursor(page_token, "-occur_time", (time_text, uuid_text))
    items = await repo.timeline(customer_id, after=cursor.values if cursor else None, limit=size + 1)
    next_token = ""
    if len(items) > size:
        last = items[size - 1]
        next_token = encode_cursor("-occur_time", [last.occurred_at.isoformat(), str(last.id)])
    return items[:size], next_token


# Events consumed -----------------------------------------------------------------------------

CONTRACT_SIGNED_SUBJECT = "crm.contracts.contract.signed"
# R-CUS-11: a signed contract makes a lead or prospect a customer; a churned customer stays churned
# until someone decides otherwise (the transition back is a business decision, not an event's).
_BECOMES_CUSTOMER = frozenset({LifecycleStage.LEAD, LifecycleStage.PROSPECT})


async def on_contract_signed(uow: UnitOfWork, event: Event) -> None:
    """`crm.contracts.contract.signed`: the customer now has a signed contract (finance sees it,
    R-SEC-02) and is a customer (R-CUS-11). The consumer's processed-event log makes a redelivery
    a no-op; a second contract of the same customer changes nothing and emits nothing. An event
    for a customer this service does not know (or deleted) is recorded and ignored: retrying it
    would never succeed."""
    signed = event.message(contracts_ev.ContractSigned)
    log_extra = {"event_id": event.id, "contract_id": signed.contract_id, "customer_id": signed.customer_id}
    try:
        customer_id = uuid.UUID(signed.customer_id)
    except ValueError:
        log.warning("contract signed for a malformed customer id; ignored", extra=log_extra)
        return
    repo = CustomerRepository(uow.session)
    before = await repo.get(SYSTEM, customer_id, for_update=True)
    if before is None:
        log.warning("contract signed for an unknown customer; ignored", extra=log_extra)
        return
    after = replace(before, has_signed_contract=True,
                    lifecycle_stage=LifecycleStage.CUSTOMER if before.lifecycle_stage in _BECOMES_CUSTOMER
                    else before.lifecycle_stage)
    changed = sorted(f for f in ("has_signed_contract", "lifecycle_stage") if getattr(before, f) != getattr(after, f))
    # R-CUS-06: every signed contract adds to the cumulative amount and may move the tier (once
    # per event: the consumer's processed-event log makes a redelivery a no-op).
    old_tier, new_tier = await tiers.add_signed_amount(uow, customer_id, signed.amount.amount, signed.amount.currency)
    if old_tier != new_tier:
        changed = sorted([*changed, "tier"])
    if not changed:
        return
    saved = await repo.save(replace(after, version=before.version + 1))
    uow.emit(ev.CustomerUpdated(before=customer_to_pb(before), after=customer_to_pb(saved), changed_fields=changed),
             subject_id=str(saved.id))
    log.info("contract signed", extra=log_extra | {"changed_fields": changed})
