"""Every write checks what it references (issue 12, "Done when"): a walk over gateway/openapi.json
finds each write operation whose path or body names a customer, contact, opportunity, quote,
contract, order, invoice or payment, and tries it with a record of another scope (Sales East's,
as a Sales West or finance caller) and with a random id. Each try must be refused (404, or
another 4xx) and write nothing: the other scope's records keep their versions.

The body around the reference is the smallest valid one the schema describes (required fields
only), with a hand-written one where the smallest is refused for another reason first.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from crm_devstack import Suite
from e2e import polite

pytestmark = pytest.mark.asyncio(loop_scope="session")

OPENAPI = json.loads((Path(__file__).resolve().parents[1] / "gateway" / "openapi.json").read_text())
SCHEMAS = OPENAPI["components"]["schemas"]
WRITES = ("post", "put", "patch", "delete")
# Fields that name a record of these kinds (the field's name, or its name's stem).
KIND_OF_FIELD = {"customer_id": "customer", "merged_id": "customer", "other_id": "customer",
                 "contact_id": "contact", "opportunity_id": "opportunity", "quote_id": "quote",
                 "contract_id": "contract", "predecessor_id": "contract", "order_id": "order",
                 "invoice_id": "invoice", "applies_to_invoice_id": "invoice", "payment_id": "payment"}
# Who tries: the first of these demo users holding the operation's permission (none sees Sales
# East's records); for a permission only wider roles hold, the director tries random ids alone.
CALLERS = ("wang.fang", "zhou.qiang", "liu.yang", "he.jing", "xu.na")
WIDE_CALLER = "sun.hao"
TODAY = dt.date.today().isoformat()
LINE = {"product": "Gear", "quantity": "1", "unit_price": "10"}
# Bodies for operations whose smallest body is refused for a reason other than the reference.
BODIES: dict[str, dict[str, Any]] = {
    "POST /api/v1/quotes": {"opportunity_id": "", "valid_until": "2031-01-01", "lines": [LINE]},
    "POST /api/v1/contracts": {"customer_id": "", "lines": [LINE]},
    "POST /api/v1/orders": {"contract_id": "", "requested_delivery_date": "2031-01-01",
                            "lines": [{"contract_line_id": "l-1", "quantity": "1"}]},
    "POST /api/v1/invoices": {"customer_id": "", "lines": [{"description": "d", "quantity": "1",
                                                            "unit_price": "10"}]},
    "POST /api/v1/payments": {"customer_id": "", "amount": {"amount": "10", "currency": "CNY"}},
    "POST /api/v1/statements": {"customer_id": "", "period_start": "2026-01-01", "period_end": "2026-01-31"},
    "POST /api/v1/opportunities": {"customer_id": "", "name": "Walk"},
    "POST /api/v1/contracts/{contract_id}/amendments": {"reason": "price change", "lines": [LINE]},
    "POST /api/v1/requirement-requests": {"opportunity_id": "", "title": "t", "specification": "s",
                                          "quantity": "1"},
}
TALLY: Counter[str] = Counter()
# Refusals other than 404, to read: a 422 may come from the reference or from the body around it.
OTHER_REFUSALS: list[str] = []


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = SCHEMAS[schema["$ref"].split("/")[-1]]
    for variant in schema.get("anyOf", []):
        if variant.get("type") != "null":
            return _resolve(variant)
    return schema


def smallest(schema: dict[str, Any]) -> Any:
    """The smallest value the schema accepts: required fields only, simple valid leaves."""
    schema = _resolve(schema)
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        props = schema.get("properties", {})
        return {name: smallest(props[name]) for name in schema.get("required", []) if name in props}
    if kind == "array":
        return [smallest(schema.get("items", {})) for _ in range(schema.get("minItems", 0))]
    if kind == "integer":
        return max(schema.get("minimum", 1), 1)
    if kind == "number":
        return 1
    if kind == "boolean":
        return False
    if schema.get("format") == "date":
        return TODAY
    if schema.get("format") == "date-time":
        return dt.datetime.now(dt.UTC).isoformat()
    if "examples" in schema:
        return schema["examples"][0]
    if "pattern" in schema and "\\d" in schema["pattern"]:
        return "1"
    return "x" * max(schema.get("minLength", 1), 1)


def reference_writes() -> list[tuple[str, str, list[tuple[str, str, str]]]]:
    """(method, path, [(where, field, kind)]) of every write naming a record of KIND_OF_FIELD."""
    found = []
    for path, item in OPENAPI["paths"].items():
        for method, op in item.items():
            if method not in WRITES:
                continue
            refs = [("path", p["name"], KIND_OF_FIELD[p["name"]]) for p in op.get("parameters", [])
                    if p["in"] == "path" and p["name"] in KIND_OF_FIELD]
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            if body is not None:
                refs += [("body", name, KIND_OF_FIELD[name]) for name in _resolve(body).get("properties", {})
                         if name in KIND_OF_FIELD]
            if refs:
                found.append((method.upper(), path, refs))
    return found


WALK = reference_writes()


@pytest.fixture(scope="module")
async def east(suite: Suite, sign_in) -> dict[str, Any]:
    """Sales East's records (li.wei's): what West and finance callers must not be able to name."""
    rep = sign_in("li.wei")
    uid = uuid.uuid4().hex[:8]
    records: dict[str, Any] = {"headers": rep.headers}
    async with polite.client(suite.gateway_url) as api:
        async def made(path: str, body: dict[str, Any]) -> dict[str, Any]:
            r = await api.post(path, headers=rep.headers, json=body)
            assert r.status_code == 201, f"{path}: {r.status_code} {r.text}"
            return r.json()

        customer = await made("/api/v1/customers", {"name": f"Reference walk East {uid}"})
        records["customer"] = customer
        records["contact"] = await made(f"/api/v1/customers/{customer['id']}/contacts", {"name": "Buyer"})
        opportunity = await made("/api/v1/opportunities", {"customer_id": customer["id"], "name": f"Walk {uid}"})
        records["opportunity"] = opportunity
        records["quote"] = await made("/api/v1/quotes", {"opportunity_id": opportunity["id"],
                                                         "valid_until": "2031-01-01", "lines": [LINE]})
        records["contract"] = await made("/api/v1/contracts", {"customer_id": customer["id"], "lines": [LINE]})
    return records


@pytest.fixture(scope="module")
def people(sign_in) -> dict[str, Any]:
    return {login: _Signed(sign_in(login)) for login in (*CALLERS, WIDE_CALLER)}


@pytest.fixture(scope="module")
async def own_customer(suite: Suite, people) -> str:
    """A customer of the West caller's own, for the references a try does not vary."""
    async with polite.client(suite.gateway_url) as api:
        r = await api.post("/api/v1/customers", headers=people["wang.fang"].headers,
                           json={"name": f"Reference walk West {uuid.uuid4().hex[:8]}"})
        assert r.status_code == 201, r.text
        return str(r.json()["id"])


