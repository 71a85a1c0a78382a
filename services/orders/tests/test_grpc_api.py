"""The orders servicer behind a real gRPC server, called with a signed principal: protobuf in and
out, quantities and Money as decimal strings, an exceeded contract as FAILED_PRECONDITION with
CONTRACT_QUANTITY_EXCEEDED, the overview in one call."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator, Callable

import grpc
import pytest

from crm.orders.v1 import events_pb2 as ev
from crm.orders.v1 import orders_pb2 as pb
from crm.orders.v1 import orders_pb2_grpc as pb_grpc
from crm_orders.adapters.grpc_api import OrdersServicer
from crm_orders.main import SERVICE_NAME
from crmkit.auth import Principal, PrincipalSigner, PrincipalVerifier
from crmkit.errors import Conflict, InvalidArgument, NotFound
from crmkit.grpc.client import channel
from crmkit.grpc.server import GrpcServer
from crmkit.grpc.status import from_rpc_error
from crmkit.testing.principals import EAST_REP, WEST_REP, with_grants

pytestmark = pytest.mark.integration

SOON = (dt.date.today() + dt.timedelta(days=14)).isoformat()


@pytest.fixture
async def stub_for(sessions, owners, principal_keys) -> AsyncIterator[Callable[[Principal], pb_grpc.OrdersServiceStub]]:
    server = GrpcServer("orders", PrincipalVerifier(principal_keys.public_pem))
    server.add(pb_grpc.add_OrdersServiceServicer_to_server, OrdersServicer(sessions, owners.references), SERVICE_NAME)
    signer = PrincipalSigner(principal_keys.private_pem)
    port = await server.start("127.0.0.1:0")
    channels: list[grpc.aio.Channel] = []

    def make(principal: Principal) -> pb_grpc.OrdersServiceStub:
        ch = channel(f"127.0.0.1:{port}", lambda: signer.sign(with_grants(principal)))
        channels.append(ch)
        return pb_grpc.OrdersServiceStub(ch)

    yield make
    for ch in channels:
        await ch.close()
    await server.stop(0)


async def rpc_error(call) -> tuple[grpc.StatusCode, object]:
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await call
    return exc.value.code(), from_rpc_error(exc.value)


async def test_orders_over_grpc(stub_for, deliver, contract_of) -> None:
    signed = contract_of()
    await deliver(signed)
    stub = stub_for(EAST_REP)
    created = (await stub.CreateOrder(pb.CreateOrderRequest(
        contract_id=signed.contract_id, requested_delivery_date=SOON, customer_reference="PO-1",
        lines=[pb.NewOrderLine(contract_line_id="L1", quantity="12.5"),
               pb.NewOrderLine(contract_line_id="L2", quantity="1", requested_delivery_date=SOON)]))).order
    assert (created.status, created.amount.amount, created.amount.currency, created.version) == (
        pb.ORDER_STATUS_SUBMITTED, "17500.00", "CNY", 1)
    assert [(li.quantity, li.unit_price.amount, li.amount.amount, li.delivered_quantity) for li in created.lines] == [
        ("12.5", "1000.00", "12500.00", "0"), ("1", "5000.00", "5000.00", "0")]

    code, err = await rpc_error(stub.CreateOrder(pb.CreateOrderRequest(
        contract_id=signed.contract_id, requested_delivery_date=SOON,
        lines=[pb.NewOrderLine(contract_line_id="L1", quantity="87.5001")])))
    assert code is grpc.StatusCode.FAILED_PRECONDITION
    assert isinstance(err, Conflict) and err.reason == "CONTRACT_QUANTITY_EXCEEDED"
    assert err.metadata["remaining"] == "87.5"
    code, err = await rpc_error(stub.CreateOrder(pb.CreateOrderRequest(
        contract_id=signed.contract_id, requested_delivery_date="25/12/2026",
        lines=[pb.NewOrderLine(contract_line_id="L1", quantity="1")])))
    assert code is grpc.StatusCode.INVALID_ARGUMENT and isinstance(err, InvalidArgument)
    assert [v.field for v in err.violations] == ["requested_delivery_date"]

    code, err = await rpc_error(stub_for(WEST_REP).GetOrder(pb.GetOrderRequest(id=created.id)))
    assert code is grpc.StatusCode.NOT_FOUND and isinstance(err, NotFound)

    await stub.ConfirmOrder(pb.ConfirmOrderRequest(id=created.id, expected_version=1))
    delivery = (await stub.CreateDelivery(pb.CreateDeliveryRequest(
        order_id=created.id, shipped_on=dt.date.today().isoformat(), carrier="ZTO",
        lines=[ev.DeliveryLine(order_line_id=created.lines[0].id, quantity="2.5")]))).delivery
    assert (delivery.status, delivery.source, delivery.order_number) == ("shipped", "manual", created.order_number)

    overview = await stub.GetOrderOverview(pb.GetOrderOverviewRequest(customer_id=signed.customer_id))
    [entry] = overview.entries
    assert entry.order.status == pb.ORDER_STATUS_SHIPPED
    assert [li.delivered_quantity for li in entry.order.lines] == ["2.5", "0"]
    assert [d.id for d in entry.deliveries] == [delivery.id]
    listed = await stub.ListOrders(pb.ListOrdersRequest(status=pb.ORDER_STATUS_SHIPPED,
                                                        customer_id=signed.customer_id))
    assert [o.id for o in listed.orders] == [created.id]
    assert (await stub.ListOrders(pb.ListOrdersRequest(status=pb.ORDER_STATUS_CLOSED))).orders == []
    # another scope's customer, or none at all, has no overview: 404 alike
    for who, customer_id in ((WEST_REP, signed.customer_id), (EAST_REP, str(uuid.uuid4()))):
        code, err = await rpc_error(stub_for(who).GetOrderOverview(pb.GetOrderOverviewRequest(customer_id=customer_id)))
        assert code is grpc.StatusCode.NOT_FOUND and isinstance(err, NotFound)
