"""The opportunities servicer behind a real gRPC server, called with a signed principal: protobuf in
and out, Money as decimal strings, broken rules as FAILED_PRECONDITION with the rule's reason."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest

from crm.common.v1 import money_pb2
from crm.customers.v1 import customers_pb2 as cpb
from crm.customers.v1 import customers_pb2_grpc as cpb_grpc
from crm.opportunities.v1 import opportunities_pb2 as pb
from crm.opportunities.v1 import opportunities_pb2_grpc as pb_grpc
from crm_customers.adapters.grpc_api import CustomersServicer
from crm_customers.main import migrate as migrate_customers
from crm_opportunities.adapters.grpc_api import OpportunitiesServicer
from crm_opportunities.main import SERVICE_NAME
from crmkit.auth import Principal, PrincipalSigner, PrincipalVerifier, current_principal_token
from crmkit.auth.keys import generate_keypair
from crmkit.db import create_engine, session_factory
from crmkit.errors import Conflict, InvalidArgument, NotFound, PermissionDenied
from crmkit.grpc.client import channel
from crmkit.grpc.server import GrpcServer
from crmkit.grpc.status import from_rpc_error
from crmkit.references import CustomerDirectory
from crmkit.testing.principals import EAST_REP, MARKETING, WEST_REP, with_grants
from crmkit.testing.service import grpc_in_process

pytestmark = pytest.mark.integration

KEYS = generate_keypair()
SIGNER = PrincipalSigner(KEYS.private_pem)
VALID = (dt.date.today() + dt.timedelta(days=14)).isoformat()


@pytest.fixture
async def customers_target(database_factory) -> AsyncIterator[str]:
    """The customers service in process: the owner an opportunity's customer is checked with."""
    engine = create_engine(database_factory("customers", migrate_customers), pool_size=3)
    async with grpc_in_process("customers", KEYS.public_pem, cpb_grpc.add_CustomersServiceServicer_to_server,
                               CustomersServicer(session_factory(engine)),
                               cpb.DESCRIPTOR.services_by_name["CustomersService"].full_name) as target:
        yield target
    await engine.dispose()


@pytest.fixture
async def stub_for(sessions, customers_target) -> AsyncIterator[Callable[[Principal], Any]]:
    as_caller = channel(customers_target, current_principal_token)
    server = GrpcServer("opportunities", PrincipalVerifier(KEYS.public_pem))
    server.add(pb_grpc.add_OpportunitiesServiceServicer_to_server,
               OpportunitiesServicer(sessions, customers=CustomerDirectory(as_caller)), SERVICE_NAME)
    port = await server.start("127.0.0.1:0")
    channels: list[grpc.aio.Channel] = [as_caller]

    def make(principal: Principal) -> pb_grpc.OpportunitiesServiceStub:
        ch = channel(f"127.0.0.1:{port}", lambda: SIGNER.sign(with_grants(principal)))
        channels.append(ch)
        return pb_grpc.OpportunitiesServiceStub(ch)

    yield make
    for ch in channels:
        await ch.close()
    await server.stop(0)


@pytest.fixture
def customer_of(customers_target) -> Callable[[Principal], object]:
    """`await customer_of(p)`: a new customer owned by `p`, created through the customers service."""

    async def create(principal: Principal) -> str:
        async with channel(customers_target, lambda: SIGNER.sign(with_grants(principal))) as ch:
            reply = await cpb_grpc.CustomersServiceStub(ch).CreateCustomer(cpb.CreateCustomerRequest(
                customer=cpb.Customer(name=f"Customer {uuid.uuid4().hex[:8]}")))
        return reply.customer.id

    return create


async def rpc_error(call) -> tuple[grpc.StatusCode, object]:
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await call
    return exc.value.code(), from_rpc_error(exc.value)


async def test_the_customer_must_exist_in_the_callers_scope(stub_for, customer_of) -> None:
    """R-SEC-02: asked of the customers service as the caller; another rep's customer and a random
    id are both "not found"; a customer created a moment ago is usable at once."""
    stub = stub_for(EAST_REP)

    def opportunity(customer_id: str) -> pb.CreateOpportunityRequest:
        return pb.CreateOpportunityRequest(opportunity=pb.Opportunity(
            customer_id=customer_id, name="Valves", amount=money_pb2.Money(amount="10", currency="CNY")))

    for customer_id in (await customer_of(WEST_REP), str(uuid.uuid4())):
        code, err = await rpc_error(stub.CreateOpportunity(opportunity(customer_id)))
        assert code == grpc.StatusCode.NOT_FOUND and isinstance(err, NotFound)
        assert err.reason == "REFERENCE_NOT_FOUND" and customer_id not in err.message
    fresh = await customer_of(EAST_REP)
    assert (await stub.CreateOpportunity(opportunity(fresh))).opportunity.customer_id == fresh


