"""The gRPC server and client of every service, over a real channel: the signed principal, the
error vocabulary with rich details, no leaks on unexpected errors, health, deadlines, tracing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import grpc
import jwt
import pytest
import sqlalchemy.exc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import REGISTRY
from pydantic import SecretStr

from crm.customers.v1 import customers_pb2, customers_pb2_grpc
from crmkit import errors, telemetry
from crmkit.auth import (
    PRINCIPAL_METADATA_KEY,
    DataScope,
    Principal,
    PrincipalSigner,
    PrincipalVerifier,
    current_principal,
    service_principal,
)
from crmkit.auth.keys import generate_keypair
from crmkit.grpc.client import channel
from crmkit.grpc.server import GrpcServer
from crmkit.grpc.status import from_rpc_error
from crmkit.service import Runtime

pytestmark = pytest.mark.integration

SERVICE_NAME = "crm.customers.v1.CustomersService"
KEY = generate_keypair()
SERVICE_KEY = generate_keypair()
ATTACKER = generate_keypair()
ALICE = Principal(subject="u-alice", name="Alice", roles=("sales_rep",), team_ids=("east",),
                  department_path="/sales/east/", data_scope=DataScope.TEAM, scopes=("customers:read",))

ERRORS: dict[str, errors.CrmError] = {
    "invalid": errors.InvalidArgument(
        "2 fields are invalid", metadata={"entity": "customer"},
        violations=[errors.FieldViolation("name", "must not be empty"),
                    errors.FieldViolation("contacts[0].email", "is not an email address")]),
    "not-found": errors.NotFound("customer c-404 not found", metadata={"id": "c-404"}),
    "exists": errors.AlreadyExists("tax id is taken", reason="DUPLICATE_TAX_ID",
                                   metadata={"tax_id": "91310000MA1"}),
    "conflict": errors.Conflict("a signed contract cannot change", reason="CONTRACT_SIGNED"),
    "stale": errors.StaleVersion("version 3 is not the current one", metadata={"current_version": "4"}),
    "denied": errors.PermissionDenied("not in your data scope"),
    "unauthenticated": errors.Unauthenticated("principal revoked", reason="PRINCIPAL_REVOKED"),
    "unavailable": errors.Unavailable("SAP is down", reason="SAP_UNAVAILABLE"),
}
CODES = {
    "invalid": grpc.StatusCode.INVALID_ARGUMENT, "not-found": grpc.StatusCode.NOT_FOUND,
    "exists": grpc.StatusCode.ALREADY_EXISTS, "conflict": grpc.StatusCode.FAILED_PRECONDITION,
    "stale": grpc.StatusCode.ABORTED, "denied": grpc.StatusCode.PERMISSION_DENIED,
    "unauthenticated": grpc.StatusCode.UNAUTHENTICATED, "unavailable": grpc.StatusCode.UNAVAILABLE,
}


class _PgError(Exception):
    """What the asyncpg adapter hands SQLAlchemy: an error carrying a SQLSTATE."""

    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"sqlstate {sqlstate}")
        self.sqlstate = sqlstate


DATABASE_TROUBLE: dict[str, Exception] = {
    "pool-exhausted": sqlalchemy.exc.TimeoutError("QueuePool limit of size 10 overflow 10 reached"),
    "too-many-clients": sqlalchemy.exc.DBAPIError("connect", None, _PgError("53300")),
    "shutting-down": sqlalchemy.exc.DBAPIError("select 1", None, _PgError("57P01")),
}
# A syntax error (42601) will not go away on a retry.
DATABASE_BUG = sqlalchemy.exc.DBAPIError("selec 1", None, _PgError("42601"))


class Servicer(customers_pb2_grpc.CustomersServiceServicer):
    def __init__(self) -> None:
        self.seen: list[tuple[Principal, str]] = []

    async def GetCustomer(self, request: customers_pb2.GetCustomerRequest,
                          context: grpc.aio.ServicerContext) -> customers_pb2.GetCustomerResponse:
        principal = current_principal()
        self.seen.append((principal, telemetry.current_trace_id()))
        if request.id in ERRORS:
            raise ERRORS[request.id]
        if request.id in DATABASE_TROUBLE:
            raise DATABASE_TROUBLE[request.id]
        if request.id == "sql-bug":
            raise DATABASE_BUG
        if request.id == "boom":
            raise KeyError("password=hunter2 at db.internal:5432")
        if request.id == "slow":
            await asyncio.sleep(2)
        return customers_pb2.GetCustomerResponse(
            customer=customers_pb2.Customer(id=request.id, name=principal.name))


@pytest.fixture
async def server() -> AsyncIterator[tuple[str, Servicer]]:
    servicer = Servicer()
    grpc_server = GrpcServer("kt-customers", PrincipalVerifier(KEY.public_pem, service_pems=(SERVICE_KEY.public_pem,)))
    grpc_server.add(customers_pb2_grpc.add_CustomersServiceServicer_to_server, servicer, SERVICE_NAME)
    port = await grpc_server.start("127.0.0.1:0")
    try:
        yield f"127.0.0.1:{port}", servicer
    finally:
        await grpc_server.stop(0)


def _token(principal: Principal = ALICE, key: Any = KEY) -> str:
    return PrincipalSigner(key.private_pem).sign(principal)


async def _get(target: str, customer_id: str, token: Any = _token, **kwargs: Any) -> Any:
    async with channel(target, token, **kwargs) as ch:
        stub = customers_pb2_grpc.CustomersServiceStub(ch)
        return await stub.GetCustomer(customers_pb2.GetCustomerRequest(id=customer_id))


async def test_the_principal_reaches_the_handler(server: tuple[str, Servicer]) -> None:
    target, servicer = server
    response = await _get(target, "c-1")
    assert response.customer.id == "c-1" and response.customer.name == "Alice"
    assert servicer.seen[-1][0] == ALICE


async def test_a_per_call_principal_without_a_channel_signer(server: tuple[str, Servicer]) -> None:
    """The gateway acts for a different caller on each request."""
    target, servicer = server
    bob = Principal(subject="u-bob", name="Bob")
    async with channel(target) as ch:
        stub = customers_pb2_grpc.CustomersServiceStub(ch)
        response = await stub.GetCustomer(customers_pb2.GetCustomerRequest(id="c-2"),
                                          metadata=((PRINCIPAL_METADATA_KEY, _token(bob)),))
    assert response.customer.name == "Bob"
    assert servicer.seen[-1][0] == bob


async def test_an_internal_channel_calls_as_the_service_itself(server: tuple[str, Servicer]) -> None:
    """What a service's event handler or background job uses: no user behind the call."""
    target, servicer = server
    settings = SimpleNamespace(service_private_key=SecretStr(SERVICE_KEY.private_pem))
    runtime = Runtime(name="contracts", settings=settings, engine=None, sessions=None, nc=None, js=None,  # type: ignore[arg-type]
                      grpc=None)  # type: ignore[arg-type]
    stub = customers_pb2_grpc.CustomersServiceStub(runtime.internal_channel(target))
    response = await stub.GetCustomer(customers_pb2.GetCustomerRequest(id="c-3"))
    for ch in runtime.channels:
        await ch.close()
    assert response.customer.name == "contracts"
    assert servicer.seen[-1][0] == service_principal("contracts")
    assert servicer.seen[-1][0].permissions == ("org.read", "customers.read")


