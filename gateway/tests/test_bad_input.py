"""Bad input always gets a clear 4xx problem, never a 500 and never a half-written record."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crmkit.auth.keys import generate_keypair
from crmkit.testing.principals import DIRECTOR, EAST_MANAGER, EAST_REP, WEST_REP

pytestmark = pytest.mark.integration

API = "/api/v1/customers"
MAX_BODY_BYTES = 8192  # the conftest's GatewaySettings.max_body_bytes


async def _names(client, headers, name: str) -> list[str]:
    r = await client.get(API, headers=headers, params={"name": name, "limit": 200})
    assert r.status_code == 200, r.text
    return [c["id"] for c in r.json()["items"]]


# ------------------------------------------------------------------------------ authentication


async def test_missing_token(client, unique, assert_problem):
    for method, path in (("GET", API), ("POST", API), ("GET", f"{API}/x"), ("GET", "/api/v1/industries")):
        r = await client.request(method, path, json={"name": unique()} if method == "POST" else None)
        body = assert_problem(r, 401, reason="MISSING_TOKEN", detail_mentions=("Authorization",))
        assert r.headers["www-authenticate"].startswith("Bearer")
        assert body["instance"] == path
    basic = await client.get(API, headers={"Authorization": "Basic dXNlcjpwdw=="})
    assert_problem(basic, 401)
    assert basic.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("case", ["expired", "audience", "issuer", "forged", "garbage", "empty"])
async def test_invalid_tokens(client, token, auth, unique, case, assert_problem):
    tokens = {
        "expired": lambda: token(EAST_REP, ttl_seconds=-120),  # beyond the 30 s leeway
        "audience": lambda: token(EAST_REP, audience="someone-else"),
        "issuer": lambda: token(EAST_REP, issuer="evil-issuer"),
        "forged": lambda: _forged(token(EAST_REP)),
        "garbage": lambda: "not.a.jwt",
        "empty": lambda: "",
    }
    name = f"Token {case} {unique()}"
    h = {"Authorization": f"Bearer {tokens[case]()}"}
    r = await client.post(API, headers=h, json={"name": name})
    assert_problem(r, 401)
    assert r.headers["www-authenticate"].startswith("Bearer")
    assert_problem(await client.get(API, headers=h), 401)
    assert await _names(client, auth(EAST_REP), name) == []


async def test_token_of_an_unknown_key(client, token, unique, assert_problem):
    other = generate_keypair()
    r = await client.get(API, headers={"Authorization": f"Bearer {token(EAST_REP, private_pem=other.private_pem)}"})
    assert_problem(r, 401, detail_mentions=("key",))


def _forged(jwt: str) -> str:
    """The same token with a privilege escalated in its claims: the signature no longer fits."""
    import base64

    header, payload, signature = jwt.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["data_scope"] = "all"
    claims["roles"] = ["admin"]
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{forged}.{signature}"


# ------------------------------------------------------------------------------- body checks


async def test_malformed_json(client, auth, assert_problem):
    r = await client.post(API, headers=auth(EAST_REP) | {"Content-Type": "application/json"},
                          content=b'{"name": "Broken",')
    assert_problem(r, 400, reason="MALFORMED_REQUEST", detail_mentions=("JSON",))
    not_object = await client.post(API, headers=auth(EAST_REP), json=["a", "list"])
    assert_problem(not_object, 422)
    empty = await client.post(API, headers=auth(EAST_REP) | {"Content-Type": "application/json"}, content=b"")
    assert empty.status_code in (400, 422), empty.text
    assert empty.headers["content-type"].startswith("application/problem+json")


async def test_unknown_field_is_named(client, auth, unique, assert_problem):
    name = f"Unknown {unique()}"
    r = await client.post(API, headers=auth(EAST_REP), json={"name": name, "nmae": "typo"})
    body = assert_problem(r, 422, reason="INVALID_ARGUMENT", fields=("nmae",), detail_mentions=("nmae",))
    assert body["instance"] == API
    nested = await client.post(API, headers=auth(EAST_REP),
                               json={"name": name, "addresses": [{"line": "x", "zip": "1"}]})
    assert_problem(nested, 422, fields=("addresses.0.zip",))
    assert await _names(client, auth(EAST_REP), name) == []


async def test_wrong_enum_and_types(client, auth, create, unique, assert_problem):
    name = f"Enum {unique()}"
    h = auth(EAST_REP)
    assert_problem(await client.post(API, headers=h, json={"name": name, "origin": "martian"}), 422,
                   fields=("origin",))
    assert_problem(await client.post(API, headers=h, json={"name": name, "lifecycle_stage": "CUSTOMER"}), 422,
                   fields=("lifecycle_stage",))
    assert_problem(await client.post(API, headers=h, json={"name": name, "tags": "vip"}), 422, fields=("tags",))
    assert_problem(await client.post(API, headers=h, json={"name": 42}), 422, fields=("name",))
    assert_problem(await client.post(API, headers=h, json={"tax_id": "x"}), 422, fields=("name",))
    assert_problem(await client.post(API, headers=h, json={"name": "   "}), 422, fields=("name",))
    customer = await create(EAST_REP)
    patch = await client.patch(f"{API}/{customer['id']}", headers=h, json={"status": "zombie"})
    assert_problem(patch, 422, fields=("status",))
    assert await _names(client, h, name) == []


async def test_wrong_content_type(client, auth, create, unique, assert_problem):
    name = f"Form {unique()}"
    h = auth(EAST_REP)
    r = await client.post(API, headers=h, data={"name": name})
    assert_problem(r, 415, reason="UNSUPPORTED_MEDIA_TYPE", detail_mentions=("application/json",))
    text = await client.post(API, headers=h | {"Content-Type": "text/plain"}, content=json.dumps({"name": name}))
    assert_problem(text, 415)
    none = await client.post(API, headers=h, content=json.dumps({"name": name}))
    assert_problem(none, 415)
    customer = await create(EAST_REP)
    patch = await client.patch(f"{API}/{customer['id']}", headers=h | {"Content-Type": "application/xml"},
                               content="<region>x</region>")
    assert_problem(patch, 415)
    charset = await client.post(API, headers=h | {"Content-Type": "application/json; charset=utf-8"},
                                content=json.dumps({"name": name}))
    assert charset.status_code == 201, charset.text
    assert len(await _names(client, h, name)) == 1


async def test_oversized_body_with_content_length(client, auth, unique, assert_problem):
    name = f"Big {unique()}"
    body = json.dumps({"name": name, "region": "x" * MAX_BODY_BYTES}).encode()
    r = await client.post(API, headers=auth(EAST_REP) | {"Content-Type": "application/json"}, content=body)
    assert_problem(r, 413, reason="PAYLOAD_TOO_LARGE", detail_mentions=(str(MAX_BODY_BYTES),))
    keyed = await client.post(API, headers=auth(EAST_REP) | {"Content-Type": "application/json",
                                                             "Idempotency-Key": f"k-{unique()}"}, content=body)
    assert_problem(keyed, 413, reason="PAYLOAD_TOO_LARGE")
    assert await _names(client, auth(EAST_REP), name) == []


@pytest.mark.parametrize("idempotent", [False, True])
async def test_oversized_body_chunked(client, auth, unique, idempotent, assert_problem):
    name = f"Big chunked {unique()}"
    payload = json.dumps({"name": name, "region": "y" * (2 * MAX_BODY_BYTES)}).encode()

    async def chunks():
        for i in range(0, len(payload), 1024):
            yield payload[i:i + 1024]

    h = auth(EAST_REP) | {"Content-Type": "application/json"}
    if idempotent:
        h["Idempotency-Key"] = f"k-{unique()}"
    r = await client.post(API, headers=h, content=chunks())
    assert r.request.headers.get("transfer-encoding") == "chunked"
    assert "content-length" not in r.request.headers
    assert_problem(r, 413, reason="PAYLOAD_TOO_LARGE")
    assert await _names(client, auth(EAST_REP), name) == []


async def test_chunked_body_within_limit_is_accepted(client, auth, unique):
    name = f"Small chunked {unique()}"
    payload = json.dumps({"name": name}).encode()

    async def chunks():
        yield payload[:5]
        yield payload[5:]

    r = await client.post(API, headers=auth(EAST_REP) | {"Content-Type": "application/json"}, content=chunks())
    assert r.status_code == 201, r.text


# --------------------------------------------------------------------------- queries and paths


async def test_bad_cursor(client, auth, assert_problem):
    for cursor in ("garbage!!", "eyJzIjoibmFtZSJ9", "e30"):
        r = await client.get(API, headers=auth(EAST_REP), params={"cursor": cursor})
        assert_problem(r, 400, reason="INVALID_CURSOR", fields=("cursor",))
    follow_ups = await client.get(f"{API}/0190a0a0-0000-7000-8000-000000000000/follow-ups",
                                  headers=auth(EAST_REP), params={"cursor": "garbage!!"})
    assert follow_ups.status_code in (400, 404), follow_ups.text


@pytest.mark.parametrize("method, path", [
    ("GET", f"{API}/not-a-uuid"),
    ("PATCH", f"{API}/not-a-uuid"),
    ("DELETE", f"{API}/not-a-uuid"),
    ("GET", f"{API}/not-a-uuid/contacts"),
    ("POST", f"{API}/not-a-uuid/contacts"),
    ("GET", f"{API}/not-a-uuid/follow-ups"),
    ("POST", f"{API}/not-a-uuid/follow-ups"),
])
async def test_invalid_uuid_in_path(client, auth, method, path, assert_problem):
    bodies = {"PATCH": {"region": "x"}, "POST": {"name": "x", "kind": "call", "summary": "x"}}
    body = bodies.get(method)
    if body is not None and path.endswith("/contacts"):
        body = {"name": "x"}
    elif body is not None and path.endswith("/follow-ups"):
        body = {"kind": "call", "summary": "x"}
    r = await client.request(method, path, headers=auth(EAST_REP), json=body)
    assert_problem(r, 422, reason="INVALID_ARGUMENT", fields=("customer_id",), detail_mentions=("customer_id",))


async def test_invalid_contact_uuid_in_path(client, auth, create, assert_problem):
    customer = await create(EAST_REP)
    for method in ("PATCH", "DELETE"):
        r = await client.request(method, f"{API}/{customer['id']}/contacts/nope", headers=auth(EAST_REP),
                                 json={"title": "x"} if method == "PATCH" else None)
        assert_problem(r, 422, fields=("contact_id",), detail_mentions=("contact_id",))


# ------------------------------------------------------------------------------ domain rules


async def test_invalid_tax_id_check_digit(client, auth, tax_id, unique, assert_problem):
    good = tax_id()
    bad = good[:-1] + ("0" if good[-1] != "0" else "1")
    name = f"Bad tax {unique()}"
    r = await client.post(API, headers=auth(EAST_REP), json={"name": name, "tax_id": bad})
    problem = assert_problem(r, 422, reason="INVALID_ARGUMENT", fields=("tax_id",), detail_mentions=("check digit",))
    assert next(e for e in problem["errors"] if e["field"] == "tax_id")["message"]
    assert await _names(client, auth(EAST_REP), name) == []
    # several problems at once are all reported
    both = await client.post(API, headers=auth(EAST_REP), json={"name": name, "tax_id": bad,
                                                               "addresses": [{"line": " ", "country": "c1"}]})
    assert_problem(both, 422, fields=("tax_id", "addresses[0].line", "addresses[0].country"))


async def test_duplicate_tax_id(client, auth, create, tax_id, unique, assert_problem):
    tid = tax_id()
    first = await create(EAST_REP, tax_id=tid)
    name = f"Dup {unique()}"
    visible = await client.post(API, headers=auth(EAST_REP), json={"name": name, "tax_id": tid})
    body = assert_problem(visible, 409, reason="DUPLICATE_TAX_ID", detail_mentions=(tid,))
    assert body["existing_customer_id"] == first["id"]
    hidden = await client.post(API, headers=auth(WEST_REP), json={"name": name, "tax_id": tid.lower()})
    body = assert_problem(hidden, 409, reason="DUPLICATE_TAX_ID")
    assert "existing_customer_id" not in body and first["id"] not in hidden.text
    assert first["name"] not in hidden.text
    assert await _names(client, auth(EAST_REP), name) == []
    assert await _names(client, auth(WEST_REP), name) == []
    # changing another customer to the taken tax ID is the same conflict
    other = await create(EAST_REP)
    patched = await client.patch(f"{API}/{other['id']}", headers=auth(EAST_REP), json={"tax_id": tid})
    assert_problem(patched, 409, reason="DUPLICATE_TAX_ID")
    assert (await client.get(f"{API}/{other['id']}", headers=auth(EAST_REP))).json()["version"] == 1


async def test_out_of_scope_record_is_not_found(client, auth, create, unique, assert_problem):
    name = f"Scoped {unique()}"
    mine = await create(EAST_REP, name=name)
    h = auth(WEST_REP)
    assert_problem(await client.get(f"{API}/{mine['id']}", headers=h), 404, reason="NOT_FOUND")
    assert_problem(await client.patch(f"{API}/{mine['id']}", headers=h, json={"region": "x"}), 404)
    assert_problem(await client.delete(f"{API}/{mine['id']}", headers=h), 404)
    assert_problem(await client.get(f"{API}/{mine['id']}/contacts", headers=h), 404)
    assert_problem(await client.post(f"{API}/{mine['id']}/contacts", headers=h, json={"name": "Spy"}), 404)
    assert_problem(await client.post(f"{API}/{mine['id']}/follow-ups", headers=h,
                                     json={"kind": "call", "summary": "x"}), 404)
    assert await _names(client, h, name) == []
    # nothing changed for the owner, and people above them see it
    still = await client.get(f"{API}/{mine['id']}", headers=auth(EAST_REP))
    assert still.json()["version"] == 1 and still.json()["region"] == ""
    assert (await client.get(f"{API}/{mine['id']}/contacts", headers=auth(EAST_REP))).json()["items"] == []
    assert await _names(client, auth(EAST_MANAGER), name) == [mine["id"]]
    assert await _names(client, auth(DIRECTOR), name) == [mine["id"]]


async def test_assigning_outside_scope_is_forbidden(client, auth, unique, assert_problem):
    name = f"Assign {unique()}"
    r = await client.post(API, headers=auth(EAST_REP), json={"name": name, "owner_id": WEST_REP.subject})
    assert_problem(r, 403, reason="ASSIGNMENT_OUT_OF_SCOPE")
    assert await _names(client, auth(EAST_REP), name) == []


# ------------------------------------------------------------------------------ routing


async def test_unknown_route_and_wrong_method(client, auth, assert_problem):
    missing = await client.get("/api/v1/nothing-here", headers=auth(EAST_REP))
    assert_problem(missing, 404, reason="ROUTE_NOT_FOUND")
    root = await client.get("/no/such/page")
    assert_problem(root, 404, reason="ROUTE_NOT_FOUND")
    wrong = await client.put(API, headers=auth(EAST_REP), json={"name": "x"})
    body = assert_problem(wrong, 405, reason="METHOD_NOT_ALLOWED")
    assert "GET" in wrong.headers["allow"] and "POST" in wrong.headers["allow"]
    assert body["instance"] == API
    delete_list = await client.delete(API, headers=auth(EAST_REP))
    assert_problem(delete_list, 405)


# ---------------------------------------------------------------------------------- fuzzing

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12)
_fields = ("name", "tax_id", "industry", "region", "origin", "status", "lifecycle_stage", "owner_id", "team_id",
           "tags", "addresses")
_customerish = st.dictionaries(st.sampled_from(_fields), _json, max_size=6) | st.dictionaries(
    st.sampled_from(_fields), st.text(max_size=60), max_size=6)


@settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
@given(body=_json | _customerish)
async def test_fuzz_create_never_fails_with_5xx(client, auth, body):
    r = await client.post(API, headers=auth(DIRECTOR), json=body)
    assert r.status_code < 500, (body, r.status_code, r.text)
    if r.status_code != 201:
        assert r.headers["content-type"].startswith("application/problem+json"), r.text


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(raw=st.binary(max_size=200))
async def test_fuzz_raw_bytes_never_fail_with_5xx(client, auth, raw):
    r = await client.post(API, headers=auth(DIRECTOR) | {"Content-Type": "application/json"}, content=raw)
    assert r.status_code < 500, (raw, r.status_code, r.text)
