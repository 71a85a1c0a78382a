"""REST in front of the contracts service: drafting, the receivable plan, submission through the
org-chart approval chain with a return and resubmission, signing, the PDF, amendments, renewals,
rules and delegations; 409 naming the rule, 403 without the permission, 412 when stale, data
scopes (R-CON-01..04)."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import uuid

import pytest

from crmkit.auth import DataScope, Principal
from crmkit.testing.principals import ADMIN, EAST_REP, FINANCE, WEST_REP

pytestmark = pytest.mark.integration

TAG = uuid.uuid4().hex[:6]
PERMS = ("contracts.read", "contracts.write", "customers.read", "customers.write")
REP = dataclasses.replace(EAST_REP, subject=f"con-rep-{TAG}", team_ids=(f"east-{TAG}",), permissions=PERMS)
OTHER_REP = dataclasses.replace(WEST_REP, subject=f"con-west-{TAG}", permissions=PERMS)
MANAGER = Principal(subject=f"con-mgr-{TAG}", roles=("sales_manager",), team_ids=(f"east-{TAG}",),
                    department_path="/sales/east/", data_scope=DataScope.TEAM,
                    permissions=(*PERMS, "contracts.approve"))
DIRECTOR = Principal(subject=f"con-dir-{TAG}", roles=("sales_director",), department_path="/sales/",
                     data_scope=DataScope.DEPARTMENT, permissions=(*PERMS, "contracts.approve"))
CFO = dataclasses.replace(FINANCE, subject=f"con-fin-{TAG}", permissions=("contracts.read", "contracts.approve"))
CFO_2 = dataclasses.replace(CFO, subject=f"con-fin2-{TAG}")
BOSS = dataclasses.replace(ADMIN, subject=f"con-admin-{TAG}", permissions=("*",))
READER = dataclasses.replace(EAST_REP, subject=f"con-reader-{TAG}", permissions=("contracts.read",))


@pytest.fixture(autouse=True)
def org_chart(contracts_org) -> None:
    contracts_org.managers |= {REP.subject: MANAGER.subject, MANAGER.subject: DIRECTOR.subject}
    contracts_org.heads["east"] = DIRECTOR.subject
    contracts_org.roles["finance"] = [CFO.subject]
    contracts_org.users |= {p.subject for p in (REP, MANAGER, DIRECTOR, CFO, CFO_2)}


def body(qty: str = "100", **fields) -> dict:
    """qty × 1000 net, 13 % tax: 100 → 113,000.00."""
    return {"customer_id": str(uuid.uuid4()), "title": "Catheters 2027", "customer_name": "华东医疗",
            "start_date": "2027-01-01", "end_date": "2027-12-31",
            "lines": [{"product": "Catheter 6F", "specification": "PTFE", "quantity": qty, "unit": "pcs",
                       "unit_price": "1000", "tax_rate_percent": "13"}]} | fields


async def customer(client, auth, principal: Principal = REP, origin: str = "domestic") -> str:
    """A customer of `principal`'s: what a contract names must exist and be theirs (R-SEC-02)."""
    created = await client.post("/api/v1/customers", json={"name": f"华东医疗 {uuid.uuid4().hex[:8]}",
                                                           "origin": origin}, headers=auth(principal))
    assert created.status_code == 201, created.text
    return created.json()["id"]


async def draft(client, auth, qty: str = "100", principal: Principal = REP, origin: str = "domestic",
                **fields) -> dict:
    fields.setdefault("customer_id", await customer(client, auth, principal, origin))
    created = await client.post("/api/v1/contracts", json=body(qty, **fields), headers=auth(principal))
    assert created.status_code == 201, created.text
    return created.json()


async def planned(client, auth, qty: str = "100") -> dict:
    c = await draft(client, auth, qty)
    total = c["amount"]["amount"]
    r = await client.put(f"/api/v1/contracts/{c['id']}/receivable-plan", headers=auth(REP),
                         json={"instalments": [{"due_date": "2027-01-15", "amount": total, "label": "full"}]})
    assert r.status_code == 200, r.text
    return r.json()