@pytest.mark.parametrize("how", ["none", "forged", "unknown-key", "garbage"])
async def test_calls_without_a_valid_principal_are_unauthenticated(
    server: tuple[str, Servicer], how: str,
) -> None:
    target, servicer = server
    token = {
        "none": None,
        "forged": _forged,
        "unknown-key": lambda: _token(key=ATTACKER),
        "garbage": lambda: "not.a.token",
    }[how]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _get(target, "c-1", token)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert isinstance(from_rpc_error(err.value), errors.Unauthenticated)
    assert servicer.seen == []


def _forged() -> str:
    """Names the trusted key but is signed by another, and claims everything."""
    claims = Principal(subject="u-mallory", roles=("admin",), data_scope=DataScope.ALL).to_claims()
    claims |= {"aud": "crm-services", "iat": int(time.time()), "exp": int(time.time()) + 60}
    return jwt.encode(claims, ATTACKER.private_pem, algorithm="EdDSA", headers={"kid": KEY.kid})


@pytest.mark.parametrize("case", list(ERRORS))
async def test_crm_errors_map_to_codes_and_rebuild(
    server: tuple[str, Servicer], case: str, eventually: Any,
) -> None:
    target, _ = server
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _get(target, case)
    assert err.value.code() == CODES[case]
    assert err.value.details() == ERRORS[case].message
    rebuilt = from_rpc_error(err.value)
    assert type(rebuilt) is type(ERRORS[case])
    assert rebuilt == ERRORS[case]  # message, reason, metadata, field violations

    async def counted() -> bool:  # the server records the call just after answering it
        labels = {"service": "kt-customers", "method": f"/{SERVICE_NAME}/GetCustomer",
                  "code": CODES[case].name}
        return (REGISTRY.get_sample_value("crm_grpc_server_handled_total", labels) or 0) >= 1

    await eventually(counted)


