"""Pure rules, no database: lines and totals, the receivable plan (R-CON-03), lifecycle
transitions, rule selection and chain resolution with a fake org chart (R-CON-02)."""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
from decimal import Decimal

import pytest

from crm_contracts.domain import approvals as ap
from crm_contracts.domain import model
from crm_contracts.domain.model import Instalment, Status
from crmkit.errors import Conflict, InvalidArgument, PermissionDenied

REP = ap.Submitter("rep-east", "/sales/east/")
NOW = dt.datetime(2026, 11, 25, 9, 0, tzinfo=dt.UTC)


def line(qty: str = "10", price: str = "1000", discount: str = "0", tax: str = "13", product_line: str = "") -> \
        model.Line:
    return model.parse_line(0, "Catheter 6F", "PTFE", qty, "pcs", price, discount, tax, product_line)


def contract(*lines: model.Line, status: Status = Status.DRAFT, plan: tuple[Instalment, ...] = (),
             start: dt.date | None = dt.date(2027, 1, 1), end: dt.date | None = dt.date(2027, 12, 31)) -> \
        model.Contract:
    return model.Contract(id=uuid.uuid4(), number="CON-2026-000001", customer_id=uuid.uuid4(), currency="CNY",
                          lines=lines, owner_id="rep-east", team_id="east", department_path="/sales/east/",
                          status=status, instalments=plan, start_date=start, end_date=end)


# Lines, totals, plan -----------------------------------------------------------------------------

def test_line_amount_is_net_after_discount_and_tax_is_separate() -> None:
    li = line("3", "33.335", "10", "13")
    # 3 × 33.335 = 100.005; × 0.9 = 90.0045 → 90.00; tax 13 % of 90.00 = 11.70
    assert (li.amount, li.tax_amount) == (Decimal("90.00"), Decimal("11.70"))
    totals = model.totals([li, line("1", "0.005", "0", "0")])  # 0.005 → 0.01 (half up)
    assert (totals.net, totals.tax, totals.gross) == (Decimal("90.01"), Decimal("11.70"), Decimal("101.71"))


@pytest.mark.parametrize(("qty", "field"), [("0", "quantity"), ("-1", "quantity"), ("abc", "quantity")])
def test_bad_lines_name_the_field(qty: str, field: str) -> None:
    with pytest.raises(InvalidArgument) as e:
        line(qty)
    assert e.value.violations[0].field == f"lines[0].{field}"


def test_a_line_or_contract_beyond_the_maximum_amount_is_refused() -> None:
    # each factor within its own limit (below 10^15), their product not
    with pytest.raises(InvalidArgument) as product:
        line("999999999999999", "999999999999999")
    assert product.value.violations[0].field == "lines[0].unit_price"
    # each line below the maximum, the contract (net plus tax) not
    big = line("1", "600000000000000", tax="0")
    model.check_lines_total([big])
    with pytest.raises(InvalidArgument) as total:
        model.check_lines_total([big, big])
    assert total.value.violations[0].field == "lines"


def test_discount_above_100_percent_is_refused() -> None:
    with pytest.raises(InvalidArgument):
        line(discount="100.01")


def test_plan_must_add_up_exactly_to_the_amount() -> None:
    amount = Decimal("113000.00")
    ok = [Instalment(1, dt.date(2027, 1, 1), Decimal("33900.00"), "deposit"),
          Instalment(2, dt.date(2027, 3, 1), Decimal("79100.00"), "on delivery")]
    model.check_plan(ok, amount)
    short = [ok[0], Instalment(2, dt.date(2027, 3, 1), Decimal("79099.99"), "on delivery")]
    with pytest.raises(InvalidArgument) as e:
        model.check_plan(short, amount)
    assert e.value.reason == "PLAN_TOTAL_MISMATCH"
    with pytest.raises(InvalidArgument):  # due dates out of order
        model.check_plan([ok[1], ok[0]], amount)
    with pytest.raises(InvalidArgument):  # fractions of a cent
        model.check_plan([Instalment(1, dt.date(2027, 1, 1), Decimal("113000.001"), "")], amount)


def test_submission_needs_lines_term_and_a_plan_that_adds_up() -> None:
    li = line()  # 10 × 1000 = 10000 net, 1300 tax, 11300 gross
    with pytest.raises(Conflict) as e:
        model.check_submittable(contract())
    assert e.value.reason == "LINES_REQUIRED"
    with pytest.raises(Conflict) as e:
        model.check_submittable(contract(li, start=None))
    assert e.value.reason == "TERM_REQUIRED"
    with pytest.raises(Conflict) as e:
        model.check_submittable(contract(li))
    assert e.value.reason == "PLAN_REQUIRED"
    with pytest.raises(Conflict) as e:
        model.check_submittable(contract(li, plan=(Instalment(1, dt.date(2027, 1, 1), Decimal("11299"), ""),)))
    assert e.value.reason == "PLAN_TOTAL_MISMATCH"
    model.check_submittable(contract(li, plan=(Instalment(1, dt.date(2027, 1, 1), Decimal("11300.00"), ""),)))