async def test_the_service_refuses_a_principal_without_the_permission(stub_for) -> None:
    """R-SEC-03 defence in depth: marketing holds no opportunities permission; the service itself refuses."""
    code, err = await rpc_error(stub_for(MARKETING).ListOpportunities(pb.ListOpportunitiesRequest()))
    assert code == grpc.StatusCode.PERMISSION_DENIED and isinstance(err, PermissionDenied)
    assert err.metadata == {"permission": "opportunities.read"}


async def test_opportunity_quote_and_funnel_round_trip(stub_for, customer_of) -> None:
    stub = stub_for(EAST_REP)
    [pipeline] = (await stub.ListPipelines(pb.ListPipelinesRequest())).pipelines
    stages = {s.name: s for s in pipeline.stages}
    created = (await stub.CreateOpportunity(pb.CreateOpportunityRequest(opportunity=pb.Opportunity(
        customer_id=await customer_of(EAST_REP), name="Valves", amount=money_pb2.Money(amount="1500.5", currency="cny"),
        expected_close_date="2027-01-31")))).opportunity
    assert created.amount.amount == "1500.50" and created.amount.currency == "CNY"
    code, err = await rpc_error(stub.CreateOpportunity(pb.CreateOpportunityRequest(opportunity=pb.Opportunity(
        customer_id=created.customer_id, name="Valves", amount=money_pb2.Money(amount="1", currency="ZZZ"),
        expected_close_date="2027-01-31"))))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and err.violations[0].field == "amount.currency"
    assert created.status == pb.OPPORTUNITY_STATUS_OPEN and created.stage_id == stages["Qualification"].id
    assert created.probability == 10 and created.expected_close_date == "2027-01-31" and created.version == 1
    moved = (await stub.MoveStage(pb.MoveStageRequest(id=created.id, stage_id=stages["Proposal"].id,
                                                      expected_version=1))).opportunity
    assert moved.probability == 50 and moved.version == 2
    code, err = await rpc_error(stub.MoveStage(pb.MoveStageRequest(id=created.id, stage_id=stages["Needs analysis"].id,
                                                                   expected_version=1)))
    assert code == grpc.StatusCode.ABORTED
    history = (await stub.ListStageHistory(pb.ListStageHistoryRequest(opportunity_id=created.id))).changes
    assert [(h.from_stage_id, h.to_stage_id, h.changed_by) for h in history] == [
        ("", stages["Qualification"].id, "rep-east"), (stages["Qualification"].id, stages["Proposal"].id, "rep-east")]

    quote = (await stub.CreateQuote(pb.CreateQuoteRequest(quote=pb.Quote(
        opportunity_id=created.id, valid_until=VALID, lines=[
            pb.QuoteLine(product="Valve", specification="DN50", quantity="3", unit_price="33.335",
                         discount_percent="10", tax_rate_percent="13")])))).quote
    assert quote.status == pb.QUOTE_STATUS_DRAFT and quote.quote_version == 1
    assert (quote.lines[0].net_amount, quote.lines[0].tax_amount, quote.gross_total.amount) == (
        "90.00", "11.70", "101.70")
    code, err = await rpc_error(stub.AcceptQuote(pb.AcceptQuoteRequest(id=quote.id)))
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert isinstance(err, Conflict) and err.reason == "QUOTE_NOT_SENT"
    assert (await stub.SendQuote(pb.SendQuoteRequest(id=quote.id))).quote.status == pb.QUOTE_STATUS_SENT
    accepted = await stub.AcceptQuote(pb.AcceptQuoteRequest(id=quote.id))
    assert accepted.quote.status == pb.QUOTE_STATUS_ACCEPTED
    assert accepted.opportunity.status == pb.OPPORTUNITY_STATUS_WON and accepted.opportunity.amount.amount == "90.00"
    code, err = await rpc_error(stub.MoveStage(pb.MoveStageRequest(id=created.id, stage_id=stages["Proposal"].id)))
    assert code == grpc.StatusCode.FAILED_PRECONDITION and err.reason == "OPPORTUNITY_CLOSED"

    funnel = await stub.GetFunnel(pb.GetFunnelRequest())
    won = next(s for s in funnel.stages if s.is_won)
    assert funnel.pipeline_id == pipeline.id and won.count == 1 and won.amount.amount == "90.00"
    assert funnel.stages[0].reached == 1 and funnel.stages[0].conversion_to_next == "100.0"

    code, err = await rpc_error(stub_for(WEST_REP).GetOpportunity(pb.GetOpportunityRequest(id=created.id)))
    assert code == grpc.StatusCode.NOT_FOUND and isinstance(err, NotFound)
    code, err = await rpc_error(stub.CreateQuote(pb.CreateQuoteRequest(quote=pb.Quote(
        opportunity_id=created.id, valid_until=VALID, lines=[pb.QuoteLine(product="X", quantity="abc",
                                                                          unit_price="1")]))))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and isinstance(err, InvalidArgument)
    assert err.violations[0].field == "lines[0].quantity"
    lost_reasons = (await stub.ListLostReasons(pb.ListLostReasonsRequest())).lost_reasons
    assert "price" in {r.code for r in lost_reasons}
