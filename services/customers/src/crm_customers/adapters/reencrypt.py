"""`crm-customers reencrypt`: seals the plaintext left by migration 0002 and re-seals values made
under a key that is no longer the active one (key rotation), and fills missing blind indexes.

Batches in id order, each its own transaction with its rows locked (a concurrent update waits,
so nothing it writes is overwritten with an older value); rows already under the active key are
left alone, so a second run, or a run after an interruption, only does what is left. It changes
no business value, so it neither bumps versions nor emits events. It never prints a value.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm_customers.adapters import sensitive
from crm_customers.adapters.tables import contacts, customers


@dataclass
class Report:
    customers_scanned: int = 0
    customers_rewritten: int = 0
    contacts_scanned: int = 0
    contacts_rewritten: int = 0
    active_key: str = ""
    dry_run: bool = False
    # Legacy rows whose tax ID a newer live customer already holds (written during the rollout
    # window, when the two kinds of row could not see each other's uniqueness): left unindexed for
    # someone to merge or correct. Customer ids only, never the tax ID.
    duplicate_tax_ids: list[str] = field(default_factory=list)


def _reseal(value: str, field_name: str) -> str:
    return sensitive.seal(sensitive.reveal(value, field_name), field_name)


def _customer_changes(row: Any) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if row.tax_id:
        if sensitive.needs_rotation(row.tax_id):
            changes["tax_id"] = _reseal(row.tax_id, sensitive.TAX_ID)
        index = sensitive.tax_id_index(sensitive.reveal(row.tax_id, sensitive.TAX_ID))
        if row.tax_id_index != index:  # missing (legacy row) or made with another index key
            changes["tax_id_index"] = index
    elif row.tax_id_index is not None:
        changes["tax_id_index"] = None
    if any(sensitive.needs_rotation(b.get("account_number", "")) for b in row.bank_accounts):
        changes["bank_accounts"] = [
            b | {"account_number": _reseal(b["account_number"], sensitive.ACCOUNT_NUMBER)}
            if sensitive.needs_rotation(b.get("account_number", "")) else b
            for b in row.bank_accounts]
    return changes


async def _pass(sessions: async_sessionmaker[AsyncSession], table: Any, columns: list[Any],
                changes_of: Any, batch_size: int, dry_run: bool, conflicts: list[str]) -> tuple[int, int]:
    scanned = rewritten = 0
    after: uuid.UUID | None = None
    while True:
        async with sessions() as session, session.begin():
            query = select(table.c.id, *columns).order_by(table.c.id).limit(batch_size)
            if after is not None:
                query = query.where(table.c.id > after)
            rows = (await session.execute(query if dry_run else query.with_for_update())).all()
            if not rows:
                return scanned, rewritten
            for row in rows:
                changes = changes_of(row)
                if changes:
                    rewritten += 1
                    if not dry_run:
                        try:
                            async with session.begin_nested():
                                await session.execute(update(table).where(table.c.id == row.id).values(**changes))
                        except IntegrityError:
                            # Seal it all the same; the index stays empty and is reported each run.
                            conflicts.append(str(row.id))
                            changes.pop("tax_id_index", None)
                            if changes:
                                await session.execute(update(table).where(table.c.id == row.id).values(**changes))
            scanned += len(rows)
            after = rows[-1].id


async def reencrypt(sessions: async_sessionmaker[AsyncSession], *, batch_size: int = 500,
                    dry_run: bool = False) -> Report:
    report = Report(active_key=sensitive.cipher().active, dry_run=dry_run)
    report.customers_scanned, report.customers_rewritten = await _pass(
        sessions, customers, [customers.c.tax_id, customers.c.tax_id_index, customers.c.bank_accounts],
        _customer_changes, batch_size, dry_run, report.duplicate_tax_ids)
    report.contacts_scanned, report.contacts_rewritten = await _pass(
        sessions, contacts, [contacts.c.phones],
        lambda row: ({"phones": [_reseal(p, sensitive.PHONE) if sensitive.needs_rotation(p) else p
                                 for p in row.phones]}
                     if any(sensitive.needs_rotation(p) for p in row.phones) else {}),
        batch_size, dry_run, [])
    return report
