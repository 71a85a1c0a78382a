"""The gRPC face of the service: protobuf in, use case, protobuf out. No rules live here."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import grpc
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm.contracts.v1 import contracts_pb2 as pb
from crm.contracts.v1 import contracts_pb2_grpc as pb_grpc
from crm_contracts.adapters import document
from crm_contracts.app import use_cases
from crm_contracts.app.messages import (
    contract_to_pb,
    delegation_to_pb,
    instalment_to_pb,
    money,
    rule_to_pb,
    snapshot_to_pb,
    step_to_pb,
    ts,
)
from crm_contracts.app.references import Owners
from crm_contracts.domain import approvals as ap
from crm_contracts.domain import model
from crm_contracts.domain.model import Instalment, Status
from crmkit.auth import current_principal
from crmkit.db import UnitOfWork
from crmkit.errors import InvalidArgument
from crmkit.ids import parse_id

SOURCE = "crm/contracts"


def _optional_id(value: str, field: str) -> Any:
    return parse_id(value, field) if value else None


def lines_of(items: Any) -> list[model.Line]:
    return [model.parse_line(i, li.product, li.specification, li.quantity, li.unit, li.unit_price,
                             li.discount_percent, li.tax_rate_percent, li.product_line)
            for i, li in enumerate(items)]


def plan_of(items: Any) -> list[Instalment]:
    out = []
    for i, inst in enumerate(items, start=1):
        due = model.parse_date(inst.due_date, f"instalments[{i - 1}].due_date")
        if due is None:
            raise InvalidArgument.of(f"instalments[{i - 1}].due_date", "is required")
        amount = model.parse_decimal(inst.amount, f"instalments[{i - 1}].amount", places=2)
        out.append(Instalment(i, due, amount, inst.label.strip()[:200]))
    return out


def terms_of(c: pb.ContractInput, *, with_plan: bool) -> use_cases.Terms:
    return use_cases.Terms(
        customer_id=_optional_id(c.customer_id, "customer_id"), lines=lines_of(c.lines), currency=c.currency,
        title=c.title, customer_name=c.customer_name, customer_type=c.customer_type,
        opportunity_id=_optional_id(c.opportunity_id, "opportunity_id"),
        start_date=model.parse_date(c.start_date, "start_date"), end_date=model.parse_date(c.end_date, "end_date"),
        renewal_date=model.parse_date(c.renewal_date, "renewal_date"), owner_id=c.owner_id, team_id=c.team_id,
        predecessor_id=_optional_id(c.predecessor_id, "predecessor_id"),
        instalments=plan_of(c.instalments) if with_plan and len(c.instalments) else None)


# Defence in depth (R-SEC-03): what each RPC needs, checked by the shared interceptor; the
# gateway checks the same, and the data scope and "your own step" are checked in the use cases.
_READ, _WRITE, _APPROVE = "contracts.read", "contracts.write", "contracts.approve"
PERMISSIONS = {
    "CreateContract": _WRITE, "GetContract": _READ, "ListContracts": _READ, "UpdateContract": _WRITE,
    "SubmitContract": _WRITE, "SignContract": _WRITE, "TerminateContract": _WRITE, "AmendContract": _WRITE,
    "ListAmendments": _READ, "GetContractDocument": _READ, "GetReceivablePlan": _READ, "SetReceivablePlan": _WRITE,
    "ListRenewals": _READ, "CreateRenewal": _WRITE, "ListApprovalSteps": _READ, "ListMyApprovals": _APPROVE,
    "DecideApproval": _APPROVE, "ListApprovalRules": _READ, "CreateApprovalRule": _WRITE,
    "UpdateApprovalRule": _WRITE, "ListDelegations": _APPROVE, "CreateDelegation": _APPROVE,
    "RevokeDelegation": _APPROVE,
}

class ContractsServicer(pb_grpc.ContractsServiceServicer):
    permissions = PERMISSIONS

    def __init__(self, sessions: async_sessionmaker[AsyncSession], org: ap.OrgLookup, *, owners: Owners) -> None:
        self._sessions = sessions
        self._org = org
        # R-SEC-02: the customer and opportunity a contract names, asked of their owners as the caller.
        self._owners = owners

    def _uow(self) -> UnitOfWork:
        return UnitOfWork(self._sessions, SOURCE, actor=current_principal().subject)

    async def CreateContract(self, request: pb.CreateContractRequest, context: grpc.aio.ServicerContext) -> Any:
        terms = terms_of(request.contract, with_plan=True)
        async with self._uow() as uow:
            created = await use_cases.create_contract(uow, current_principal(), terms, self._owners)
        return pb.CreateContractResponse(contract=contract_to_pb(created))

    async def GetContract(self, request: pb.GetContractRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            found = await use_cases.get_contract(uow, current_principal(), parse_id(request.id))
        return pb.GetContractResponse(contract=contract_to_pb(found))

    async def ListContracts(self, request: pb.ListContractsRequest, context: grpc.aio.ServicerContext) -> Any:
        status = ""
        if request.status:
            status = Status(pb.ContractStatus.Name(request.status).removeprefix("CONTRACT_STATUS_").lower()).value
        async with self._uow() as uow:
            items, token = await use_cases.list_contracts(
                uow, current_principal(), page_token=request.page_token, limit=request.page_size,
                customer_id=_optional_id(request.customer_id, "customer_id"), status=status,
                owner_id=request.owner_id, quote_id=_optional_id(request.quote_id, "quote_id"),
                opportunity_id=_optional_id(request.opportunity_id, "opportunity_id"))
        return pb.ListContractsResponse(contracts=[contract_to_pb(c) for c in items], next_page_token=token)

    async def UpdateContract(self, request: pb.UpdateContractRequest, context: grpc.aio.ServicerContext) -> Any:
        terms = terms_of(request.contract, with_plan=True)
        async with self._uow() as uow:
            saved = await use_cases.update_contract(uow, current_principal(), parse_id(request.id), terms,
                                                    request.expected_revision)
        return pb.UpdateContractResponse(contract=contract_to_pb(saved))

    async def SubmitContract(self, request: pb.SubmitContractRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            saved, steps = await use_cases.submit(uow, current_principal(), parse_id(request.id),
                                                  request.expected_revision, dict(request.chosen_approvers),
                                                  self._org)
        return pb.SubmitContractResponse(contract=contract_to_pb(saved), steps=[step_to_pb(s, saved) for s in steps])

    async def SignContract(self, request: pb.SignContractRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            saved = await use_cases.sign(uow, current_principal(), parse_id(request.id),
                                         model.parse_date(request.sign_date, "sign_date"), request.expected_revision)
        return pb.SignContractResponse(contract=contract_to_pb(saved))

    async def TerminateContract(self, request: pb.TerminateContractRequest,
                                context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            saved = await use_cases.terminate(uow, current_principal(), parse_id(request.id), request.reason,
                                              request.expected_revision)
        return pb.TerminateContractResponse(contract=contract_to_pb(saved))

    async def AmendContract(self, request: pb.AmendContractRequest, context: grpc.aio.ServicerContext) -> Any:
        terms = terms_of(request.contract, with_plan=True)
        async with self._uow() as uow:
            saved = await use_cases.amend(uow, current_principal(), parse_id(request.id), terms, request.reason,
                                          request.expected_revision)
        return pb.AmendContractResponse(contract=contract_to_pb(saved))

    async def ListAmendments(self, request: pb.ListAmendmentsRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            rows = await use_cases.amendments(uow, current_principal(), parse_id(request.id))
        return pb.ListAmendmentsResponse(versions=[
            pb.ContractVersion(version=r.version, contract=snapshot_to_pb(r.snapshot), reason=r.reason,
                               created_by=r.created_by, create_time=ts(r.created_at)) for r in rows])

    async def GetContractDocument(self, request: pb.GetContractDocumentRequest,
                                  context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            found = await use_cases.get_contract(uow, current_principal(), parse_id(request.id))
        return pb.GetContractDocumentResponse(pdf=document.render(found), file_name=f"{found.number}.pdf")

    async def GetReceivablePlan(self, request: pb.GetReceivablePlanRequest,
                                context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            c = await use_cases.get_plan(uow, current_principal(), parse_id(request.contract_id, "contract_id"))
        total = sum((i.amount for i in c.instalments), Decimal("0.00"))
        return pb.GetReceivablePlanResponse(instalments=[instalment_to_pb(i, c.currency) for i in c.instalments],
                                            total=money(total, c.currency),
                                            contract_amount=money(c.amount, c.currency))

    async def SetReceivablePlan(self, request: pb.SetReceivablePlanRequest,
                                context: grpc.aio.ServicerContext) -> Any:
        plan = plan_of(request.instalments)
        async with self._uow() as uow:
            saved = await use_cases.set_plan(uow, current_principal(), parse_id(request.contract_id, "contract_id"),
                                             plan, request.expected_revision)
        return pb.SetReceivablePlanResponse(contract=contract_to_pb(saved))

    async def ListRenewals(self, request: pb.ListRenewalsRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            items = await use_cases.renewals(uow, current_principal(), request.within_months)
        return pb.ListRenewalsResponse(contracts=[contract_to_pb(c) for c in items])

    async def CreateRenewal(self, request: pb.CreateRenewalRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            created = await use_cases.create_renewal(uow, current_principal(),
                                                     parse_id(request.contract_id, "contract_id"), self._owners)
        return pb.CreateRenewalResponse(contract=contract_to_pb(created))

    async def ListApprovalSteps(self, request: pb.ListApprovalStepsRequest,
                                context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            contract, steps = await use_cases.list_steps(uow, current_principal(),
                                                         parse_id(request.contract_id, "contract_id"))
        return pb.ListApprovalStepsResponse(steps=[step_to_pb(s, contract) for s in steps])

    async def ListMyApprovals(self, request: pb.ListMyApprovalsRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            found = await use_cases.my_approvals(uow, current_principal())
        return pb.ListMyApprovalsResponse(steps=[step_to_pb(s, c) for s, c in found])

    async def DecideApproval(self, request: pb.DecideApprovalRequest, context: grpc.aio.ServicerContext) -> Any:
        try:
            decision = ap.Decision(request.decision)
        except ValueError:
            raise InvalidArgument.of("decision", "must be approve, reject or return") from None
        async with self._uow() as uow:
            step, contract = await use_cases.decide(uow, current_principal(), parse_id(request.step_id, "step_id"),
                                                    decision, request.reason, self._org)
        return pb.DecideApprovalResponse(step=step_to_pb(step, contract), contract=contract_to_pb(contract))

    async def ListApprovalRules(self, request: pb.ListApprovalRulesRequest,
                                context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            rules = await use_cases.list_rules(uow, current_principal())
        return pb.ListApprovalRulesResponse(rules=[rule_to_pb(r) for r in rules])

    async def CreateApprovalRule(self, request: pb.CreateApprovalRuleRequest,
                                 context: grpc.aio.ServicerContext) -> Any:
        r = request.rule
        async with self._uow() as uow:
            saved = await use_cases.put_rule(uow, current_principal(), None, r.name, r.priority, r.active,
                                             r.definition_json)
        return pb.CreateApprovalRuleResponse(rule=rule_to_pb(saved))

    async def UpdateApprovalRule(self, request: pb.UpdateApprovalRuleRequest,
                                 context: grpc.aio.ServicerContext) -> Any:
        r = request.rule
        async with self._uow() as uow:
            saved = await use_cases.put_rule(uow, current_principal(), parse_id(r.id, "rule.id"), r.name, r.priority,
                                             r.active, r.definition_json)
        return pb.UpdateApprovalRuleResponse(rule=rule_to_pb(saved))

    async def ListDelegations(self, request: pb.ListDelegationsRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            items = await use_cases.list_delegations(uow, current_principal())
        return pb.ListDelegationsResponse(delegations=[delegation_to_pb(d) for d in items])

    async def CreateDelegation(self, request: pb.CreateDelegationRequest, context: grpc.aio.ServicerContext) -> Any:
        d = request.delegation
        async with self._uow() as uow:
            created = await use_cases.create_delegation(uow, current_principal(), d.delegate_id,
                                                        model.parse_date(d.start_date, "start_date"),
                                                        model.parse_date(d.end_date, "end_date"))
        return pb.CreateDelegationResponse(delegation=delegation_to_pb(created))

    async def RevokeDelegation(self, request: pb.RevokeDelegationRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            revoked = await use_cases.revoke_delegation(uow, current_principal(), parse_id(request.id))
        return pb.RevokeDelegationResponse(delegation=delegation_to_pb(revoked))



