from __future__ import annotations

import datetime as dt
import inspect
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
from crm.contracts.v1 import contracts_pb2, contracts_pb2_grpc
from crm.contracts.v1 import events_pb2 as contracts_ev
from crm.customers.v1 import customers_pb2, customers_pb2_grpc
from crm.orders.v1 import events_pb2
from crm_contracts.adapters.grpc_api import ContractsServicer
from crm_contracts.adapters.identity import NoOrg
from crm_contracts.adapters.repository import Repository as ContractRepository
from crm_contracts.domain import model as contracts_model
from crm_customers.adapters.grpc_api import CustomersServicer
from crm_customers.adapters.repository import CustomerRepository
from crm_customers.domain.model import Customer
from crm_orders.adapters.owners import OwnerReferences
from crm_orders.app import handlers
from crm_orders.main import migrate
from crmkit.auth import Principal, PrincipalSigner, PrincipalVerifier, current_principal_token, use_principal
from crmkit.auth.keys import KeyPair, generate_keypair
from crmkit.db import UnitOfWork, create_engine, session_factory
from crmkit.events.envelope import Event, build_headers, subject_of
from crmkit.grpc.client import channel
from crmkit.grpc.server import GrpcServer
from crmkit.testing.principals import with_grants
from crmkit.testing.service import sql_runner

CUSTOMER = uuid.UUID("01930000-0000-7000-8000-00000000c001")
TODAY = dt.date.today()


@pytest.fixture
async def sessions(database_factory) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(database_factory("orders", migrate), pool_size=10)
    yield session_factory(engine)
    await engine.dispose()


# The gateway's principal-signing key as the in-process owners (customers, contracts) trust it.
KEYS = generate_keypair()
SIGNER = PrincipalSigner(KEYS.private_pem)


@pytest.fixture
def principal_keys() -> KeyPair:
    """The key pair principals are signed with, in these tests as the gateway's."""
    return KEYS


@dataclass
class Owners:
    """The real customers and contracts services, each on its own database behind a gRPC server
    on loopback: what orders asks, as the caller, about the records an order names."""

    customers: async_sessionmaker[AsyncSession]
    contracts: async_sessionmaker[AsyncSession]
    references: OwnerReferences

    async def add_customer(self, customer_id: uuid.UUID = CUSTOMER, *, name: str = "Fuzhou Valve Works",
                           owner_id: str = "rep-east", team_id: str = "east",
                           department_path: str = "/sales/east/", signed: bool = True) -> None:
        async with self.customers() as s, s.begin():
            await CustomerRepository(s).add(Customer(
                id=customer_id, name=name, owner_id=owner_id, team_id=team_id, department_path=department_path,
                has_signed_contract=signed))

    async def move_customer(self, customer_id: uuid.UUID = CUSTOMER, *, owner_id: str, team_id: str,
                            department_path: str) -> None:
        """The customer's owner changed in the customers service (its event not delivered)."""
        async with self.customers() as s, s.begin():
            await s.execute(text("UPDATE customers SET owner_id = :o, team_id = :t, department_path = :d "
                                 "WHERE id = :id"), {"o": owner_id, "t": team_id, "d": department_path,
                                                      "id": customer_id})

    async def rename_customer(self, name: str, customer_id: uuid.UUID = CUSTOMER) -> None:
        async with self.customers() as s, s.begin():
            await s.execute(text("UPDATE customers SET name = :n WHERE id = :id"), {"n": name, "id": customer_id})

    async def sign(self, message: contracts_ev.ContractSigned, *, team_id: str = "east") -> None:
        """The contract of `message`, signed in the contracts service (its event not delivered)."""
        async with self.contracts() as s, s.begin():
            await ContractRepository(s).add(contracts_model.Contract(
                id=uuid.UUID(message.contract_id), number=message.contract_number,
                customer_id=uuid.UUID(message.customer_id), customer_name=message.customer_name, currency="CNY",
                owner_id=message.owner_id, team_id=team_id, department_path=message.department_path,
                status=contracts_model.Status.ACTIVE, start_date=dt.date.fromisoformat(message.start_date),
                end_date=dt.date.fromisoformat(message.end_date), sign_date=TODAY, lines=tuple(
                    contracts_model.Line(product=li.product, specification=li.specification,
                                         quantity=Decimal(li.quantity), unit=li.unit,
                                         unit_price=Decimal(li.unit_price.amount), discount_percent=Decimal(0),
                                         tax_rate_percent=Decimal(13), line_id=li.line_id)
                    for li in message.lines)))


@pytest.fixture
async def owners(database_factory) -> AsyncIterator[Owners]:
    from crm_contracts.main import migrate as migrate_contracts
    from crm_customers.main import migrate as migrate_customers

    customers_engine = create_engine(database_factory("customers", migrate_customers), pool_size=5)
    contracts_engine = create_engine(database_factory("contracts", migrate_contracts), pool_size=5)
    customers, contracts = session_factory(customers_engine), session_factory(contracts_engine)
    servers = [GrpcServer("customers", PrincipalVerifier(KEYS.public_pem)),
               GrpcServer("contracts", PrincipalVerifier(KEYS.public_pem))]
    servers[0].add(customers_pb2_grpc.add_CustomersServiceServicer_to_server, CustomersServicer(customers),
                   customers_pb2.DESCRIPTOR.services_by_name["CustomersService"].full_name)
    # Orders only reads contracts (GetContract), which asks no other service: no owners of its own.
    servers[1].add(contracts_pb2_grpc.add_ContractsServiceServicer_to_server,
                   ContractsServicer(contracts, NoOrg(), owners=None),  # type: ignore[arg-type]
                   contracts_pb2.DESCRIPTOR.services_by_name["ContractsService"].full_name)
    ports = [await server.start("127.0.0.1:0") for server in servers]
    channels = [channel(f"127.0.0.1:{port}", current_principal_token) for port in ports]
    found = Owners(customers, contracts, OwnerReferences(*channels))
    await found.add_customer()  # CUSTOMER, rep-east's, with a signed contract
    yield found
    for ch in channels:
        await ch.close()
    for server in servers:
        await server.stop(0)
    await customers_engine.dispose()
    await contracts_engine.dispose()


@pytest.fixture
def call(sessions, owners) -> Callable[..., Awaitable[Any]]:
    """`await call(principal, use_case, *args)`: one unit of work acting as `principal`, whose
    signed form is current (as the gRPC interceptor sets it), so the owners are asked as the
    caller. A use case that names other services' records gets the `owners` references."""

    async def run(principal: Principal, use_case: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Any:
        if "references" in inspect.signature(use_case).parameters:
            kwargs.setdefault("references", owners.references)
        with use_principal(principal, SIGNER.sign(with_grants(principal))):
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
                  "crm.billing.v1": handlers.on_billing_event, "crm.customers.v1": handlers.on_customer_event}

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


@pytest.fixture
def sql(sessions) -> Callable[..., Awaitable[list[Any]]]:
    """`await sql(query, **params)`: a statement on the orders database in its own transaction."""
    return sql_runner(sessions)
