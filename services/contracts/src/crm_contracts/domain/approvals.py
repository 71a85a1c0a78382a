"""R-CON-02: the approval workflow, derived from the org chart. Start here to understand it.

Rules are data (editable by administrators at /api/v1/approval-rules). Each rule has a priority,
conditions and a chain of serial steps; the first active rule (lowest priority number) whose
conditions all hold for a contract applies. A condition left empty holds for every contract.

Conditions: amount range [min_amount, max_amount), `discount_over_percent` (the contract's largest
line discount is above it), `product_lines` (some line is in one of them), `customer_types`
(domestic / foreign), `department_prefix` (the contract's department path starts with it).

A step names who approves it (`ApproverSpec.kind`):
- `manager`           the submitter's manager;
- `manager_level`     the manager `levels` up the submitter's manager chain (1 = the manager);
- `department_head`   the head of the submitter's department (or the nearest ancestor's);
- `role`              the holders of `role` in the company; `mode` "any" (one decides) or "all";
- `user`              a named user;
- `submitter_choice`  the user the submitter picks at submission from `allowed_user_ids`.
Steps may have `min_amount`: the step only applies from that amount (so one rule expresses
"manager; from 100,000 also the director and finance").

A step that resolves to nobody (no manager, a vacant head, a role nobody holds, or only the
submitter, who never approves their own contract) takes the rule's `fallback` approver instead
of stalling; if even that resolves to nobody, submission fails with NO_APPROVER.

Who approves is resolved at submission and stored on the step; a step is resolved again when it
is reached (the org chart may have changed meanwhile) and who was found is stored; steps already
decided are never rewritten. This module is pure: the org chart comes in through `OrgLookup`.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any, Protocol

from crmkit.errors import Conflict, InvalidArgument, PermissionDenied

DEFAULT_DUE_HOURS = 48
MAX_STEPS = 10


class Kind(StrEnum):
    MANAGER = "manager"
    MANAGER_LEVEL = "manager_level"
    DEPARTMENT_HEAD = "department_head"
    ROLE = "role"
    USER = "user"
    SUBMITTER_CHOICE = "submitter_choice"


class Mode(StrEnum):
    ANY = "any"
    ALL = "all"


class Restart(StrEnum):
    """Where a resubmission after a return starts."""

    FIRST = "first"
    RETURNING_STEP = "returning_step"


class Decision(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"
    RETURN = "return"


class StepState(StrEnum):
    WAITING = "waiting"  # not reached yet
    PENDING = "pending"  # waiting for a decision
    APPROVED = "approved"
    REJECTED = "rejected"
    RETURNED = "returned"
    CANCELLED = "cancelled"  # a later step of an attempt that ended early


@dataclass(frozen=True)
class ApproverSpec:
    kind: Kind
    levels: int = 1
    role: str = ""
    mode: Mode = Mode.ANY
    user_id: str = ""
    allowed_user_ids: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind.value}
        if self.kind is Kind.MANAGER_LEVEL:
            out["levels"] = self.levels
        if self.kind is Kind.ROLE:
            out |= {"role": self.role, "mode": self.mode.value}
        if self.kind is Kind.USER:
            out["user_id"] = self.user_id
        if self.kind is Kind.SUBMITTER_CHOICE:
            out["allowed_user_ids"] = list(self.allowed_user_ids)
        return out


@dataclass(frozen=True)
class StepSpec:
    name: str
    approver: ApproverSpec
    due_hours: int = DEFAULT_DUE_HOURS
    min_amount: Decimal | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {"name": self.name, "approver": self.approver.to_dict(), "due_hours": self.due_hours}
        if self.min_amount is not None:
            out["min_amount"] = str(self.min_amount)
        return out


@dataclass(frozen=True)
class Conditions:
    min_amount: Decimal | None = None
    max_amount: Decimal | None = None
    discount_over_percent: Decimal | None = None
    product_lines: tuple[str, ...] = ()
    customer_types: tuple[str, ...] = ()
    department_prefix: str = ""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in ("min_amount", "max_amount", "discount_over_percent"):
            if getattr(self, name) is not None:
                out[name] = str(getattr(self, name))
        if self.product_lines:
            out["product_lines"] = list(self.product_lines)
        if self.customer_types:
            out["customer_types"] = list(self.customer_types)
        if self.department_prefix:
            out["department_prefix"] = self.department_prefix
        return out


@dataclass(frozen=True)
class Rule:
    id: uuid.UUID
    name: str
    priority: int
    conditions: Conditions
    steps: tuple[StepSpec, ...]
    fallback: ApproverSpec | None
    restart: Restart = Restart.FIRST
    active: bool = True
    revision: int = 1

    def definition(self) -> dict[str, Any]:
        return {"conditions": self.conditions.to_dict(), "steps": [s.to_dict() for s in self.steps],
                "fallback": self.fallback.to_dict() if self.fallback else None, "restart": self.restart.value}


@dataclass(frozen=True)
class Facts:
    """What a rule is matched against."""

    amount: Decimal
    max_discount: Decimal
    product_lines: frozenset[str]
    customer_type: str
    department_path: str


def matches(c: Conditions, f: Facts) -> bool:
    if c.min_amount is not None and f.amount < c.min_amount:
        return False
    if c.max_amount is not None and f.amount >= c.max_amount:
        return False
    if c.discount_over_percent is not None and f.max_discount <= c.discount_over_percent:
        return False
    if c.product_lines and not (set(c.product_lines) & f.product_lines):
        return False
    if c.customer_types and f.customer_type not in c.customer_types:
        return False
    return not (c.department_prefix and not f.department_path.startswith(c.department_prefix))


def select_rule(rules: list[Rule], facts: Facts) -> Rule:
    for rule in sorted((r for r in rules if r.active), key=lambda r: (r.priority, r.name)):
        if matches(rule.conditions, facts):
            return rule
    raise Conflict("no approval rule applies to this contract; an administrator must add one",
                   reason="NO_APPROVAL_RULE")


def applicable_steps(rule: Rule, amount: Decimal) -> list[StepSpec]:
    return [s for s in rule.steps if s.min_amount is None or amount >= s.min_amount]


# Parsing rules from their JSON definition (the API and the database store them so) -------------

def _dec(value: Any, name: str) -> Decimal | None:
    if value in (None, ""):
        return None
    try:
        out = Decimal(str(value))
    except InvalidOperation:
        raise InvalidArgument.of(name, f"{value!r} is not a decimal number") from None
    if not out.is_finite() or out < 0:
        raise InvalidArgument.of(name, "must be a non-negative number")
    return out


def parse_approver(raw: Any, name: str) -> ApproverSpec:
    if not isinstance(raw, Mapping):
        raise InvalidArgument.of(name, "must be an object with a kind")
    try:
        kind = Kind(raw.get("kind", ""))
    except ValueError:
        raise InvalidArgument.of(f"{name}.kind", f"must be one of {', '.join(k.value for k in Kind)}") from None
    spec = ApproverSpec(kind=kind)
    if kind is Kind.MANAGER_LEVEL:
        levels = raw.get("levels", 1)
        if not isinstance(levels, int) or not 1 <= levels <= 10:
            raise InvalidArgument.of(f"{name}.levels", "must be a whole number from 1 to 10")
        spec = replace(spec, levels=levels)
    elif kind is Kind.ROLE:
        role = str(raw.get("role", "")).strip()
        if not role:
            raise InvalidArgument.of(f"{name}.role", "is required")
        try:
            mode = Mode(raw.get("mode", "any"))
        except ValueError:
            raise InvalidArgument.of(f"{name}.mode", "must be any or all") from None
        spec = replace(spec, role=role, mode=mode)
    elif kind is Kind.USER:
        user = str(raw.get("user_id", "")).strip()
        if not user:
            raise InvalidArgument.of(f"{name}.user_id", "is required")
        spec = replace(spec, user_id=user)
    elif kind is Kind.SUBMITTER_CHOICE:
        allowed = raw.get("allowed_user_ids") or []
        if not isinstance(allowed, list) or not allowed:
            raise InvalidArgument.of(f"{name}.allowed_user_ids", "name at least one user")
        spec = replace(spec, allowed_user_ids=tuple(str(a) for a in allowed))
    return spec


def parse_rule(rule_id: uuid.UUID, name: str, priority: int, active: bool, definition: str | Mapping[str, Any],
               revision: int = 1) -> Rule:
    if isinstance(definition, str):
        try:
            definition = json.loads(definition or "{}")
        except json.JSONDecodeError as exc:
            raise InvalidArgument.of("definition", f"is not JSON: {exc.msg}") from None
    if not isinstance(definition, Mapping):
        raise InvalidArgument.of("definition", "must be an object")
    name = name.strip()
    if not name or len(name) > 200:
        raise InvalidArgument.of("name", "is required, at most 200 characters")
    cond = definition.get("conditions") or {}
    if not isinstance(cond, Mapping):
        raise InvalidArgument.of("conditions", "must be an object")
    conditions = Conditions(
        min_amount=_dec(cond.get("min_amount"), "conditions.min_amount"),
        max_amount=_dec(cond.get("max_amount"), "conditions.max_amount"),
        discount_over_percent=_dec(cond.get("discount_over_percent"), "conditions.discount_over_percent"),
        product_lines=tuple(str(p).strip().lower() for p in cond.get("product_lines") or []),
        customer_types=tuple(str(p) for p in cond.get("customer_types") or []),
        department_prefix=str(cond.get("department_prefix") or ""))
    if (conditions.min_amount is not None and conditions.max_amount is not None
            and conditions.max_amount <= conditions.min_amount):
        raise InvalidArgument.of("conditions.max_amount", "must be above min_amount")
    raw_steps = definition.get("steps") or []
    if not isinstance(raw_steps, list) or not raw_steps or len(raw_steps) > MAX_STEPS:
        raise InvalidArgument.of("steps", f"one to {MAX_STEPS} steps")
    steps = []
    for i, raw in enumerate(raw_steps):
        if not isinstance(raw, Mapping):
            raise InvalidArgument.of(f"steps[{i}]", "must be an object")
        step_name = str(raw.get("name", "")).strip()
        if not step_name:
            raise InvalidArgument.of(f"steps[{i}].name", "is required")
        due = raw.get("due_hours", DEFAULT_DUE_HOURS)
        if not isinstance(due, int) or not 1 <= due <= 24 * 60:
            raise InvalidArgument.of(f"steps[{i}].due_hours", "must be whole hours from 1 to 1440")
        steps.append(StepSpec(step_name, parse_approver(raw.get("approver"), f"steps[{i}].approver"), due,
                              _dec(raw.get("min_amount"), f"steps[{i}].min_amount")))
    fallback = definition.get("fallback")
    try:
        restart = Restart(definition.get("restart", "first"))
    except ValueError:
        raise InvalidArgument.of("restart", "must be first or returning_step") from None
    return Rule(rule_id, name, priority, conditions, tuple(steps),
                parse_approver(fallback, "fallback") if fallback else None, restart, active, revision)


# Resolving who approves --------------------------------------------------------------------------

class OrgLookup(Protocol):
    """The org chart, as the identity service answers it."""

    async def manager_chain(self, user_id: str, levels: int) -> list[str]: ...

    async def department_head(self, department_id: str) -> str | None: ...

    async def role_holders(self, role: str, department_id: str) -> list[str]: ...

    async def user_exists(self, user_id: str) -> bool: ...


@dataclass(frozen=True)
class Submitter:
    user_id: str
    # The path of department ids, root first: "/<root>/<sales>/".
    department_path: str

    @property
    def department_id(self) -> str:
        parts = [p for p in self.department_path.split("/") if p]
        return parts[-1] if parts else ""

    @property
    def root_department_id(self) -> str:
        parts = [p for p in self.department_path.split("/") if p]
        return parts[0] if parts else ""


@dataclass(frozen=True)
class Resolved:
    approver_ids: tuple[str, ...]
    mode: Mode
    fallback: bool = False


async def _people(spec: ApproverSpec, submitter: Submitter, chosen: str, org: OrgLookup) -> list[str]:
    match spec.kind:
        case Kind.MANAGER:
            return (await org.manager_chain(submitter.user_id, 1))[:1]
        case Kind.MANAGER_LEVEL:
            chain = await org.manager_chain(submitter.user_id, spec.levels)
            return [chain[spec.levels - 1]] if len(chain) >= spec.levels else []
        case Kind.DEPARTMENT_HEAD:
            head = await org.department_head(submitter.department_id) if submitter.department_id else None
            return [head] if head else []
        case Kind.ROLE:
            if not submitter.root_department_id:
                return []
            return sorted(set(await org.role_holders(spec.role, submitter.root_department_id)))
        case Kind.USER:
            return [spec.user_id] if await org.user_exists(spec.user_id) else []
        case Kind.SUBMITTER_CHOICE:
            return [chosen] if chosen and chosen in spec.allowed_user_ids and await org.user_exists(chosen) else []
    return []


async def resolve(spec: ApproverSpec, fallback: ApproverSpec | None, submitter: Submitter, org: OrgLookup, *,
                  chosen: str = "") -> Resolved:
    """Who decides a step. The submitter never approves their own contract; nobody left means the
    rule's fallback approver (a step never stalls); nobody at all is NO_APPROVER."""
    people = [p for p in await _people(spec, submitter, chosen, org) if p != submitter.user_id]
    if people:
        return Resolved(tuple(people), spec.mode if spec.kind is Kind.ROLE else Mode.ANY)
    if fallback is not None:
        backup = [p for p in await _people(fallback, submitter, "", org) if p != submitter.user_id]
        if backup:
            # Whoever stands in for a vacancy decides alone.
            return Resolved(tuple(backup), Mode.ANY, fallback=True)
    raise Conflict("an approval step resolves to nobody and the rule has no usable fallback approver",
                   reason="NO_APPROVER", metadata={"approver_kind": spec.kind.value})