def _filled(body: Any, own_customer: str) -> Any:
    """Every id field a try does not vary made well-formed: the caller's own customer, a fresh
    UUID for the rest, so that the reference under test is what the answer is about."""
    if isinstance(body, dict):
        return {k: (own_customer if k == "customer_id" else str(uuid.uuid4()))
                if k.endswith("_id") and v in ("", "x") else _filled(v, own_customer) for k, v in body.items()}
    if isinstance(body, list):
        return [_filled(v, own_customer) for v in body]
    return body


READS = {"customer": "/api/v1/customers/{id}", "opportunity": "/api/v1/opportunities/{id}",
         "quote": "/api/v1/quotes/{id}", "contract": "/api/v1/contracts/{id}"}


async def _versions(api: httpx.AsyncClient, east: dict[str, Any]) -> dict[str, str]:
    versions = {}
    for kind, template in READS.items():
        r = await api.get(template.format(id=east[kind]["id"]), headers=east["headers"])
        assert r.status_code == 200, r.text
        versions[kind] = r.headers.get("etag", "") + json.dumps(r.json(), sort_keys=True)
    contacts = await api.get(f"/api/v1/customers/{east['customer']['id']}/contacts", headers=east["headers"])
    versions["contacts"] = json.dumps(contacts.json(), sort_keys=True)
    return versions


def _caller(permission: str | None, people: dict[str, Any]) -> Any:
    for login in (*CALLERS, WIDE_CALLER):
        perms = people[login].claims.get("perms", [])
        area = (permission or "").split(".", 1)[0]
        if permission is None or {permission, f"{area}.*", "*"} & set(perms):
            return people[login]
    return None


@pytest.mark.parametrize(("method", "path", "refs"), WALK, ids=[f"{m} {p}" for m, p, _ in WALK])
async def test_a_write_naming_another_scopes_record_or_a_random_id_is_refused(suite: Suite, people, east,
                                                                              own_customer, method, path, refs):
    op = OPENAPI["paths"][path][method.lower()]
    caller = _caller(op.get("x-permission"), people)
    assert caller is not None, f"no demo caller holds {op.get('x-permission')}"
    schema = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
    base = _filled(json.loads(json.dumps(BODIES.get(f"{method} {path}") or (smallest(schema) if schema else {}))),
                   own_customer)
    refused: list[str] = []
    async with polite.client(suite.gateway_url) as api:
        before = await _versions(api, east)
        for where, field, kind in refs:
            others = {"random": str(uuid.uuid4())}
            if kind in east and caller.login != WIDE_CALLER:
                others["other scope"] = east[kind]["id"]
            for variant, value in others.items():
                params = {p["name"]: east.get(KIND_OF_FIELD.get(p["name"], ""), {}).get("id", str(uuid.uuid4()))
                          for p in op.get("parameters", []) if p["in"] == "path"}
                body = dict(base) if isinstance(base, dict) else base
                if where == "path":
                    params[field] = value
                elif isinstance(body, dict):
                    body[field] = value
                url = path.format(**params)
                headers = caller.headers | ({"If-Match": "*"} if method in ("PATCH", "PUT", "DELETE") else {})
                r = await api.request(method, url, headers=headers, json=body if schema else None)
                TALLY["tried"] += 1
                if 400 <= r.status_code < 500:
                    TALLY["refused"] += 1
                    TALLY[f"refused {r.status_code}"] += 1
                    if r.status_code != 404:
                        OTHER_REFUSALS.append(f"{r.status_code} {method} {path} {field}={variant}: "
                                              f"{r.json().get('detail', '')[:120]}")
                else:
                    refused.append(f"{method} {url} with {field}={variant} as {caller.login}: {r.status_code} "
                                   f"{r.text[:300]}")
        after = await _versions(api, east)
    assert not refused, "accepted:\n" + "\n".join(refused)
    assert after == before, "a refused write changed another scope's records"


class _Signed:
    def __init__(self, person: Any) -> None:
        self.login, self.headers = person.login, person.headers
        self.claims = jwt.decode(person.token, options={"verify_signature": False})


async def test_the_walk_covers_every_kind_of_reference() -> None:
    kinds = {kind for _, _, refs in WALK for _, _, kind in refs}
    assert kinds == set(KIND_OF_FIELD.values()), kinds
    assert TALLY["tried"] >= len(WALK) and TALLY["refused"] == TALLY["tried"], dict(TALLY)
    print(f"\nreferences: {len(WALK)} writes, {dict(TALLY)}\n" + "\n".join(OTHER_REFUSALS))