async def pending(client, auth, principal: Principal, contract_id: str) -> dict:
    r = await client.get("/api/v1/approvals", headers=auth(principal))
    assert r.status_code == 200, r.text
    [step] = [s for s in r.json()["items"] if s["contract_id"] == contract_id]
    return step


async def act(client, auth, principal: Principal, contract_id: str, decision: str = "approve", reason: str = ""):
    step = await pending(client, auth, principal, contract_id)
    return await client.post(f"/api/v1/approvals/{step['id']}/{decision}", json={"reason": reason},
                             headers=auth(principal))


async def test_draft_plan_submit_return_resubmit_approve_sign_over_rest(client, auth, assert_problem) -> None:
    c = await draft(client, auth)
    assert c["contract_number"].startswith(f"CON-{dt.datetime.now(dt.UTC).year}-") and c["status"] == "draft"
    assert c["amount"] == {"amount": "113000.00", "currency": "CNY"} and c["net_total"]["amount"] == "100000.00"
    url = f"/api/v1/contracts/{c['id']}"
    read = await client.get(url, headers=auth(REP))
    assert read.headers["etag"] == '"v1"'
    no_plan = await client.post(f"{url}/submit", headers=auth(REP))
    assert_problem(no_plan, 409, reason="PLAN_REQUIRED")
    wrong = await client.put(f"{url}/receivable-plan", headers=auth(REP), json={"instalments": [
        {"due_date": "2027-01-15", "amount": "100000.00"}]})
    assert_problem(wrong, 422, reason="PLAN_TOTAL_MISMATCH", fields=("instalments",))
    stale = await client.put(f"{url}/receivable-plan", headers=auth(REP) | {"If-Match": '"v9"'}, json={
        "instalments": [{"due_date": "2027-01-15", "amount": "113000.00"}]})
    assert_problem(stale, 412, reason="STALE_VERSION")
    plan = await client.put(f"{url}/receivable-plan", headers=auth(REP) | {"If-Match": '"v1"'}, json={
        "instalments": [{"due_date": "2027-01-15", "amount": "33900.00", "label": "deposit"},
                        {"due_date": "2027-04-01", "amount": "79100.00", "label": "on delivery"}]})
    assert plan.status_code == 200, plan.text
    assert plan.headers["etag"] == '"v2"'
    got = (await client.get(f"{url}/receivable-plan", headers=auth(REP))).json()
    assert (got["total"]["amount"], got["contract_amount"]["amount"], [i["label"] for i in got["instalments"]]) == (
        "113000.00", "113000.00", ["deposit", "on delivery"])
    submitted = await client.post(f"{url}/submit", headers=auth(REP))
    assert submitted.status_code == 200, submitted.text
    assert [(s["name"], s["approver_ids"], s["state"]) for s in submitted.json()["items"]] == [
        ("Manager", [MANAGER.subject], "pending"), ("Sales director", [DIRECTOR.subject], "waiting"),
        ("Finance", [CFO.subject], "waiting")]
    sign_early = await client.post(f"{url}/sign", headers=auth(REP))
    assert_problem(sign_early, 409, reason="SIGN_ONLY_WHEN_APPROVED")
    assert (await act(client, auth, MANAGER, c["id"])).status_code == 200
    no_reason = await act(client, auth, DIRECTOR, c["id"], "return")
    assert_problem(no_reason, 422, fields=("reason",))
    returned = await act(client, auth, DIRECTOR, c["id"], "return", "deposit must be 30 %")
    assert returned.status_code == 200, returned.text
    assert returned.json()["contract"]["status"] == "returned"
    assert (await client.post(f"{url}/submit", headers=auth(REP))).status_code == 200
    for approver in (MANAGER, DIRECTOR, CFO):
        decided = await act(client, auth, approver, c["id"])
        assert decided.status_code == 200, decided.text
    assert decided.json()["contract"]["status"] == "approved"
    steps = (await client.get(f"{url}/approval-steps", headers=auth(REP))).json()["items"]
    assert [(s["attempt"], s["position"], s["state"]) for s in steps] == [
        (1, 1, "approved"), (1, 2, "returned"), (1, 3, "cancelled"),
        (2, 1, "approved"), (2, 2, "approved"), (2, 3, "approved")]
    assert steps[1]["reason"] == "deposit must be 30 %" and steps[1]["decided_by"] == DIRECTOR.subject
    signed = await client.post(f"{url}/sign", json={"sign_date": "2026-11-20"}, headers=auth(REP))
    assert signed.status_code == 200, signed.text
    assert (signed.json()["status"], signed.json()["sign_date"]) == ("signed", "2026-11-20")
    # Finance reads signed contracts (and nothing unsigned).
    assert (await client.get(url, headers=auth(CFO))).status_code == 200
    pdf = await client.get(f"{url}/document", headers=auth(REP))
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF-") and b"/STSong-Light" in pdf.content
    assert c["contract_number"] in pdf.headers["content-disposition"]