def check_choices(steps: list[StepSpec], chosen: Mapping[int, str]) -> None:
    for position, step in enumerate(steps, start=1):
        if step.approver.kind is Kind.SUBMITTER_CHOICE:
            pick = chosen.get(position, "")
            if pick not in step.approver.allowed_user_ids:
                raise InvalidArgument.of(f"chosen_approvers[{position}]",
                                         f"pick one of {', '.join(step.approver.allowed_user_ids)}")


# Deciding ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Delegation:
    id: uuid.UUID
    delegator_id: str
    delegate_id: str
    start_date: dt.date
    end_date: dt.date
    revoked: bool = False

    def active_on(self, day: dt.date) -> bool:
        return not self.revoked and self.start_date <= day <= self.end_date


def check_delegation(delegator: str, delegate: str, start: dt.date, end: dt.date, today: dt.date) -> None:
    if not delegate or delegate == delegator:
        raise InvalidArgument.of("delegate_id", "must name someone else")
    if end < start:
        raise InvalidArgument.of("end_date", "must not be before start_date")
    if end < today:
        raise InvalidArgument.of("end_date", "must not be in the past")
    if (end - start).days > 366:
        raise InvalidArgument.of("end_date", "a delegation lasts at most a year")


@dataclass(frozen=True)
class Step:
    id: uuid.UUID
    contract_id: uuid.UUID
    attempt: int
    position: int
    name: str
    spec: ApproverSpec
    due_hours: int
    state: StepState
    approver_ids: tuple[str, ...] = ()
    mode: Mode = Mode.ANY
    fallback: bool = False
    approved_by: tuple[str, ...] = ()
    decided_by: str = ""
    acting_for: str = ""
    reason: str = ""
    chosen: str = ""
    reached_at: dt.datetime | None = None
    due_at: dt.datetime | None = None
    decided_at: dt.datetime | None = None
    reminded_at: dt.datetime | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def acting_for(step: Step, actor: str, delegations: list[Delegation], today: dt.date) -> str:
    """Whom `actor` decides for: themselves if an approver of the step, else the approver who
    delegated to them (an approver already counted in an all-mode step is skipped). Anyone else
    is refused: only a step's current approver, or their active delegate, decides it."""
    outstanding = [a for a in step.approver_ids if a not in step.approved_by]
    if actor in outstanding:
        return actor
    for d in delegations:
        if d.delegate_id == actor and d.delegator_id in outstanding and d.active_on(today):
            return d.delegator_id
    if actor in step.approver_ids:
        raise Conflict("you have already approved this step", reason="ALREADY_APPROVED")
    raise PermissionDenied("only the step's current approver or their active delegate may decide it",
                           reason="NOT_THE_APPROVER")


