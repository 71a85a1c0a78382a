"""/api/v1/contracts, /approvals, /approval-rules, /renewals: REST in front of
crm.contracts.v1.ContractsService (R-CON-01..04)."""

from __future__ import annotations

import datetime as dt
import json
import re
from datetime import UTC
from functools import partial
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request, Response
from google.protobuf.timestamp_pb2 import Timestamp

from crm.common.v1 import money_pb2
from crm.contracts.v1 import contracts_pb2 as pb
from crm.contracts.v1 import events_pb2 as ev
from crm_gateway import permissions as p
from crm_gateway.api_route import ApiRoute
from crm_gateway.auth import Caller, authenticated, require
from crm_gateway.backends import backend
from crm_gateway.etags import etag_of, expected_version
from crm_gateway.problems import API_ERRORS
from crm_gateway.routes import contracts_schemas as s
from crm_gateway.routes.common import IDEMPOTENCY, IF_MATCH, link_header
from crm_gateway.routes.common import json_response as _json
from crmkit.errors import InvalidArgument

_stub = partial(backend, name="contracts")
router = APIRouter(prefix="/api/v1", route_class=ApiRoute, tags=["contracts"],
                   dependencies=[Depends(authenticated)], responses=API_ERRORS)

_READ = Depends(require(p.CONTRACTS_READ))
_WRITE = Depends(require(p.CONTRACTS_WRITE))
_APPROVE = Depends(require(p.CONTRACTS_APPROVE))
_CONFLICT = {409: {"description": "The rule named by `reason` forbids it in the current state, e.g. "
                                  "SIGN_ONLY_WHEN_APPROVED, EDIT_ONLY_DRAFT_OR_RETURNED, PLAN_REQUIRED, "
                                  "STEP_NOT_PENDING, NO_APPROVAL_RULE, NO_APPROVER"}}
_WITHIN = re.compile(r"^(\d{1,2})(m?)$")



def _time(t: Timestamp, present: bool = True) -> dt.datetime | None:
    return t.ToDatetime(UTC) if present else None


def _date(value: str) -> dt.date | None:
    return dt.date.fromisoformat(value) if value else None


def _money(m: money_pb2.Money) -> s.Money:
    return s.Money.of(m.amount, m.currency)



def _line_json(li: ev.ContractLine) -> s.Line:
    return s.Line(line_id=li.line_id, product=li.product, specification=li.specification, quantity=li.quantity,
                  unit=li.unit, unit_price=li.unit_price.amount, discount_percent=li.discount_percent,
                  tax_rate=li.tax_rate, product_line=li.product_line, amount=_money(li.amount),
                  tax_amount=_money(li.tax_amount))


def _instalment_json(i: ev.Instalment) -> s.Instalment:
    return s.Instalment(instalment_id=i.instalment_id, sequence=i.sequence, due_date=dt.date.fromisoformat(i.due_date),
                        amount=_money(i.amount), label=i.label)


def _contract_json(m: pb.Contract) -> s.Contract:
    return s.Contract(
        id=m.id, contract_number=m.contract_number, version=m.version,
        status=pb.ContractStatus.Name(m.status).removeprefix("CONTRACT_STATUS_").lower(),  # type: ignore[arg-type]
        title=m.title, customer_id=m.customer_id, customer_name=m.customer_name, customer_type=m.customer_type,
        opportunity_id=m.opportunity_id or None, quote_id=m.quote_id or None, predecessor_id=m.predecessor_id or None,
        successor_id=m.successor_id or None, currency=m.currency, lines=[_line_json(li) for li in m.lines],
        net_total=_money(m.net_total), tax_total=_money(m.tax_total), amount=_money(m.amount),
        start_date=_date(m.start_date), end_date=_date(m.end_date), sign_date=_date(m.sign_date),
        renewal_date=_date(m.renewal_date), instalments=[_instalment_json(i) for i in m.instalments],
        owner_id=m.owner_id, team_id=m.team_id, department_path=m.department_path, created_by=m.created_by,
        created_at=m.create_time.ToDatetime(UTC), updated_at=m.update_time.ToDatetime(UTC),
        termination_reason=m.termination_reason, approval_rule_id=m.approval_rule_id or None,
        approval_attempt=m.approval_attempt, revision=m.revision, signed_by=m.signed_by or None)


def _with_etag(m: pb.Contract, status_code: int = 200) -> Response:
    contract = _contract_json(m)
    headers = {"ETag": etag_of(contract.revision),
               "Link": link_header({"orders": f"/api/v1/orders?contract_id={contract.id}"})}
    if status_code == 201:
        headers["Location"] = f"/api/v1/contracts/{contract.id}"
    return _json(contract, status_code, headers)


