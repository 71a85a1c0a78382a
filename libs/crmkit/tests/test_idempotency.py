"""crmkit.idempotency over a real gRPC channel and PostgreSQL: a forwarded key is recorded with the
command's effects, and a retry gets the kept response without a second effect."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from sqlalchemy import text

from crm.customers.v1 import customers_pb2, customers_pb2_grpc
from crmkit import errors, idempotency
from crmkit.auth import DataScope, Principal, PrincipalSigner, PrincipalVerifier
from crmkit.auth.keys import generate_keypair
from crmkit.db import UnitOfWork
from crmkit.grpc.client import channel
from crmkit.grpc.server import GrpcServer
from crmkit.grpc.status import from_rpc_error

pytestmark = pytest.mark.integration

KEY = generate_keypair()
ALICE = Principal(subject="u-alice", name="Alice", roles=("sales_rep",), team_ids=(), department_path="/",
                  data_scope=DataScope.OWN)


class Servicer(customers_pb2_grpc.CustomersServiceServicer):
    """CreateCustomer inserts a row and answers with its id; `hold` keeps a call before its commit."""

    def __init__(self, sessions: Any) -> None:
        self._sessions = sessions
        self.hold: asyncio.Event | None = None
        self.reached_commit = asyncio.Event()

    async def CreateCustomer(self, request: customers_pb2.CreateCustomerRequest,
                             context: grpc.aio.ServicerContext) -> customers_pb2.CreateCustomerResponse:
        if not request.customer.name:
            raise errors.InvalidArgument.of("customer.name", "must not be empty")
        async with UnitOfWork(self._sessions, "crm/kt") as uow:
            row_id = await uow.session.scalar(text("INSERT INTO kt_created (name) VALUES (:name) RETURNING id"),
                                              {"name": request.customer.name})
            hold, self.hold = self.hold, None
            if hold is not None:
                self.reached_commit.set()
                await hold.wait()
            await uow.commit()
        return customers_pb2.CreateCustomerResponse(customer=customers_pb2.Customer(id=str(row_id),
                                                                                    name=request.customer.name))


@pytest.fixture
async def service(sessions: Any) -> AsyncIterator[tuple[str, Servicer]]:
    async with sessions() as session, session.begin():
        await session.execute(text("CREATE TABLE kt_created (id serial PRIMARY KEY, name text NOT NULL)"))
        await (await session.connection()).run_sync(idempotency.metadata.create_all)
    servicer = Servicer(sessions)
    server = GrpcServer("kt-customers", PrincipalVerifier(KEY.public_pem))
    server.add(customers_pb2_grpc.add_CustomersServiceServicer_to_server, servicer, "crm.customers.v1.CustomersService")
    port = await server.start("127.0.0.1:0")
    try:
        yield f"127.0.0.1:{port}", servicer
    finally:
        await server.stop(0)


async def _create(target: str, name: str, key: str | None, fingerprint: str = "body-1") -> customers_pb2.Customer:
    async with channel(target, lambda: PrincipalSigner(KEY.private_pem).sign(ALICE)) as ch:
        stub = customers_pb2_grpc.CustomersServiceStub(ch)
        request = customers_pb2.CreateCustomerRequest(customer=customers_pb2.Customer(name=name))
        if key is None:
            return (await stub.CreateCustomer(request)).customer
        with idempotency.forwarding(key, fingerprint):
            return (await stub.CreateCustomer(request)).customer


async def _rows(sessions: Any) -> list[str]:
    async with sessions() as session:
        return list((await session.scalars(text("SELECT name FROM kt_created ORDER BY id"))).all())


async def _refusal(call: Any) -> errors.CrmError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return from_rpc_error(caught.value)


async def test_a_retried_key_answers_the_kept_response_without_a_second_effect(service, sessions) -> None:
    target, _ = service
    first = await _create(target, "Acme", "k-1")
    again = await _create(target, "Acme", "k-1")
    assert again == first
    assert await _rows(sessions) == ["Acme"]
    other = await _create(target, "Acme", "k-2")  # another key is another command
    assert other.id != first.id
    assert await _create(target, "Acme", None) != first  # no key: no deduplication
    assert await _rows(sessions) == ["Acme", "Acme", "Acme"]


async def test_the_same_key_with_another_body_is_refused(service, sessions) -> None:
    target, _ = service
    await _create(target, "Acme", "k-1", fingerprint="body-1")
    refused = await _refusal(_create(target, "Acme Ltd", "k-1", fingerprint="body-2"))
    assert isinstance(refused, errors.InvalidArgument) and refused.reason == "IDEMPOTENCY_KEY_REUSED"
    assert await _rows(sessions) == ["Acme"]


async def test_a_failed_command_records_nothing_and_may_be_retried(service, sessions) -> None:
    target, _ = service
    refused = await _refusal(_create(target, "", "k-1"))
    assert isinstance(refused, errors.InvalidArgument)
    assert (await _create(target, "Acme", "k-1", fingerprint="body-2")).name == "Acme"
    assert await _rows(sessions) == ["Acme"]


async def test_an_applied_command_whose_answer_was_lost_is_not_applied_again(service, sessions) -> None:
    target, _ = service
    await _create(target, "Acme", "k-1")
    async with sessions() as session, session.begin():  # the service died between commit and keeping
        await session.execute(text("UPDATE idempotency_keys SET response = NULL"))
    refused = await _refusal(_create(target, "Acme", "k-1"))
    assert isinstance(refused, errors.Conflict) and refused.reason == "IDEMPOTENT_REQUEST_APPLIED"
    assert await _rows(sessions) == ["Acme"]


async def test_concurrent_attempts_with_one_key_commit_once(service, sessions) -> None:
    target, servicer = service
    hold = servicer.hold = asyncio.Event()
    held = asyncio.create_task(_create(target, "Acme", "k-1"))
    await asyncio.wait_for(servicer.reached_commit.wait(), 10)
    second = await _create(target, "Acme", "k-1")  # commits while the first waits before its commit
    hold.set()
    refused = await _refusal(held)
    assert isinstance(refused, errors.Conflict) and refused.reason == "IDEMPOTENCY_KEY_IN_USE"
    assert await _rows(sessions) == [second.name]


async def test_keys_are_forgotten_after_their_retention(service, sessions) -> None:
    target, _ = service
    await _create(target, "Old", "k-old")
    await _create(target, "New", "k-new")
    async with sessions() as session, session.begin():
        await session.execute(text("UPDATE idempotency_keys SET created_at = now() - interval '3 days' "
                                   "WHERE key = 'k-old.1'"))
    assert await idempotency.forget_expired(sessions) == 1
    async with sessions() as session:
        assert list((await session.scalars(text("SELECT key FROM idempotency_keys"))).all()) == ["k-new.1"]
