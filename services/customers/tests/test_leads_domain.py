"""Lead rules and round-robin assignment without a database (R-LEAD-01)."""

from __future__ import annotations

import uuid
from collections import Counter

import pytest

from crm_customers.app.tiers import tier_of
from crm_customers.domain import assignment
from crm_customers.domain.assignment import Pool, Rule
from crm_customers.domain.leads import Lead, LeadStatus, change_status, check_convertible, normalise_lead
from crm_customers.domain.model import LifecycleStage
from crmkit.errors import Conflict, InvalidArgument


def lead(**fields: object) -> Lead:
    return Lead(**({"id": uuid.uuid4(), "name": "Li Lei", "source": "website", "department_path": "/m/"} | fields))


def rule(**fields: object) -> Rule:
    return Rule(**({"id": uuid.uuid4(), "name": "r", "user_ids": ("a", "b", "c")} | fields))


def test_lead_is_cleaned_and_phone_normalised() -> None:
    got = normalise_lead(lead(name="  Li　Lei ", phone="138 0013 8000", email="LI@Example.COM", source="Website",
                              channel="WeChat", industry="Machinery"))
    assert (got.name, got.phone, got.source, got.channel, got.industry) == (
        "Li Lei", "+8613800138000", "website", "wechat", "machinery")
    assert got.email == "LI@example.com"


def test_lead_problems_are_reported_together() -> None:
    with pytest.raises(InvalidArgument) as err:
        normalise_lead(lead(name="", source="", phone="12", email="not-an-email"))
    assert {v.field for v in err.value.violations} == {"name", "source", "phone", "email"}


def test_lead_needs_a_way_to_reach_it() -> None:
    with pytest.raises(InvalidArgument) as err:
        normalise_lead(lead())
    assert [v.field for v in err.value.violations] == ["phone"]
    assert normalise_lead(lead(company="Acme")).company == "Acme"


def test_status_moves_and_the_final_converted() -> None:
    assert change_status(lead(), LeadStatus.QUALIFIED).status is LeadStatus.QUALIFIED
    with pytest.raises(Conflict) as err:
        change_status(lead(), LeadStatus.CONVERTED)
    assert err.value.reason == "CONVERT_TO_CONVERT"
    with pytest.raises(Conflict) as err:
        change_status(lead(status=LeadStatus.CONVERTED), LeadStatus.WORKING)
    assert err.value.reason == "LEAD_CONVERTED"
    with pytest.raises(Conflict) as err:
        check_convertible(lead(status=LeadStatus.UNQUALIFIED))
    assert err.value.reason == "LEAD_UNQUALIFIED"


def test_lifecycle_vocabulary_is_the_shared_one() -> None:
    assert lead().lifecycle_stage is LifecycleStage.LEAD
    assert lead(status=LeadStatus.CONVERTED).lifecycle_stage is LifecycleStage.PROSPECT


def test_rule_matching_and_order() -> None:
    east = rule(name="east", priority=1, regions=("East",))
    machinery = rule(name="machinery", priority=2, industries=("machinery",))
    anything = rule(name="fallback", priority=9)
    off = rule(name="off", priority=0, active=False)
    rules = [anything, machinery, east, off]
    assert [r.name for r in assignment.matching(rules, region="east", industry="machinery")] == [
        "east", "machinery", "fallback"]
    assert [r.name for r in assignment.matching(rules, region="west", industry="food")] == ["fallback"]


def test_rule_validation() -> None:
    with pytest.raises(InvalidArgument) as err:
        assignment.normalise_rule(rule(name="", user_ids=(), cap_count=-1, cap_days=0))
    assert {v.field for v in err.value.violations} == {"name", "user_ids", "cap_count", "cap_days"}
    assert assignment.normalise_rule(rule(user_ids=("a", " a", "b"))).user_ids == ("a", "b")


def test_round_robin_spreads_evenly_and_keeps_the_cursor() -> None:
    r = rule()
    pool = Pool(rule=r, cursor=1, loads=dict.fromkeys(r.user_ids, 0))
    picks = [assignment.choose({r.id: pool}, [r]).owner_id for _ in range(10)]
    # Starts where the cursor points (b), then strict rotation.
    assert picks[:4] == ["b", "c", "a", "b"]
    counts = Counter(picks)
    assert max(counts.values()) - min(counts.values()) <= 1
    assert pool.cursor == 11


def test_capped_people_are_skipped_and_then_nobody_is_left() -> None:
    r = rule(cap_count=2)
    pool = Pool(rule=r, cursor=0, loads={"a": 2, "b": 0, "c": 1})
    picks = [assignment.choose({r.id: pool}, [r]) for _ in range(4)]
    assert [p.owner_id for p in picks[:3]] == ["b", "c", "b"]
    assert picks[3].owner_id == "" and "capacity" in picks[3].reason
    assert pool.loads == {"a": 2, "b": 2, "c": 2}


def test_falls_through_to_the_next_rule_and_counts_shared_people() -> None:
    first = rule(name="first", priority=1, user_ids=("a",), cap_count=1)
    second = rule(name="second", priority=2, user_ids=("a", "b"), cap_count=1)
    pools = {first.id: Pool(first, 0, {"a": 0}), second.id: Pool(second, 0, {"a": 0, "b": 0})}
    one = assignment.choose(pools, [first, second])
    two = assignment.choose(pools, [first, second])
    three = assignment.choose(pools, [first, second])
    assert (one.owner_id, one.rule) == ("a", first)
    # a is at the cap by the first rule; the second rule must not give a another one.
    assert (two.owner_id, two.rule) == ("b", second)
    assert three.owner_id == "" and "'first', 'second'" in three.reason
    assert assignment.choose(pools, []).reason == "no assignment rule matches the lead"


@pytest.mark.parametrize(("total", "tier"), [("0", "C"), ("999999.99", "C"), ("1000000", "B"), ("5000000", "A")])
def test_tier_thresholds(total: str, tier: str) -> None:
    from decimal import Decimal
    assert tier_of(Decimal(total), a_from=Decimal("5000000"), b_from=Decimal("1000000")) == tier
