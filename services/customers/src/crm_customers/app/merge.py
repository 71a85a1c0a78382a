"""Likely duplicates and merge (R-CUS-03): the report, the merge, and "not duplicates".

- Report (`list_duplicates`): pairs of live customers, both within the caller's data scope, with
  the same tax ID or names whose trigram similarity (pg_trgm on `customers.name_grams`, see
  migration 0004 and domain/duplicates.py) reaches the threshold; dismissed pairs left out.
  Keyset-paginated by (first id, second id), so each page is one index-driven pass that stops as
  soon as the page is full, however many customers there are.
- Merge (`merge_customers`): both customers locked (in id order, so two merges never deadlock),
  the merged one's contacts and follow-ups moved (their ids unchanged), tags united, the
  survivor's empty fields filled (domain.duplicates.plan_merge), the merged customer soft-deleted
  with `merged_into`; recorded in `customer_merges` with both sealed before-images; events
  CustomerUpdated (the survivor, when a field changed) and CustomersMerged (for the audit trail
  and for every service holding a reference to the merged id). No CustomerDeleted: a consumer
  reacting to a deletion (closing the customer's opportunities...) must not do so for a merge.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, replace
from typing import Any

from google.protobuf.json_format import MessageToDict
from sqlalchemy import and_, exists, func, insert, or_, select, true, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import IntegrityError

from crm.customers.v1 import events_pb2 as ev
from crm_customers.adapters import sensitive
from crm_customers.adapters.repository import CustomerRepository, _customer
from crm_customers.adapters.tables import contacts, customer_merges, customers, duplicate_dismissals, follow_ups
from crm_customers.app.messages import customer_to_pb
from crm_customers.domain.duplicates import check_min_similarity, plan_merge
from crm_customers.domain.model import Customer, changed_fields, normalise_customer
from crmkit.auth import Principal
from crmkit.db import UnitOfWork
from crmkit.errors import AlreadyExists, InvalidArgument, NotFound
from crmkit.ids import new_id
from crmkit.pagination import decode_cursor, encode_cursor, invalid_cursor
from crmkit.scopes import scope_clause

_SORT = "duplicates"
_BEFORE = "customer_merges.before"


@dataclass(frozen=True)
class DuplicatePair:
    first: Customer
    second: Customer
    same_tax_id: bool
    name_similarity: float


@dataclass(frozen=True)
class MergeResult:
    customer: Customer
    filled_fields: tuple[str, ...]
    moved_contacts: int
    moved_follow_ups: int


def _live_in_scope(principal: Principal, t: Any) -> Any:
    return and_(t.c.deleted_at.is_(None),
                scope_clause(principal, owner=t.c.owner_id, team=t.c.team_id, department_path=t.c.department_path,
                             signed=t.c.has_signed_contract))


def _cursor(token: str) -> tuple[uuid.UUID, uuid.UUID] | None:
    cursor = decode_cursor(token, _SORT)
    if cursor is None:
        return None
    try:
        first, second = cursor.values
        return uuid.UUID(first), uuid.UUID(second)
    except (ValueError, TypeError):
        raise invalid_cursor("is not a cursor this API issued") from None


async def list_duplicates(uow: UnitOfWork, principal: Principal, *, min_similarity: float = 0.0,
                          customer_id: uuid.UUID | None = None, page_token: str = "",
                          limit: int = 50) -> tuple[list[DuplicatePair], str]:
    threshold = check_min_similarity(min_similarity)
    after = _cursor(page_token)
    session = uow.session
    # `%` uses the GIN trigram index and this threshold (for this transaction only).
    await session.execute(select(func.set_config("pg_trgm.similarity_threshold", str(threshold), True)))
    a, b = customers.alias("a"), customers.alias("b")
    same_tax = or_(and_(a.c.tax_id_index.is_not(None), b.c.tax_id_index == a.c.tax_id_index),
                   # rows not yet re-encrypted (migration 0002) still hold the plaintext
                   and_(a.c.tax_id.is_not(None), ~a.c.tax_id.startswith("enc:"), b.c.tax_id == a.c.tax_id))
    others = (
        select(b.c.id.label("other_id"), func.similarity(b.c.name_grams, a.c.name_grams).label("similarity"),
               same_tax.label("same_tax"))
        .where(_live_in_scope(principal, b), b.c.id != a.c.id,
               or_(b.c.name_grams.op("%")(a.c.name_grams), same_tax))
        .lateral("others"))
    dismissed = exists().where(
        duplicate_dismissals.c.customer_a == func.least(a.c.id, others.c.other_id),
        duplicate_dismissals.c.customer_b == func.greatest(a.c.id, others.c.other_id))
    query = (select(a.c.id, others.c.other_id, others.c.similarity, others.c.same_tax)
             .select_from(a.join(others, true()))
             .where(_live_in_scope(principal, a), ~dismissed))
    if customer_id is not None:
        query = query.where(a.c.id == customer_id)
    else:
        query = query.where(others.c.other_id > a.c.id)  # each pair once
    if after is not None:
        query = query.where(or_(a.c.id > after[0], and_(a.c.id == after[0], others.c.other_id > after[1])))
    rows = (await session.execute(query.order_by(a.c.id, others.c.other_id).limit(limit + 1))).all()
    page = rows[:limit]
    found = await _customers(session, {r.id for r in page} | {r.other_id for r in page})
    pairs = [DuplicatePair(found[r.id], found[r.other_id], bool(r.same_tax), round(float(r.similarity), 3))
             for r in page]
    token = encode_cursor(_SORT, [str(page[-1].id), str(page[-1].other_id)]) if len(rows) > limit else ""
    return pairs, token


async def _customers(session: Any, ids: set[uuid.UUID]) -> dict[uuid.UUID, Customer]:
    if not ids:
        return {}
    rows = (await session.execute(select(customers).where(customers.c.id.in_(list(ids))))).all()
    tags = await CustomerRepository(session)._tags_of([r.id for r in rows])
    return {r.id: _customer(r, tags.get(r.id, [])) for r in rows}


async def _both_in_scope(repo: CustomerRepository, principal: Principal, first_id: uuid.UUID,
                         second_id: uuid.UUID) -> dict[uuid.UUID, Customer]:
    """Both customers, locked in id order (two merges of the same pair never deadlock)."""
    found: dict[uuid.UUID, Customer] = {}
    for customer_id in sorted({first_id, second_id}):
        customer = await repo.get(principal, customer_id, for_update=True)
        if customer is None:
            raise NotFound(f"customer {customer_id} not found", metadata={"customer_id": str(customer_id)})
        found[customer_id] = customer
    return found


async def merge_customers(uow: UnitOfWork, principal: Principal, surviving_id: uuid.UUID,
                          merged_id: uuid.UUID) -> MergeResult:
    repo = CustomerRepository(uow.session)
    found = await _both_in_scope(repo, principal, surviving_id, merged_id)
    surviving, merged = found[surviving_id], found[merged_id]
    plan = plan_merge(surviving, merged)
    after = normalise_customer(plan.survivor)
    session = uow.session
    moved_contacts = [r.id for r in await session.execute(
        update(contacts).where(contacts.c.customer_id == merged_id)
        .values(customer_id=surviving_id, updated_at=func.now()).returning(contacts.c.id))]
    moved_follow_ups = [r.id for r in await session.execute(
        update(follow_ups).where(follow_ups.c.customer_id == merged_id)
        .values(customer_id=surviving_id).returning(follow_ups.c.id))]
    # The merged customer goes first, so its tax ID is free for the survivor to take.
    await session.execute(update(customers).where(customers.c.id == merged_id).values(
        deleted_at=func.now(), merged_into=surviving_id, version=customers.c.version + 1, updated_at=func.now()))
    changed = changed_fields(surviving, after)
    saved = surviving
    if changed:
        try:
            async with session.begin_nested():
                saved = await repo.save(replace(after, version=surviving.version + 1))
        except IntegrityError:
            raise AlreadyExists("another customer took the merged customer's tax ID meanwhile; merge again",
                                reason="DUPLICATE_TAX_ID") from None
        uow.emit(ev.CustomerUpdated(before=customer_to_pb(surviving), after=customer_to_pb(saved),
                                    changed_fields=changed), subject_id=str(surviving_id))
    before = {"surviving": MessageToDict(customer_to_pb(surviving, reveal=True)),
              "merged": MessageToDict(customer_to_pb(merged, reveal=True))}
    await session.execute(insert(customer_merges).values(
        id=new_id(), surviving_id=surviving_id, merged_id=merged_id, merged_by=principal.subject,
        moved={"contacts": [str(i) for i in moved_contacts], "follow_ups": [str(i) for i in moved_follow_ups],
               "filled_fields": list(plan.filled_fields)},
        before=sensitive.seal(json.dumps(before, ensure_ascii=False), _BEFORE)))
    uow.emit(ev.CustomersMerged(
        surviving_id=str(surviving_id), merged_id=str(merged_id), surviving=customer_to_pb(saved),
        merged=customer_to_pb(merged), moved_contact_ids=[str(i) for i in moved_contacts],
        moved_follow_up_ids=[str(i) for i in moved_follow_ups], filled_fields=list(plan.filled_fields)),
        subject_id=str(surviving_id))
    await uow.commit()
    return MergeResult(saved, plan.filled_fields, len(moved_contacts), len(moved_follow_ups))


async def dismiss_duplicate(uow: UnitOfWork, principal: Principal, customer_id: uuid.UUID,
                            other_id: uuid.UUID) -> None:
    """The pair is not a duplicate: it leaves the report (for everyone; idempotent)."""
    repo = CustomerRepository(uow.session)
    if customer_id == other_id:
        raise InvalidArgument.of("other_id", "is the same customer")
    await _both_in_scope(repo, principal, customer_id, other_id)
    first, second = sorted((customer_id, other_id))
    result = await uow.session.execute(
        pg_insert(duplicate_dismissals).values(customer_a=first, customer_b=second, dismissed_by=principal.subject)
        .on_conflict_do_nothing().returning(duplicate_dismissals.c.customer_a))
    if result.first() is not None:
        uow.emit(ev.DuplicateDismissed(customer_id=str(first), other_id=str(second)), subject_id=str(first))
    await uow.commit()