async def test_amend_then_read_every_version(client, auth, contracts_org, assert_problem) -> None:
    c = await planned(client, auth, qty="10")
    url = f"/api/v1/contracts/{c['id']}"
    patched = await client.patch(url, json={"end_date": "2027-06-30", "title": "Catheters H1"},
                                 headers=auth(REP) | {"If-Match": f'"v{c["revision"]}"'})
    assert patched.status_code == 200, patched.text
    assert (patched.json()["end_date"], patched.json()["title"], patched.json()["amount"]["amount"]) == (
        "2027-06-30", "Catheters H1", "11300.00")  # the lines stay
    await client.post(f"{url}/submit", headers=auth(REP))
    await act(client, auth, MANAGER, c["id"])
    await client.post(f"{url}/sign", headers=auth(REP))
    terms = {k: v for k, v in body("20").items() if k != "customer_id"}
    amended = await client.post(f"{url}/amendments", headers=auth(REP), json=terms | {
        "reason": "more units", "instalments": [{"due_date": "2027-02-01", "amount": "22600.00", "label": "full"}]})
    assert amended.status_code == 200, amended.text
    assert (amended.json()["version"], amended.json()["amount"]["amount"]) == (2, "22600.00")
    versions = (await client.get(f"{url}/amendments", headers=auth(MANAGER))).json()["items"]
    assert [(v["version"], v["contract"]["amount"]["amount"], v["reason"]) for v in versions] == [
        (1, "11300.00", "signed"), (2, "22600.00", "more units")]
    terminated = await client.post(f"{url}/terminate", json={"reason": "customer closed"}, headers=auth(REP))
    assert terminated.json()["status"] == "terminated"
    again = await client.post(f"{url}/terminate", json={"reason": "again"}, headers=auth(REP))
    assert_problem(again, 409, reason="TERMINATE_ONLY_IN_FORCE")


async def test_permissions_and_scopes(client, auth, assert_problem) -> None:
    c = await draft(client, auth)
    url = f"/api/v1/contracts/{c['id']}"
    assert_problem(await client.get(url, headers=auth(OTHER_REP)), 404)
    assert_problem(await client.get(url, headers=auth(CFO)), 404)  # not signed: invisible to finance
    assert_problem(await client.post("/api/v1/contracts", json=body(), headers=auth(READER)), 403)
    assert_problem(await client.get("/api/v1/approvals", headers=auth(REP)), 403)  # no contracts.approve
    listed = (await client.get("/api/v1/contracts", headers=auth(MANAGER))).json()["items"]
    assert c["id"] in {x["id"] for x in listed}
    rules = (await client.get("/api/v1/approval-rules", headers=auth(REP))).json()["items"]
    default = next(r for r in rules if r["name"].startswith("Default"))
    assert [s["approver"]["kind"] for s in default["steps"]] == ["manager", "department_head", "role"]
    fallback = default["fallback"]
    assert (fallback["kind"], fallback["role"], fallback["mode"]) == ("role", "general_manager", "any")
    denied = await client.post("/api/v1/approval-rules", headers=auth(REP), json={
        "name": f"Mine {TAG}", "priority": 1, "steps": [{"name": "x", "approver": {"kind": "manager"}}]})
    assert_problem(denied, 403)
    assert_problem(await client.get("/api/v1/renewals?within=abc", headers=auth(REP)), 422, fields=("within",))