# Lifecycle --------------------------------------------------------------------------------------

@pytest.mark.parametrize(("current", "target", "reason"), [
    (Status.DRAFT, Status.SIGNED, "SIGN_ONLY_WHEN_APPROVED"),
    (Status.PENDING_APPROVAL, Status.SIGNED, "SIGN_ONLY_WHEN_APPROVED"),
    (Status.SIGNED, Status.PENDING_APPROVAL, "SUBMIT_ONLY_FROM_DRAFT_OR_RETURNED"),
    (Status.DRAFT, Status.TERMINATED, "TERMINATE_ONLY_IN_FORCE"),
    (Status.REJECTED, Status.PENDING_APPROVAL, "SUBMIT_ONLY_FROM_DRAFT_OR_RETURNED"),
    (Status.TERMINATED, Status.RENEWED, "RENEW_ONLY_SIGNED_ACTIVE_OR_EXPIRED"),
    (Status.APPROVED, Status.ACTIVE, "ACTIVATE_ONLY_WHEN_SIGNED"),
])
def test_invalid_transitions_name_the_rule(current: Status, target: Status, reason: str) -> None:
    with pytest.raises(Conflict) as e:
        model.check_transition(current, target)
    assert e.value.reason == reason


def test_the_whole_happy_path_is_allowed() -> None:
    path = [Status.DRAFT, Status.PENDING_APPROVAL, Status.RETURNED, Status.PENDING_APPROVAL, Status.APPROVED,
            Status.SIGNED, Status.ACTIVE, Status.EXPIRED, Status.RENEWED]
    for a, b in itertools.pairwise(path):
        model.check_transition(a, b)


def test_sign_and_the_daily_lifecycle() -> None:
    today = dt.date(2027, 1, 1)
    approved = contract(line(), status=Status.APPROVED)
    with pytest.raises(InvalidArgument):
        model.sign(approved, dt.date(2027, 1, 2), today)
    signed = model.sign(approved, today, today)
    assert signed.status is Status.SIGNED and signed.sign_date == today
    assert model.due_for_activation(signed, today) and not model.due_for_activation(signed, dt.date(2026, 12, 31))
    assert model.due_for_expiry(signed, dt.date(2028, 1, 1)) and not model.due_for_expiry(signed, dt.date(2027, 12, 31))


def test_renewal_term_and_months() -> None:
    c = contract(start=dt.date(2026, 1, 1), end=dt.date(2026, 12, 31))
    assert model.renewal_term(c) == (dt.date(2027, 1, 1), dt.date(2027, 12, 31))
    assert model.add_months(dt.date(2026, 8, 31), 6) == dt.date(2027, 2, 28)
    assert model.format_number(2026, 123) == "CON-2026-000123"


# Approval rules ----------------------------------------------------------------------------------

def facts(amount: str = "50000", discount: str = "0", lines: frozenset[str] = frozenset(), kind: str = "domestic",
          path: str = "/sales/east/") -> ap.Facts:
    return ap.Facts(Decimal(amount), Decimal(discount), lines, kind, path)


def rule(name: str, priority: int, conditions: dict, steps: list | None = None, fallback: dict | None = None,
         active: bool = True) -> ap.Rule:
    return ap.parse_rule(uuid.uuid4(), name, priority, active, {
        "conditions": conditions, "steps": steps or [{"name": "Manager", "approver": {"kind": "manager"}}],
        "fallback": fallback})