def _step_json(m: pb.ApprovalStep) -> s.ApprovalStep:
    return s.ApprovalStep(
        id=m.id, contract_id=m.contract_id, contract_number=m.contract_number or None,
        amount=_money(m.amount) if m.HasField("amount") else None, customer_id=m.customer_id or None,
        submitter_id=m.submitter_id or None, attempt=m.attempt, position=m.position, name=m.name,
        state=m.state,  # type: ignore[arg-type]
        approver_ids=list(m.approver_ids), mode=m.mode,  # type: ignore[arg-type]
        approved_by=list(m.approved_by), decided_by=m.decided_by or None, acting_for=m.acting_for or None,
        reason=m.reason, fallback=m.fallback, reached_at=_time(m.reach_time, m.HasField("reach_time")),
        due_at=_time(m.due_time, m.HasField("due_time")), decided_at=_time(m.decide_time, m.HasField("decide_time")))


def _rule_json(m: pb.ApprovalRule) -> s.Rule:
    definition = json.loads(m.definition_json or "{}")
    return s.Rule(id=m.id, name=m.name, priority=m.priority, active=m.active, revision=m.revision,
                  conditions=s.RuleConditions(**definition.get("conditions", {})),
                  steps=[s.RuleStep(**st) for st in definition.get("steps", [])],
                  fallback=s.Approver(**definition["fallback"]) if definition.get("fallback") else None,
                  restart=definition.get("restart", "first"))


def _rule_pb(body: s.RuleFields, rule_id: str = "") -> pb.ApprovalRule:
    definition = body.model_dump(include={"conditions", "steps", "fallback", "restart"}, exclude_none=True)
    return pb.ApprovalRule(id=rule_id, name=body.name, priority=body.priority, active=body.active,
                           definition_json=json.dumps(definition, ensure_ascii=False))


def _delegation_json(m: pb.Delegation) -> s.Delegation:
    return s.Delegation(id=m.id, delegator_id=m.delegator_id, delegate_id=m.delegate_id,
                        start_date=dt.date.fromisoformat(m.start_date), end_date=dt.date.fromisoformat(m.end_date),
                        revoked=m.revoked)


def _input(body: s.ContractFields, **extra: str) -> pb.ContractInput:
    return pb.ContractInput(
        title=body.title, customer_name=body.customer_name, customer_type=body.customer_type, currency=body.currency,
        lines=[pb.LineInput(**li.model_dump()) for li in body.lines],
        start_date=body.start_date.isoformat() if body.start_date else "",
        end_date=body.end_date.isoformat() if body.end_date else "",
        renewal_date=body.renewal_date.isoformat() if body.renewal_date else "",
        instalments=[pb.InstalmentInput(due_date=i.due_date.isoformat(), amount=i.amount, label=i.label)
                     for i in body.instalments], **extra)


# Contracts -------------------------------------------------------------------------------------

@router.post("/contracts", status_code=201, response_model=s.Contract, responses=_CONFLICT,
             summary="Draft a contract by hand (contracts from accepted quotes are drafted automatically)")
async def create_contract(body: s.ContractCreate, request: Request, caller: Caller = _WRITE,
                          idempotency_key: str | None = IDEMPOTENCY) -> Response:
    message = _input(body, customer_id=body.customer_id, opportunity_id=body.opportunity_id, owner_id=body.owner_id,
                     team_id=body.team_id, predecessor_id=body.predecessor_id)
    reply = await _stub(request).CreateContract(pb.CreateContractRequest(contract=message), metadata=caller.metadata)
    return _with_etag(reply.contract, 201)


@router.get("/contracts", response_model=s.ContractPage, summary="List contracts in your data scope, newest first")
async def list_contracts(request: Request, caller: Caller = _READ, limit: int = Query(50, ge=1, le=200),
                         cursor: str = Query("", max_length=2000), customer_id: UUID | None = None,
                         status: s.ContractStatus | None = None,
                         owner_id: str = Query("", max_length=100),
                         quote_id: UUID | None = Query(None, description="The contract drafted from this quote"),
                         opportunity_id: UUID | None = None) -> Response:
    reply = await _stub(request).ListContracts(pb.ListContractsRequest(
        page_size=limit, page_token=cursor, customer_id=str(customer_id or ""),
        status=pb.ContractStatus.Value(f"CONTRACT_STATUS_{status.upper()}") if status else 0, owner_id=owner_id,
        quote_id=str(quote_id or ""), opportunity_id=str(opportunity_id or "")),
        metadata=caller.metadata)
    return _json(s.ContractPage(items=[_contract_json(c) for c in reply.contracts],
                                next_cursor=reply.next_page_token or None))