async def test_an_unexpected_error_is_internal_and_leaks_nothing(server: tuple[str, Servicer]) -> None:
    target, _ = server
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _get(target, "boom")
    assert err.value.code() == grpc.StatusCode.INTERNAL
    assert err.value.details() == "internal error"
    assert "hunter2" not in str(err.value.trailing_metadata())
    assert "hunter2" not in (err.value.debug_error_string() or "")
    rebuilt = from_rpc_error(err.value)
    assert (rebuilt.message, rebuilt.reason) == ("internal error", "INTERNAL")


@pytest.mark.parametrize("trouble", sorted(DATABASE_TROUBLE))
async def test_a_database_out_of_reach_is_unavailable_not_internal(server: tuple[str, Servicer], trouble: str) -> None:
    target, _ = server
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _get(target, trouble)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    assert from_rpc_error(err.value).reason == "DATABASE_UNAVAILABLE"


async def test_a_database_error_that_is_a_bug_stays_internal(server: tuple[str, Servicer]) -> None:
    target, _ = server
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _get(target, "sql-bug")
    assert err.value.code() == grpc.StatusCode.INTERNAL


async def test_an_unimplemented_method_is_unimplemented(server: tuple[str, Servicer]) -> None:
    target, _ = server
    async with channel(target, _token) as ch:
        stub = customers_pb2_grpc.CustomersServiceStub(ch)
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.ListTags(customers_pb2.ListTagsRequest())
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_the_channel_sets_a_default_deadline(server: tuple[str, Servicer]) -> None:
    target, _ = server
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await _get(target, "slow", deadline=0.2)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    rebuilt = from_rpc_error(err.value)
    assert isinstance(rebuilt, errors.Unavailable) and rebuilt.reason == "DEADLINE_EXCEEDED"


async def test_health_answers_serving_without_a_principal(server: tuple[str, Servicer]) -> None:
    target, _ = server
    async with grpc.aio.insecure_channel(target) as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        for name in ("", SERVICE_NAME):
            response = await stub.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
            assert response.status == health_pb2.HealthCheckResponse.SERVING


async def test_trace_context_propagates_to_the_server(
    server: tuple[str, Servicer], span_exporter: InMemorySpanExporter,
) -> None:
    target, servicer = server
    with trace.get_tracer("test").start_as_current_span("caller") as caller:
        await _get(target, "c-3")
    trace_id = caller.get_span_context().trace_id
    assert servicer.seen[-1][1] == f"{trace_id:032x}"
    server_spans = [s for s in span_exporter.get_finished_spans()
                    if s.kind == trace.SpanKind.SERVER and s.name.endswith("GetCustomer")]
    assert server_spans and all(s.context.trace_id == trace_id for s in server_spans)