def test_the_first_matching_active_rule_by_priority_applies() -> None:
    default = rule("default", 1000, {})
    big = rule("big", 10, {"min_amount": "1000000"})
    discount = rule("discount", 20, {"discount_over_percent": "15"})
    catheters = rule("catheters", 30, {"product_lines": ["catheters"], "customer_types": ["foreign"]})
    east = rule("east", 40, {"department_prefix": "/sales/east/", "max_amount": "10000"})
    off = rule("off", 1, {}, active=False)
    rules = [default, big, discount, catheters, east, off]
    assert ap.select_rule(rules, facts("50000")).name == "default"
    assert ap.select_rule(rules, facts("1000000")).name == "big"  # min is inclusive
    assert ap.select_rule(rules, facts("999999.99", discount="15.5")).name == "discount"
    assert ap.select_rule(rules, facts(discount="15")).name == "default"  # "over" 15 means more than 15
    assert ap.select_rule(rules, facts(lines=frozenset({"catheters"}), kind="foreign")).name == "catheters"
    assert ap.select_rule(rules, facts(lines=frozenset({"catheters"}), kind="domestic")).name == "default"
    assert ap.select_rule(rules, facts("9999.99")).name == "east"
    assert ap.select_rule(rules, facts("10000")).name == "default"  # max is exclusive
    assert ap.select_rule(rules, facts("9999", path="/sales/west/")).name == "default"
    with pytest.raises(Conflict) as e:
        ap.select_rule([off, big], facts())
    assert e.value.reason == "NO_APPROVAL_RULE"


def test_bad_rule_definitions_are_refused_with_the_field() -> None:
    for definition, field in [
        ({"steps": []}, "steps"),
        ({"steps": [{"name": "x", "approver": {"kind": "astrologer"}}]}, "steps[0].approver.kind"),
        ({"steps": [{"name": "x", "approver": {"kind": "role"}}]}, "steps[0].approver.role"),
        ({"steps": [{"name": "x", "approver": {"kind": "manager_level", "levels": 0}}]}, "steps[0].approver.levels"),
        ({"steps": [{"name": "x", "approver": {"kind": "manager"}}], "restart": "somewhere"}, "restart"),
        ({"conditions": {"min_amount": "10", "max_amount": "5"},
          "steps": [{"name": "x", "approver": {"kind": "manager"}}]}, "conditions.max_amount"),
    ]:
        with pytest.raises(InvalidArgument) as e:
            ap.parse_rule(uuid.uuid4(), "r", 1, True, definition)
        assert e.value.violations[0].field == field


def test_default_rule_adds_director_and_finance_from_100000() -> None:
    default = ap.parse_rule(uuid.uuid4(), "default", 1000, True, ap.default_rule_definition())
    assert [s.name for s in ap.applicable_steps(default, Decimal("99999.99"))] == ["Manager"]
    assert [s.name for s in ap.applicable_steps(default, Decimal("100000"))] == ["Manager", "Sales director",
                                                                                "Finance"]
    assert default.definition() == ap.parse_rule(default.id, "x", 1, True, default.definition()).definition()


# Chain resolution with a fake org chart ---------------------------------------------------------

async def test_each_approver_kind_resolves_from_the_org_chart(org) -> None:
    async def who(spec: dict, chosen: str = "", submitter: ap.Submitter = REP) -> tuple[str, ...]:
        resolved = await ap.resolve(ap.parse_approver(spec, "a"), None, submitter, org, chosen=chosen)
        return resolved.approver_ids

    assert await who({"kind": "manager"}) == ("mgr-east",)
    assert await who({"kind": "manager_level", "levels": 2}) == ("director",)
    assert await who({"kind": "manager_level", "levels": 3}) == ("gm",)
    assert await who({"kind": "department_head"}) == ("director",)
    assert await who({"kind": "role", "role": "finance"}) == ("finance",)
    assert await who({"kind": "user", "user_id": "auditor"}) == ("auditor",)
    assert await who({"kind": "submitter_choice", "allowed_user_ids": ["director", "gm"]}, chosen="gm") == ("gm",)
    assert "role:finance:sales" in org.calls and "head:east" in org.calls


async def test_role_all_mode_needs_everyone(org) -> None:
    org.roles["finance"] = ["finance", "finance-2"]
    resolved = await ap.resolve(ap.parse_approver({"kind": "role", "role": "finance", "mode": "all"}, "a"), None,
                                REP, org)
    assert resolved == ap.Resolved(("finance", "finance-2"), ap.Mode.ALL)
    step = ap.Step(uuid.uuid4(), uuid.uuid4(), 1, 1, "Finance", ap.ApproverSpec(ap.Kind.ROLE), 48,
                   ap.StepState.PENDING, resolved.approver_ids, resolved.mode)
    once = ap.decide(step, "finance", "finance", ap.Decision.APPROVE, "", NOW)
    assert once.state is ap.StepState.PENDING and once.approved_by == ("finance",)
    with pytest.raises(Conflict):
        ap.acting_for(once, "finance", [], NOW.date())
    twice = ap.decide(once, "finance-2", "finance-2", ap.Decision.APPROVE, "", NOW)
    assert twice.state is ap.StepState.APPROVED and twice.decided_at == NOW


