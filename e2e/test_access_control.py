"""R-SEC-01…05 end to end, through the gateway with real tokens from identity: who can read, list,
change and delete each customers record (broken-object-level-authorisation suite), what finance
sees once a contract is signed, masking, refused tokens, and the audit trail of it all."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import httpx
import jwt
import pytest

from crm_devstack import Suite
from crm_devstack.keys import AUDIENCE, ISSUER
from crmkit.auth.keys import generate_keypair
from crmkit.auth.tokens import issue_access_token
from e2e.chain import signed_contract

pytestmark = pytest.mark.asyncio(loop_scope="session")

TAX_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"


def _tax_id() -> str:
    from crm_customers.domain.tax_id import uscc_check_char

    body = "91440300" + "".join(TAX_ALPHABET[b % 31] for b in uuid.uuid4().bytes[:9])
    return body + uscc_check_char(body)


@pytest.fixture(scope="module")
async def world(suite: Suite, sign_in, demo_org) -> dict[str, Any]:
    """East rep li.wei and West rep wang.fang each own a customer with a contact and a follow-up."""
    people = {login: sign_in(login) for login in
              ("li.wei", "zhang.yu", "wang.fang", "chen.jie", "sun.hao", "liu.yang", "xu.na", "gao.shan")}
    records: dict[str, Any] = {"people": people, "api_key": demo_org.get("api_key")}
    async with httpx.AsyncClient(base_url=suite.gateway_url, timeout=10) as api:
        for owner, name in (("li.wei", "East Catheter Co"), ("wang.fang", "West Tubing Co")):
            h = people[owner].headers
            tag = f"bola-{uuid.uuid4().hex[:6]}"
            customer = (await api.post("/api/v1/customers", headers=h, json={
                "name": name, "tax_id": _tax_id(), "industry": "medical_devices", "tags": [tag]})).json()
            contact = (await api.post(f"/api/v1/customers/{customer['id']}/contacts", headers=h, json={
                "name": "Buyer", "phones": ["13912345678"]})).json()
            follow_up = (await api.post(f"/api/v1/customers/{customer['id']}/follow-ups", headers=h, json={
                "kind": "call", "summary": "Intro call"})).json()
            records[owner] = {"customer": customer, "contact": contact, "follow_up": follow_up, "tag": tag}
    return records


def _routes(record: dict[str, Any]) -> list[tuple[str, str, dict[str, Any] | None]]:
    cid, contact = record["customer"]["id"], record["contact"]["id"]
    return [
        ("GET", f"/api/v1/customers/{cid}", None),
        ("PATCH", f"/api/v1/customers/{cid}", {"region": "probe"}),
        ("GET", f"/api/v1/customers/{cid}/contacts", None),
        ("POST", f"/api/v1/customers/{cid}/contacts", {"name": "Probe"}),
        ("PATCH", f"/api/v1/customers/{cid}/contacts/{contact}", {"title": "probe"}),
        ("DELETE", f"/api/v1/customers/{cid}/contacts/{contact}", None),
        ("GET", f"/api/v1/customers/{cid}/follow-ups", None),
        ("POST", f"/api/v1/customers/{cid}/follow-ups", {"kind": "call", "summary": "probe"}),
        ("DELETE", f"/api/v1/customers/{cid}", None),
    ]


async def test_a_rep_of_another_team_can_neither_see_nor_touch_a_record(suite: Suite, world) -> None:
    east = world["li.wei"]
    intruder = world["people"]["wang.fang"]
    async with httpx.AsyncClient(base_url=suite.gateway_url, timeout=10) as api:
        for method, path, body in _routes(east):
            reply = await api.request(method, path, headers=intruder.headers, json=body)
            # Out of scope is "not found" (never 403, which would confirm it exists); deleting
            # needs a permission reps do not have, which is refused before any lookup.
            expected = 403 if (method, path.count("/")) == ("DELETE", 4) else 404
            assert reply.status_code == expected, (method, path, reply.text)
            assert reply.headers["content-type"] == "application/problem+json"
            assert east["customer"]["name"] not in reply.text
        listing = (await api.get("/api/v1/customers", headers=intruder.headers, params={"limit": 200})).json()
        assert east["customer"]["id"] not in {c["id"] for c in listing["items"]}
        by_name = (await api.get("/api/v1/customers", headers=intruder.headers,
                                 params={"name": "East Catheter"})).json()
        assert by_name["items"] == []
        tags = (await api.get("/api/v1/tags", headers=intruder.headers)).json()["items"]
        assert east["tag"] not in {t["name"] for t in tags}
        duplicate = await api.post("/api/v1/customers", headers=intruder.headers,
                                   json={"name": "Copy", "tax_id": east["customer"]["tax_id"]})
        assert duplicate.status_code == 409
        assert "existing_customer_id" not in duplicate.json() and "East Catheter" not in duplicate.text
        # Nothing changed on the record.
        owner = world["people"]["li.wei"]
        unchanged = (await api.get(f"/api/v1/customers/{east['customer']['id']}", headers=owner.headers)).json()
        assert unchanged["region"] == "" and unchanged["version"] == 1


async def test_who_sees_what(suite: Suite, world) -> None:
    people = world["people"]
    east_id, west_id = world["li.wei"]["customer"]["id"], world["wang.fang"]["customer"]["id"]

    async def visible(login: str) -> set[str]:
        seen: set[str] = set()
        cursor = ""
        async with httpx.AsyncClient(base_url=suite.gateway_url, timeout=10) as api:
            while True:
                page = (await api.get("/api/v1/customers", headers=people[login].headers,
                                      params={"limit": 200, **({"cursor": cursor} if cursor else {})})).json()
                seen |= {c["id"] for c in page["items"]}
                cursor = page.get("next_cursor") or ""
                if not cursor:
                    return seen & {east_id, west_id}

    assert await visible("li.wei") == {east_id}            # own
    assert await visible("zhang.yu") == set()             # same team, but own scope
    assert await visible("chen.jie") == {east_id}          # East team lead: team scope
    assert await visible("sun.hao") == {east_id, west_id}  # director: the sales department
    assert await visible("liu.yang") == set()             # finance: nothing signed yet
    assert await visible("xu.na") == {east_id, west_id}    # marketing: all, read only
    assert await visible("gao.shan") == {east_id, west_id}  # auditor: all, read only


async def test_permissions_per_route(suite: Suite, world) -> None:
    people = world["people"]
    east = world["li.wei"]
    cid = east["customer"]["id"]
    async with httpx.AsyncClient(base_url=suite.gateway_url, timeout=10) as api:
        for login in ("xu.na", "gao.shan", "liu.yang"):
            for method, path, body in _routes(east):
                if method == "GET":
                    continue
                reply = await api.request(method, path, headers=people[login].headers, json=body)
                assert reply.status_code == 403, (login, method, path, reply.text)
                assert reply.json()["reason"] == "PERMISSION_DENIED"
        # The team lead may change the team's record; the director may delete one in the department.
        lead = await api.patch(f"/api/v1/customers/{cid}/contacts/{east['contact']['id']}",
                               headers=people["chen.jie"].headers, json={"title": "Purchasing"})
        assert lead.status_code == 200, lead.text
        doomed = (await api.post("/api/v1/customers", headers=people["wang.fang"].headers,
                                 json={"name": "Short-lived West Co"})).json()
        assert (await api.delete(f"/api/v1/customers/{doomed['id']}",
                                 headers=people["chen.jie"].headers)).status_code == 403  # team leads may not delete
        assert (await api.delete(f"/api/v1/customers/{doomed['id']}",
                                 headers=people["sun.hao"].headers)).status_code == 204
        assert (await api.get(f"/api/v1/customers/{doomed['id']}",
                              headers=people["wang.fang"].headers)).status_code == 404


async def test_partner_client_reads_with_its_api_key_and_writes_nothing(suite: Suite, world) -> None:
    key = world["api_key"]
    assert key, "the demo partner's API key is shown when it is created"
    async with httpx.AsyncClient(base_url=suite.gateway_url, timeout=10, headers={"X-API-Key": key}) as api:
        listing = await api.get("/api/v1/customers", params={"limit": 5})
        assert listing.status_code == 200, listing.text
        created = await api.post("/api/v1/customers", json={"name": "Partner Co"})
        assert created.status_code == 403
        assert (await api.get("/api/v1/audit")).status_code == 403
    async with httpx.AsyncClient(base_url=suite.gateway_url, timeout=10,
                                 headers={"X-API-Key": key[:-4] + "AAAA"}) as api:
        assert (await api.get("/api/v1/customers")).status_code == 401


async def test_masking_follows_the_role(suite: Suite, world) -> None:
    people = world["people"]
    east = world["li.wei"]
    path = f"/api/v1/customers/{east['customer']['id']}"
    async with httpx.AsyncClient(base_url=suite.gateway_url, timeout=10) as api:
        full = (await api.get(path, headers=people["li.wei"].headers)).json()
        masked = (await api.get(path, headers=people["xu.na"].headers)).json()
        phones_full = (await api.get(path + "/contacts", headers=people["li.wei"].headers)).json()["items"][0]
        phones_masked = (await api.get(path + "/contacts", headers=people["gao.shan"].headers)).json()["items"][0]
    assert full["tax_id"] == east["customer"]["tax_id"] and "*" not in full["tax_id"]
    assert masked["tax_id"] != full["tax_id"] and "*" in masked["tax_id"]
    assert masked["tax_id"][:4] == full["tax_id"][:4]
    assert phones_full["phones"] == ["+8613912345678"]
    assert phones_masked["phones"][0] != "+8613912345678" and phones_masked["phones"][0].endswith("5678")


async def test_finance_sees_a_customer_once_its_contract_is_signed(suite: Suite, world, eventually) -> None:
    finance = world["people"]["liu.yang"]
    east = world["li.wei"]["customer"]
    rep, manager = world["people"]["li.wei"], world["people"]["chen.jie"]
    # 10 catheters at 250.00 and 13 % tax: 2825.00, under 100,000: li.wei's manager approves it alone
    lines = [{"product": "Guiding catheter 6F", "quantity": "10", "unit": "pcs", "unit_price": "250",
              "tax_rate_percent": "13"}]
    plan = [{"due_date": dt.date.today().isoformat(), "amount": "2825.00", "label": "on signing"}]
    async with httpx.AsyncClient(base_url=suite.gateway_url, timeout=30) as api:
        await signed_contract(api, rep, (manager,), east["id"], title="Catheter supply", lines=lines,
                              instalments=plan)
    async with httpx.AsyncClient(base_url=suite.gateway_url, timeout=10, headers=finance.headers) as api:
        async def visible() -> dict[str, Any] | None:
            reply = await api.get(f"/api/v1/customers/{east['id']}")
            return reply.json() if reply.status_code == 200 else None

        seen = await eventually(visible, what="finance seeing the signed customer")
        assert seen["lifecycle_stage"] == "customer"
        west = world["wang.fang"]["customer"]["id"]
        assert (await api.get(f"/api/v1/customers/{west}")).status_code == 404


async def test_forged_expired_wrong_audience_and_revoked_tokens_are_refused(suite: Suite, world, sign_in,
                                                                             eventually) -> None:
    rep = world["people"]["li.wei"]
    claims = jwt.decode(rep.token, options={"verify_signature": False})
    stranger = generate_keypair()
    forged = jwt.encode(claims, stranger.private_pem, algorithm="EdDSA",
                        headers={"kid": jwt.get_unverified_header(rep.token)["kid"]})
    keys = suite.keys
    assert keys is not None
    expired = issue_access_token(keys.access_private_pem, issuer=ISSUER, audience=AUDIENCE, subject=rep.id,
                                 ttl_seconds=-120)
    wrong_audience = issue_access_token(keys.access_private_pem, issuer=ISSUER, audience="another-api",
                                        subject=rep.id)
    async with httpx.AsyncClient(base_url=suite.gateway_url, timeout=10) as api:
        for token in (forged, expired, wrong_audience, "not-a-token"):
            reply = await api.get("/api/v1/customers", headers={"Authorization": f"Bearer {token}"})
            assert reply.status_code == 401, reply.text
            assert reply.headers["www-authenticate"].startswith("Bearer")
        session = sign_in("zhang.yu")
        assert (await api.get("/api/v1/customers", headers=session.headers)).status_code == 200
        assert (await api.post("/api/v1/auth/revoke", headers=session.headers)).status_code == 200

        async def refused() -> bool:
            return (await api.get("/api/v1/customers", headers=session.headers)).status_code == 401

        await eventually(refused, what="the revoked token being refused")


async def test_every_change_and_denial_is_in_a_verifiable_audit_trail(suite: Suite, world, eventually) -> None:
    auditor = world["people"]["gao.shan"]
    east = world["li.wei"]["customer"]
    intruder = world["people"]["xu.na"]
    async with httpx.AsyncClient(base_url=suite.gateway_url, timeout=10, headers=auditor.headers) as api:
        denied = await api.patch(f"/api/v1/customers/{east['id']}", headers=intruder.headers, json={"region": "x"})
        assert denied.status_code == 403

        async def entries_for_customer() -> list[dict[str, Any]]:
            page = (await api.get("/api/v1/audit", params={"entity_id": east["id"]})).json()
            return page["items"] if any(e["action"] == "created" for e in page["items"]) else []

        entries = await eventually(entries_for_customer, what="the customer's audit entries")
        created = next(e for e in entries if e["action"] == "created")
        assert created["actor"] == world["people"]["li.wei"].id and created["service"] == "customers"

        async def denial() -> bool:
            page = (await api.get("/api/v1/audit", params={"actor": intruder.id})).json()
            return any(e["action"] == "access_denied" for e in page["items"])

        await eventually(denial, what="the denied change in the audit trail")
        verdict = (await api.get("/api/v1/audit/verify")).json()
        assert verdict["intact"] is True and verdict["entries_checked"] > 0
