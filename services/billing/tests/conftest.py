from __future__ import annotations

import contextlib
import datetime as dt
import inspect
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest
from google.protobuf.message import Message
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm.billing.v1 import events_pb2
from crm.common.v1 import money_pb2
from crm.contracts.v1 import contracts_pb2, contracts_pb2_grpc
from crm.contracts.v1 import events_pb2 as contract_events
from crm.customers.v1 import customers_pb2, customers_pb2_grpc
from crm.orders.v1 import orders_pb2_grpc
from crm.sap.v1 import events_pb2 as sap_events
from crm_billing.adapters.owners import OwnerReferences
from crm_billing.app.references import ContractFacts, OrderFacts, References
from crm_billing.main import migrate
from crm_contracts.adapters.grpc_api import ContractsServicer
from crm_contracts.adapters.identity import NoOrg
from crm_contracts.adapters.repository import Repository as ContractRepository
from crm_contracts.domain import model as contracts_model
from crm_customers.adapters.grpc_api import CustomersServicer
from crm_customers.adapters.repository import CustomerRepository
from crm_customers.domain.model import Customer
from crm_orders.adapters.grpc_api import OrdersServicer
from crm_orders.adapters.owners import OwnerReferences as OrderReferences
from crm_orders.app import use_cases as orders_use_cases
from crm_orders.domain.model import RequestedLine
from crm_orders.main import SERVICE_NAME as ORDERS_SERVICE
from crmkit.auth import Principal, PrincipalSigner, current_principal_token, use_principal
from crmkit.auth.keys import KeyPair, generate_keypair
from crmkit.db import UnitOfWork, create_engine, session_factory
from crmkit.errors import NotFound
from crmkit.events.envelope import Event, build_headers, subject_of
from crmkit.grpc.client import channel
from crmkit.references import CustomerFacts
from crmkit.testing.principals import with_grants
from crmkit.testing.service import (
    EveryCustomer,
    OutboxRow,
    grpc_in_process,
    outbox_reader,
    sql_runner,
    use_case_runner,
)


@pytest.fixture
async def sessions(database_factory) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(database_factory("billing", migrate), pool_size=5)
    yield session_factory(engine)
    await engine.dispose()


class EveryCustomerOnly:
    """Stands in for the owners in tests of billing's own rules: every customer named exists and
    is in scope (crmkit's EveryCustomer); contracts and orders are known here only by their copies.
    test_references.py checks the references themselves against the real services."""

    def __init__(self) -> None:
        self._customers = EveryCustomer(name="福州精密机械有限公司")

    async def customer(self, customer_id: uuid.UUID) -> CustomerFacts:
        return await self._customers.customer(str(customer_id))

    async def contract(self, contract_id: uuid.UUID) -> ContractFacts:
        raise NotFound("contract not found", reason="REFERENCE_NOT_FOUND", metadata={"reference": "contract"})

    async def order(self, order_id: uuid.UUID) -> OrderFacts:
        raise NotFound("order not found", reason="REFERENCE_NOT_FOUND", metadata={"reference": "order"})


@pytest.fixture
def references() -> References:
    return EveryCustomerOnly()


@pytest.fixture
def call(sessions, references) -> Callable[..., Awaitable[Any]]:
    """`await call(principal, use_case, *args)`; a use case that names other services' records
    is given `references`."""
    run = use_case_runner(sessions, "crm/billing")

    async def with_references(principal: Any, use_case: Callable[..., Awaitable[Any]], *args: Any,
                              **kwargs: Any) -> Any:
        if "references" in inspect.signature(use_case).parameters:
            kwargs.setdefault("references", references)
        return await run(principal, use_case, *args, **kwargs)

    return with_references


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


# The gateway's principal-signing key as the in-process owners trust it.
KEYS = generate_keypair()
SIGNER = PrincipalSigner(KEYS.private_pem)


