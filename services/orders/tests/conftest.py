from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from google.protobuf.message import Message
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm.common.v1 import money_pb2
from crm.contracts.v1 import events_pb2 as contracts_ev
from crm.orders.v1 import events_pb2
from crm_orders.app import handlers
from crm_orders.main import migrate
from crmkit.auth import Principal
from crmkit.db import UnitOfWork, create_engine, session_factory
from crmkit.events.envelope import Event, build_headers, subject_of

CUSTOMER = uuid.UUID("01930000-0000-7000-8000-00000000c001")
TODAY = dt.date.today()


@pytest.fixture
async def sessions(database_factory) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(database_factory("orders", migrate), pool_size=10)
    yield session_factory(engine)
    await engine.dispose()


@pytest.fixture
def call(sessions) -> Callable[..., Awaitable[Any]]:
    """`await call(principal, use_case, *args)`: one unit of work acting as `principal`."""

    async def run(principal: Principal, use_case: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Any:
        async with UnitOfWork(sessions, "crm/orders", actor=principal.subject) as u:
            return await use_case(u, principal, *args, **kwargs)

    return run


def as_event(message: Message, *, source: str = "crm/test", event_id: str | None = None) -> Event:
    event_id = event_id or str(uuid.uuid4())
    headers = build_headers(event_id=event_id, event_type=message.DESCRIPTOR.full_name, source=source, actor="",
                            subject_id="", time=dt.datetime.now(dt.UTC))
    return Event(id=event_id, subject=subject_of(message), type=message.DESCRIPTOR.full_name,
                 payload=message.SerializeToString(), headers=headers)


@pytest.fixture
def deliver(sessions) -> Callable[[Message], Awaitable[None]]:
    """`await deliver(message)`: the message handled as its consumer handles it (one unit of work)."""
    by_package = {"crm.contracts.v1": handlers.on_contract_event, "crm.sap.v1": handlers.on_sap_event,
                  "crm.billing.v1": handlers.on_billing_event}

    async def run(message: Message) -> None:
        handler = by_package[message.DESCRIPTOR.file.package]
        async with UnitOfWork(sessions, "crm/orders") as u:
            await handler(u, as_event(message))
            await u.commit()

    return run


def money(amount: str, currency: str = "CNY") -> money_pb2.Money:
    return money_pb2.Money(amount=amount, currency=currency)


def contract_signed(*, contract_id: uuid.UUID | None = None, owner_id: str = "rep-east",
                    team_ids: tuple[str, ...] = ("east",), department_path: str = "/sales/east/",
                    amount: str = "150000.00", lines: list[tuple[str, str, str]] | None = None,
                    end_date: dt.date | None = None, line_amounts: bool = True) -> contracts_ev.ContractSigned:
    """A signed contract; `lines` are (line id, quantity, unit price), each line's net amount
    quantity × price unless `line_amounts` is off. Default: 100 valves at 1000.00 and 10
    installations at 5000.00 (net 100000 + 50000)."""
    lines = lines or [("L1", "100", "1000.00"), ("L2", "10", "5000.00")]
    return contracts_ev.ContractSigned(
        contract_id=str(contract_id or uuid.uuid4()), contract_number="CON-2026-000123", customer_id=str(CUSTOMER),
        customer_name="Fuzhou Valve Works", amount=money(amount), owner_id=owner_id, team_ids=list(team_ids),
        department_path=department_path, start_date=(TODAY - dt.timedelta(days=30)).isoformat(),
        end_date=(end_date or TODAY + dt.timedelta(days=365)).isoformat(),
        lines=[contracts_ev.ContractLine(line_id=lid, product=f"Product {lid}", specification="DN50", quantity=q,
                                         unit="pcs", unit_price=money(p), tax_rate="0.13",
                                         amount=money(f"{Decimal(q) * Decimal(p):.2f}" if line_amounts else ""))
               for lid, q, p in lines])


@pytest.fixture
def contract_of() -> Callable[..., contracts_ev.ContractSigned]:
    """`contract_of(**kw)`: a ContractSigned message (see `contract_signed`)."""
    return contract_signed


@dataclass(frozen=True)
class OutboxRow:
    subject: str
    type: str
    payload: bytes

    def message(self) -> Any:
        cls = getattr(events_pb2, self.type.removeprefix("crm.orders.v1."))
        return cls.FromString(self.payload)


@pytest.fixture
def outbox(sessions) -> Callable[[], Awaitable[list[OutboxRow]]]:
    """`await outbox()`: every event written so far, in commit order."""

    async def read() -> list[OutboxRow]:
        async with sessions() as s:
            rows = await s.execute(text("SELECT subject, type, payload FROM outbox ORDER BY id"))
            return [OutboxRow(r.subject, r.type, bytes(r.payload)) for r in rows]

    return read
