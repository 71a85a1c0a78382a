"""The contracts service with its real neighbours in process (customers, opportunities), over gRPC
with signed principals (issue 12):

- what a contract names is checked with its owner as the caller: another scope's customer and a
  random id are "not found" alike, an opportunity of another customer is refused, a customer
  created a moment ago is usable at once (R-SEC-02);
- the customer's name and type are copied from the customers service, by hand and from an
  accepted quote, and approval rules that select on the type match (R-CON-02);
- contracts follow a reassigned or merged customer; signed_by keeps the credit;
- nobody approves their own contract; a step not reached yet says so; the approval steps carry
  the contract's number, amount, customer and submitter;
- the service itself refuses a principal without the permission (R-SEC-03);
- GET /contracts finds the contract of a quote or an opportunity (issue 22).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest
from google.protobuf.message import Message

from crm.common.v1 import money_pb2
from crm.contracts.v1 import contracts_pb2 as pb
from crm.contracts.v1 import contracts_pb2_grpc as pb_grpc
from crm.customers.v1 import customers_pb2 as cpb
from crm.customers.v1 import customers_pb2_grpc as cpb_grpc
from crm.customers.v1 import events_pb2 as customer_events
from crm.opportunities.v1 import events_pb2 as opp_ev
from crm.opportunities.v1 import opportunities_pb2 as opb
from crm.opportunities.v1 import opportunities_pb2_grpc as opb_grpc
from crm_contracts.adapters.grpc_api import ContractsServicer
from crm_contracts.adapters.opportunities import OpportunityDirectory
from crm_contracts.app import ownership
from crm_contracts.app import use_cases as uc
from crm_contracts.app.references import Owners
from crm_contracts.main import SERVICE_NAME
from crm_customers.adapters.grpc_api import CustomersServicer
from crm_customers.main import migrate as migrate_customers
from crm_opportunities.adapters.grpc_api import OpportunitiesServicer
from crm_opportunities.main import migrate as migrate_opportunities
from crmkit.auth import Principal, PrincipalSigner, ServiceToken, current_principal_token
from crmkit.auth.keys import generate_keypair
from crmkit.db import UnitOfWork, create_engine, session_factory
from crmkit.errors import Conflict, NotFound, PermissionDenied
from crmkit.events.envelope import Event
from crmkit.grpc.client import channel
from crmkit.grpc.status import from_rpc_error
from crmkit.references import CustomerDirectory
from crmkit.testing.principals import ADMIN, EAST_MANAGER, EAST_REP, MARKETING, WEST_REP, with_grants
from crmkit.testing.service import grpc_in_process

pytestmark = pytest.mark.integration

KEYS = generate_keypair()
SERVICE_KEYS = generate_keypair()
SIGNER = PrincipalSigner(KEYS.private_pem)
CUSTOMERS = cpb.DESCRIPTOR.services_by_name["CustomersService"].full_name
OPPORTUNITIES = opb.DESCRIPTOR.services_by_name["OpportunitiesService"].full_name
LINE = pb.LineInput(product="Catheter 6F", quantity="10", unit="pcs", unit_price="10000", tax_rate_percent="13")


@dataclasses.dataclass
class Suite:
    customers: str
    opportunities: str
    contracts: str
    channels: list[grpc.aio.Channel]

    def stub(self, target: str, principal: Principal, stub_type: Any) -> Any:
        ch = channel(target, lambda: SIGNER.sign(with_grants(principal)))
        self.channels.append(ch)
        return stub_type(ch)

    def customers_as(self, principal: Principal) -> Any:
        return self.stub(self.customers, principal, cpb_grpc.CustomersServiceStub)

    def opportunities_as(self, principal: Principal) -> Any:
        return self.stub(self.opportunities, principal, opb_grpc.OpportunitiesServiceStub)

    def contracts_as(self, principal: Principal) -> Any:
        return self.stub(self.contracts, principal, pb_grpc.ContractsServiceStub)


@pytest.fixture
async def suite(database_factory, sessions, org) -> AsyncIterator[Suite]:
    customers_engine = create_engine(database_factory("customers", migrate_customers), pool_size=3)
    opportunities_engine = create_engine(database_factory("opportunities", migrate_opportunities), pool_size=3)
    channels: list[grpc.aio.Channel] = []

    def as_caller(target: str) -> grpc.aio.Channel:
        ch = channel(target, current_principal_token)
        channels.append(ch)
        return ch

    async with grpc_in_process("customers", KEYS.public_pem, cpb_grpc.add_CustomersServiceServicer_to_server,
                               CustomersServicer(session_factory(customers_engine)), CUSTOMERS,
                               service_pems=(SERVICE_KEYS.public_pem,)) as customers:
        opportunities_servicer = OpportunitiesServicer(session_factory(opportunities_engine),
                                                       customers=CustomerDirectory(as_caller(customers)))
        async with grpc_in_process("opportunities", KEYS.public_pem,
                                   opb_grpc.add_OpportunitiesServiceServicer_to_server, opportunities_servicer,
                                   OPPORTUNITIES) as opportunities:
            owners = Owners(customers=CustomerDirectory(as_caller(customers)),
                            opportunities=OpportunityDirectory(as_caller(opportunities)))
            async with grpc_in_process("contracts", KEYS.public_pem, pb_grpc.add_ContractsServiceServicer_to_server,
                                       ContractsServicer(sessions, org, owners=owners), SERVICE_NAME) as contracts:
                yield Suite(customers, opportunities, contracts, channels)
    for ch in channels:
        await ch.close()
    await customers_engine.dispose()
    await opportunities_engine.dispose()


async def rpc_error(call: Any) -> tuple[grpc.StatusCode, Any]:
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await call
    return exc.value.code(), from_rpc_error(exc.value)


async def new_customer(suite: Suite, principal: Principal, name: str = "",
                       origin: int = cpb.ORIGIN_DOMESTIC) -> cpb.Customer:
    reply = await suite.customers_as(principal).CreateCustomer(cpb.CreateCustomerRequest(customer=cpb.Customer(
        name=name or f"Customer {uuid.uuid4().hex[:8]}", origin=origin)))
    return reply.customer


async def new_opportunity(suite: Suite, principal: Principal, customer_id: str) -> opb.Opportunity:
    reply = await suite.opportunities_as(principal).CreateOpportunity(opb.CreateOpportunityRequest(
        opportunity=opb.Opportunity(customer_id=customer_id, name="Catheters",
                                    amount=money_pb2.Money(amount="1130", currency="CNY"))))
    return reply.opportunity


def contract_input(customer_id: str, **fields: Any) -> pb.ContractInput:
    return pb.ContractInput(customer_id=customer_id, title="Catheters 2027", lines=[LINE], start_date="2027-01-01",
                            end_date="2027-12-31", **fields)


async def draft(suite: Suite, principal: Principal, customer_id: str, **fields: Any) -> pb.Contract:
    stub = suite.contracts_as(principal)
    created = (await stub.CreateContract(pb.CreateContractRequest(contract=contract_input(customer_id,
                                                                                            **fields)))).contract
    return (await stub.SetReceivablePlan(pb.SetReceivablePlanRequest(
        contract_id=created.id, expected_revision=created.revision,
        instalments=[pb.InstalmentInput(due_date="2027-01-01", amount=created.amount.amount)]))).contract


async def test_the_customer_and_opportunity_named_are_checked_with_their_owners(suite) -> None:
    contracts = suite.contracts_as(EAST_REP)
    theirs = await new_customer(suite, WEST_REP)
    for customer_id in (theirs.id, str(uuid.uuid4())):
        code, err = await rpc_error(contracts.CreateContract(pb.CreateContractRequest(
            contract=contract_input(customer_id))))
        assert code == grpc.StatusCode.NOT_FOUND and isinstance(err, NotFound)
        assert err.reason == "REFERENCE_NOT_FOUND" and customer_id not in err.message

    mine, other = await new_customer(suite, EAST_REP), await new_customer(suite, EAST_REP)
    of_other = await new_opportunity(suite, EAST_REP, other.id)
    code, err = await rpc_error(contracts.CreateContract(pb.CreateContractRequest(
        contract=contract_input(mine.id, opportunity_id=of_other.id))))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and [v.field for v in err.violations] == ["opportunity_id"]
    west_opportunity = await new_opportunity(suite, WEST_REP, theirs.id)
    code, err = await rpc_error(contracts.CreateContract(pb.CreateContractRequest(
        contract=contract_input(mine.id, opportunity_id=west_opportunity.id))))
    assert code == grpc.StatusCode.NOT_FOUND and err.metadata == {"reference": "opportunity"}

    # Created a moment ago, usable at once; name and type come from the customers service.
    fresh = await new_customer(suite, EAST_REP, "Xiamen Export Trading", cpb.ORIGIN_FOREIGN)
    opportunity = await new_opportunity(suite, EAST_REP, fresh.id)
    made = (await contracts.CreateContract(pb.CreateContractRequest(contract=contract_input(
        fresh.id, opportunity_id=opportunity.id, customer_name="What the caller typed",
        customer_type="domestic")))).contract
    assert (made.customer_name, made.customer_type) == ("Xiamen Export Trading", "foreign")
    found = (await contracts.ListContracts(pb.ListContractsRequest(opportunity_id=opportunity.id))).contracts
    assert [c.id for c in found] == [made.id]


async def test_approval_rules_on_the_customer_type_match(suite) -> None:
    rule = {"conditions": {"customer_types": ["foreign"]},
            "steps": [{"name": "Export desk", "approver": {"kind": "user", "user_id": "gm"}}]}
    await suite.contracts_as(ADMIN).CreateApprovalRule(pb.CreateApprovalRuleRequest(rule=pb.ApprovalRule(
        name="Foreign customers", priority=1, active=True, definition_json=json.dumps(rule))))
    contracts = suite.contracts_as(EAST_REP)
    for origin, first_step in ((cpb.ORIGIN_FOREIGN, "Export desk"), (cpb.ORIGIN_DOMESTIC, "Manager")):
        customer = await new_customer(suite, EAST_REP, origin=origin)
        c = await draft(suite, EAST_REP, customer.id)
        steps = (await contracts.SubmitContract(pb.SubmitContractRequest(id=c.id))).steps
        assert steps[0].name == first_step


async def test_approvals_nobody_approves_their_own_and_steps_say_what_is_true(suite) -> None:
    customer = await new_customer(suite, EAST_REP)
    c = await draft(suite, EAST_REP, customer.id)
    rep = suite.contracts_as(EAST_REP)
    await rep.SubmitContract(pb.SubmitContractRequest(id=c.id))
    steps = (await rep.ListApprovalSteps(pb.ListApprovalStepsRequest(contract_id=c.id))).steps
    assert [(s.contract_number, s.amount.amount, s.customer_id, s.submitter_id) for s in steps] == [
        (c.contract_number, "113000.00", customer.id, EAST_REP.subject)] * 3
    first, second = steps[0], steps[1]

    # The second step's approver, before the first is decided.
    director = dataclasses.replace(ADMIN, subject=second.approver_ids[0])
    code, err = await rpc_error(suite.contracts_as(director).DecideApproval(pb.DecideApprovalRequest(
        step_id=second.id, decision="approve")))
    assert code == grpc.StatusCode.FAILED_PRECONDITION and isinstance(err, Conflict)
    assert err.reason == "STEP_NOT_OPEN"
    assert err.message == f"this step is not yet open: step 1 ({first.name}) is waiting for a decision"

    # The approver delegates to the submitter: the submitter still may not decide it.
    assert first.approver_ids == [EAST_MANAGER.subject]
    manager = suite.contracts_as(EAST_MANAGER)
    today = dt.date.today()
    await manager.CreateDelegation(pb.CreateDelegationRequest(delegation=pb.Delegation(
        delegate_id=EAST_REP.subject, start_date=today.isoformat(),
        end_date=(today + dt.timedelta(days=7)).isoformat())))
    rep_approver = with_grants(EAST_REP, "contracts.approve")
    as_delegate = suite.contracts_as(rep_approver)
    assert (await as_delegate.ListMyApprovals(pb.ListMyApprovalsRequest())).steps == []
    code, err = await rpc_error(as_delegate.DecideApproval(pb.DecideApprovalRequest(step_id=first.id,
                                                                                    decision="approve")))
    assert code == grpc.StatusCode.PERMISSION_DENIED and err.reason == "OWN_CONTRACT"
    decided = (await manager.DecideApproval(pb.DecideApprovalRequest(step_id=first.id, decision="approve"))).step
    assert (decided.state, decided.decided_by, decided.acting_for) == ("approved", EAST_MANAGER.subject, "")


async def test_the_service_refuses_a_principal_without_the_permission(suite) -> None:
    code, err = await rpc_error(suite.contracts_as(MARKETING).ListContracts(pb.ListContractsRequest()))
    assert code == grpc.StatusCode.PERMISSION_DENIED and isinstance(err, PermissionDenied)
    assert err.metadata == {"permission": "contracts.read"}
    code, _ = await rpc_error(suite.contracts_as(EAST_REP).DecideApproval(pb.DecideApprovalRequest(
        step_id=str(uuid.uuid4()), decision="approve")))
    assert code == grpc.StatusCode.PERMISSION_DENIED  # a rep holds no contracts.approve


async def test_a_contract_from_an_accepted_quote_copies_the_customer_as_the_service(suite, sessions) -> None:
    customer = await new_customer(suite, EAST_REP, "Fuzhou Overseas Medical", cpb.ORIGIN_FOREIGN)
    quote = opb.Quote(id=str(uuid.uuid4()), opportunity_id=str(uuid.uuid4()), customer_id=customer.id,
                      currency="CNY", lines=[opb.QuoteLine(product="Tubing", quantity="1", unit_price="10",
                                                           tax_rate_percent="13")],
                      owner_id=EAST_REP.subject, team_id="east", department_path="/sales/east/")
    accepted = opp_ev.QuoteAccepted(quote=quote, opportunity_name="Tubing")
    as_service = channel(suite.customers, ServiceToken("contracts", SERVICE_KEYS.private_pem))
    suite.channels.append(as_service)
    async with UnitOfWork(sessions, "crm/contracts") as uow:
        await uc.drafting_from_quote(CustomerDirectory(as_service))(uow, event(accepted, "quote-1"))
        await uow.commit()
    [made] = (await suite.contracts_as(EAST_REP).ListContracts(pb.ListContractsRequest(quote_id=quote.id))).contracts
    assert (made.customer_name, made.customer_type, made.quote_id) == ("Fuzhou Overseas Medical", "foreign", quote.id)


def event(message: Message, event_id: str) -> Event:
    return Event(id=event_id, subject="test", type=message.DESCRIPTOR.full_name,
                 payload=message.SerializeToString(), headers={})


async def deliver(sessions, handler: Callable[..., Any], message: Message, event_id: str) -> None:
    async with UnitOfWork(sessions, "crm/contracts") as uow:
        await handler(uow, event(message, event_id))
        await uow.commit()


async def test_contracts_follow_a_reassigned_or_merged_customer(suite, sessions) -> None:
    customer = await new_customer(suite, EAST_REP, "Handover Medical")
    rep = suite.contracts_as(EAST_REP)
    signed = await draft(suite, EAST_REP, customer.id)
    await sessions_sign(sessions, signed.id)
    open_one = await draft(suite, EAST_REP, customer.id)
    west = suite.contracts_as(WEST_REP)
    code, _ = await rpc_error(west.GetContract(pb.GetContractRequest(id=open_one.id)))
    assert code == grpc.StatusCode.NOT_FOUND

    moved = cpb.Customer(id=customer.id, name="Handover Medical Group", owner_id=WEST_REP.subject, team_id="west",
                         department_path="/sales/west/", origin=cpb.ORIGIN_DOMESTIC)
    reassigned = customer_events.CustomerReassigned(customer=moved, previous_owner_id=EAST_REP.subject,
                                                    owner_id=WEST_REP.subject, previous_team_id="east")
    for event_id in ("r-1", "r-2"):  # a replay under a new id changes nothing more
        await deliver(sessions, ownership.on_customer_moved, reassigned, event_id)
    history = (await west.ListContracts(pb.ListContractsRequest(customer_id=customer.id))).contracts
    assert {c.id for c in history} == {signed.id, open_one.id}
    assert {c.owner_id for c in history} == {WEST_REP.subject}
    credited = (await west.GetContract(pb.GetContractRequest(id=signed.id))).contract
    assert (credited.status, credited.signed_by) == (pb.CONTRACT_STATUS_SIGNED, EAST_REP.subject)
    assert (await rpc_error(rep.GetContract(pb.GetContractRequest(id=open_one.id))))[0] == grpc.StatusCode.NOT_FOUND

    # A rename reaches the contract not yet signed; the signed one keeps the name it was signed under.
    renamed = customer_events.CustomerUpdated(before=cpb.Customer(id=customer.id), after=moved,
                                              changed_fields=["name"])
    await deliver(sessions, ownership.on_customer_updated, renamed, "u-1")
    names = {c.id: c.customer_name for c in (await west.ListContracts(pb.ListContractsRequest())).contracts}
    assert (names[open_one.id], names[signed.id]) == ("Handover Medical Group", "Handover Medical")

    survivor = cpb.Customer(id=str(uuid.uuid4()), name="Handover Holdings", owner_id=EAST_MANAGER.subject,
                            team_id="east", department_path="/sales/east/")
    merged = customer_events.CustomersMerged(surviving_id=survivor.id, merged_id=customer.id, surviving=survivor,
                                             merged=moved)
    await deliver(sessions, ownership.on_customer_moved, merged, "m-1")
    manager = suite.contracts_as(EAST_MANAGER)
    repointed = (await manager.ListContracts(pb.ListContractsRequest(customer_id=survivor.id))).contracts
    assert {c.id for c in repointed} == {signed.id, open_one.id}
    assert {(c.owner_id, c.team_id) for c in repointed} == {(EAST_MANAGER.subject, "east")}


async def sessions_sign(sessions, contract_id: str) -> None:
    """Signs the contract without an approval chain (not what this test is about)."""
    async with sessions() as s, s.begin():
        from sqlalchemy import text

        await s.execute(text("UPDATE contracts SET status = 'approved' WHERE id = :id"), {"id": contract_id})
    async with UnitOfWork(sessions, "crm/contracts") as uow:
        await uc.sign(uow, EAST_REP, uuid.UUID(contract_id), dt.date.today(), 0)
