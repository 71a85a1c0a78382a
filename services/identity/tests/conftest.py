"""Fixtures for the identity tests: a fresh migrated database per test, the servicer behind a
real gRPC server, stubs acting as a given principal (or none, for the public methods), a clock
the test moves, and the outbox.

With `--import-mode=importlib` test modules cannot import this file, so shared values are handed
out as fixtures (`principals`, `keys`)."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import grpc
import pytest
from google.protobuf.message import Message
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm.identity.v1 import events_pb2, identity_pb2_grpc
from crm_identity.adapters.grpc_api import PUBLIC_METHODS, SERVICE_NAME, IdentityServicer
from crm_identity.app.credentials import SigningKeys
from crm_identity.app.tokens import TokenConfig
from crm_identity.domain.access import grants_of
from crm_identity.domain.model import BUILT_IN_ROLES
from crm_identity.main import migrate
from crmkit.auth import Principal, PrincipalSigner, PrincipalVerifier, service_principal
from crmkit.auth.keys import generate_keypair
from crmkit.db import create_engine, session_factory
from crmkit.grpc.client import channel
from crmkit.grpc.server import GrpcServer

SIGNING = (generate_keypair(), generate_keypair())
GATEWAY_KEY = generate_keypair()
SIGNER = PrincipalSigner(GATEWAY_KEY.private_pem)
SERVICE_KEY = generate_keypair()
SERVICE_SIGNER = PrincipalSigner(SERVICE_KEY.private_pem)


def _principal(subject: str, role: str) -> Principal:
    grants = grants_of([r for r in BUILT_IN_ROLES if r.name == role])
    return Principal(subject=subject, name=subject, roles=(role,), data_scope=grants.data_scope,
                     permissions=grants.permissions, sees_sensitive=grants.sees_sensitive)


@pytest.fixture(scope="session")
def principals() -> SimpleNamespace:
    return SimpleNamespace(
        admin=_principal("00000000-0000-7000-8000-000000000001", "admin"),
        rep=_principal("00000000-0000-7000-8000-000000000002", "sales_rep"),
        auditor=_principal("00000000-0000-7000-8000-000000000003", "auditor"),
        service=service_principal("contracts"),
    )


@pytest.fixture(scope="session")
def keys() -> SimpleNamespace:
    return SimpleNamespace(signing=SIGNING, gateway=GATEWAY_KEY)


@pytest.fixture
async def sessions(database_factory) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(database_factory("identity", migrate), pool_size=5)
    yield session_factory(engine)
    await engine.dispose()


class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime.now(dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += dt.timedelta(**kwargs)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def config() -> TokenConfig:
    return TokenConfig(keys=SigningKeys(tuple(k.private_pem for k in SIGNING)), issuer="crm-identity",
                       audience="crm-api", access_ttl=600)


@pytest.fixture
async def target(sessions, config, clock) -> AsyncIterator[str]:
    server = GrpcServer("identity", PrincipalVerifier(GATEWAY_KEY.public_pem, service_pems=(SERVICE_KEY.public_pem,)),
                        PUBLIC_METHODS)
    server.add(identity_pb2_grpc.add_IdentityServiceServicer_to_server, IdentityServicer(sessions, config, clock),
               SERVICE_NAME)
    port = await server.start("127.0.0.1:0")
    yield f"127.0.0.1:{port}"
    await server.stop(0)


@pytest.fixture
async def stub_for(target) -> AsyncIterator[Callable[[Principal | None], identity_pb2_grpc.IdentityServiceStub]]:
    channels: list[grpc.aio.Channel] = []

    def make(principal: Principal | None) -> identity_pb2_grpc.IdentityServiceStub:
        # A service calls as itself, signed with the service key; everyone else comes through the gateway.
        signer = SERVICE_SIGNER if principal is not None and principal.kind == "service" else SIGNER
        ch = channel(target, (lambda: signer.sign(principal)) if principal else None)
        channels.append(ch)
        return identity_pb2_grpc.IdentityServiceStub(ch)

    yield make
    for ch in channels:
        await ch.close()


@pytest.fixture
def admin(stub_for, principals) -> identity_pb2_grpc.IdentityServiceStub:
    return stub_for(principals.admin)


@pytest.fixture
def public(stub_for) -> identity_pb2_grpc.IdentityServiceStub:
    return stub_for(None)


@dataclass(frozen=True)
class OutboxRow:
    subject: str
    type: str
    headers: dict[str, str]
    payload: bytes

    def message(self) -> Message:
        cls = getattr(events_pb2, self.type.removeprefix("crm.identity.v1."))
        return cls.FromString(self.payload)


@pytest.fixture
def outbox(sessions) -> Callable[[], Awaitable[list[OutboxRow]]]:
    async def read() -> list[OutboxRow]:
        async with sessions() as s:
            rows = await s.execute(text("SELECT subject, type, headers, payload FROM outbox ORDER BY id"))
            return [OutboxRow(r.subject, r.type, dict(r.headers), bytes(r.payload)) for r in rows]

    return read


@pytest.fixture
def rpc_error() -> Callable[[Any], Awaitable[grpc.aio.AioRpcError]]:
    async def run(call: Any) -> grpc.aio.AioRpcError:
        with pytest.raises(grpc.aio.AioRpcError) as exc:
            await call
        return exc.value

    return run


@pytest.fixture(scope="session")
def eventually() -> Callable[..., Awaitable[Any]]:
    async def run(check: Callable[[], Awaitable[Any]], timeout: float = 10.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            try:
                result = await check()
                if result:
                    return result
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
            if time.monotonic() > deadline:
                raise AssertionError(f"not reached within {timeout}s")
            await asyncio.sleep(0.05)

    return run
