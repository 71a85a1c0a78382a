from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from types import SimpleNamespace
from typing import Any

import pytest
from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm.billing.v1 import events_pb2
from crm.common.v1 import money_pb2
from crm.contracts.v1 import events_pb2 as contract_events
from crm.sap.v1 import events_pb2 as sap_events
from crm_billing.main import migrate
from crmkit.db import UnitOfWork, create_engine, session_factory
from crmkit.events.envelope import Event, build_headers, subject_of
from crmkit.testing.service import OutboxRow, outbox_reader, sql_runner, use_case_runner


@pytest.fixture
async def sessions(database_factory) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(database_factory("billing", migrate), pool_size=5)
    yield session_factory(engine)
    await engine.dispose()


@pytest.fixture
def call(sessions) -> Callable[..., Awaitable[Any]]:
    return use_case_runner(sessions, "crm/billing")


@pytest.fixture
def deliver(sessions) -> Callable[..., Awaitable[None]]:
    """`await deliver(handler, event)`: what the consumer does with one event (minus the dedupe)."""

    async def run(handler: Callable[..., Awaitable[None]], event: Event, **kwargs: Any) -> None:
        async with UnitOfWork(sessions, "crm/billing", actor=event.actor) as u:
            await handler(u, event, **kwargs)
            await u.commit()

    return run


@pytest.fixture
def outbox(sessions) -> Callable[[], Awaitable[list[OutboxRow]]]:
    return outbox_reader(sessions, events_pb2)


@pytest.fixture
def sql(sessions) -> Callable[..., Awaitable[list[Any]]]:
    return sql_runner(sessions)


def event_of(message: Message, actor: str = "someone") -> Event:
    event_id = str(uuid.uuid4())
    headers = build_headers(event_id=event_id, event_type=message.DESCRIPTOR.full_name, source="crm/test",
                            actor=actor, subject_id="", time=dt.datetime.now(dt.UTC))
    return Event(id=event_id, subject=subject_of(message), type=message.DESCRIPTOR.full_name,
                 payload=message.SerializeToString(), headers=headers)


def cny(amount: str, currency: str = "CNY") -> money_pb2.Money:
    return money_pb2.Money(amount=amount, currency=currency)


def contract_signed(*, customer_id: uuid.UUID, owner: str = "rep-east", team: str = "east",
                    department: str = "/sales/east/", amount: str = "11300.00", number: str = "",
                    plan: list[tuple[str, str]] = (), contract_id: uuid.UUID | None = None,
                    currency: str = "CNY") -> contract_events.ContractSigned:
    contract_id = contract_id or uuid.uuid4()
    return contract_events.ContractSigned(
        contract_id=str(contract_id), contract_number=number or f"CON-2026-{contract_id.hex[:6]}",
        customer_id=str(customer_id), amount=cny(amount, currency), owner_id=owner,
        department_path=department, team_ids=[team] if team else [], customer_name="福州精密机械有限公司",
        instalments=[contract_events.Instalment(instalment_id=str(uuid.uuid4()), sequence=i, due_date=due,
                                                amount=cny(value, currency), label=f"instalment {i}")
                     for i, (due, value) in enumerate(plan, start=1)])


def billing_document(*, number: str, customer_id: uuid.UUID, total: str, net: str = "", tax: str = "",
                     order_id: str = "", credit: bool = False, cancelled: bool = False, billing_date: str = "",
                     currency: str = "CNY") -> sap_events.BillingDocumentChanged:
    return sap_events.BillingDocumentChanged(
        billing_document=number, document_type="G2" if credit else "F2", order_id=order_id,
        customer_id=str(customer_id), billing_date=billing_date, net_amount=cny(net or total, currency),
        tax_amount=cny(tax or "0", currency), total=cny(total, currency), cancelled=cancelled, credit=credit)


@pytest.fixture(scope="session")
def facts() -> SimpleNamespace:
    """Builders of upstream events (test modules cannot import conftest under importlib mode)."""
    return SimpleNamespace(event_of=event_of, cny=cny, contract_signed=contract_signed,
                           billing_document=billing_document)
