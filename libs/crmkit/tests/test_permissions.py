"""Each service checks the permission of each RPC itself (R-SEC-03, defence in depth): the table a
servicer declares must name every RPC, and the shared interceptor refuses a valid principal that
lacks the permission, before the handler runs."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest

from crm.customers.v1 import customers_pb2, customers_pb2_grpc
from crmkit import errors
from crmkit.auth import DataScope, Principal, PrincipalSigner, PrincipalVerifier, allows
from crmkit.auth.keys import generate_keypair
from crmkit.auth.permissions import method_table
from crmkit.grpc.client import channel
from crmkit.grpc.server import GrpcServer
from crmkit.grpc.status import from_rpc_error

SERVICE_NAME = "crm.customers.v1.CustomersService"
RPCS = [m.name for m in customers_pb2.DESCRIPTOR.services_by_name["CustomersService"].methods]
TABLE = {name: "customers.write" for name in RPCS} | {"GetCustomer": "customers.read"}
KEY = generate_keypair()


def test_the_table_must_name_every_rpc_and_only_rpcs() -> None:
    assert method_table(SERVICE_NAME, TABLE)[f"/{SERVICE_NAME}/GetCustomer"] == "customers.read"
    with pytest.raises(ValueError, match="missing \\['GetCustomer'\\]"):
        method_table(SERVICE_NAME, {k: v for k, v in TABLE.items() if k != "GetCustomer"})
    with pytest.raises(ValueError, match="not RPCs of the service \\['LaunchRockets'\\]"):
        method_table(SERVICE_NAME, TABLE | {"LaunchRockets": "customers.write"})
    with pytest.raises(ValueError, match="without a permission \\['GetCustomer'\\]"):
        method_table(SERVICE_NAME, TABLE | {"GetCustomer": ""})


def test_users_by_permission_and_partner_clients_by_scope_as_well() -> None:
    assert allows(Principal(subject="u", permissions=("customers.read",)), "customers.read")
    assert allows(Principal(subject="u", permissions=("customers.*",)), "customers.delete")
    assert allows(Principal(subject="u", permissions=("*",)), "audit.read")
    assert not allows(Principal(subject="u", permissions=("customers.read",)), "customers.write")
    client = Principal(subject="pc", kind="client", scopes=("customers:read",), permissions=("customers.*",))
    assert allows(client, "customers.read")
    assert not allows(client, "customers.write")  # the scope limits what the permission would allow
    assert allows(Principal(subject="pc", kind="client", scopes=("customers:read",)), "customers.read")


class Servicer(customers_pb2_grpc.CustomersServiceServicer):
    permissions = TABLE

    def __init__(self) -> None:
        self.calls = 0

    async def GetCustomer(self, request: customers_pb2.GetCustomerRequest,
                          context: grpc.aio.ServicerContext) -> customers_pb2.GetCustomerResponse:
        self.calls += 1
        return customers_pb2.GetCustomerResponse(customer=customers_pb2.Customer(id=request.id))


class Untabled(customers_pb2_grpc.CustomersServiceServicer):
    permissions = {"GetCustomer": "customers.read"}


@pytest.fixture
async def served() -> AsyncIterator[tuple[str, Servicer]]:
    servicer = Servicer()
    server = GrpcServer("kt-permissions", PrincipalVerifier(KEY.public_pem))
    server.add(customers_pb2_grpc.add_CustomersServiceServicer_to_server, servicer, SERVICE_NAME)
    port = await server.start("127.0.0.1:0")
    try:
        yield f"127.0.0.1:{port}", servicer
    finally:
        await server.stop(0)


async def _get(target: str, principal: Principal) -> customers_pb2.GetCustomerResponse:
    async with channel(target, lambda: PrincipalSigner(KEY.private_pem).sign(principal)) as ch:
        return await customers_pb2_grpc.CustomersServiceStub(ch).GetCustomer(customers_pb2.GetCustomerRequest(id="c"))


@pytest.mark.integration
async def test_a_valid_principal_without_the_permission_is_refused_by_the_service(
    served: tuple[str, Servicer],
) -> None:
    target, servicer = served
    reader = Principal(subject="u-reader", data_scope=DataScope.ALL, permissions=("customers.read",))
    assert (await _get(target, reader)).customer.id == "c"
    assert servicer.calls == 1
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await _get(target, Principal(subject="u-operator", data_scope=DataScope.ALL,
                                     permissions=("integrations.read",)))
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    error = from_rpc_error(refused.value)
    assert isinstance(error, errors.PermissionDenied) and error.metadata == {"permission": "customers.read"}
    assert servicer.calls == 1  # the handler never ran


def test_a_servicer_with_an_incomplete_table_is_not_served() -> None:
    server = GrpcServer("kt-permissions", PrincipalVerifier(KEY.public_pem))
    with pytest.raises(ValueError, match="missing"):
        server.add(customers_pb2_grpc.add_CustomersServiceServicer_to_server, Untabled(), SERVICE_NAME)
