"""Inputs that used to crash a handler (issue 12, item 6) get a clear 4xx problem, never a 500."""

from __future__ import annotations

import pytest

from crmkit.testing.principals import ADMIN, EAST_REP

pytestmark = pytest.mark.integration

API = "/api/v1/customers"
UNSTORABLE = ("NUL", "surrogate")


async def _ids_named(client, headers, name: str) -> list[str]:
    r = await client.get(API, headers=headers, params={"name": name, "limit": 200})
    assert r.status_code == 200, r.text
    return [c["id"] for c in r.json()["items"]]


# ------------------------------------------------------------------- NUL and lone surrogates


@pytest.mark.parametrize("escape", ["\\u0000", "\\ud800", "\\uDFFF"])
async def test_unstorable_text_in_a_json_body_is_refused_naming_the_field(client, auth, unique, assert_problem,
                                                                          escape):
    name = f"Text {unique()}"
    h = auth(EAST_REP) | {"Content-Type": "application/json"}
    top = await client.post(API, headers=h, content=f'{{"name": "{name}{escape}"}}')
    assert_problem(top, 422, reason="INVALID_ARGUMENT", fields=("name",), detail_mentions=UNSTORABLE[:1])
    nested = await client.post(API, headers=h, content=f'{{"name": "{name}", "tags": ["ok", "x{escape}"],'
                                                         f' "addresses": [{{"line": "a{escape}"}}]}}')
    assert_problem(nested, 422, fields=("tags.1", "addresses.0.line"))
    key = await client.post(API, headers=h, content=f'{{"name": "{name}", "x{escape}": 1}}')
    assert_problem(key, 422, fields=("body",))
    assert await _ids_named(client, auth(EAST_REP), name) == []


async def test_nul_in_the_query_or_the_path_is_refused(client, auth, assert_problem):
    r = await client.get(API, headers=auth(EAST_REP), params={"name": "a\x00b"})
    assert_problem(r, 422, fields=("name",))
    path = await client.get(f"{API}/abc%00def", headers=auth(EAST_REP))
    assert_problem(path, 422, fields=("path",))


async def test_nul_in_the_unauthenticated_sign_in_form_is_refused(id_client, assert_problem):
    r = await id_client.post("/api/v1/auth/token",
                             data={"grant_type": "password", "username": "ad\x00min", "password": "x"})
    assert_problem(r, 422, fields=("username",))


# ------------------------------------------------------------------------ huge input echoed


async def test_a_problem_does_not_echo_huge_input(client, auth, create, assert_problem):
    h = auth(EAST_REP)
    customer = await create(EAST_REP)
    phone = await client.post(f"{API}/{customer['id']}/contacts", headers=h,
                              json={"name": "Huge phone", "phones": ["1" * 7000]})
    assert 400 <= phone.status_code < 500, phone.text
    assert len(phone.content) < 3000, phone.text[:500]
    tags = await client.post(API, headers=h, json={"name": "Huge tags", "tags": [f"{i:03}" + "t" * 140
                                                                               for i in range(50)]})
    body = assert_problem(tags, 422)
    assert len(tags.content) < 8000
    assert all(len(e["message"]) <= 300 for e in body["errors"])


# --------------------------------------------------------------- money: line totals, currency

HUGE = "999999999999999"  # 15 digits: within each field's own limit
LINE = {"product": "Gear", "quantity": HUGE, "unit_price": HUGE}


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/api/v1/quotes", {"opportunity_id": "x", "valid_until": "2030-01-01", "lines": [LINE]}, "lines.0"),
    ("/api/v1/contracts", {"customer_id": "x", "lines": [LINE]}, "lines.0"),
    ("/api/v1/invoices", {"customer_id": "x", "lines": [{"description": "d", "quantity": HUGE,
                                                         "unit_price": HUGE}]}, "lines.0"),
    ("/api/v1/requirement-requests", {"opportunity_id": "x", "title": "t", "specification": "s",
                                      "quantity": HUGE, "target_price": {"amount": HUGE}}, "body"),
    ("/api/v1/quotes", {"opportunity_id": "x", "valid_until": "2030-01-01",
                        "lines": [{"product": "g", "quantity": "99999999", "unit_price": "9999999"}] * 20},
     "lines"),
])
async def test_a_line_total_over_the_maximum_amount_is_refused(client, auth, assert_problem, path, body, field):
    r = await client.post(path, headers=auth(ADMIN), json=body)
    problem = assert_problem(r, 422, fields=(field,))
    assert "exceeds the maximum amount" in problem["detail"]


@pytest.mark.parametrize(("path", "body"), [
    ("/api/v1/quotes", {"opportunity_id": "x", "valid_until": "2030-01-01", "currency": "ZZZ",
                        "lines": [{"product": "g", "quantity": "1", "unit_price": "1"}]}),
    ("/api/v1/contracts", {"customer_id": "x", "currency": "usd"}),
    ("/api/v1/invoices", {"customer_id": "x", "currency": "ABC",
                          "lines": [{"description": "d", "quantity": "1", "unit_price": "1"}]}),
    ("/api/v1/statements", {"customer_id": "x", "period_start": "2026-01-01", "period_end": "2026-01-31",
                            "currency": "XXX"}),
    ("/api/v1/payments", {"customer_id": "x", "amount": {"amount": "1", "currency": "QQQ"}}),
])
async def test_a_currency_must_be_iso_4217(client, auth, assert_problem, path, body):
    r = await client.post(path, headers=auth(ADMIN), json=body)
    problem = assert_problem(r, 422)
    assert any(e["field"].endswith("currency") for e in problem["errors"]), problem


@pytest.mark.parametrize("url", ["javascript:alert(1)", "file:///etc/passwd", "data:text/html,x", "https://"])
async def test_attachment_links_are_http_or_object_store_urls(client, auth, assert_problem, url):
    body = {"opportunity_id": "x", "title": "t", "specification": "s", "quantity": "1",
            "attachments": [{"name": "a.pdf", "size_bytes": 1, "url": url}]}
    r = await client.post("/api/v1/requirement-requests", headers=auth(ADMIN), json=body)
    assert_problem(r, 422, fields=("attachments.0.url",))


# ---------------------------------------------------------------------------- cursors


@pytest.mark.parametrize("values", [["yesterday", "customer", "x"], [1, 2], ["2026-01-01T00:00:00+00:00", "c", 7]])
async def test_a_tampered_sap_records_cursor_is_a_400(client, auth, assert_problem, values):
    from crmkit.pagination import encode_cursor

    r = await client.get("/api/v1/integrations/sap/records", headers=auth(ADMIN),
                         params={"cursor": encode_cursor("updated", values)})
    assert_problem(r, 400, reason="INVALID_CURSOR")


# ------------------------------------------------------------------- found by the fuzz pass


async def test_patching_addresses_without_their_kind_takes_the_default_kind(client, auth, create):
    customer = await create(EAST_REP)
    r = await client.patch(f"{API}/{customer['id']}", headers=auth(EAST_REP),
                           json={"addresses": [{"line": "1 Harbour Road"}], "tags": ["\U0001f600 emoji"]})
    assert r.status_code == 200, r.text
    assert [(a["kind"], a["line"]) for a in r.json()["addresses"]] == [("office", "1 Harbour Road")]


async def test_an_upload_larger_than_any_import_is_refused_before_the_service(client, auth, assert_problem):
    r = await client.post("/api/v1/imports/uploads", headers=auth(EAST_REP),
                          json={"file_name": "big.csv", "size": 17183684900022366208})
    assert_problem(r, 422, fields=("size",))
