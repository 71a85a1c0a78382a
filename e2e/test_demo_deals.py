"""The demo is a complete company (issue 22): `make dev` seeds a few deals at every stage once, so
a first look at the funnel, the renewals and the aging report is not empty.

`seed_deals` runs twice against the session's suite: the second run creates nothing. The other
scenarios of the session create records too, so the figures are read before and after the seed
(the funnel) or for the seeded customers and contracts only (renewals, aging, instalments)."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from decimal import Decimal
from typing import Any

import httpx
import pytest

from crm_devstack import Suite, demo

TODAY = dt.date.today()


def _get(api: httpx.Client, path: str, person: Any, **params: Any) -> Any:
    r = api.get(path, headers=person.headers, params=params)
    assert r.status_code == 200, f"GET {path} -> {r.status_code}: {r.text}"
    return r.json()


def _funnel(api: httpx.Client, director: Any) -> dict[str, tuple[int, Decimal]]:
    stages = _get(api, "/api/v1/reports/funnel", director)["stages"]
    return {s["name"]: (s["count"], Decimal(s["amount"]["amount"])) for s in stages}


@pytest.fixture(scope="module")
def seeded(suite: Suite, sign_in) -> dict[str, Any]:
    """Seeds the demo deals twice; what the first run made, the funnel before, after each run."""
    simulator = next(h.url for h in suite.config.http_services if h.name == "sap-simulator")
    director = sign_in("sun.hao")
    with httpx.Client(base_url=suite.gateway_url, timeout=30) as api:
        before = _funnel(api, director)
        lines: list[str] = []
        made = demo.seed_deals(suite.gateway_url, simulator, log=lines.append)
        after_first = _funnel(api, director)
        again: list[str] = []
        made_again = demo.seed_deals(suite.gateway_url, simulator, log=again.append)
        after_second = _funnel(api, director)
    return {"made": made, "lines": lines, "made_again": made_again, "again": again,
            "before": before, "after_first": after_first, "after_second": after_second}


def test_a_second_run_creates_nothing(seeded, suite: Suite, sign_in) -> None:
    assert seeded["made"]["contracts"] and len(seeded["lines"]) >= 10
    assert seeded["made_again"] == {} and seeded["again"] == [
        f"demo deals: exist already ({demo.MARKER_CUSTOMER['name']}), not seeding"]
    assert seeded["after_second"] == seeded["after_first"]
    auditor = sign_in("gao.shan")  # reads every customer (tax ids masked)
    with httpx.Client(base_url=suite.gateway_url, timeout=30) as api:
        named = _get(api, "/api/v1/customers", auditor, name=demo.MARKER_CUSTOMER["name"])["items"]
    assert [c["id"] for c in named] == [seeded["made"]["customer"]]


def test_the_funnel_shows_the_seeded_opportunities(seeded, suite: Suite, sign_in) -> None:
    """Per stage, the funnel grew by exactly the seeded opportunities and their amounts."""
    director = sign_in("sun.hao")
    with httpx.Client(base_url=suite.gateway_url, timeout=30) as api:
        opportunities = [_get(api, f"/api/v1/opportunities/{i}", director) for i in seeded["made"]["opportunities"]]
    expected_counts = Counter(stage if not stage.startswith("lost:") else "Lost" for *_, stage in demo.OPEN_DEALS)
    expected_counts["Won"] = len(demo.WON_DEALS) + 1  # and the signed deal
    expected_amounts = {stage: Decimal(0) for stage in expected_counts}
    for _, _, amount, stage in demo.OPEN_DEALS:
        expected_amounts["Lost" if stage.startswith("lost:") else stage] += Decimal(amount)
    expected_amounts["Won"] = sum((Decimal(o["amount"]["amount"]) for o in opportunities if o["status"] == "won"),
                                  Decimal(0))
    assert [o["status"] for o in opportunities].count("won") == expected_counts["Won"]
    before, after = seeded["before"], seeded["after_first"]
    grown = {name: (after[name][0] - before[name][0], after[name][1] - before[name][1]) for name in after}
    assert {name: g for name, g in grown.items() if g != (0, 0)} == {
        stage: (expected_counts[stage], expected_amounts[stage]) for stage in expected_counts}
    assert all(after[name][0] > 0 for name in ("Qualification", "Needs analysis", "Proposal", "Negotiation",
                                                "Won", "Lost"))


def _signed_deal_figures() -> tuple[Decimal, Decimal]:
    """The signed deal's total (13 % tax) and its 30 % deposit, from the seed's own data."""
    _, _, quantity, unit_price = demo.SIGNED_DEAL
    total = (Decimal(quantity) * Decimal(unit_price) * Decimal("1.13")).quantize(Decimal("0.01"))
    return total, (total * Decimal("0.3")).quantize(Decimal("0.01"))


def test_renewals_aging_and_the_overdue_deposit_show_the_signed_deal(seeded, suite: Suite, sign_in) -> None:
    director, finance = sign_in("sun.hao"), sign_in("liu.yang")
    contract_id = seeded["made"]["contracts"]["signed"]
    customer_id = seeded["made"]["customer"]
    total, deposit = _signed_deal_figures()
    with httpx.Client(base_url=suite.gateway_url, timeout=30) as api:
        # renewals: the frame contract ends in 60 days, within the next three months
        renewals = _get(api, "/api/v1/renewals", director, within="3m")["items"]
        [renewal] = [c for c in renewals if c["id"] == contract_id]
        assert (renewal["status"], renewal["end_date"]) == ("active", (TODAY + dt.timedelta(days=60)).isoformat())
        assert renewal["amount"]["amount"] == str(total)

        # aging: SAP's invoice for the whole order, open and not yet due (net 30)
        rows = _get(api, "/api/v1/reports/aging", finance, group_by="customer")["rows"]
        [row] = [r for r in rows if r["key"] == customer_id]
        assert (row["label"], row["open_invoices"]) == (demo.MARKER_CUSTOMER["name"], 1)
        assert (row["current"]["amount"], row["total"]["amount"]) == (str(total), str(total))
        invoice = _get(api, f"/api/v1/invoices/{seeded['made']['invoice']}", finance)
        assert (invoice["status"], invoice["total"]["amount"]) == ("open", str(total))

        # the receivable plan: the deposit was due 40 days ago and nothing is received
        instalments = _get(api, "/api/v1/instalments", finance, contract_id=contract_id)["items"]
        first = min(instalments, key=lambda i: i["sequence"])
        assert first["due_date"] == (TODAY - dt.timedelta(days=40)).isoformat()
        assert (first["state"], first["amount"]["amount"], first["outstanding"]["amount"]) == (
            "overdue", str(deposit), str(deposit))
        awaiting = _get(api, "/api/v1/reports/awaiting-payment", finance)["items"]
        [late] = [c for c in awaiting if c["contract_id"] == contract_id]
        assert (late["overdue"]["amount"], late["overdue_instalments"], late["outstanding"]["amount"]) == (
            str(deposit), 1, str(total))


def test_rejecting_a_pending_step_without_a_body_asks_for_a_reason(seeded, suite: Suite, sign_in) -> None:
    """The seeded contract in approval waits for its first approver: rejecting it with no body is
    a 422 naming `reason`, not "body: Field required", and the step stays pending."""
    contract_id = seeded["made"]["contracts"]["in approval"]
    approver = sign_in("chen.jie")  # zhang.yu's manager, the first step of the chain
    with httpx.Client(base_url=suite.gateway_url, timeout=30) as api:
        waiting = _get(api, "/api/v1/approvals", approver)["items"]
        [step] = [s for s in waiting if s["contract_id"] == contract_id]
        r = api.post(f"/api/v1/approvals/{step['id']}/reject", headers=approver.headers)
        assert r.status_code == 422, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["errors"] == [{"field": "reason", "message": "a reason is required to reject"}]
        assert "Field required" not in r.json()["detail"]
        still = _get(api, "/api/v1/approvals", approver)["items"]
        assert [s["state"] for s in still if s["id"] == step["id"]] == ["pending"]
        contract = _get(api, f"/api/v1/contracts/{contract_id}", approver)
        assert contract["status"] == "pending_approval"