@router.get("/contracts/{contract_id}", response_model=s.Contract, summary="Read a contract (its current version)")
async def get_contract(contract_id: UUID, request: Request, caller: Caller = _READ) -> Response:
    reply = await _stub(request).GetContract(pb.GetContractRequest(id=str(contract_id)), metadata=caller.metadata)
    return _with_etag(reply.contract)


@router.patch("/contracts/{contract_id}", response_model=s.Contract, responses=_CONFLICT,
              summary="Change a draft or returned contract: the fields given replace (lines as a whole), the rest "
              "stay; a plan given must add up to the new amount")
async def update_contract(contract_id: UUID, body: s.ContractUpdate, request: Request, caller: Caller = _WRITE,
                          if_match: str | None = IF_MATCH) -> Response:
    reply = await _stub(request).UpdateContract(pb.UpdateContractRequest(
        id=str(contract_id), contract=_input(body), expected_revision=expected_version(if_match)),
        metadata=caller.metadata)
    return _with_etag(reply.contract)


@router.post("/contracts/{contract_id}/submit", response_model=s.ApprovalStepList, responses=_CONFLICT,
             summary="Submit for approval: the first matching rule's chain, approvers resolved from the org chart")
async def submit_contract(contract_id: UUID, request: Request, body: s.Submission | None = None,
                          caller: Caller = _WRITE, if_match: str | None = IF_MATCH) -> Response:
    reply = await _stub(request).SubmitContract(pb.SubmitContractRequest(
        id=str(contract_id), expected_revision=expected_version(if_match),
        chosen_approvers=(body.chosen_approvers if body else {})), metadata=caller.metadata)
    return _json(s.ApprovalStepList(items=[_step_json(x) for x in reply.steps]), 200,
                 {"ETag": etag_of(reply.contract.revision)})


@router.post("/contracts/{contract_id}/sign", response_model=s.Contract, responses=_CONFLICT,
             summary="Sign an approved contract (publishes contract.signed)",
             description="No body needed (`sign_date` optional, today by default). What follows is "
                         "**asynchronous**, from `contract.signed`, usually within seconds: the customer's "
                         "lifecycle stage becomes `customer` and its tier and finance scope are updated "
                         "(`GET /api/v1/customers/{id}`); the orders service takes its copy of the contract, "
                         "so `POST /api/v1/orders` answers 404 until it has it: retry with the same "
                         "`Idempotency-Key`. The contract's orders: the `Link` rel=\"orders\".")
async def sign_contract(contract_id: UUID, request: Request, body: s.Signing | None = None, caller: Caller = _WRITE,
                        if_match: str | None = IF_MATCH) -> Response:
    sign_date = body.sign_date.isoformat() if body and body.sign_date else ""
    reply = await _stub(request).SignContract(pb.SignContractRequest(
        id=str(contract_id), sign_date=sign_date, expected_revision=expected_version(if_match)),
        metadata=caller.metadata)
    return _with_etag(reply.contract)


@router.post("/contracts/{contract_id}/terminate", response_model=s.Contract, responses=_CONFLICT,
             summary="Terminate a signed or active contract before its end")
async def terminate_contract(contract_id: UUID, body: s.Termination, request: Request, caller: Caller = _WRITE,
                             if_match: str | None = IF_MATCH) -> Response:
    reply = await _stub(request).TerminateContract(pb.TerminateContractRequest(
        id=str(contract_id), reason=body.reason, expected_revision=expected_version(if_match)),
        metadata=caller.metadata)
    return _with_etag(reply.contract)


@router.post("/contracts/{contract_id}/amendments", response_model=s.Contract, responses=_CONFLICT,
             summary="Amend a signed or active contract: a new version; earlier ones stay readable")
async def amend_contract(contract_id: UUID, body: s.Amendment, request: Request, caller: Caller = _WRITE,
                         if_match: str | None = IF_MATCH) -> Response:
    reply = await _stub(request).AmendContract(pb.AmendContractRequest(
        id=str(contract_id), contract=_input(body), reason=body.reason, expected_revision=expected_version(if_match)),
        metadata=caller.metadata)
    return _with_etag(reply.contract)


@router.get("/contracts/{contract_id}/amendments", response_model=s.ContractVersions,
            summary="Every signed version of the contract, oldest first")
