"""The gateway under test, wired to a real customers service.

One session: a fresh customers database, the customers gRPC server in-process on a free port,
and the gateway app driven through httpx's ASGI transport with its lifespan run (real NATS for
the idempotency store). Tests share them, so each test makes its own data (unique names, tags,
tax IDs, Idempotency-Keys) and filters lists down to it.

With `--import-mode=importlib` test modules cannot import this file; helpers are fixtures:

    client          httpx.AsyncClient on the gateway (raise_app_exceptions=False, so a 500 is
                    a response the test sees, not an exception)
    token(p, ...)   a bearer token for principal `p` (overrides: issuer, audience, ttl_seconds,
                    private_pem, token_id) ; auth(p) -> {"Authorization": "Bearer ..."}. A principal
                    without permissions gets its roles' from ROLE_PERMISSIONS, as identity would
                    put them in the token.
    create(p, ...)  POST a customer as `p`, assert 201, return its JSON
    assert_problem  checks an RFC 9457 response: status, content type, type, detail, trace_id
    unique()        a short unique suffix
    sql(q, **p)     runs a query on the customers database, returns rows
    gateway_settings, principal_keys, token_keys

With the identity service (in-process too, its outbox relayed to NATS, `admin` bootstrapped with
IDENTITY_ADMIN_PASSWORD, two signing keys):

    identity_target, identity_keys, identity_sessions
    id_app / id_client   a second gateway app that takes tokens from identity (and the static key)
    login(user, pw)      POST /api/v1/auth/token (password grant) -> access token
    id_auth(token)       {"Authorization": "Bearer ..."}

The orders service runs in-process too (`orders_target`); `orders_sessions` is its database, for
tests that feed its event handlers (contract copies, billing read model) directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from sqlalchemy import text

from crm.contracts.v1 import contracts_pb2_grpc
from crm.customers.v1 import customers_pb2, customers_pb2_grpc
from crm.identity.v1 import identity_pb2_grpc
from crm.notifications.v1 import notifications_pb2_grpc
from crm.opportunities.v1 import opportunities_pb2_grpc
from crm.orders.v1 import orders_pb2_grpc
from crm_contracts.adapters.grpc_api import ContractsServicer
from crm_contracts.adapters.opportunities import OpportunityDirectory
from crm_contracts.adapters.static_org import StaticOrg
from crm_contracts.app.references import Owners
from crm_contracts.main import SERVICE_NAME as CONTRACTS_SERVICE
from crm_contracts.main import migrate as migrate_contracts
from crm_customers.adapters.grpc_api import CustomersServicer
from crm_customers.domain.tax_id import uscc_check_char
from crm_customers.main import migrate
from crm_gateway.main import create_app
from crm_gateway.settings import GatewaySettings
from crm_identity.adapters.grpc_api import PUBLIC_METHODS as IDENTITY_PUBLIC_METHODS
from crm_identity.adapters.grpc_api import SERVICE_NAME as IDENTITY_SERVICE
from crm_identity.adapters.grpc_api import SOURCE as IDENTITY_SOURCE
from crm_identity.adapters.grpc_api import IdentityServicer
from crm_identity.app import org as identity_org
from crm_identity.app.credentials import SigningKeys
from crm_identity.app.tokens import TokenConfig
from crm_identity.main import migrate as migrate_identity
from crm_notifications.adapters.grpc_api import SERVICE_NAME as NOTIFICATIONS_SERVICE
from crm_notifications.adapters.grpc_api import NotificationsServicer
from crm_notifications.main import migrate as migrate_notifications
from crm_opportunities.adapters.grpc_api import OpportunitiesServicer
from crm_opportunities.main import SERVICE_NAME as OPPORTUNITIES_SERVICE
from crm_opportunities.main import migrate as migrate_opportunities
from crm_orders.adapters.grpc_api import OrdersServicer
from crm_orders.main import SERVICE_NAME as ORDERS_SERVICE
from crm_orders.main import migrate as migrate_orders
from crmkit import telemetry
from crmkit.auth import Principal, PrincipalVerifier, current_principal_token
from crmkit.auth.keys import KeyPair, generate_keypair, jwks_of
from crmkit.auth.tokens import issue_access_token
from crmkit.db import UnitOfWork, create_engine, session_factory
from crmkit.events.streams import ensure_service_stream
from crmkit.grpc.client import channel as grpc_channel
from crmkit.grpc.server import GrpcServer
from crmkit.outbox.relay import OutboxRelay
from crmkit.references import CustomerDirectory
from crmkit.testing.servers import fresh_database

ISSUER = "crm-identity-test"
AUDIENCE = "crm-api-test"
MAX_BODY_BYTES = 8192
PROBLEM_JSON = "application/problem+json"
IDENTITY_ADMIN_PASSWORD = "Bootstrap-pass-2026"
# What identity's built-in roles grant, for tokens minted here (tests of the customers routes).
ROLE_PERMISSIONS: dict[str, tuple[str, ...]] = {
    "sales_rep": ("customers.read", "customers.write", "customers.delete"),
    "sales_manager": ("customers.read", "customers.write", "customers.delete", "org.read"),
    "sales_director": ("customers.read", "customers.write", "customers.delete", "org.read"),
    "marketing": ("customers.read",),
    "auditor": ("customers.read", "org.read", "audit.read"),
    "admin": ("*",),
}


# ------------------------------------------------------------------------------ tracing

_exporter: InMemorySpanExporter | None = None


@pytest.fixture(scope="session")
def span_exporter() -> InMemorySpanExporter:
    """Spans finished in this process. The global tracer provider is set once per process (by
    crmkit's setup); the exporter is attached to it. Without a real provider there are no trace
    ids at all, so the gateway's X-Trace-Id and problem `trace_id` could not be tested."""
    global _exporter
    if _exporter is None:
        telemetry.setup_tracing("gateway-tests", None)
        provider = trace.get_tracer_provider()
        if not isinstance(provider, TracerProvider):
            pytest.fail("the global tracer provider is not the OpenTelemetry SDK's")
        _exporter = InMemorySpanExporter()
        provider.add_span_processor(SimpleSpanProcessor(_exporter))
    return _exporter


# --------------------------------------------------------------------------------- keys


@pytest.fixture(scope="session")
def token_keys() -> KeyPair:
    """The token issuer's key (identity's role in production)."""
    return generate_keypair()


@pytest.fixture(scope="session")
def principal_keys() -> KeyPair:
    """The gateway's principal-signing key; the customers service holds its public half."""
    return generate_keypair()


@pytest.fixture(scope="session")
def token(token_keys: KeyPair) -> Callable[..., str]:
    def mint(principal: Principal, *, issuer: str = ISSUER, audience: str = AUDIENCE, ttl_seconds: int = 900,
             private_pem: str | None = None, token_id: str = "") -> str:
        permissions = principal.permissions or tuple(
            dict.fromkeys(perm for role in principal.roles for perm in ROLE_PERMISSIONS.get(role, ())))
        return issue_access_token(
            private_pem or token_keys.private_pem, issuer=issuer, audience=audience, subject=principal.subject,
            name=principal.name, roles=principal.roles, team_ids=principal.team_ids,
            department_path=principal.department_path, data_scope=principal.data_scope, ttl_seconds=ttl_seconds,
            kind=principal.kind, permissions=permissions, sees_sensitive=principal.sees_sensitive,
            rate_limit=principal.rate_limit, scopes=principal.scopes, token_id=token_id)

    return mint


@pytest.fixture(scope="session")
def auth(token: Callable[..., str]) -> Callable[[Principal], dict[str, str]]:
    cache: dict[Principal, str] = {}  # by the whole principal: the same subject may carry other grants

    def headers(principal: Principal) -> dict[str, str]:
        if principal not in cache:
            cache[principal] = token(principal)
        return {"Authorization": f"Bearer {cache[principal]}"}

    return headers


# ------------------------------------------------------------------------ customers service


@pytest.fixture(scope="session")
def customers_database_url(postgres_server: Any) -> str:
    return fresh_database(postgres_server, "gateway_customers", migrate)


@contextlib.asynccontextmanager
async def in_process(name: str, principal_keys: KeyPair, add: Callable[..., None], servicer: Any,
                     service_name: str) -> AsyncIterator[str]:
    """A service's gRPC servicer on a real server on loopback, trusting the gateway's principal key."""
    server = GrpcServer(name, PrincipalVerifier(principal_keys.public_pem))
    server.add(add, servicer, service_name)
    port = await server.start("127.0.0.1:0")
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(0)


@pytest.fixture(scope="session")
async def customers_sessions(customers_database_url: str) -> AsyncIterator[Any]:
    engine = create_engine(customers_database_url, pool_size=10)
    yield session_factory(engine)
    await engine.dispose()


@pytest.fixture(scope="session")
async def customers_target(customers_sessions: Any, principal_keys: KeyPair,
                           span_exporter: InMemorySpanExporter) -> AsyncIterator[str]:
    service_name = customers_pb2.DESCRIPTOR.services_by_name["CustomersService"].full_name
    async with in_process("customers", principal_keys, customers_pb2_grpc.add_CustomersServiceServicer_to_server,
                          CustomersServicer(customers_sessions), service_name) as target:
        yield target


@pytest.fixture(scope="session")
def sql(customers_sessions: Any) -> Callable[..., Awaitable[list[Any]]]:
    async def run(query: str, **params: Any) -> list[Any]:
        async with customers_sessions() as session:
            return list((await session.execute(text(query), params)).all())

    return run


# -------------------------------------------------------------------- opportunities service


@pytest.fixture(scope="session")
async def opportunities_target(postgres_server: Any, principal_keys: KeyPair, customers_target: str,
                               span_exporter: InMemorySpanExporter) -> AsyncIterator[str]:
    engine = create_engine(fresh_database(postgres_server, "gateway_opportunities", migrate_opportunities),
                           pool_size=5)
    # The customer an opportunity names is checked with the customers service, as the caller.
    customers = grpc_channel(customers_target, current_principal_token)
    async with in_process("opportunities", principal_keys,
                          opportunities_pb2_grpc.add_OpportunitiesServiceServicer_to_server,
                          OpportunitiesServicer(session_factory(engine), customers=CustomerDirectory(customers)),
                          OPPORTUNITIES_SERVICE) as target:
        yield target
    await customers.close()
    await engine.dispose()


# ------------------------------------------------------------------------------ contracts service


@pytest.fixture(scope="session")
def contracts_org() -> StaticOrg:
    """The org chart the contracts service resolves approvers from; tests add their people."""
    return StaticOrg()


@pytest.fixture(scope="session")
async def contracts_target(postgres_server: Any, principal_keys: KeyPair, contracts_org: StaticOrg,
                           customers_target: str, opportunities_target: str,
                           span_exporter: InMemorySpanExporter) -> AsyncIterator[str]:
    engine = create_engine(fresh_database(postgres_server, "gateway_contracts", migrate_contracts), pool_size=5)
    # What a contract names is checked with its owners, as the caller.
    customers = grpc_channel(customers_target, current_principal_token)
    opportunities = grpc_channel(opportunities_target, current_principal_token)
    owners = Owners(customers=CustomerDirectory(customers), opportunities=OpportunityDirectory(opportunities))
    async with in_process("contracts", principal_keys, contracts_pb2_grpc.add_ContractsServiceServicer_to_server,
                          ContractsServicer(session_factory(engine), contracts_org, owners=owners),
                          CONTRACTS_SERVICE) as target:
        yield target
    await customers.close()
    await opportunities.close()
    await engine.dispose()


# --------------------------------------------------------------------------------- orders service


@pytest.fixture(scope="session")
async def orders_sessions(postgres_server: Any) -> AsyncIterator[Any]:
    """The orders database; tests feed its consumers' handlers directly (contract copies)."""
    engine = create_engine(fresh_database(postgres_server, "gateway_orders", migrate_orders), pool_size=5)
    yield session_factory(engine)
    await engine.dispose()


@pytest.fixture(scope="session")
async def orders_target(orders_sessions: Any, principal_keys: KeyPair, customers_target: str, contracts_target: str,
                        span_exporter: InMemorySpanExporter) -> AsyncIterator[str]:
    # The customer and contract an order names are checked with their owners, as the caller.
    from crm_orders.adapters.owners import OwnerReferences

    owners = [grpc_channel(target, current_principal_token) for target in (customers_target, contracts_target)]
    async with in_process("orders", principal_keys, orders_pb2_grpc.add_OrdersServiceServicer_to_server,
                          OrdersServicer(orders_sessions, OwnerReferences(*owners)), ORDERS_SERVICE) as target:
        yield target
    for owner in owners:
        await owner.close()


# -------------------------------------------------------------------------------- billing service


@pytest.fixture(scope="session")
async def billing_sessions(postgres_server: Any) -> AsyncIterator[Any]:
    """The billing database; tests feed its consumers' handlers directly (contracts, SAP documents)."""
    from crm_billing.main import migrate as migrate_billing

    engine = create_engine(fresh_database(postgres_server, "gateway_billing", migrate_billing), pool_size=5)
    yield session_factory(engine)
    await engine.dispose()


@pytest.fixture(scope="session")
async def billing_target(billing_sessions: Any, principal_keys: KeyPair, customers_target: str,
                         contracts_target: str, orders_target: str,
                         span_exporter: InMemorySpanExporter) -> AsyncIterator[str]:
    from crm.billing.v1 import billing_pb2_grpc
    from crm_billing.adapters.grpc_api import SERVICE_NAME as BILLING_SERVICE
    from crm_billing.adapters.grpc_api import BillingServicer
    from crm_billing.adapters.owners import OwnerReferences

    # The customer, contract and order a billing write names are checked with their owners.
    owners = [grpc_channel(target, current_principal_token)
              for target in (customers_target, contracts_target, orders_target)]
    async with in_process("billing", principal_keys, billing_pb2_grpc.add_BillingServiceServicer_to_server,
                          BillingServicer(billing_sessions, OwnerReferences(*owners)), BILLING_SERVICE) as target:
        yield target
    for owner in owners:
        await owner.close()


# ------------------------------------------------------------------------- SAP integration


@pytest.fixture(scope="session")
def sap_simulator() -> Iterator[str]:
    """The S/4HANA simulator on loopback: the SAP integration's drift report asks it."""
    from crm_sap_simulator.app import Simulator
    from crm_sap_simulator.testing import running

    with running(Simulator(user="CRM_INTEGRATION", password="sim", client="100")) as url:
        yield url


@pytest.fixture(scope="session")
async def sap_sessions(postgres_server: Any) -> AsyncIterator[Any]:
    """The SAP integration's database; tests feed its handlers and outbound worker directly."""
    from crm_sap.main import migrate as migrate_sap

    engine = create_engine(fresh_database(postgres_server, "gateway_sap", migrate_sap), pool_size=5)
    yield session_factory(engine)
    await engine.dispose()


@pytest.fixture(scope="session")
async def sap_target(sap_sessions: Any, sap_simulator: str, principal_keys: KeyPair,
                     span_exporter: InMemorySpanExporter) -> AsyncIterator[str]:
    from crm.sap.v1 import sap_pb2_grpc
    from crm_sap.adapters.grpc_api import SapIntegrationServicer
    from crm_sap.adapters.odata import ODataClient
    from crm_sap.main import SERVICE_NAME as SAP_SERVICE

    sap = ODataClient(sap_simulator, "CRM_INTEGRATION", "sim", sap_client="100")
    async with in_process("sap", principal_keys, sap_pb2_grpc.add_SapIntegrationServiceServicer_to_server,
                          SapIntegrationServicer(sap_sessions, sap), SAP_SERVICE) as target:
        yield target
    await sap.aclose()


# -------------------------------------------------------------------- notifications service


@pytest.fixture(scope="session")
def notifications_database_url(postgres_server: Any) -> str:
    return fresh_database(postgres_server, "gateway_notifications", migrate_notifications)


@pytest.fixture(scope="session")
async def notifications_sessions(notifications_database_url: str) -> AsyncIterator[Any]:
    engine = create_engine(notifications_database_url, pool_size=5)
    yield session_factory(engine)
    await engine.dispose()


@pytest.fixture(scope="session")
async def notifications_target(notifications_sessions: Any, notifications_database_url: str, principal_keys: KeyPair,
                               nats_server: Any, span_exporter: InMemorySpanExporter) -> AsyncIterator[str]:
    """The notifications service in-process, its outbox relayed to NATS (inbox items reach the
    gateway's event streams); tests create items through its event handler."""
    server = GrpcServer("notifications", PrincipalVerifier(principal_keys.public_pem))
    server.add(notifications_pb2_grpc.add_NotificationsServiceServicer_to_server,
               NotificationsServicer(notifications_sessions), NOTIFICATIONS_SERVICE)
    port = await server.start("127.0.0.1:0")
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    await ensure_service_stream(js, "notifications", 1)
    relay = asyncio.create_task(OutboxRelay(notifications_database_url, js, "notifications",
                                            idle_poll_seconds=0.1).run())
    yield f"127.0.0.1:{port}"
    relay.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await relay
    await nc.close()
    await server.stop(0)


# --------------------------------------------------------------------------------- gateway


@pytest.fixture(scope="session")
def gateway_settings(customers_target: str, opportunities_target: str, orders_target: str, contracts_target: str,
                     billing_target: str, sap_target: str, nats_server: Any, token_keys: KeyPair,
                     principal_keys: KeyPair) -> GatewaySettings:
    return GatewaySettings(
        customers_target=customers_target, opportunities_target=opportunities_target, orders_target=orders_target,
        contracts_target=contracts_target, billing_target=billing_target, sap_target=sap_target,
        nats_url=nats_server.url,
        jwt_jwks=jwks_of(token_keys.public_pem),
        jwt_issuer=ISSUER, jwt_audience=AUDIENCE, principal_private_key=principal_keys.private_pem,
        max_body_bytes=MAX_BODY_BYTES, rpc_deadline_seconds=10.0,
        # Every test signs in from the same address; one test checks the throttle itself.
        sign_in_rate_limit_per_minute=100_000,
        # The API alone, whether or not web/dist is built (test_console_serving.py has the console).
        console_dir=Path(__file__).parent / "no-console")


@pytest.fixture(scope="session")
async def gateway_app(gateway_settings: GatewaySettings, span_exporter: InMemorySpanExporter) -> AsyncIterator[Any]:
    app = create_app(gateway_settings)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture(scope="session")
async def client(gateway_app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=gateway_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test", timeout=30) as c:
        yield c


# --------------------------------------------------------------------------------- helpers


@pytest.fixture(scope="session")
def unique() -> Callable[[], str]:
    return lambda: uuid.uuid4().hex[:10]


@pytest.fixture(scope="session")
def tax_id() -> Callable[[], str]:
    """A fresh, valid unified social credit code (GB 32100-2015 check digit)."""
    def make() -> str:
        first17 = "91310000" + "".join(random.choice("0123456789") for _ in range(9))
        return first17 + uscc_check_char(first17)

    return make


@pytest.fixture(scope="session")
def create(client: httpx.AsyncClient, auth: Callable[[Principal], dict[str, str]]) -> Callable[..., Awaitable[dict]]:
    async def post(principal: Principal, **fields: Any) -> dict[str, Any]:
        fields.setdefault("name", f"Customer {uuid.uuid4().hex[:8]}")
        response = await client.post("/api/v1/customers", json=fields, headers=auth(principal))
        assert response.status_code == 201, response.text
        return response.json()

    return post


@pytest.fixture(scope="session")
def assert_problem() -> Callable[..., dict[str, Any]]:
    def check(response: httpx.Response, status: int, *, reason: str | None = None,
              detail_mentions: tuple[str, ...] = (), fields: tuple[str, ...] = ()) -> dict[str, Any]:
        assert response.status_code == status, f"{response.status_code} {response.text}"
        assert response.headers["content-type"].startswith(PROBLEM_JSON), response.headers["content-type"]
        body = response.json()
        assert body["status"] == status
        assert body["type"].startswith("/problems/") and len(body["type"]) > len("/problems/")
        assert body["title"]
        assert isinstance(body["detail"], str) and body["detail"]
        for word in detail_mentions:
            assert word.lower() in body["detail"].lower(), body["detail"]
        if reason is not None:
            assert body["reason"] == reason, body
            assert body["type"] == "/problems/" + reason.lower().replace("_", "-")
        for field in fields:
            assert field in [e["field"] for e in body.get("errors", [])], body
        assert len(body["trace_id"]) == 32 and int(body["trace_id"], 16), body
        assert response.headers.get("x-trace-id") == body["trace_id"]
        return body

    return check


# ------------------------------------------------------------------------ identity service


@pytest.fixture(scope="session")
def identity_keys() -> tuple[KeyPair, KeyPair]:
    """Identity's signing keys: the first signs, both are published (a rotation in progress)."""
    return generate_keypair(), generate_keypair()


@pytest.fixture(scope="session")
def identity_database_url(postgres_server: Any) -> str:
    return fresh_database(postgres_server, "gateway_identity", migrate_identity)


@pytest.fixture(scope="session")
async def identity_sessions(identity_database_url: str) -> AsyncIterator[Any]:
    engine = create_engine(identity_database_url, pool_size=10)
    yield session_factory(engine)
    await engine.dispose()


@pytest.fixture(scope="session")
async def identity_target(identity_sessions: Any, identity_database_url: str, identity_keys: tuple[KeyPair, KeyPair],
                          principal_keys: KeyPair, nats_server: Any,
                          span_exporter: InMemorySpanExporter) -> AsyncIterator[str]:
    async with UnitOfWork(identity_sessions, IDENTITY_SOURCE, actor="system") as uow:
        await identity_org.bootstrap_admin(uow, IDENTITY_ADMIN_PASSWORD)
    config = TokenConfig(keys=SigningKeys(tuple(k.private_pem for k in identity_keys)), issuer=ISSUER,
                         audience=AUDIENCE, access_ttl=600)
    server = GrpcServer("identity", PrincipalVerifier(principal_keys.public_pem), IDENTITY_PUBLIC_METHODS)
    server.add(identity_pb2_grpc.add_IdentityServiceServicer_to_server, IdentityServicer(identity_sessions, config),
               IDENTITY_SERVICE)
    port = await server.start("127.0.0.1:0")
    nc = await nats.connect(nats_server.url)
    js = nc.jetstream()
    await ensure_service_stream(js, "identity", 1)
    relay = asyncio.create_task(OutboxRelay(identity_database_url, js, "identity", idle_poll_seconds=0.1).run())
    yield f"127.0.0.1:{port}"
    relay.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await relay
    await nc.close()
    await server.stop(0)


@pytest.fixture(scope="session")
def id_settings(gateway_settings: GatewaySettings, identity_target: str) -> GatewaySettings:
    return gateway_settings.model_copy(update={"identity_target": identity_target, "jwks_min_refresh_seconds": 0.0})


@pytest.fixture(scope="session")
async def id_app(id_settings: GatewaySettings) -> AsyncIterator[Any]:
    app = create_app(id_settings)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture(scope="session")
async def id_client(id_app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=id_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test", timeout=30) as c:
        yield c


@pytest.fixture(scope="session")
def login(id_client: httpx.AsyncClient) -> Callable[..., Awaitable[str]]:
    async def sign_in(username: str, password: str) -> str:
        r = await id_client.post("/api/v1/auth/token",
                                 data={"grant_type": "password", "username": username, "password": password})
        assert r.status_code == 200, r.text
        return str(r.json()["access_token"])

    return sign_in


@pytest.fixture(scope="session")
def id_auth() -> Callable[[str], dict[str, str]]:
    return lambda token: {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="session")
def eventually() -> Callable[..., Awaitable[Any]]:
    async def run(check: Callable[[], Awaitable[Any]], timeout: float = 10.0) -> Any:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            result = await check()
            if result:
                return result
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"not reached within {timeout}s")
            await asyncio.sleep(0.05)

    return run
