"""Reads and writes of customers, contacts and follow-ups, always inside the caller's scope."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from sqlalchemy import ColumnElement, and_, delete, exists, func, insert, or_, select, tuple_, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from crm_customers.adapters import sensitive
from crm_customers.adapters.tables import contacts, customer_tags, customers, follow_ups, industries
from crm_customers.domain.model import (
    Address,
    AddressKind,
    BankAccount,
    Contact,
    Customer,
    CustomerStatus,
    FollowUp,
    FollowUpKind,
    LifecycleStage,
    Origin,
    canonical_tags,
)
from crmkit.auth import Principal
from crmkit.pagination import invalid_cursor
from crmkit.scopes import scope_clause

SORTS = {"name": customers.c.name, "create_time": customers.c.created_at,
         "update_time": customers.c.updated_at}


def in_scope(principal: Principal) -> ColumnElement[bool]:
    return and_(customers.c.deleted_at.is_(None),
                scope_clause(principal, owner=customers.c.owner_id, team=customers.c.team_id,
                             department_path=customers.c.department_path,
                             signed=customers.c.has_signed_contract))


def _customer(row: Row[Any], tags: Sequence[str]) -> Customer:
    return Customer(
        id=row.id, name=row.name, tax_id=sensitive.reveal(row.tax_id or "", sensitive.TAX_ID),
        industry=row.industry or "", region=row.region,
        origin=Origin(row.origin), status=CustomerStatus(row.status),
        lifecycle_stage=LifecycleStage(row.lifecycle_stage), owner_id=row.owner_id, team_id=row.team_id,
        department_path=row.department_path, tags=tuple(tags),
        addresses=tuple(Address(**{**a, "kind": AddressKind(a["kind"])}) for a in row.addresses),
        bank_accounts=tuple(
            BankAccount(bank_name=b["bank_name"], account_name=b.get("account_name", ""),
                        account_number=sensitive.reveal(b["account_number"], sensitive.ACCOUNT_NUMBER))
            for b in row.bank_accounts),
        has_signed_contract=row.has_signed_contract, tier=row.tier,
        signed_amount=f"{row.signed_amount:.2f}" if row.signed_currency else "", signed_currency=row.signed_currency,
        version=row.version, created_at=row.created_at,
        updated_at=row.updated_at, created_by=row.created_by)


def _customer_values(c: Customer) -> dict[str, Any]:
    return {
        "name": c.name, "tax_id": sensitive.seal(c.tax_id, sensitive.TAX_ID) or None,
        "tax_id_index": sensitive.tax_id_index(c.tax_id), "industry": c.industry or None, "region": c.region,
        "origin": c.origin.value, "status": c.status.value, "lifecycle_stage": c.lifecycle_stage.value,
        "owner_id": c.owner_id, "team_id": c.team_id, "department_path": c.department_path,
        "addresses": [asdict(a) | {"kind": a.kind.value} for a in c.addresses],
        "bank_accounts": [sealed_bank_account(asdict(b)) for b in c.bank_accounts],
        "has_signed_contract": c.has_signed_contract, "version": c.version,
    }


def sealed_bank_account(account: dict[str, str]) -> dict[str, str]:
    return account | {"account_number": sensitive.seal(account["account_number"], sensitive.ACCOUNT_NUMBER)}


class CustomerRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def industry_exists(self, code: str) -> bool:
        return bool(await self.session.scalar(select(exists().where(industries.c.code == code))))

    async def list_industries(self) -> list[tuple[str, str, str]]:
        rows = await self.session.execute(select(industries).order_by(industries.c.code))
        return [(r.code, r.name, r.name_zh) for r in rows]

    async def add_industry(self, code: str, name: str, name_zh: str) -> bool:
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        result = await self.session.execute(
            pg_insert(industries).values(code=code, name=name, name_zh=name_zh).on_conflict_do_nothing()
            .returning(industries.c.code))
        return result.first() is not None

    async def holder_of_tax_id(self, tax_id: str) -> Row[Any] | None:
        """The live customer with this tax ID, whoever owns it (for duplicate detection): by its
        blind index, or by the plaintext of a row not yet re-encrypted (migration 0002)."""
        result = await self.session.execute(
            select(customers.c.id, customers.c.name, customers.c.owner_id, customers.c.team_id,
                   customers.c.department_path)
            .where(or_(customers.c.tax_id_index == sensitive.tax_id_index(tax_id), customers.c.tax_id == tax_id),
                   customers.c.deleted_at.is_(None)))
        return result.first()

    async def add(self, customer: Customer) -> Customer:
        row = (await self.session.execute(
            insert(customers).values(id=customer.id, created_by=customer.created_by, **_customer_values(customer))
            .returning(customers))).one()
        await self._set_tags(customer.id, customer.tags)
        return _customer(row, customer.tags)

    async def get(self, principal: Principal, customer_id: uuid.UUID, *, for_update: bool = False) -> Customer | None:
        query = select(customers).where(customers.c.id == customer_id, in_scope(principal))
        if for_update:
            query = query.with_for_update()
        row = (await self.session.execute(query)).first()
        if row is None:
            return None
        return _customer(row, (await self._tags_of([row.id])).get(row.id, []))

    async def save(self, customer: Customer) -> Customer:
        row = (await self.session.execute(
            update(customers).where(customers.c.id == customer.id)
            .values(updated_at=func.now(), **_customer_values(customer)).returning(customers))).one()
        await self._set_tags(customer.id, customer.tags)
        return _customer(row, customer.tags)

    async def mark_deleted(self, customer_id: uuid.UUID) -> None:
        await self.session.execute(update(customers).where(customers.c.id == customer_id)
                                   .values(deleted_at=func.now(), version=customers.c.version + 1))

    async def list(self, principal: Principal, *, sort: str, descending: bool, after: list[Any] | None,
                   limit: int, name_contains: str = "", industry: str = "", owner_id: str = "", tag: str = "",
                   team_id: str = "") -> list[Customer]:
        column = SORTS[sort]
        query = select(customers).where(in_scope(principal))
        if name_contains:
            query = query.where(customers.c.name.icontains(name_contains, autoescape=True))
        if industry:
            query = query.where(customers.c.industry == industry)
        if owner_id:
            query = query.where(customers.c.owner_id == owner_id)
        if team_id:
            query = query.where(customers.c.team_id == team_id)
        if tag:
            query = query.where(exists().where(customer_tags.c.customer_id == customers.c.id,
                                               func.lower(customer_tags.c.tag) == tag.lower()))
        if after is not None:
            key = tuple_(column, customers.c.id)
            bound = tuple_(*_cursor_key(after, _sort_parser(sort)))
            query = query.where(key < bound if descending else key > bound)
        order = (column.desc(), customers.c.id.desc()) if descending else (column.asc(), customers.c.id.asc())
        rows = (await self.session.execute(query.order_by(*order).limit(limit))).all()
        tags = await self._tags_of([r.id for r in rows])
        return [_customer(r, tags.get(r.id, [])) for r in rows]

    async def tag_usage(self, principal: Principal) -> list[tuple[str, int]]:
        rows = await self.session.execute(
            # Tags compare without case (R-CUS-04), so "VIP" and "vip" are one tag.
            select(func.min(customer_tags.c.tag), func.count())
            .join(customers, customers.c.id == customer_tags.c.customer_id)
            .where(in_scope(principal)).group_by(func.lower(customer_tags.c.tag))
            .order_by(func.count().desc(), func.min(customer_tags.c.tag)))
        return [(r[0], r[1]) for r in rows]

    async def _tags_of(self, ids: list[uuid.UUID]) -> dict[uuid.UUID, list[str]]:
        if not ids:
            return {}
        rows = await self.session.execute(select(customer_tags.c.customer_id, customer_tags.c.tag)
                                          .where(customer_tags.c.customer_id.in_(ids)))
        tags: dict[uuid.UUID, list[str]] = {}
        for customer_id, tag in rows:
            tags.setdefault(customer_id, []).append(tag)
        # The domain's order, not the database collation's, so a read compares equal to its input.
        return {customer_id: list(canonical_tags(ts)) for customer_id, ts in tags.items()}

    async def _set_tags(self, customer_id: uuid.UUID, tags: Sequence[str]) -> None:
        await self.session.execute(delete(customer_tags).where(customer_tags.c.customer_id == customer_id))
        if tags:
            await self.session.execute(insert(customer_tags),
                                       [{"customer_id": customer_id, "tag": t} for t in tags])

    # Contacts ------------------------------------------------------------------------------

    async def add_contact(self, contact: Contact) -> Contact:
        row = (await self.session.execute(insert(contacts).values(id=contact.id, **_contact_values(contact))
                                          .returning(contacts))).one()
        return _contact(row)

    async def get_contact(self, customer_id: uuid.UUID, contact_id: uuid.UUID, *,
                          for_update: bool = False) -> Contact | None:
        query = select(contacts).where(contacts.c.id == contact_id, contacts.c.customer_id == customer_id)
        if for_update:
            query = query.with_for_update()
        row = (await self.session.execute(query)).first()
        return _contact(row) if row else None

    async def save_contact(self, contact: Contact) -> Contact:
        row = (await self.session.execute(
            update(contacts).where(contacts.c.id == contact.id)
            .values(updated_at=func.now(), **_contact_values(contact)).returning(contacts))).one()
        return _contact(row)

    async def remove_contact(self, contact_id: uuid.UUID) -> None:
        await self.session.execute(delete(contacts).where(contacts.c.id == contact_id))

    async def contacts_of(self, customer_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[Contact]]:
        """The contacts of several customers at once (export), key contacts first."""
        if not customer_ids:
            return {}
        rows = await self.session.execute(select(contacts).where(contacts.c.customer_id.in_(customer_ids))
                                          .order_by(contacts.c.is_key.desc(), contacts.c.name, contacts.c.id))
        found: dict[uuid.UUID, list[Contact]] = {}
        for row in rows:
            found.setdefault(row.customer_id, []).append(_contact(row))
        return found

    async def list_contacts(self, customer_id: uuid.UUID) -> list[Contact]:
        rows = await self.session.execute(select(contacts).where(contacts.c.customer_id == customer_id)
                                          .order_by(contacts.c.is_key.desc(), contacts.c.name, contacts.c.id))
        return [_contact(r) for r in rows]

    # Follow-ups ----------------------------------------------------------------------------

    async def add_follow_up(self, f: FollowUp) -> FollowUp:
        row = (await self.session.execute(insert(follow_ups).values(
            id=f.id, customer_id=f.customer_id, kind=f.kind.value, occurred_at=f.occurred_at, summary=f.summary,
            content=f.content, key_facts=list(f.key_facts), contact_id=f.contact_id, author_id=f.author_id,
            author_name=f.author_name).returning(follow_ups))).one()
        return _follow_up(row)

    async def timeline(self, customer_id: uuid.UUID, *, after: list[Any] | None, limit: int) -> list[FollowUp]:
        query = select(follow_ups).where(follow_ups.c.customer_id == customer_id)
        if after is not None:
            query = query.where(tuple_(follow_ups.c.occurred_at, follow_ups.c.id)
                                < tuple_(*_cursor_key(after, dt.datetime.fromisoformat)))
        rows = await self.session.execute(
            query.order_by(follow_ups.c.occurred_at.desc(), follow_ups.c.id.desc()).limit(limit))
        return [_follow_up(r) for r in rows]


def _sort_parser(sort: str) -> Any:
    return str if sort == "name" else dt.datetime.fromisoformat


def _cursor_key(values: list[Any], parse: Any) -> tuple[Any, uuid.UUID]:
    try:
        if len(values) != 2 or not isinstance(values[0], str) or "\x00" in values[0]:
            raise ValueError
        return parse(values[0]), uuid.UUID(values[1])
    except (ValueError, TypeError, AttributeError):
        raise invalid_cursor("is not a cursor this API issued") from None


def sort_key(sort: str, customer: Customer) -> list[Any]:
    value = {"name": customer.name, "create_time": customer.created_at, "update_time": customer.updated_at}[sort]
    return [value.isoformat() if isinstance(value, dt.datetime) else value, str(customer.id)]


def _contact_values(c: Contact) -> dict[str, Any]:
    return {"customer_id": c.customer_id, "name": c.name, "title": c.title,
            "phones": [sensitive.seal(p, sensitive.PHONE) for p in c.phones],
            "email": c.email, "wechat": c.wechat, "is_key": c.is_key, "version": c.version}


def _contact(row: Row[Any]) -> Contact:
    return Contact(id=row.id, customer_id=row.customer_id, name=row.name, title=row.title,
                   phones=tuple(sensitive.reveal(p, sensitive.PHONE) for p in row.phones), email=row.email,
                   wechat=row.wechat, is_key=row.is_key,
                   version=row.version, created_at=row.created_at, updated_at=row.updated_at)


def _follow_up(row: Row[Any]) -> FollowUp:
    return FollowUp(id=row.id, customer_id=row.customer_id, kind=FollowUpKind(row.kind),
                    occurred_at=row.occurred_at, summary=row.summary, content=row.content,
                    key_facts=tuple(row.key_facts), contact_id=row.contact_id, author_id=row.author_id,
                    author_name=row.author_name, created_at=row.created_at)