async def list_amendments(contract_id: UUID, request: Request, caller: Caller = _READ) -> Response:
    reply = await _stub(request).ListAmendments(pb.ListAmendmentsRequest(id=str(contract_id)),
                                                metadata=caller.metadata)
    return _json(s.ContractVersions(items=[
        s.ContractVersion(version=v.version, contract=_contract_json(v.contract).model_dump(mode="json"),
                          reason=v.reason, created_by=v.created_by, created_at=v.create_time.ToDatetime(UTC))
        for v in reply.versions]))


@router.get("/contracts/{contract_id}/document", response_class=Response,
            responses={200: {"content": {"application/pdf": {}}, "description": "The contract as a PDF"}},
            summary="The contract document (PDF, Chinese and English)")
async def contract_document(contract_id: UUID, request: Request, caller: Caller = _READ) -> Response:
    reply = await _stub(request).GetContractDocument(pb.GetContractDocumentRequest(id=str(contract_id)),
                                                     metadata=caller.metadata)
    return Response(reply.pdf, media_type="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="{reply.file_name}"'})


@router.get("/contracts/{contract_id}/receivable-plan", response_model=s.ReceivablePlan,
            summary="The receivable plan (R-CON-03)")
async def get_plan(contract_id: UUID, request: Request, caller: Caller = _READ) -> Response:
    reply = await _stub(request).GetReceivablePlan(pb.GetReceivablePlanRequest(contract_id=str(contract_id)),
                                                   metadata=caller.metadata)
    return _json(s.ReceivablePlan(instalments=[_instalment_json(i) for i in reply.instalments],
                                  total=_money(reply.total), contract_amount=_money(reply.contract_amount)))


@router.put("/contracts/{contract_id}/receivable-plan", response_model=s.Contract, responses=_CONFLICT,
            summary="Replace the plan of a draft or returned contract; it must add up to the amount exactly")
async def set_plan(contract_id: UUID, body: s.ReceivablePlanSet, request: Request, caller: Caller = _WRITE,
                   if_match: str | None = IF_MATCH) -> Response:
    reply = await _stub(request).SetReceivablePlan(pb.SetReceivablePlanRequest(
        contract_id=str(contract_id), expected_revision=expected_version(if_match),
        instalments=[pb.InstalmentInput(due_date=i.due_date.isoformat(), amount=i.amount, label=i.label)
                     for i in body.instalments]), metadata=caller.metadata)
    return _with_etag(reply.contract)


@router.post("/contracts/{contract_id}/renewal", status_code=201, response_model=s.Contract,
             summary="Draft the renewal of a contract: same customer and lines, the next term (R-CON-04)")
async def create_renewal(contract_id: UUID, request: Request, caller: Caller = _WRITE,
                         idempotency_key: str | None = IDEMPOTENCY) -> Response:
    reply = await _stub(request).CreateRenewal(pb.CreateRenewalRequest(contract_id=str(contract_id)),
                                               metadata=caller.metadata)
    return _with_etag(reply.contract, 201)


@router.get("/contracts/{contract_id}/approval-steps", response_model=s.ApprovalStepList,
            summary="The contract's approval steps, every attempt, in order: who, what, when")
async def approval_steps(contract_id: UUID, request: Request, caller: Caller = _READ) -> Response:
    reply = await _stub(request).ListApprovalSteps(pb.ListApprovalStepsRequest(contract_id=str(contract_id)),
                                                   metadata=caller.metadata)
    return _json(s.ApprovalStepList(items=[_step_json(x) for x in reply.steps]))


@router.get("/renewals", response_model=s.ContractList,
            summary="Contracts in force ending within N months, soonest first, in your data scope (R-CON-04)")
async def renewals(request: Request, caller: Caller = _READ,
                   within: str = Query("6m", max_length=3, description='Months: "6m" or "6"')) -> Response:
    match = _WITHIN.match(within.strip())
    if match is None:
        raise InvalidArgument.of("within", 'months, e.g. "6m"')
    reply = await _stub(request).ListRenewals(pb.ListRenewalsRequest(within_months=int(match.group(1))),
                                              metadata=caller.metadata)
    return _json(s.ContractList(items=[_contract_json(c) for c in reply.contracts]))


# Approvals -------------------------------------------------------------------------------------

@router.get("/approvals", response_model=s.ApprovalStepList,
            summary="Approval steps waiting for your decision (as approver or delegate), oldest first")
async def my_approvals(request: Request, caller: Caller = _APPROVE) -> Response:
    reply = await _stub(request).ListMyApprovals(pb.ListMyApprovalsRequest(), metadata=caller.metadata)
    return _json(s.ApprovalStepList(items=[_step_json(x) for x in reply.steps]))


async def _decide(request: Request, caller: Caller, step_id: UUID, decision: str, reason: str) -> Response:
    reply = await _stub(request).DecideApproval(pb.DecideApprovalRequest(
        step_id=str(step_id), decision=decision, reason=reason), metadata=caller.metadata)
    return _json(s.Decided(step=_step_json(reply.step), contract=_contract_json(reply.contract)))


@router.post("/approvals/{step_id}/approve", response_model=s.Decided, responses=_CONFLICT,
             summary="Approve a step waiting for you; 409 STEP_NOT_PENDING if someone decided it first")
async def approve(step_id: UUID, request: Request, body: s.DecisionBody | None = None,
                  caller: Caller = _APPROVE) -> Response:
    return await _decide(request, caller, step_id, "approve", body.reason if body else "")


@router.post("/approvals/{step_id}/reject", response_model=s.Decided, responses=_CONFLICT,
             summary="Reject the contract (a reason is required); final")
async def reject(step_id: UUID, request: Request, body: s.DecisionBody | None = None,
                 caller: Caller = _APPROVE) -> Response:
    return await _decide(request, caller, step_id, "reject", body.reason if body else "")


@router.post("/approvals/{step_id}/return", response_model=s.Decided, responses=_CONFLICT,
             summary="Return the contract for changes (a reason is required); the submitter may resubmit")
async def return_for_changes(step_id: UUID, request: Request, body: s.DecisionBody | None = None,
                             caller: Caller = _APPROVE) -> Response:
    # Without a body the service answers 422 with a violation on `reason`, not "body: Field required".
    return await _decide(request, caller, step_id, "return", body.reason if body else "")


@router.get("/approvals/delegations", response_model=s.DelegationList,
            summary="Delegations you gave and received")
async def list_delegations(request: Request, caller: Caller = _APPROVE) -> Response:
    reply = await _stub(request).ListDelegations(pb.ListDelegationsRequest(), metadata=caller.metadata)
    return _json(s.DelegationList(items=[_delegation_json(d) for d in reply.delegations]))


@router.post("/approvals/delegations", status_code=201, response_model=s.Delegation,
             summary="Name a delegate who may decide your approval steps for a period (inclusive)")
async def create_delegation(body: s.DelegationCreate, request: Request, caller: Caller = _APPROVE,
                            idempotency_key: str | None = IDEMPOTENCY) -> Response:
    reply = await _stub(request).CreateDelegation(pb.CreateDelegationRequest(delegation=pb.Delegation(
        delegate_id=body.delegate_id, start_date=body.start_date.isoformat(), end_date=body.end_date.isoformat())),
        metadata=caller.metadata)
    return _json(_delegation_json(reply.delegation), 201)


@router.delete("/approvals/delegations/{delegation_id}", response_model=s.Delegation,
               summary="Withdraw one of your delegations")
async def revoke_delegation(delegation_id: UUID, request: Request, caller: Caller = _APPROVE) -> Response:
    reply = await _stub(request).RevokeDelegation(pb.RevokeDelegationRequest(id=str(delegation_id)),
                                                  metadata=caller.metadata)
    return _json(_delegation_json(reply.delegation))


# Approval rules --------------------------------------------------------------------------------

@router.get("/approval-rules", response_model=s.RuleList, summary="The approval rules, by priority (R-CON-02)")
async def list_rules(request: Request, caller: Caller = _READ) -> Response:
    reply = await _stub(request).ListApprovalRules(pb.ListApprovalRulesRequest(), metadata=caller.metadata)
    return _json(s.RuleList(items=[_rule_json(r) for r in reply.rules]))


@router.post("/approval-rules", status_code=201, response_model=s.Rule,
             summary="Create an approval rule (administrators)")
async def create_rule(body: s.RuleFields, request: Request, caller: Caller = _WRITE,
                      idempotency_key: str | None = IDEMPOTENCY) -> Response:
    reply = await _stub(request).CreateApprovalRule(pb.CreateApprovalRuleRequest(rule=_rule_pb(body)),
                                                    metadata=caller.metadata)
    return _json(_rule_json(reply.rule), 201, {"Location": f"/api/v1/approval-rules/{reply.rule.id}"})


@router.put("/approval-rules/{rule_id}", response_model=s.Rule,
            summary="Replace an approval rule (administrators); steps already resolved keep their approvers")
async def update_rule(rule_id: UUID, body: s.RuleFields, request: Request, caller: Caller = _WRITE) -> Response:
    reply = await _stub(request).UpdateApprovalRule(pb.UpdateApprovalRuleRequest(rule=_rule_pb(body, str(rule_id))),
                                                    metadata=caller.metadata)
    return _json(_rule_json(reply.rule))


