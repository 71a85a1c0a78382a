"""What a service's own tests need around its database, one way for every service:

    @pytest.fixture
    def call(sessions):   return use_case_runner(sessions, "crm/contracts")
    @pytest.fixture
    def outbox(sessions): return outbox_reader(sessions, events_pb2)
    @pytest.fixture
    def sql(sessions):    return sql_runner(sessions)
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from google.protobuf.message import Message
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crmkit.auth import Principal, PrincipalVerifier
from crmkit.db import UnitOfWork
from crmkit.grpc.server import GrpcServer
from crmkit.references import CustomerFacts

Sessions = async_sessionmaker[AsyncSession]


def use_case_runner(sessions: Sessions, source: str) -> Callable[..., Awaitable[Any]]:
    """`await call(principal, use_case, *args)`: one unit of work acting as `principal`."""

    async def run(principal: Principal, use_case: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Any:
        async with UnitOfWork(sessions, source, actor=principal.subject) as uow:
            return await use_case(uow, principal, *args, **kwargs)

    return run


@dataclass(frozen=True)
class OutboxRow:
    subject: str
    type: str
    payload: bytes
    events: ModuleType

    def message(self) -> Message:
        cls = getattr(self.events, self.type.rsplit(".", 1)[-1])
        return cls.FromString(self.payload)


def outbox_reader(sessions: Sessions, events: ModuleType) -> Callable[[], Awaitable[list[OutboxRow]]]:
    """`await outbox()`: every event written so far, in commit order, decoded with `events`."""

    async def read() -> list[OutboxRow]:
        async with sessions() as s:
            rows = await s.execute(text("SELECT subject, type, payload FROM outbox ORDER BY id"))
            return [OutboxRow(r.subject, r.type, bytes(r.payload), events) for r in rows]

    return read


def sql_runner(sessions: Sessions) -> Callable[..., Awaitable[list[Any]]]:
    """`await sql(query, **params)`: a statement in its own transaction; the rows, if any."""

    async def run(query: str, **params: Any) -> list[Any]:
        async with sessions() as s, s.begin():
            result = await s.execute(text(query), params)
            return list(result.all()) if result.returns_rows else []

    return run


class EveryCustomer:
    """Stands in for `crmkit.references.CustomerDirectory` in tests of a service's own use-case
    rules: every customer named exists, is in scope, and is called `name` (of type
    `customer_type`). Tests of the reference check itself run the customers servicer in process."""

    def __init__(self, name: str = "Test Customer Ltd", customer_type: str = "domestic") -> None:
        self.name, self.customer_type = name, customer_type

    async def customer(self, customer_id: str) -> CustomerFacts:
        return CustomerFacts(id=str(customer_id), name=self.name, customer_type=self.customer_type,
                             owner_id="", team_id="", department_path="/")


@contextlib.asynccontextmanager
async def grpc_in_process(name: str, public_pem: str, add: Callable[..., None], servicer: Any,
                          service_name: str, *, service_pems: tuple[str, ...] = ()) -> AsyncIterator[str]:
    """A servicer on a real gRPC server on loopback (the shared interceptor and its permission
    table included), trusting principals signed by `public_pem` (and service principals signed by
    `service_pems`); yields its target."""
    server = GrpcServer(name, PrincipalVerifier(public_pem, service_pems=service_pems))
    server.add(add, servicer, service_name)
    port = await server.start("127.0.0.1:0")
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(0)