async def test_a_step_that_resolves_to_nobody_takes_the_fallback(org) -> None:
    fallback = ap.parse_approver({"kind": "role", "role": "general_manager"}, "f")
    # The director's manager is gm; the head of the director's own department is the director
    # himself, who never approves his own contract: the fallback (gm) decides.
    director = ap.Submitter("director", "/sales/")
    resolved = await ap.resolve(ap.ApproverSpec(ap.Kind.DEPARTMENT_HEAD), fallback, director, org)
    assert resolved == ap.Resolved(("gm",), ap.Mode.ANY, fallback=True)
    vacant = await ap.resolve(ap.parse_approver({"kind": "role", "role": "legal"}, "a"), fallback, REP, org)
    assert vacant.approver_ids == ("gm",) and vacant.fallback
    too_high = await ap.resolve(ap.ApproverSpec(ap.Kind.MANAGER_LEVEL, levels=5), fallback, REP, org)
    assert too_high.approver_ids == ("gm",)
    with pytest.raises(Conflict) as e:
        await ap.resolve(ap.parse_approver({"kind": "role", "role": "legal"}, "a"), None, REP, org)
    assert e.value.reason == "NO_APPROVER"


def test_submitter_choice_must_be_from_the_allowed_set() -> None:
    steps = [ap.StepSpec("Manager", ap.ApproverSpec(ap.Kind.MANAGER)),
             ap.StepSpec("Expert", ap.ApproverSpec(ap.Kind.SUBMITTER_CHOICE, allowed_user_ids=("a", "b")))]
    ap.check_choices(steps, {2: "b"})
    with pytest.raises(InvalidArgument) as e:
        ap.check_choices(steps, {2: "c"})
    assert e.value.violations[0].field == "chosen_approvers[2]"


def test_only_the_approver_or_an_active_delegate_decides() -> None:
    step = ap.Step(uuid.uuid4(), uuid.uuid4(), 1, 1, "Manager", ap.ApproverSpec(ap.Kind.MANAGER), 24,
                   ap.StepState.PENDING, ("mgr-east",))
    today = NOW.date()
    assert ap.acting_for(step, "mgr-east", [], today) == "mgr-east"
    holiday = ap.Delegation(uuid.uuid4(), "mgr-east", "mgr-west", today, today + dt.timedelta(days=7))
    assert ap.acting_for(step, "mgr-west", [holiday], today) == "mgr-east"
    over = ap.Delegation(uuid.uuid4(), "mgr-east", "mgr-west", today - dt.timedelta(days=9),
                         today - dt.timedelta(days=1))
    for refused in ([over], [], [ap.Delegation(uuid.uuid4(), "director", "mgr-west", today, today)]):
        with pytest.raises(PermissionDenied):
            ap.acting_for(step, "mgr-west", refused, today)
    decided = ap.decide(step, "mgr-west", "mgr-east", ap.Decision.RETURN, "price too low", NOW)
    assert (decided.state, decided.decided_by, decided.acting_for) == (ap.StepState.RETURNED, "mgr-west", "mgr-east")


def test_reject_and_return_need_a_reason_and_a_decided_step_stays_decided() -> None:
    step = ap.Step(uuid.uuid4(), uuid.uuid4(), 1, 1, "Manager", ap.ApproverSpec(ap.Kind.MANAGER), 24,
                   ap.StepState.PENDING, ("mgr-east",), due_at=NOW)
    for decision in (ap.Decision.REJECT, ap.Decision.RETURN):
        with pytest.raises(InvalidArgument):
            ap.decide(step, "mgr-east", "mgr-east", decision, "  ", NOW)
    assert ap.is_overdue(step, NOW) and not ap.is_overdue(step, NOW - dt.timedelta(seconds=1))
    approved = ap.decide(step, "mgr-east", "mgr-east", ap.Decision.APPROVE, "", NOW)
    with pytest.raises(Conflict) as e:
        ap.decide(approved, "mgr-east", "mgr-east", ap.Decision.REJECT, "changed my mind", NOW)
    assert e.value.reason == "STEP_NOT_PENDING"
    assert not ap.is_overdue(approved, NOW)


def test_delegations_are_checked() -> None:
    today = NOW.date()
    ap.check_delegation("a", "b", today, today, today)
    for args in (("a", "a", today, today), ("a", "b", today, today - dt.timedelta(days=1)),
                 ("a", "b", today - dt.timedelta(days=5), today - dt.timedelta(days=1)),
                 ("a", "b", today, today + dt.timedelta(days=400))):
        with pytest.raises(InvalidArgument):
            ap.check_delegation(*args, today)
