"""Writes to the read models. Every write is an upsert keyed by the producer's id that leaves a
newer fact alone, so a redelivered or replayed event changes nothing."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import delete, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from crm_insights.adapters.tables import (
    customers,
    follow_ups,
    instalments,
    invoice_allocations,
    invoices,
    opportunities,
    payments,
    signed_contracts,
)


@dataclass(frozen=True)
class SignedContract:
    id: uuid.UUID
    customer_id: uuid.UUID
    currency: str
    amount: Decimal
    signed_at: dt.datetime
    signed_by: str
    team_id: str
    department_path: str
    end_date: dt.date | None


@dataclass(frozen=True)
class PlannedInstalment:
    id: uuid.UUID
    due_date: dt.date
    currency: str
    amount: Decimal


@dataclass(frozen=True)
class CustomerPlace:
    id: uuid.UUID
    owner_id: str
    team_id: str
    department_path: str
    version: int
    name: str = ""


@dataclass(frozen=True)
class OpportunitySnapshot:
    id: uuid.UUID
    customer_id: uuid.UUID
    pipeline_id: str
    stage_id: str
    status: str
    currency: str
    amount: Decimal
    probability: int
    owner_id: str
    team_id: str
    department_path: str
    version: int


class ReadModels:
    def __init__(self, session: AsyncSession) -> None:
        self._s = session

    async def contract_signed(self, contract: SignedContract, plan: Sequence[PlannedInstalment],
                              signed_on: dt.date) -> None:
        await self._s.execute(insert(signed_contracts).values(
            id=contract.id, customer_id=contract.customer_id, currency=contract.currency, amount=contract.amount,
            signed_at=contract.signed_at, signed_on=signed_on, signed_by=contract.signed_by,
            team_id=contract.team_id, department_path=contract.department_path, end_date=contract.end_date,
        ).on_conflict_do_nothing(index_elements=["id"]))
        await self._put_plan(contract.id, plan)

    async def contract_amended(self, contract_id: uuid.UUID, version: int, amount: Decimal,
                               plan: Sequence[PlannedInstalment]) -> bool:
        """The amended amount and plan replace the held ones unless a later version is held."""
        changed = await self._s.execute(
            update(signed_contracts).where(signed_contracts.c.id == contract_id,
                                           signed_contracts.c.version < version)
            .values(amount=amount, version=version).returning(signed_contracts.c.id))
        if changed.first() is None:
            return False
        await self._s.execute(delete(instalments).where(
            instalments.c.contract_id == contract_id, instalments.c.id.not_in([i.id for i in plan])))
        await self._put_plan(contract_id, plan, replace=True)
        return True

    async def _put_plan(self, contract_id: uuid.UUID, plan: Sequence[PlannedInstalment], *,
                        replace: bool = False) -> None:
        for item in plan:
            statement = insert(instalments).values(id=item.id, contract_id=contract_id, due_date=item.due_date,
                                                   currency=item.currency, amount=item.amount)
            if replace:
                statement = statement.on_conflict_do_update(index_elements=["id"], set_={
                    "due_date": item.due_date, "currency": item.currency, "amount": item.amount})
            else:
                statement = statement.on_conflict_do_nothing(index_elements=["id"])
            await self._s.execute(statement)

    async def contract_terminated(self, contract_id: uuid.UUID) -> None:
        await self._s.execute(update(signed_contracts).where(signed_contracts.c.id == contract_id)
                              .values(terminated=True))

    async def customer_placed(self, place: CustomerPlace, *, whatever_version: bool = False) -> None:
        """The customer's current owner, team, department and name; an older version never
        overwrites a newer one (`whatever_version`: a merged customer takes its survivor's place).
        The customer's opportunities move with it, as they do in the opportunities service."""
        values = {"owner_id": place.owner_id, "team_id": place.team_id, "department_path": place.department_path}
        statement = insert(customers).values(id=place.id, version=place.version, name=place.name, **values)
        placed = await self._s.execute(statement.on_conflict_do_update(
            index_elements=["id"], set_={**values, "version": statement.excluded.version,
                                         "name": statement.excluded.name},
            where=None if whatever_version else customers.c.version <= statement.excluded.version,
        ).returning(customers.c.id))
        if placed.first() is not None:
            await self._s.execute(update(opportunities).where(opportunities.c.customer_id == place.id)
                                  .values(**values))

    async def customer_merged(self, merged_id: uuid.UUID, survivor: CustomerPlace, merged_version: int) -> None:
        await self.customer_placed(survivor)
        await self._s.execute(update(opportunities).where(opportunities.c.customer_id == merged_id)
                              .values(customer_id=survivor.id))
        await self.customer_placed(CustomerPlace(
            id=merged_id, owner_id=survivor.owner_id, team_id=survivor.team_id,
            department_path=survivor.department_path, version=merged_version), whatever_version=True)

    async def follow_up_recorded(self, follow_up_id: uuid.UUID, customer_id: uuid.UUID, occurred_at: dt.datetime,
                                 author_id: str) -> None:
        await self._s.execute(insert(follow_ups).values(
            id=follow_up_id, customer_id=customer_id, occurred_at=occurred_at, author_id=author_id,
        ).on_conflict_do_nothing(index_elements=["id"]))

    async def opportunity(self, snapshot: OpportunitySnapshot) -> None:
        """The latest snapshot of an opportunity; an older version never overwrites a newer one."""
        values = {k: v for k, v in snapshot.__dict__.items() if k != "id"}
        statement = insert(opportunities).values(id=snapshot.id, **values)
        await self._s.execute(statement.on_conflict_do_update(
            index_elements=["id"], set_=values, where=opportunities.c.version <= statement.excluded.version))

    async def invoice_issued(self, *, invoice_id: uuid.UUID, kind: str, customer_id: uuid.UUID,
                             contract_id: uuid.UUID | None, owner_id: str, currency: str, total: Decimal,
                             issued_on: dt.date, due_on: dt.date | None) -> None:
        await self._s.execute(insert(invoices).values(
            id=invoice_id, kind=kind, customer_id=customer_id, contract_id=contract_id, owner_id=owner_id,
            currency=currency, total=total, issued_on=issued_on, due_on=due_on,
        ).on_conflict_do_nothing(index_elements=["id"]))

    async def invoice_cancelled(self, invoice_id: uuid.UUID) -> None:
        await self._s.execute(update(invoices).where(invoices.c.id == invoice_id).values(cancelled=True))

    async def payment_received(self, *, payment_id: uuid.UUID, customer_id: uuid.UUID, owner_id: str,
                               currency: str, amount: Decimal, received_on: dt.date) -> None:
        await self._s.execute(insert(payments).values(
            id=payment_id, customer_id=customer_id, owner_id=owner_id, currency=currency, amount=amount,
            received_on=received_on,
        ).on_conflict_do_nothing(index_elements=["id"]))

    async def invoice_paid(self, *, allocation_id: uuid.UUID, payment_id: uuid.UUID, invoice_id: uuid.UUID,
                           amount: Decimal) -> None:
        await self._s.execute(insert(invoice_allocations).values(
            id=allocation_id, payment_id=payment_id, invoice_id=invoice_id, amount=amount,
        ).on_conflict_do_nothing(index_elements=["id"]))
