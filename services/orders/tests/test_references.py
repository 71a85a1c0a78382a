"""What an order names is checked with its owner, as the caller (R-SEC-02), and orders follow
their customer (reassignment, merge): on real PostgreSQL, with the real customers and contracts
services answering over gRPC."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid
from decimal import Decimal

import grpc
import pytest
from sqlalchemy import text

from crm.customers.v1 import customers_pb2
from crm.customers.v1 import events_pb2 as customers_ev
from crm.orders.v1 import orders_pb2 as pb
from crm.orders.v1 import orders_pb2_grpc as pb_grpc
from crm_orders.adapters.grpc_api import OrdersServicer
from crm_orders.app import use_cases as uc
from crm_orders.domain.model import RequestedLine
from crm_orders.main import SERVICE_NAME
from crmkit.auth import PrincipalSigner
from crmkit.errors import Conflict, NotFound
from crmkit.grpc.client import channel
from crmkit.testing.principals import EAST_REP, FINANCE, WEST_REP, with_grants
from crmkit.testing.service import grpc_in_process

pytestmark = pytest.mark.integration

CUSTOMER = uuid.UUID("01930000-0000-7000-8000-00000000c001")
SOON = dt.date.today() + dt.timedelta(days=20)
WEST = {"owner_id": "rep-west", "team_id": "west", "department_path": "/sales/west/"}


def new(contract_id: str | uuid.UUID, quantity: str = "1") -> uc.NewOrder:
    return uc.NewOrder(contract_id=uuid.UUID(str(contract_id)), lines=[RequestedLine("L1", Decimal(quantity))],
                       requested_delivery_date=SOON)


async def test_a_contract_signed_a_moment_ago_is_ordered_against_before_its_copy_arrives(
        call, deliver, owners, contract_of, sql) -> None:
    signed = contract_of()
    await owners.sign(signed)  # signed in the contracts service; its event has not reached orders
    order = (await call(EAST_REP, uc.create_order, new(signed.contract_id, "10"))).order
    assert (order.contract_number, order.customer_name, order.amount) == (
        "CON-2026-000123", "Fuzhou Valve Works", Decimal("10000.00"))
    # The owner's answer is the copy now: the cap holds at once, and the late event changes nothing.
    with pytest.raises(Conflict) as exceeded:
        await call(EAST_REP, uc.create_order, new(signed.contract_id, "91"))
    assert exceeded.value.reason == "CONTRACT_QUANTITY_EXCEEDED"
    await deliver(signed)
    assert [tuple(r) for r in await sql("SELECT owner_id, team_ids, version FROM contracts")] == [
        ("rep-east", ["east"], 1)]


async def test_a_contract_out_of_scope_or_unknown_or_unsigned_is_not_found_alike(call, deliver, owners,
                                                                                   contract_of) -> None:
    east_copied, east_unsent = contract_of(), contract_of()
    await deliver(east_copied)
    await owners.sign(east_unsent)
    refusals = []
    for contract_id in (east_copied.contract_id, east_unsent.contract_id, uuid.uuid4()):
        with pytest.raises(NotFound) as absent:
            await call(WEST_REP, uc.create_order, new(contract_id))
        refusals.append((absent.value.reason, absent.value.metadata["contract_id"]))
    assert [reason for reason, _ in refusals] == ["CONTRACT_NOT_FOUND"] * 3


async def test_the_name_on_an_order_is_the_customers_services_and_a_customer_out_of_reach_refuses(
        call, deliver, owners, contract_of, sql) -> None:
    signed = contract_of()
    signed.customer_name = "what the contract once said"
    await deliver(signed)
    first = (await call(EAST_REP, uc.create_order, new(signed.contract_id))).order
    await owners.rename_customer("Fuzhou Valve Works Group")
    second = (await call(EAST_REP, uc.create_order, new(signed.contract_id))).order
    assert (first.customer_name, second.customer_name) == ("Fuzhou Valve Works", "Fuzhou Valve Works Group")
    assert (await call(EAST_REP, uc.get_order, first.id)).order.customer_name == "Fuzhou Valve Works"
    # The contract copy still says East, but the customer is West's now: not East's to order for.
    await owners.move_customer(**WEST)
    with pytest.raises(NotFound) as refused:
        await call(EAST_REP, uc.create_order, new(signed.contract_id))
    assert refused.value.metadata == {"reference": "customer"}
    assert len(await sql("SELECT id FROM orders")) == 2


def reassigned(customer_id: uuid.UUID, owner_id: str, team_id: str, department_path: str,
               previous: str = "rep-east") -> customers_ev.CustomerReassigned:
    return customers_ev.CustomerReassigned(
        customer=customers_pb2.Customer(id=str(customer_id), name="Fuzhou Valve Works", owner_id=owner_id,
                                        team_id=team_id, department_path=department_path),
        previous_owner_id=previous, owner_id=owner_id, previous_team_id="east")


async def test_orders_and_contract_copies_follow_a_reassigned_customer(call, deliver, owners, contract_of) -> None:
    signed = contract_of()
    await deliver(signed)
    open_order = (await call(EAST_REP, uc.create_order, new(signed.contract_id))).order
    closed = (await call(EAST_REP, uc.create_order, new(signed.contract_id))).order
    await call(EAST_REP, uc.cancel_order, closed.id, "customer changed their mind")
    await owners.move_customer(**WEST)
    await deliver(reassigned(CUSTOMER, **WEST))

    west_sees = {v.order.id for v in (await call(WEST_REP, uc.list_orders, page_token="", limit=50))[0]}
    assert west_sees == {open_order.id, closed.id}
    assert (await call(EAST_REP, uc.list_orders, page_token="", limit=50))[0] == []
    with pytest.raises(NotFound):
        await call(EAST_REP, uc.get_order, open_order.id)
    # The contract follows too: the new owner orders against it, the old one no longer can.
    assert (await call(WEST_REP, uc.create_order, new(signed.contract_id))).order.owner_id == "rep-west"
    with pytest.raises(NotFound):
        await call(EAST_REP, uc.create_order, new(signed.contract_id))


async def test_a_merged_customers_orders_are_the_survivors_and_follow_its_owner(call, deliver, owners,
                                                                                contract_of) -> None:
    merged_id = uuid.uuid4()
    await owners.add_customer(merged_id, name="Fuzhou Valves (dup)")
    signed = contract_of()
    signed.customer_id = str(merged_id)
    await deliver(signed)
    order = (await call(EAST_REP, uc.create_order, new(signed.contract_id))).order
    assert (order.customer_id, order.customer_name) == (merged_id, "Fuzhou Valves (dup)")

    survivor = customers_pb2.Customer(id=str(CUSTOMER), name="Fuzhou Valve Works", **WEST)
    await deliver(customers_ev.CustomersMerged(surviving_id=str(CUSTOMER), merged_id=str(merged_id),
                                               surviving=survivor))
    moved = (await call(WEST_REP, uc.get_order, order.id)).order
    assert (moved.customer_id, moved.customer_name, moved.owner_id, moved.department_path) == (
        CUSTOMER, "Fuzhou Valve Works", "rep-west", "/sales/west/")
    # As the customers service has it after the merge: the survivor West's, the merged one gone.
    await owners.move_customer(**WEST)
    async with owners.customers() as s, s.begin():
        await s.execute(text("UPDATE customers SET deleted_at = now(), merged_into = :s WHERE id = :m"),
                        {"s": CUSTOMER, "m": merged_id})
    assert [e.view.order.id for e in (await call(WEST_REP, uc.order_overview, CUSTOMER)).entries] == [order.id]
    with pytest.raises(NotFound):
        await call(WEST_REP, uc.order_overview, merged_id)


async def test_the_service_refuses_a_principal_without_the_permission(sessions, owners, principal_keys,
                                                                      deliver, contract_of) -> None:
    signed = contract_of()
    await deliver(signed)
    signer = PrincipalSigner(principal_keys.private_pem)
    async with grpc_in_process("orders", principal_keys.public_pem, pb_grpc.add_OrdersServiceServicer_to_server,
                               OrdersServicer(sessions, owners.references), SERVICE_NAME) as target:
        request = pb.CreateOrderRequest(contract_id=signed.contract_id, requested_delivery_date=SOON.isoformat(),
                                        lines=[pb.NewOrderLine(contract_line_id="L1", quantity="1")])
        for principal, code in ((FINANCE, grpc.StatusCode.PERMISSION_DENIED),
                                (dataclasses.replace(EAST_REP, permissions=("orders.read",)),
                                 grpc.StatusCode.PERMISSION_DENIED),
                                (EAST_REP, grpc.StatusCode.OK)):
            ch = channel(target, lambda p=principal: signer.sign(with_grants(p)))
            try:
                await pb_grpc.OrdersServiceStub(ch).CreateOrder(request)
                got = grpc.StatusCode.OK
            except grpc.aio.AioRpcError as exc:
                got = exc.code()
            finally:
                await ch.close()
            assert (principal.subject, principal.permissions, got) == (principal.subject, principal.permissions, code)
