"""R-LEAD-01, R-OPP-01..04 end to end through the REST gateway of the started suite: marketing
sets an assignment rule and creates leads, the rule gives them to a rep, the rep converts them
(customer + contact + opportunity), submits a requirement request that the sales director (the
reviewer role, found through identity) finds feasible, quotes it, and the customer accepts; the
other opportunity is lost. The funnel of the pipeline shows exactly these two."""

from __future__ import annotations

import datetime as dt
import uuid

import httpx

from crm_devstack import Suite


async def test_lead_to_accepted_quote_and_the_funnel(suite: Suite, sign_in) -> None:
    marketing, rep, director = sign_in("xu.na"), sign_in("li.wei"), sign_in("sun.hao")
    suffix = uuid.uuid4().hex[:6]
    region = f"E2E-{suffix}"
    today = dt.date.today()
    async with httpx.AsyncClient(base_url=suite.gateway_url, timeout=30) as api:
        # A pipeline of its own, so the funnel holds exactly this scenario's opportunities.
        pipeline = await api.post("/api/v1/pipelines", headers=_admin(suite), json={
            "name": f"E2E custom {suffix}", "stages": [
                {"name": "Qualification", "default_probability": 10},
                {"name": "Feasibility", "default_probability": 40},
                {"name": "Won", "default_probability": 100, "is_won": True},
                {"name": "Lost", "default_probability": 0, "is_lost": True}]})
        assert pipeline.status_code == 201, pipeline.text
        stages = {s["name"]: s["id"] for s in pipeline.json()["stages"]}

        # Marketing: a rule giving this region's leads to li.wei, then a batch of two leads.
        rule = await api.post("/api/v1/lead-assignment-rules", headers=marketing.headers, json={
            "name": f"E2E {suffix}", "priority": -1000, "regions": [region], "user_ids": [rep.id],
            "team_id": rep.team_ids[0], "department_path": "/", "cap_count": 50, "cap_days": 7})
        assert rule.status_code == 201, rule.text
        leads = await api.post("/api/v1/leads/batch", headers=marketing.headers, json={"leads": [
            {"name": "Wu Lei", "company": f"Suzhou Gearworks {suffix}", "phone": "13912345678", "title": "Buyer",
             "region": region, "source": "trade_show", "campaign": f"canton-{suffix}", "channel": "offline"},
            {"name": "Ma Ling", "company": f"Hefei Motors {suffix}", "email": "ma@hefei-motors.example",
             "region": region, "source": "website", "campaign": f"canton-{suffix}", "channel": "seo"}]})
        assert leads.status_code == 201, leads.text
        won_lead, lost_lead = leads.json()["items"]
        assert {(x["owner_id"], x["assignment_rule_id"]) for x in (won_lead, lost_lead)} == {
            (rep.id, rule.json()["id"])}

        # The rep converts both: customer (prospect) + contact + opportunity in the new pipeline.
        converted = []
        for lead, amount in ((won_lead, "500000"), (lost_lead, "80000")):
            reply = await api.post(f"/api/v1/leads/{lead['id']}/convert", headers=rep.headers, json={
                "opportunity": {"pipeline_id": pipeline.json()["id"], "amount": {"amount": amount, "currency": "CNY"}}})
            assert reply.status_code == 200, reply.text
            converted.append(reply.json())
        won_conv, lost_conv = converted
        assert won_conv["customer_created"] and won_conv["customer"]["lifecycle_stage"] == "prospect"
        assert won_conv["contact"]["phones"] == ["+8613912345678"]
        opportunity = won_conv["opportunity"]
        assert (opportunity["stage_id"], opportunity["lead_id"]) == (stages["Qualification"], won_lead["id"])
        lead_after = (await api.get(f"/api/v1/leads/{won_lead['id']}", headers=rep.headers)).json()
        assert (lead_after["status"], lead_after["opportunity_id"]) == ("converted", opportunity["id"])

        # The customer's requirement request, reviewed by the sales director.
        request = await api.post("/api/v1/requirement-requests", headers=rep.headers, json={
            "opportunity_id": opportunity["id"], "title": "Helical gearbox 1:25",
            "specification": "IP66, 4 kW, hollow shaft 40 mm, food-grade paint", "quantity": "40", "unit": "pcs",
            "target_price": {"amount": "11800", "currency": "CNY"},
            "requested_date": (today + dt.timedelta(days=60)).isoformat(),
            "attachments": [{"name": "drawing.dwg", "size_bytes": 482133, "content_type": "image/vnd.dwg",
                             "url": "s3://crm-attachments/e2e/drawing.dwg"}]})
        assert request.status_code == 201, request.text
        assert director.id in request.json()["reviewer_ids"]  # the reviewer role's holders, from identity
        request_url = f"/api/v1/requirement-requests/{request.json()['id']}"
        moved = await api.post(f"/api/v1/opportunities/{opportunity['id']}/stage", headers=rep.headers,
                               json={"stage_id": stages["Feasibility"]})
        assert moved.status_code == 200, moved.text
        review = await api.post(f"{request_url}/review", headers=director.headers)
        assert review.status_code == 200 and review.json()["status"] == "under_review", review.text
        decided = await api.post(f"{request_url}/decide", headers=director.headers,
                                 json={"feasible": True, "notes": "Standard housing, special paint: 5 weeks"})
        assert decided.json()["status"] == "feasible", decided.text

        # Quote answering it; sent; accepted: the opportunity is won at the quote's net total.
        quote = await api.post("/api/v1/quotes", headers=rep.headers, json={
            "opportunity_id": opportunity["id"], "valid_until": (today + dt.timedelta(days=14)).isoformat(),
            "requirement_request_id": request.json()["id"],
            "lines": [{"product": "Helical gearbox 1:25", "specification": "IP66, 4 kW", "quantity": "40",
                       "unit_price": "12000", "discount_percent": "2.5", "tax_rate_percent": "13"}]})
        assert quote.status_code == 201, quote.text
        # 40 × 12000 × 0.975 = 468000.00 net; 13 % tax 60840.00; gross 528840.00
        assert (quote.json()["net_total"]["amount"], quote.json()["gross_total"]["amount"]) == ("468000.00",
                                                                                               "528840.00")
        assert (await api.get(request_url, headers=rep.headers)).json()["status"] == "quoted"
        assert (await api.post(f"/api/v1/quotes/{quote.json()['id']}/send", headers=rep.headers)).status_code == 200
        accepted = await api.post(f"/api/v1/quotes/{quote.json()['id']}/accept", headers=rep.headers)
        assert accepted.status_code == 200, accepted.text
        assert accepted.json()["opportunity"]["status"] == "won"
        assert accepted.json()["opportunity"]["amount"] == {"amount": "468000.00", "currency": "CNY"}

        # The other one moves on, then is lost; a lost opportunity does not move again (409).
        other = lost_conv["opportunity"]["id"]
        await api.post(f"/api/v1/opportunities/{other}/stage", headers=rep.headers,
                       json={"stage_id": stages["Feasibility"]})
        lost = await api.post(f"/api/v1/opportunities/{other}/lost", headers=rep.headers, json={"reason": "price"})
        assert lost.status_code == 200, lost.text
        again = await api.post(f"/api/v1/opportunities/{other}/stage", headers=rep.headers,
                               json={"stage_id": stages["Qualification"]})
        assert again.status_code == 409 and again.json()["reason"] == "OPPORTUNITY_CLOSED"

        # The funnel of the pipeline: both reached Qualification and Feasibility, one won, one lost.
        funnel = await api.get("/api/v1/reports/funnel", headers=rep.headers,
                               params={"pipeline_id": pipeline.json()["id"]})
        assert funnel.status_code == 200, funnel.text
        by_name = {s["name"]: s for s in funnel.json()["stages"]}
        assert {n: (s["count"], s["amount"]["amount"], s["reached"]) for n, s in by_name.items()} == {
            "Qualification": (0, "0.00", 2), "Feasibility": (0, "0.00", 2), "Won": (1, "468000.00", 1),
            "Lost": (1, "80000.00", 1)}
        assert by_name["Qualification"]["conversion_to_next"] == "100.0"
        assert by_name["Feasibility"]["conversion_to_next"] == "50.0"
        # Stays in both open stages ended (seconds, so the average rounds to 0.0 days).
        assert by_name["Qualification"]["average_days"] == "0.0" and by_name["Feasibility"]["average_days"] == "0.0"

        # Attribution: two leads of the campaign, both converted (won amounts arrive by event).
        report = (await api.get("/api/v1/reports/lead-attribution", headers=marketing.headers)).json()["items"]
        rows = {(r["source"], r["channel"]): r for r in report if r["campaign"] == f"canton-{suffix}"}
        assert {k: (r["leads"], r["converted"]) for k, r in rows.items()} == {
            ("trade_show", "offline"): (1, 1), ("website", "seo"): (1, 1)}


def _admin(suite: Suite) -> dict[str, str]:
    """Pipelines are administrators' (R-OPP-01); a development token for an admin principal."""
    return {"Authorization": f"Bearer {suite.token(user='e2e-admin', roles=['admin'], data_scope='all')}"}
