"""REST in front of the opportunities service: pipelines, opportunities with stage history and
won/lost, quotes through acceptance, the funnel; 409 for broken rules, 403 without the
permission, data scopes (R-OPP-01, R-OPP-03, R-OPP-04)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import uuid

import pytest

from crmkit.testing.principals import ADMIN, DIRECTOR, EAST_REP, MARKETING, WEST_REP

pytestmark = pytest.mark.integration

PERMS = ("opportunities.read", "opportunities.write", "customers.read", "customers.write")
REP = dataclasses.replace(EAST_REP, subject=f"opp-rep-{uuid.uuid4().hex[:6]}", permissions=PERMS)
OTHER_REP = dataclasses.replace(WEST_REP, subject=f"opp-west-{uuid.uuid4().hex[:6]}", permissions=PERMS)
BOSS = dataclasses.replace(DIRECTOR, subject=f"opp-director-{uuid.uuid4().hex[:6]}",
                           permissions=("opportunities.read",))
VALID = (dt.date.today() + dt.timedelta(days=10)).isoformat()


async def _stages(client, auth) -> dict[str, str]:
    response = await client.get("/api/v1/pipelines", headers=auth(REP))
    assert response.status_code == 200, response.text
    default = next(p for p in response.json()["items"] if p["is_default"])
    return {s["name"]: s["id"] for s in default["stages"]}


async def _customer(client, auth, principal=REP) -> str:
    response = await client.post("/api/v1/customers", json={"name": f"Opp customer {uuid.uuid4().hex[:8]}"},
                                 headers=auth(principal))
    assert response.status_code == 201, response.text
    return response.json()["id"]


async def _create(client, auth, principal=REP, **fields) -> dict:
    if "customer_id" not in fields:
        fields["customer_id"] = await _customer(client, auth, principal)
    body = {"name": "Valves", "amount": {"amount": "1000", "currency": "CNY"}}
    response = await client.post("/api/v1/opportunities", json=body | fields, headers=auth(principal))
    assert response.status_code == 201, response.text
    return response.json()


async def test_opportunity_lifecycle_over_rest(client, auth, assert_problem) -> None:
    stages = await _stages(client, auth)
    assert list(stages) == ["Qualification", "Needs analysis", "Proposal", "Negotiation", "Won", "Lost"]
    created = await _create(client, auth, expected_close_date="2027-02-28")
    assert created["stage_id"] == stages["Qualification"] and created["probability"] == 10
    assert created["amount"] == {"amount": "1000.00", "currency": "CNY"} and created["status"] == "open"
    url = f"/api/v1/opportunities/{created['id']}"
    read = await client.get(url, headers=auth(REP))
    assert read.headers["etag"] == '"v1"'
    moved = await client.post(f"{url}/stage", json={"stage_id": stages["Proposal"]},
                              headers=auth(REP) | {"If-Match": '"v1"'})
    assert moved.status_code == 200, moved.text
    assert moved.json()["probability"] == 50 and moved.headers["etag"] == '"v2"'
    stale = await client.post(f"{url}/stage", json={"stage_id": stages["Negotiation"]},
                              headers=auth(REP) | {"If-Match": '"v1"'})
    assert_problem(stale, 412, reason="STALE_VERSION")
    terminal = await client.post(f"{url}/stage", json={"stage_id": stages["Won"]}, headers=auth(REP))
    assert_problem(terminal, 409, reason="TERMINAL_STAGE_NEEDS_OUTCOME")
    unknown_reason = await client.post(f"{url}/lost", json={"reason": "weather"}, headers=auth(REP))
    assert_problem(unknown_reason, 422, reason="INVALID_ARGUMENT", fields=("reason",))
    reasons = (await client.get("/api/v1/lost-reasons", headers=auth(REP))).json()["items"]
    assert "price" in {r["code"] for r in reasons}
    lost = await client.post(f"{url}/lost", json={"reason": "price", "note": "too dear"}, headers=auth(REP))
    assert lost.status_code == 200 and lost.json()["status"] == "lost" and lost.json()["lost_reason"] == "price"
    again = await client.post(f"{url}/stage", json={"stage_id": stages["Negotiation"]}, headers=auth(REP))
    assert_problem(again, 409, reason="OPPORTUNITY_CLOSED")
    assert_problem(await client.post(f"{url}/won", json={}, headers=auth(REP)), 409, reason="OPPORTUNITY_CLOSED")
    history = (await client.get(f"{url}/stage-history", headers=auth(REP))).json()["items"]
    assert [(h["from_stage_id"], h["to_stage_id"], h["changed_by"]) for h in history] == [
        (None, stages["Qualification"], REP.subject), (stages["Qualification"], stages["Proposal"], REP.subject),
        (stages["Proposal"], stages["Lost"], REP.subject)]
    other = await _create(client, auth, name="Pumps")
    won = await client.post(f"/api/v1/opportunities/{other['id']}/won", json={}, headers=auth(REP))
    assert won.status_code == 200 and won.json()["status"] == "won" and won.json()["probability"] == 100


async def test_quote_acceptance_wins_the_opportunity(client, auth, assert_problem) -> None:
    opportunity = await _create(client, auth, name="Custom gearbox")
    body = {"opportunity_id": opportunity["id"], "valid_until": VALID, "lines": [
        {"product": "Gearbox", "specification": "ratio 1:40", "quantity": "3", "unit_price": "33.335",
         "discount_percent": "10", "tax_rate_percent": "13"}]}
    created = await client.post("/api/v1/quotes", json=body, headers=auth(REP) | {"Idempotency-Key": uuid.uuid4().hex})
    assert created.status_code == 201, created.text
    quote = created.json()
    assert quote["status"] == "draft" and quote["quote_version"] == 1
    assert quote["lines"][0]["net_amount"] == "90.00" and quote["gross_total"] == {"amount": "101.70",
                                                                                  "currency": "CNY"}
    url = f"/api/v1/quotes/{quote['id']}"
    assert_problem(await client.post(f"{url}/accept", json={}, headers=auth(REP)), 409, reason="QUOTE_NOT_SENT")
    sent = await client.post(f"{url}/send", json={}, headers=auth(REP))
    assert sent.status_code == 200 and sent.json()["status"] == "sent" and sent.json()["sent_at"]
    accepted = await client.post(f"{url}/accept", json={}, headers=auth(REP))
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["quote"]["status"] == "accepted"
    assert accepted.json()["opportunity"]["status"] == "won"
    assert accepted.json()["opportunity"]["amount"]["amount"] == "90.00"
    listed = (await client.get("/api/v1/quotes", params={"opportunity_id": opportunity["id"]},
                               headers=auth(REP))).json()["items"]
    assert [q["id"] for q in listed] == [quote["id"]]
    bad = await client.post("/api/v1/quotes", json=body | {"lines": [{"product": "X", "quantity": "1.5.2",
                                                                      "unit_price": "1"}]}, headers=auth(REP))
    assert_problem(bad, 422)


async def test_permissions_and_scopes(client, auth, assert_problem) -> None:
    mine = await _create(client, auth, name="Scoped")
    assert_problem(await client.get(f"/api/v1/opportunities/{mine['id']}", headers=auth(OTHER_REP)), 404)
    listed = (await client.get("/api/v1/opportunities", headers=auth(OTHER_REP))).json()["items"]
    assert mine["id"] not in {o["id"] for o in listed}
    # Marketing's token carries no opportunities permission; the director may read but not write.
    assert_problem(await client.get("/api/v1/opportunities", headers=auth(MARKETING)), 403)
    assert (await client.get(f"/api/v1/opportunities/{mine['id']}", headers=auth(BOSS))).status_code == 200
    assert_problem(await client.post(f"/api/v1/opportunities/{mine['id']}/won", json={}, headers=auth(BOSS)), 403)
    admin_only = await client.post("/api/v1/lost-reasons", json={"code": "rep_tried", "name": "x"},
                                   headers=auth(REP))
    assert_problem(admin_only, 403)
    code = f"r_{uuid.uuid4().hex[:8]}"
    added = await client.post("/api/v1/lost-reasons", json={"code": code, "name": "Quality"}, headers=auth(ADMIN))
    assert added.status_code == 201, added.text


async def test_the_customer_named_must_exist_in_the_callers_scope(client, auth, assert_problem) -> None:
    """R-SEC-02, issue 12: another scope's customer and a random id answer alike (404, no leak);
    a customer created a moment ago is usable at once."""
    theirs = await _customer(client, auth, OTHER_REP)
    for customer_id in (theirs, str(uuid.uuid4())):
        refused = await client.post("/api/v1/opportunities", json={
            "customer_id": customer_id, "name": "Poached", "amount": {"amount": "1", "currency": "CNY"}},
            headers=auth(REP))
        assert_problem(refused, 404, reason="REFERENCE_NOT_FOUND")
        assert customer_id not in refused.text
    fresh = await _customer(client, auth, REP)
    assert (await _create(client, auth, customer_id=fresh))["customer_id"] == fresh


async def test_funnel_report(client, auth, assert_problem) -> None:
    stages = await _stages(client, auth)
    rep = dataclasses.replace(REP, subject=f"funnel-{uuid.uuid4().hex[:6]}")
    a = await _create(client, auth, rep, amount={"amount": "100", "currency": "CNY"})
    b = await _create(client, auth, rep, amount={"amount": "250.50", "currency": "CNY"})
    await client.post(f"/api/v1/opportunities/{b['id']}/stage", json={"stage_id": stages["Needs analysis"]},
                      headers=auth(rep))
    response = await client.get("/api/v1/reports/funnel", params={"owner_id": rep.subject}, headers=auth(rep))
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["currency"] == "CNY"
    by_name = {s["name"]: s for s in report["stages"]}
    assert by_name["Qualification"]["count"] == 1 and by_name["Qualification"]["amount"]["amount"] == "100.00"
    assert by_name["Needs analysis"]["amount"]["amount"] == "250.50"
    assert by_name["Qualification"]["reached"] == 2 and by_name["Qualification"]["conversion_to_next"] == "50.0"
    assert by_name["Won"]["conversion_to_next"] is None
    bad = await client.get("/api/v1/reports/funnel", params={"from": "2027-01-01", "to": "2026-01-01"},
                           headers=auth(rep))
    assert_problem(bad, 422, reason="INVALID_ARGUMENT")
    assert a["id"]


async def test_an_action_without_a_body_needs_no_content_type(client, auth):
    # POST /…/accept-style actions carry no body; refusing them for lacking a content type would
    # force every client to send `{}`. A body of the wrong type is still refused.
    h = auth(REP)
    bare = await client.post("/api/v1/quotes/00000000-0000-0000-0000-000000000000/send", headers=h)
    assert bare.status_code == 404, bare.text  # reached the service, which knows no such quote
    typed = await client.post("/api/v1/quotes/00000000-0000-0000-0000-000000000000/send",
                              headers=h | {"content-type": "text/plain"}, content=b"x")
    assert typed.status_code == 415


REVIEWER = dataclasses.replace(DIRECTOR, subject=f"opp-reviewer-{uuid.uuid4().hex[:6]}", permissions=PERMS)


async def test_requirement_request_through_review_to_quote(client, auth, assert_problem) -> None:
    opportunity = await _create(client, auth, name="Custom gearbox")
    body = {"opportunity_id": opportunity["id"], "title": "Gearbox 1:40", "specification": "IP65, 2.2 kW, flange B5",
            "quantity": "12", "unit": "pcs", "target_price": {"amount": "3150.5", "currency": "CNY"},
            "requested_date": VALID,
            "attachments": [{"name": "spec.pdf", "size_bytes": 2048, "content_type": "application/pdf",
                             "url": "s3://crm-files/spec.pdf"}]}
    created = await client.post("/api/v1/requirement-requests", json=body, headers=auth(REP))
    assert created.status_code == 201, created.text
    request = created.json()
    assert (request["status"], request["quantity"], request["target_price"], request["reviewer_ids"]) == (
        "submitted", "12", {"amount": "3150.50", "currency": "CNY"}, [])
    assert request["attachments"][0]["url"] == "s3://crm-files/spec.pdf"
    url = f"/api/v1/requirement-requests/{request['id']}"
    lines = [{"product": "Gearbox", "quantity": "12", "unit_price": "3100"}]
    early = await client.post("/api/v1/quotes", json={"opportunity_id": opportunity["id"], "valid_until": VALID,
                                                      "lines": lines, "requirement_request_id": request["id"]},
                              headers=auth(REP))
    assert_problem(early, 409, reason="REQUIREMENT_NOT_FEASIBLE")
    assert_problem(await client.post(f"{url}/review", headers=auth(REP)), 403, reason="NOT_A_REVIEWER")
    assert_problem(await client.get(url, headers=auth(OTHER_REP)), 404)
    review = await client.post(f"{url}/review", headers=auth(REVIEWER) | {"If-Match": '"v1"'})
    assert review.status_code == 200, review.text
    assert (review.json()["status"], review.json()["reviewer_id"]) == ("under_review", REVIEWER.subject)
    assert_problem(await client.post(f"{url}/review", headers=auth(REVIEWER)), 409,
                   reason="REQUIREMENT_NOT_SUBMITTED")
    decided = await client.post(f"{url}/decide", json={"feasible": True, "notes": "6 weeks"}, headers=auth(REVIEWER))
    assert decided.status_code == 200 and decided.json()["status"] == "feasible"
    quote = await client.post("/api/v1/quotes", json={"opportunity_id": opportunity["id"], "valid_until": VALID,
                                                      "lines": lines, "requirement_request_id": request["id"]},
                              headers=auth(REP))
    assert quote.status_code == 201, quote.text
    assert quote.json()["requirement_request_id"] == request["id"]
    after = (await client.get(url, headers=auth(REP))).json()
    assert (after["status"], after["quote_id"]) == ("quoted", quote.json()["id"])
    listed = await client.get("/api/v1/requirement-requests", params={"opportunity_id": opportunity["id"]},
                              headers=auth(REP))
    assert [x["id"] for x in listed.json()["items"]] == [request["id"]]