async def test_concurrent_decisions_on_one_step_one_wins(client, auth, contracts_org) -> None:
    contracts_org.roles["finance"] = [CFO.subject, CFO_2.subject]
    c = await planned(client, auth)
    url = f"/api/v1/contracts/{c['id']}"
    await client.post(f"{url}/submit", headers=auth(REP))
    await act(client, auth, MANAGER, c["id"])
    await act(client, auth, DIRECTOR, c["id"])
    step = await pending(client, auth, CFO, c["id"])
    results = await asyncio.gather(
        client.post(f"/api/v1/approvals/{step['id']}/approve", headers=auth(CFO)),
        client.post(f"/api/v1/approvals/{step['id']}/reject", json={"reason": "no"}, headers=auth(CFO_2)))
    assert sorted(r.status_code for r in results) == [200, 409]
    loser = next(r for r in results if r.status_code == 409)
    assert loser.json()["reason"] == "STEP_NOT_PENDING"


async def test_rules_delegations_and_renewals(client, auth, assert_problem) -> None:
    today = dt.datetime.now(dt.UTC).date()
    rule = await client.post("/api/v1/approval-rules", headers=auth(BOSS), json={
        "name": f"Foreign {TAG}", "priority": 10, "conditions": {"customer_types": ["foreign"]},
        "steps": [{"name": "Director", "approver": {"kind": "manager_level", "levels": 2}, "due_hours": 12}],
        "restart": "returning_step"})
    assert rule.status_code == 201, rule.text
    [step] = rule.json()["steps"]
    assert (step["name"], step["approver"]["kind"], step["approver"]["levels"], step["due_hours"]) == (
        "Director", "manager_level", 2, 12)
    delegation = await client.post("/api/v1/approvals/delegations", headers=auth(DIRECTOR), json={
        "delegate_id": MANAGER.subject, "start_date": today.isoformat(),
        "end_date": (today + dt.timedelta(days=2)).isoformat()})
    assert delegation.status_code == 201, delegation.text
    c = await draft(client, auth, "10", origin="foreign", start_date=today.isoformat(),
                    end_date=(today + dt.timedelta(days=90)).isoformat())
    url = f"/api/v1/contracts/{c['id']}"
    await client.put(f"{url}/receivable-plan", headers=auth(REP), json={
        "instalments": [{"due_date": today.isoformat(), "amount": "11300.00"}]})
    steps = (await client.post(f"{url}/submit", headers=auth(REP))).json()["items"]
    assert [(s["name"], s["approver_ids"]) for s in steps] == [("Director", [DIRECTOR.subject])]
    decided = await act(client, auth, MANAGER, c["id"])  # as the director's delegate
    assert decided.status_code == 200, decided.text
    assert (decided.json()["step"]["decided_by"], decided.json()["step"]["acting_for"]) == (
        MANAGER.subject, DIRECTOR.subject)
    fields = {k: v for k, v in rule.json().items() if k not in ("id", "revision")}
    off = await client.put(f"/api/v1/approval-rules/{rule.json()['id']}", headers=auth(BOSS),
                           json=fields | {"active": False})
    assert off.status_code == 200 and off.json()["revision"] == 2 and not off.json()["active"]
    signed = await client.post(f"{url}/sign", headers=auth(REP))
    assert signed.json()["status"] == "active"  # the term has begun
    soon = (await client.get("/api/v1/renewals?within=6m", headers=auth(REP))).json()["items"]
    assert c["id"] in [x["id"] for x in soon]
    assert c["id"] not in [x["id"] for x in (await client.get("/api/v1/renewals?within=6m",
                                                              headers=auth(OTHER_REP))).json()["items"]]
    renewal = await client.post(f"{url}/renewal", headers=auth(REP))
    assert renewal.status_code == 201, renewal.text
    assert (renewal.json()["predecessor_id"], renewal.json()["start_date"]) == (
        c["id"], (today + dt.timedelta(days=91)).isoformat())
    revoked = await client.delete(f"/api/v1/approvals/delegations/{delegation.json()['id']}", headers=auth(DIRECTOR))
    assert revoked.json()["revoked"] is True