@dataclass
class Owners:
    """The real customers, contracts and orders services, each on its own database behind a gRPC
    server on loopback: what billing asks, as the caller, about the records a write names."""

    customers: async_sessionmaker[AsyncSession]
    contracts: async_sessionmaker[AsyncSession]
    orders: async_sessionmaker[AsyncSession]
    orders_references: OrderReferences
    references: OwnerReferences
    keys: KeyPair

    async def add_customer(self, *, name: str = "福州精密机械有限公司", owner_id: str = "rep-east",
                           team_id: str = "east", department_path: str = "/sales/east/",
                           signed: bool = True) -> uuid.UUID:
        customer_id = uuid.uuid4()
        async with self.customers() as s, s.begin():
            await CustomerRepository(s).add(Customer(
                id=customer_id, name=name, owner_id=owner_id, team_id=team_id, department_path=department_path,
                has_signed_contract=signed))
        return customer_id

    async def change_customer(self, customer_id: uuid.UUID, **values: Any) -> None:
        """A change made in the customers service (its event not delivered): name, owner, …"""
        assignments = ", ".join(f"{column} = :{column}" for column in values)
        async with self.customers() as s, s.begin():
            await s.execute(text(f"UPDATE customers SET {assignments} WHERE id = :id"), {"id": customer_id, **values})

    async def sign(self, customer_id: uuid.UUID, *, owner_id: str = "rep-east", team_id: str = "east",
                   department_path: str = "/sales/east/") -> uuid.UUID:
        """A contract signed in the contracts service a moment ago (its event delivered nowhere)."""
        contract_id = uuid.uuid4()
        async with self.contracts() as s, s.begin():
            await ContractRepository(s).add(contracts_model.Contract(
                id=contract_id, number=f"CON-2026-{contract_id.hex[:6]}", customer_id=customer_id, currency="CNY",
                owner_id=owner_id, team_id=team_id, department_path=department_path,
                status=contracts_model.Status.ACTIVE, start_date=dt.date.today() - dt.timedelta(days=1),
                end_date=dt.date.today() + dt.timedelta(days=365), sign_date=dt.date.today(), lines=(
                    contracts_model.Line(product="Valve", specification="DN50", quantity=Decimal(10), unit="pcs",
                                         unit_price=Decimal(1000), discount_percent=Decimal(0),
                                         tax_rate_percent=Decimal(13), line_id="L1"),)))
        return contract_id

    async def order(self, principal: Principal, contract_id: uuid.UUID) -> uuid.UUID:
        """An order placed a moment ago in the orders service (its event delivered nowhere)."""
        with use_principal(principal, SIGNER.sign(with_grants(principal))):
            async with UnitOfWork(self.orders, "crm/orders", actor=principal.subject) as uow:
                view = await orders_use_cases.create_order(uow, principal, orders_use_cases.NewOrder(
                    contract_id=contract_id, lines=[RequestedLine("L1", Decimal(1))],
                    requested_delivery_date=dt.date.today() + dt.timedelta(days=10)), self.orders_references)
        return view.order.id


@pytest.fixture
async def owners(database_factory) -> AsyncIterator[Owners]:
    from crm_contracts.main import migrate as migrate_contracts
    from crm_customers.main import migrate as migrate_customers
    from crm_orders.main import migrate as migrate_orders

    engines = [create_engine(database_factory(name, migrate_of), pool_size=5) for name, migrate_of in
               (("customers", migrate_customers), ("contracts", migrate_contracts), ("orders", migrate_orders))]
    customers, contracts, orders = (session_factory(engine) for engine in engines)
    async with contextlib.AsyncExitStack() as stack:
        customers_target = await stack.enter_async_context(grpc_in_process(
            "customers", KEYS.public_pem, customers_pb2_grpc.add_CustomersServiceServicer_to_server,
            CustomersServicer(customers), customers_pb2.DESCRIPTOR.services_by_name["CustomersService"].full_name))
        # Billing only reads contracts (GetContract), which asks no other service: no owners of its own.
        contracts_target = await stack.enter_async_context(grpc_in_process(
            "contracts", KEYS.public_pem, contracts_pb2_grpc.add_ContractsServiceServicer_to_server,
            ContractsServicer(contracts, NoOrg(), owners=None),  # type: ignore[arg-type]
            contracts_pb2.DESCRIPTOR.services_by_name["ContractsService"].full_name))
        channels = [channel(customers_target, current_principal_token),
                    channel(contracts_target, current_principal_token)]
        orders_references = OrderReferences(*channels)
        orders_target = await stack.enter_async_context(grpc_in_process(
            "orders", KEYS.public_pem, orders_pb2_grpc.add_OrdersServiceServicer_to_server,
            OrdersServicer(orders, orders_references), ORDERS_SERVICE))
        channels.append(channel(orders_target, current_principal_token))
        yield Owners(customers, contracts, orders, orders_references, OwnerReferences(*channels), KEYS)
        for ch in channels:
            await ch.close()
    for engine in engines:
        await engine.dispose()


@pytest.fixture
def call_as_caller(sessions, owners) -> Callable[..., Awaitable[Any]]:
    """`await call_as_caller(principal, use_case, *args)`: as `call`, with the principal's signed
    form current (as the gRPC interceptor sets it) and the real owners as `references`."""
    run = use_case_runner(sessions, "crm/billing")

    async def as_caller(principal: Principal, use_case: Callable[..., Awaitable[Any]], *args: Any,
                        **kwargs: Any) -> Any:
        if "references" in inspect.signature(use_case).parameters:
            kwargs.setdefault("references", owners.references)
        with use_principal(principal, SIGNER.sign(with_grants(principal))):
            return await run(principal, use_case, *args, **kwargs)

    return as_caller
