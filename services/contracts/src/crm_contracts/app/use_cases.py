"""Commands and queries. Each takes a unit of work and the calling principal, applies the domain
rules, and emits the integration events of what it changed (every change emits one: the audit
trail is built from them)."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

from crm.contracts.v1 import events_pb2 as ev
from crm.opportunities.v1 import events_pb2 as opp_ev
from crm_contracts.adapters.repository import Repository
from crm_contracts.app.messages import instalment_to_pb, line_to_pb, money, rule_to_pb, signed_event, snapshot, ts
from crm_contracts.app.references import CustomerLookup, Owners
from crm_contracts.domain import approvals as ap
from crm_contracts.domain import model
from crm_contracts.domain.model import Contract, Instalment, Line, Status
from crmkit.auth import DataScope, Principal
from crmkit.db import UnitOfWork
from crmkit.errors import AlreadyExists, Conflict, InvalidArgument, NotFound, PermissionDenied
from crmkit.events.envelope import Event
from crmkit.ids import new_id
from crmkit.money import parse_currency
from crmkit.pagination import decode_cursor, encode_cursor, page_size, time_text, uuid_text
from crmkit.scopes import may_assign

LIST_SORT = "-create_time"
QUOTE_ACCEPTED_SUBJECT = "crm.opportunities.quote.accepted"
MAX_RENEWAL_MONTHS = 60


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _require_admin(principal: Principal, what: str) -> None:
    if "admin" not in principal.roles and "*" not in principal.permissions:
        raise PermissionDenied(f"only administrators may {what}")


async def _contract(repo: Repository, principal: Principal | None, contract_id: uuid.UUID, *,
                    for_update: bool = False) -> Contract:
    found = await repo.get(principal, contract_id, for_update=for_update)
    if found is None:
        raise NotFound(f"contract {contract_id} not found", metadata={"contract_id": str(contract_id)})
    return found


def _require_writer(principal: Principal, contract: Contract) -> None:
    """Seeing a contract as its approver is not the right to change it: only its owner or someone
    whose data scope covers it (never the SIGNED scope) may."""
    if principal.data_scope is DataScope.SIGNED or not (
            contract.owner_id == principal.subject
            or may_assign(principal, owner_id=contract.owner_id, team_id=contract.team_id,
                          department_path=contract.department_path)):
        raise PermissionDenied("you may read this contract but not change it", reason="NOT_THE_OWNER")


# Drafting ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Terms:
    """What a contract is drafted or edited with; lines already validated."""

    customer_id: uuid.UUID | None
    lines: list[Line]
    currency: str = "CNY"
    title: str = ""
    customer_name: str = ""
    customer_type: str = ""
    opportunity_id: uuid.UUID | None = None
    start_date: dt.date | None = None
    end_date: dt.date | None = None
    renewal_date: dt.date | None = None
    owner_id: str = ""
    team_id: str = ""
    predecessor_id: uuid.UUID | None = None
    instalments: list[Instalment] | None = None


def _check_terms(t: Terms) -> None:
    if len(t.lines) > model.MAX_LINES:
        raise InvalidArgument.of("lines", f"at most {model.MAX_LINES} lines")
    model.check_lines_total(t.lines)
    if t.customer_type not in model.CUSTOMER_TYPES:
        raise InvalidArgument.of("customer_type", "must be domestic or foreign")
    if len(t.title) > 200:
        raise InvalidArgument.of("title", "must be at most 200 characters")
    model.check_term(t.start_date, t.end_date)


async def _draft(uow: UnitOfWork, repo: Repository, c: Contract) -> Contract:
    if c.instalments:
        model.check_plan(list(c.instalments), c.amount)
    saved = await repo.add(c)
    uow.emit(ev.ContractDrafted(contract_id=str(saved.id), contract_number=saved.number,
                                customer_id=str(saved.customer_id), amount=money(saved.amount, saved.currency),
                                owner_id=saved.owner_id, quote_id=str(saved.quote_id or ""),
                                predecessor_id=str(saved.predecessor_id or "")), subject_id=str(saved.id))
    return saved


async def create_contract(uow: UnitOfWork, principal: Principal, t: Terms, owners: Owners) -> Contract:
    """R-CON-01: a contract drafted by hand; owner, team and department from the caller unless
    assigned (within the caller's scope). R-SEC-02: the customer and the opportunity must be the
    caller's to use and belong together; the customer's name and type are copied from the
    customers service, not taken from the caller."""
    if t.customer_id is None:
        raise InvalidArgument.of("customer_id", "is required")
    _check_terms(t)
    customer = await owners.check(t.customer_id, t.opportunity_id)
    owner = t.owner_id or principal.subject
    team = t.team_id or (principal.team_ids[0] if principal.team_ids else "")
    if principal.data_scope is DataScope.SIGNED or not may_assign(
            principal, owner_id=owner, team_id=team, department_path=principal.department_path):
        raise PermissionDenied("you may not assign a contract to this owner or team", reason="ASSIGNMENT_OUT_OF_SCOPE")
    repo = Repository(uow.session)
    predecessor = None
    if t.predecessor_id is not None:
        predecessor = await _contract(repo, principal, t.predecessor_id)
        if predecessor.status not in model.EVER_SIGNED or predecessor.status in (Status.TERMINATED, Status.RENEWED):
            raise Conflict("only a signed, active or expired contract can be renewed", reason="RENEW_ONLY_IN_FORCE")
    now = _now()
    plan = tuple(t.instalments or ())
    contract = Contract(
        id=new_id(), number=model.format_number(now.year, await repo.next_number(now.year)),
        customer_id=t.customer_id, currency=parse_currency(t.currency or "CNY"), lines=tuple(t.lines),
        owner_id=owner, team_id=team, department_path=principal.department_path, title=t.title.strip(),
        customer_name=customer.name[:300], customer_type=customer.customer_type or t.customer_type,
        opportunity_id=t.opportunity_id, predecessor_id=t.predecessor_id,
        start_date=t.start_date, end_date=t.end_date, renewal_date=t.renewal_date, instalments=plan,
        created_by=principal.subject)
    saved = await _draft(uow, repo, contract)
    await uow.commit()
    return saved


def drafting_from_quote(customers: CustomerLookup) -> Callable[[UnitOfWork, Event], Awaitable[None]]:
    """The quote.accepted handler; `customers` answers for this service itself (no caller: the
    event from the quote's owner is trusted), for the customer's name and type."""

    async def handle(uow: UnitOfWork, event: Event) -> None:
        await draft_from_quote(uow, event, customers)

    return handle


async def draft_from_quote(uow: UnitOfWork, event: Event, customers: CustomerLookup) -> None:
    """quote.accepted → exactly one draft per accepted quote, however often it is delivered (the
    quote id is unique among contracts, besides the consumer's processed-event log)."""
    accepted = event.message(opp_ev.QuoteAccepted)
    q = accepted.quote
    quote_id = uuid.UUID(q.id)
    repo = Repository(uow.session)
    if await repo.by_quote(quote_id) is not None:
        return
    customer = await customers.customer(q.customer_id)
    lines = [model.parse_line(i, li.product, li.specification, li.quantity, "", li.unit_price, li.discount_percent,
                              li.tax_rate_percent) for i, li in enumerate(q.lines)]
    model.check_lines_total(lines)
    now = _now()
    contract = Contract(
        id=new_id(), number=model.format_number(now.year, await repo.next_number(now.year)),
        customer_id=uuid.UUID(q.customer_id), currency=parse_currency(q.currency or "CNY"),
        lines=tuple(lines), owner_id=q.owner_id, team_id=q.team_id, department_path=q.department_path or "/",
        title=accepted.opportunity_name[:200], opportunity_id=uuid.UUID(q.opportunity_id) if q.opportunity_id else None,
        customer_name=customer.name[:300], customer_type=customer.customer_type,
        quote_id=quote_id, created_by=event.actor or q.owner_id)
    await _draft(uow, repo, contract)


async def get_contract(uow: UnitOfWork, principal: Principal, contract_id: uuid.UUID) -> Contract:
    return await _contract(Repository(uow.session), principal, contract_id)


async def list_contracts(uow: UnitOfWork, principal: Principal, *, page_token: str, limit: int,
                         **filters: Any) -> tuple[list[Contract], str]:
    size = page_size(limit)
    cursor = decode_cursor(page_token, LIST_SORT, (time_text, uuid_text))
    items = await Repository(uow.session).list(principal, after=cursor.values if cursor else None,
                                               limit=size + 1, filters=filters)
    token = ""
    if len(items) > size:
        last = items[size - 1]
        token = encode_cursor(LIST_SORT, [last.created_at.isoformat() if last.created_at else "", str(last.id)])
    return items[:size], token


async def update_contract(uow: UnitOfWork, principal: Principal, contract_id: uuid.UUID, t: Terms,
                          expected_revision: int) -> Contract:
    """A draft or returned contract's terms and lines (the customer stays). A plan given with it
    must add up to the new amount; a plan left as it was is checked at submission."""
    _check_terms(t)
    repo = Repository(uow.session)
    current = await _contract(repo, principal, contract_id, for_update=True)
    _require_writer(principal, current)
    model.check_revision(current, expected_revision)
    model.check_editable(current.status)
    # What is given replaces, what is left out stays (lines as a whole).
    changed = replace(current, lines=tuple(t.lines) if t.lines else current.lines,
                      title=t.title.strip() or current.title,
                      currency=parse_currency(t.currency or current.currency),
                      start_date=t.start_date or current.start_date, end_date=t.end_date or current.end_date,
                      renewal_date=t.renewal_date or current.renewal_date)
    model.check_term(changed.start_date, changed.end_date)
    if t.instalments is not None:
        model.check_plan(t.instalments, changed.amount)
        await repo.replace_plan(current.id, t.instalments)
    saved = await repo.save(changed)
    uow.emit(ev.ContractUpdated(contract_id=str(saved.id), contract_number=saved.number, version=saved.version,
                                amount=money(saved.amount, saved.currency), change="terms"), subject_id=str(saved.id))
    await uow.commit()
    return saved


# Receivable plan (R-CON-03) --------------------------------------------------------------------

async def get_plan(uow: UnitOfWork, principal: Principal, contract_id: uuid.UUID) -> Contract:
    return await _contract(Repository(uow.session), principal, contract_id)


async def set_plan(uow: UnitOfWork, principal: Principal, contract_id: uuid.UUID, plan: list[Instalment],
                   expected_revision: int) -> Contract:
    """Replaces the plan of a draft or returned contract; it must add up to the amount exactly."""
    repo = Repository(uow.session)
    current = await _contract(repo, principal, contract_id, for_update=True)
    _require_writer(principal, current)
    model.check_revision(current, expected_revision)
    model.check_editable(current.status)
    if not plan:
        raise InvalidArgument.of("instalments", "at least one instalment")
    model.check_plan(plan, current.amount)
    await repo.replace_plan(current.id, plan)
    saved = await repo.save(current)
    uow.emit(ev.ContractUpdated(contract_id=str(saved.id), contract_number=saved.number, version=saved.version,
                                amount=money(saved.amount, saved.currency), change="receivable_plan"),
             subject_id=str(saved.id))
    await uow.commit()
    return saved


# Approval (R-CON-02) ----------------------------------------------------------------------------

def _facts(c: Contract) -> ap.Facts:
    return ap.Facts(amount=c.amount, max_discount=c.max_discount,
                    product_lines=frozenset(li.product_line for li in c.lines if li.product_line),
                    customer_type=c.customer_type, department_path=c.department_path)


def _reach(step: ap.Step, resolved: ap.Resolved, now: dt.datetime) -> ap.Step:
    return replace(step, state=ap.StepState.PENDING, approver_ids=resolved.approver_ids, mode=resolved.mode,
                   fallback=resolved.fallback, reached_at=now, due_at=now + dt.timedelta(hours=step.due_hours))


def _assigned(uow: UnitOfWork, c: Contract, step: ap.Step) -> None:
    due = step.due_at or _now()
    uow.emit(ev.ApprovalStepAssigned(
        contract_id=str(c.id), contract_number=c.number, step_id=str(step.id), step_name=step.name,
        approver_ids=list(step.approver_ids), submitter_id=c.submitted_by, due_time=ts(due),
        amount=money(c.amount, c.currency), customer_id=str(c.customer_id)), subject_id=str(c.id))


async def submit(uow: UnitOfWork, principal: Principal, contract_id: uuid.UUID, expected_revision: int,
                 chosen: dict[int, str], org: ap.OrgLookup) -> tuple[Contract, list[ap.Step]]:
    """Selects the rule, resolves and stores every step's approvers, and opens the first step to
    decide. A resubmission after a return starts over or from the returning step, as the rule says
    (from the start if the rule that applies now is another one)."""
    repo = Repository(uow.session)
    current = await _contract(repo, principal, contract_id, for_update=True)
    _require_writer(principal, current)
    model.check_revision(current, expected_revision)
    model.check_submittable(current)
    rule = ap.select_rule(await repo.rules(), _facts(current))
    specs = ap.applicable_steps(rule, current.amount)
    ap.check_choices(specs, chosen)
    submitter = ap.Submitter(principal.subject, principal.department_path)
    attempt = current.approval_attempt + 1
    start = 1
    previous: list[ap.Step] = []
    if (current.status is Status.RETURNED and rule.restart is ap.Restart.RETURNING_STEP
            and current.approval_rule_id == rule.id and current.submitted_by == principal.subject):
        start = max(1, current.returned_position)
        previous = await repo.steps(current.id, current.approval_attempt)
    now = _now()
    steps: list[ap.Step] = []
    for position, spec in enumerate(specs, start=1):
        pick = chosen.get(position, "")
        step = ap.Step(id=new_id(), contract_id=current.id, attempt=attempt, position=position, name=spec.name,
                       spec=spec.approver, due_hours=spec.due_hours, state=ap.StepState.WAITING, chosen=pick)
        carried = next((p for p in previous if p.position == position and p.state is ap.StepState.APPROVED), None)
        if position < start and carried is not None:
            step = replace(step, state=ap.StepState.APPROVED, approver_ids=carried.approver_ids, mode=carried.mode,
                           approved_by=carried.approved_by, decided_by=carried.decided_by,
                           acting_for=carried.acting_for,
                           reason=f"carried over from attempt {current.approval_attempt}",
                           reached_at=carried.reached_at, decided_at=carried.decided_at, fallback=carried.fallback)
        else:
            resolved = await ap.resolve(spec.approver, rule.fallback, submitter, org, chosen=pick)
            step = replace(step, approver_ids=resolved.approver_ids, mode=resolved.mode, fallback=resolved.fallback)
        steps.append(step)
    first = next(i for i, s in enumerate(steps) if s.state is ap.StepState.WAITING)
    steps[first] = _reach(steps[first], ap.Resolved(steps[first].approver_ids, steps[first].mode,
                                                    steps[first].fallback), now)
    model.check_transition(current.status, Status.PENDING_APPROVAL)
    saved = await repo.save(replace(current, status=Status.PENDING_APPROVAL, approval_rule_id=rule.id,
                                    approval_attempt=attempt, returned_position=0, submitted_by=principal.subject,
                                    submitted_department_path=principal.department_path))
    await repo.add_steps(steps)
    uow.emit(ev.ContractSubmitted(contract_id=str(saved.id), contract_number=saved.number,
                                  customer_id=str(saved.customer_id), amount=money(saved.amount, saved.currency),
                                  submitter_id=principal.subject, rule_id=str(rule.id), attempt=attempt),
             subject_id=str(saved.id))
    _assigned(uow, saved, steps[first])
    await uow.commit()
    return saved, steps


async def list_steps(uow: UnitOfWork, principal: Principal,
                     contract_id: uuid.UUID) -> tuple[Contract, list[ap.Step]]:
    """The contract's approval steps (every attempt), with the contract they belong to (its number,
    amount, customer and submitter go on each step)."""
    repo = Repository(uow.session)
    contract = await _contract(repo, principal, contract_id)
    return contract, await repo.steps(contract_id)


async def my_approvals(uow: UnitOfWork, principal: Principal) -> list[tuple[ap.Step, Contract]]:
    """Steps waiting for the caller: as an approver, or as the active delegate of one."""
    repo = Repository(uow.session)
    today = _now().date()
    delegators = [d.delegator_id for d in await repo.delegations_to(principal.subject) if d.active_on(today)]
    found = await repo.pending_for([principal.subject, *delegators])
    # Nobody decides their own contract, not even as a delegate: such steps stay with the approver.
    return [(s, c) for s, c in found
            if principal.subject not in (c.submitted_by, c.owner_id)
            and ((principal.subject in s.approver_ids and principal.subject not in s.approved_by)
                 or any(d in s.approver_ids and d not in s.approved_by for d in delegators))]


async def decide(uow: UnitOfWork, principal: Principal, step_id: uuid.UUID, decision: ap.Decision, reason: str,
                 org: ap.OrgLookup) -> tuple[ap.Step, Contract]:
    """One decision on one step. The contract row is locked first, so of two approvers acting on
    the same step at once exactly one decides it; the other finds it decided (STEP_NOT_PENDING)."""
    repo = Repository(uow.session)
    probe = await repo.step(step_id)
    if probe is None:
        raise NotFound(f"approval step {step_id} not found")
    contract = await _contract(repo, None, probe.contract_id, for_update=True)
    step = await repo.step(step_id)
    assert step is not None
    now = _now()
    if contract.status is not Status.PENDING_APPROVAL or step.attempt != contract.approval_attempt:
        raise Conflict("this step belongs to an approval that is over", reason="STEP_NOT_PENDING",
                       metadata={"step_state": step.state.value, "contract_status": contract.status.value})
    ap.check_open(step, await repo.steps(contract.id, contract.approval_attempt))
    if step.state is not ap.StepState.PENDING:
        raise Conflict(f"this step is {step.state.value}, not pending: someone decided it first",
                       reason="STEP_NOT_PENDING", metadata={"step_state": step.state.value})
    ap.check_not_own_contract(principal.subject, contract.submitted_by, contract.owner_id)
    on_behalf = ap.acting_for(step, principal.subject, await repo.delegations_to(principal.subject), now.date())
    decided = await repo.save_step(ap.decide(step, principal.subject, on_behalf, decision, reason, now))
    later = [s for s in await repo.steps(contract.id, contract.approval_attempt) if s.position > step.position]
    if decided.state is ap.StepState.APPROVED:
        nxt = next((s for s in later if s.state is ap.StepState.WAITING), None)
        if nxt is None:
            model.check_transition(contract.status, Status.APPROVED)
            contract = await repo.save(replace(contract, status=Status.APPROVED))
        else:
            # Reached now: who decides is resolved again (the org chart may have changed since
            # submission) and stored; decided steps are never touched.
            rule = await repo.rule(contract.approval_rule_id) if contract.approval_rule_id else None
            submitter = ap.Submitter(contract.submitted_by, contract.submitted_department_path)
            resolved = await ap.resolve(nxt.spec, rule.fallback if rule else None, submitter, org, chosen=nxt.chosen)
            reached = await repo.save_step(_reach(nxt, resolved, now))
            contract = await repo.save(contract)
            _assigned(uow, contract, reached)
    elif decided.state in (ap.StepState.REJECTED, ap.StepState.RETURNED):
        for s in later:
            await repo.save_step(replace(s, state=ap.StepState.CANCELLED))
        target = Status.REJECTED if decided.state is ap.StepState.REJECTED else Status.RETURNED
        model.check_transition(contract.status, target)
        contract = await repo.save(replace(contract, status=target, returned_position=decided.position
                                           if target is Status.RETURNED else 0))
    else:
        contract = await repo.save(contract)  # an all-mode step with approvals still outstanding
    uow.emit(ev.ApprovalDecided(
        contract_id=str(contract.id), contract_number=contract.number, step_id=str(decided.id),
        decision={"approve": "approved", "reject": "rejected", "return": "returned"}[decision.value],
        decided_by=principal.subject, reason=decided.reason, submitter_id=contract.submitted_by,
        final=contract.status in (Status.APPROVED, Status.REJECTED),
        acting_for=decided.acting_for, step_name=decided.name), subject_id=str(contract.id))
    if contract.status is Status.APPROVED:
        uow.emit(ev.ContractApproved(contract_id=str(contract.id), contract_number=contract.number,
                                     submitter_id=contract.submitted_by), subject_id=str(contract.id))
    elif contract.status is Status.REJECTED:
        uow.emit(ev.ContractRejected(contract_id=str(contract.id), contract_number=contract.number,
                                     submitter_id=contract.submitted_by, reason=decided.reason),
                 subject_id=str(contract.id))
    await uow.commit()
    return decided, contract


# Rules and delegations --------------------------------------------------------------------------

async def list_rules(uow: UnitOfWork, principal: Principal) -> list[ap.Rule]:
    return await Repository(uow.session).rules()


async def put_rule(uow: UnitOfWork, principal: Principal, rule_id: uuid.UUID | None, name: str, priority: int,
                   active: bool, definition: str) -> ap.Rule:
    _require_admin(principal, "edit approval rules")
    if not 0 <= priority <= 1_000_000:
        raise InvalidArgument.of("priority", "must be from 0 to 1000000")
    repo = Repository(uow.session)
    new = rule_id is None
    if not new:
        assert rule_id is not None
        if await repo.rule(rule_id, for_update=True) is None:
            raise NotFound(f"approval rule {rule_id} not found")
    rule = ap.parse_rule(rule_id or new_id(), name, priority, active, definition)
    if await repo.rule_name_taken(rule.name, None if new else rule.id):
        raise AlreadyExists(f"an approval rule named {rule.name!r} exists", reason="DUPLICATE_RULE")
    saved = await repo.put_rule(rule, principal.subject, new=new)
    message = rule_to_pb(saved)
    uow.emit(ev.ApprovalRuleChanged(rule_id=str(saved.id), name=saved.name, rule_json=json.dumps(
        {"priority": saved.priority, "active": saved.active, **json.loads(message.definition_json)},
        ensure_ascii=False, sort_keys=True)), subject_id=str(saved.id))
    await uow.commit()
    return saved


async def list_delegations(uow: UnitOfWork, principal: Principal) -> list[ap.Delegation]:
    return await Repository(uow.session).delegations_of(principal.subject)


async def create_delegation(uow: UnitOfWork, principal: Principal, delegate_id: str, start: dt.date | None,
                            end: dt.date | None) -> ap.Delegation:
    """An approver names a delegate who may decide their steps for a period (inclusive)."""
    if start is None or end is None:
        raise InvalidArgument.of("start_date" if start is None else "end_date", "is required")
    ap.check_delegation(principal.subject, delegate_id.strip(), start, end, _now().date())
    d = ap.Delegation(new_id(), principal.subject, delegate_id.strip(), start, end)
    await Repository(uow.session).add_delegation(d)
    uow.emit(ev.ApprovalDelegationChanged(delegation_id=str(d.id), delegator_id=d.delegator_id,
                                          delegate_id=d.delegate_id, start_date=start.isoformat(),
                                          end_date=end.isoformat()), subject_id=str(d.id))
    await uow.commit()
    return d


async def revoke_delegation(uow: UnitOfWork, principal: Principal, delegation_id: uuid.UUID) -> ap.Delegation:
    repo = Repository(uow.session)
    d = await repo.delegation(delegation_id, for_update=True)
    if d is None or d.delegator_id != principal.subject:
        raise NotFound(f"delegation {delegation_id} not found")
    if not d.revoked:
        await repo.revoke_delegation(d.id)
        uow.emit(ev.ApprovalDelegationChanged(delegation_id=str(d.id), delegator_id=d.delegator_id,
                                              delegate_id=d.delegate_id, start_date=d.start_date.isoformat(),
                                              end_date=d.end_date.isoformat(), revoked=True), subject_id=str(d.id))
    await uow.commit()
    return replace(d, revoked=True)


# Signing, termination, amendments ---------------------------------------------------------------

async def sign(uow: UnitOfWork, principal: Principal, contract_id: uuid.UUID, sign_date: dt.date | None,
               expected_revision: int) -> Contract:
    """approved → signed (→ active at once if the term has begun); contract.signed carries the
    lines and the receivable plan. Signing a renewal marks its predecessor renewed (R-CON-04)."""
    repo = Repository(uow.session)
    current = await _contract(repo, principal, contract_id, for_update=True)
    _require_writer(principal, current)
    model.check_revision(current, expected_revision)
    today = _now().date()
    signed = model.sign(current, sign_date or today, today)
    await repo.add_version(current.id, signed.version, snapshot(signed), "signed", principal.subject)
    saved = await repo.save(signed)
    uow.emit(signed_event(saved), subject_id=str(saved.id))
    if model.due_for_activation(saved, today):
        saved = await repo.save(replace(saved, status=Status.ACTIVE))
        uow.emit(ev.ContractActivated(contract_id=str(saved.id), contract_number=saved.number,
                                      customer_id=str(saved.customer_id)), subject_id=str(saved.id))
    if saved.predecessor_id is not None:
        before = await _contract(repo, None, saved.predecessor_id, for_update=True)
        model.check_transition(before.status, Status.RENEWED)
        await repo.save(replace(before, status=Status.RENEWED, successor_id=saved.id))
        uow.emit(ev.ContractRenewed(contract_id=str(before.id), contract_number=before.number,
                                    successor_id=str(saved.id), successor_number=saved.number,
                                    customer_id=str(before.customer_id)), subject_id=str(before.id))
    await uow.commit()
    return saved


async def terminate(uow: UnitOfWork, principal: Principal, contract_id: uuid.UUID, reason: str,
                    expected_revision: int) -> Contract:
    reason = reason.strip()
    if not reason:
        raise InvalidArgument.of("reason", "is required to terminate a contract")
    repo = Repository(uow.session)
    current = await _contract(repo, principal, contract_id, for_update=True)
    _require_writer(principal, current)
    model.check_revision(current, expected_revision)
    model.check_transition(current.status, Status.TERMINATED)
    saved = await repo.save(replace(current, status=Status.TERMINATED, termination_reason=reason[:2000]))
    uow.emit(ev.ContractTerminated(contract_id=str(saved.id), contract_number=saved.number,
                                   customer_id=str(saved.customer_id), reason=saved.termination_reason),
             subject_id=str(saved.id))
    await uow.commit()
    return saved


async def amend(uow: UnitOfWork, principal: Principal, contract_id: uuid.UUID, t: Terms, reason: str,
                expected_revision: int) -> Contract:
    """A signed or active contract amended: the next version (lines, term, plan); every earlier
    version stays readable. The plan must add up to the new amount."""
    _check_terms(t)
    reason = reason.strip()
    if not reason:
        raise InvalidArgument.of("reason", "is required to amend a contract")
    if not t.lines:
        raise InvalidArgument.of("lines", "at least one line")
    repo = Repository(uow.session)
    current = await _contract(repo, principal, contract_id, for_update=True)
    _require_writer(principal, current)
    model.check_revision(current, expected_revision)
    if current.status not in model.IN_FORCE:
        raise Conflict(f"a {current.status.value} contract cannot be amended; only signed or active ones can",
                       reason="AMEND_ONLY_IN_FORCE", metadata={"contract_status": current.status.value})
    plan = t.instalments if t.instalments is not None else list(current.instalments)
    amended = replace(current, lines=tuple(t.lines), version=current.version + 1,
                      start_date=t.start_date or current.start_date, end_date=t.end_date or current.end_date,
                      renewal_date=t.renewal_date or current.renewal_date, instalments=tuple(plan))
    model.check_term(amended.start_date, amended.end_date)
    if not plan:
        raise InvalidArgument.of("instalments", "at least one instalment")
    model.check_plan(plan, amended.amount)
    await repo.replace_plan(current.id, plan)
    saved = await repo.save(amended)
    await repo.add_version(saved.id, saved.version, snapshot(saved), reason[:2000], principal.subject)
    uow.emit(ev.ContractAmended(contract_id=str(saved.id), contract_number=saved.number, version=saved.version,
                                amount=money(saved.amount, saved.currency),
                                lines=[line_to_pb(li, saved.currency) for li in saved.lines],
                                instalments=[instalment_to_pb(i, saved.currency) for i in saved.instalments],
                                customer_id=str(saved.customer_id)), subject_id=str(saved.id))
    await uow.commit()
    return saved


async def amendments(uow: UnitOfWork, principal: Principal, contract_id: uuid.UUID) -> list[Any]:
    repo = Repository(uow.session)
    await _contract(repo, principal, contract_id)
    return await repo.versions(contract_id)


# Renewals (R-CON-04) ----------------------------------------------------------------------------

async def renewals(uow: UnitOfWork, principal: Principal, within_months: int) -> list[Contract]:
    if not 1 <= within_months <= MAX_RENEWAL_MONTHS:
        raise InvalidArgument.of("within", f"must be 1 to {MAX_RENEWAL_MONTHS} months")
    today = _now().date()
    return await Repository(uow.session).ending_between(principal, today, model.add_months(today, within_months))


async def create_renewal(uow: UnitOfWork, principal: Principal, contract_id: uuid.UUID, owners: Owners) -> Contract:
    """A draft renewal: same customer and lines, the next term of the same length."""
    repo = Repository(uow.session)
    before = await _contract(repo, principal, contract_id)
    start, end = model.renewal_term(before)
    return await create_contract(uow, principal, Terms(
        customer_id=before.customer_id, lines=[replace(li, line_id=str(uuid.uuid4())) for li in before.lines],
        currency=before.currency, title=before.title, customer_name=before.customer_name,
        customer_type=before.customer_type, opportunity_id=before.opportunity_id, start_date=start, end_date=end,
        owner_id=before.owner_id if principal.subject != before.owner_id else "", team_id=before.team_id,
        predecessor_id=before.id), owners)


# Periodic passes (run by the background task; each callable directly in tests) ------------------

async def lifecycle_pass(uow: UnitOfWork, today: dt.date, notice_months: int, batch: int = 200) -> int:
    """Daily: signed contracts whose term began become active, those whose term ended expire;
    contract.expiring once per contract per end date within the notice window (R-CON-04)."""
    repo = Repository(uow.session)
    changed = 0
    for c in await repo.due_for_lifecycle(today, batch):
        if model.due_for_expiry(c, today):
            await repo.save(replace(c, status=Status.EXPIRED))
            uow.emit(ev.ContractExpired(contract_id=str(c.id), contract_number=c.number,
                                        customer_id=str(c.customer_id)), subject_id=str(c.id))
        else:
            await repo.save(replace(c, status=Status.ACTIVE))
            uow.emit(ev.ContractActivated(contract_id=str(c.id), contract_number=c.number,
                                          customer_id=str(c.customer_id)), subject_id=str(c.id))
        changed += 1
    for c in await repo.ending_between(None, today, model.add_months(today, notice_months), limit=batch,
                                       for_update=True):
        if c.expiring_noticed_for == c.end_date or c.end_date is None:
            continue
        await repo.save(replace(c, expiring_noticed_for=c.end_date))
        uow.emit(ev.ContractExpiring(contract_id=str(c.id), contract_number=c.number, customer_id=str(c.customer_id),
                                     owner_id=c.owner_id, end_date=c.end_date.isoformat()), subject_id=str(c.id))
        changed += 1
    await uow.commit()
    return changed


async def overdue_pass(uow: UnitOfWork, now: dt.datetime, batch: int = 200) -> int:
    """A reminder (approval.step_overdue) once for each pending step past its due time."""
    repo = Repository(uow.session)
    steps = await repo.overdue_steps(now, batch)
    for s in steps:
        await repo.save_step(replace(s, reminded_at=now))
        c = await _contract(repo, None, s.contract_id)
        uow.emit(ev.ApprovalStepOverdue(contract_id=str(c.id), contract_number=c.number, step_id=str(s.id),
                                        approver_ids=list(s.approver_ids), due_time=ts(s.due_at)),
                 subject_id=str(c.id))
    await uow.commit()
    return len(steps)