def check_not_own_contract(actor: str, submitted_by: str, owner_id: str) -> None:
    """Nobody approves their own contract (issue 12): not as an approver (resolution already leaves
    the submitter out) and not as an approver's delegate. The step stays with its approver, who
    may decide it or name another delegate."""
    if actor in (submitted_by, owner_id):
        raise PermissionDenied("you may not decide an approval step of a contract you submitted or own; "
                               "the step stays with its approver", reason="OWN_CONTRACT")


def check_open(step: Step, steps_of_attempt: list[Step]) -> None:
    """A step not reached yet says so, and which step is waiting for a decision."""
    if step.state is StepState.WAITING:
        current = next((s for s in steps_of_attempt if s.state is StepState.PENDING), None)
        waiting = f"step {current.position} ({current.name}) is waiting for a decision" if current \
            else "an earlier step is not decided yet"
        raise Conflict(f"this step is not yet open: {waiting}", reason="STEP_NOT_OPEN",
                       metadata={"step_position": str(step.position),
                                 "open_step_position": str(current.position) if current else ""})


def decide(step: Step, actor: str, on_behalf_of: str, decision: Decision, reason: str,
           now: dt.datetime) -> Step:
    """The step after one decision. Reject and return need a reason. In an all-mode step an
    approval counts for one holder; the step is approved once every holder has approved."""
    if step.state is not StepState.PENDING:
        raise Conflict(f"this step is {step.state.value}, not pending: someone decided it first",
                       reason="STEP_NOT_PENDING", metadata={"step_state": step.state.value})
    reason = reason.strip()
    if decision is not Decision.APPROVE and not reason:
        raise InvalidArgument.of("reason", f"a reason is required to {decision.value}")
    if len(reason) > 2000:
        raise InvalidArgument.of("reason", "must be at most 2000 characters")
    acting = on_behalf_of if on_behalf_of != actor else ""
    if decision is Decision.APPROVE:
        approved = (*step.approved_by, on_behalf_of)
        done = step.mode is Mode.ANY or set(step.approver_ids) <= set(approved)
        return replace(step, approved_by=approved, state=StepState.APPROVED if done else StepState.PENDING,
                       decided_by=actor, acting_for=acting, reason=reason,
                       decided_at=now if done else step.decided_at)
    state = StepState.REJECTED if decision is Decision.REJECT else StepState.RETURNED
    return replace(step, state=state, decided_by=actor, acting_for=acting, reason=reason, decided_at=now)


def is_overdue(step: Step, now: dt.datetime) -> bool:
    """A reminder is due once per pending step past its due time."""
    return step.state is StepState.PENDING and step.due_at is not None and step.due_at <= now \
        and step.reminded_at is None


def default_rule_definition() -> dict[str, Any]:
    """The demo's rule (seeded by migration 0001): any amount → the submitter's manager; from
    100,000 also the head of the submitter's department (the sales director, two levels up from
    a rep), then any holder of the role `finance`. Vacancies fall back to the general manager."""
    return {
        "conditions": {},
        "steps": [
            {"name": "Manager", "approver": {"kind": "manager"}, "due_hours": 24},
            {"name": "Sales director", "approver": {"kind": "department_head"}, "due_hours": 48,
             "min_amount": "100000"},
            {"name": "Finance", "approver": {"kind": "role", "role": "finance", "mode": "any"}, "due_hours": 48,
             "min_amount": "100000"},
        ],
        "fallback": {"kind": "role", "role": "general_manager", "mode": "any"},
        "restart": "first",
    }
