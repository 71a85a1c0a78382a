"""Health, metrics, trace ids from the REST call into the customers service, and the checked-in
OpenAPI document."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import httpx
import pytest
from opentelemetry.trace import SpanKind
from prometheus_client.parser import text_string_to_metric_families

from crm_gateway.main import create_app
from crmkit.testing import free_port
from crmkit.testing.principals import EAST_REP

pytestmark = pytest.mark.integration

API = "/api/v1/customers"
ROOT = Path(__file__).resolve().parents[2]


async def test_health_and_readiness(client):
    health = await client.get("/healthz")
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json() == {"status": "ready"}


async def test_not_ready_without_nats(gateway_settings):
    app = create_app(gateway_settings)  # lifespan not run: no NATS connection
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as c:
        ready = await c.get("/readyz")
        health = await c.get("/healthz")
    assert ready.status_code == 503 and ready.json() == {"status": "not ready", "failing": ["nats"]}
    assert health.status_code == 200  # alive, just not ready


async def test_backend_down_is_503_problem(gateway_settings, auth, assert_problem):
    settings = gateway_settings.model_copy(update={"customers_target": f"127.0.0.1:{free_port()}",
                                                   "rpc_deadline_seconds": 2.0})
    app = create_app(settings)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://gw") as c:
        r = await c.get(API, headers=auth(EAST_REP))
        assert_problem(r, 503)
        created = await c.post(API, headers=auth(EAST_REP), json={"name": "Nobody home"})
        assert_problem(created, 503)


class _BrokenStub:
    """A customers stub with a bug in it: every call raises something the gateway cannot map."""

    def __getattr__(self, name: str):
        async def call(*args, **kwargs):
            raise RuntimeError(f"bug in {name}")

        return call


async def test_unexpected_error_is_a_counted_500_problem(gateway_settings, auth, assert_problem, caplog):
    app = create_app(gateway_settings)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://gw") as c:
        app.state.customers = _BrokenStub()
        before = _samples((await c.get("/metrics")).text, "crm_http_requests_total")
        r = await c.get(API, headers=auth(EAST_REP))
        body = assert_problem(r, 500, reason="INTERNAL", detail_mentions=("trace id",))
        assert "bug in" not in r.text  # internals stay in the log
        after = _samples((await c.get("/metrics")).text, "crm_http_requests_total")
    key = ("/api/v1/customers", "GET", "500")
    assert after[key] - before.get(key, 0) == 1
    assert any("unhandled error" in rec.getMessage() and rec.exc_info for rec in caplog.records), body


def _samples(text: str, name: str) -> dict[tuple[str, str, str], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                out[(sample.labels["route"], sample.labels["method"], sample.labels["status"])] = sample.value
    return out


async def test_metrics_count_requests_by_route_template(client, auth, create, assert_problem):
    customer = await create(EAST_REP)
    before = _samples((await client.get("/metrics")).text, "crm_http_requests_total")
    key = ("/api/v1/customers/{customer_id}", "GET", "200")
    for _ in range(3):
        assert (await client.get(f"{API}/{customer['id']}", headers=auth(EAST_REP))).status_code == 200
    assert (await client.get(f"{API}/{customer['id']}")).status_code == 401
    assert (await client.get("/api/v1/no/such/thing/abc123")).status_code == 404
    metrics = await client.get("/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    after = _samples(metrics.text, "crm_http_requests_total")
    assert after[key] - before.get(key, 0) == 3
    unauth = ("/api/v1/customers/{customer_id}", "GET", "401")
    assert after[unauth] - before.get(unauth, 0) == 1
    # raw paths never become labels (one series per route, not per id)
    assert not any(customer["id"] in route or "abc123" in route for route, _, _ in after)
    assert ("unmatched", "GET", "404") in after
    assert "crm_http_request_duration_seconds_bucket" in metrics.text


async def test_every_api_response_carries_a_trace_id(client, auth, create, unique):
    customer = await create(EAST_REP)
    h = auth(EAST_REP)
    responses = [
        await client.get(API, headers=h),
        await client.get(f"{API}/{customer['id']}", headers=h),
        await client.post(API, headers=h, json={"name": f"Trace {unique()}"}),
        await client.post(API, headers=h | {"Idempotency-Key": unique()}, json={"name": f"Trace {unique()}"}),
        await client.patch(f"{API}/{customer['id']}", headers=h, json={"region": "t"}),
        await client.get(API),  # 401
        await client.get(f"{API}/not-a-uuid", headers=h),  # 422
        await client.post(API, headers=h, content=b"x"),  # 415
        await client.post(API, headers=h | {"Content-Type": "application/json"}, content=b"{" * 10_000),  # 413
        await client.get("/nowhere"),  # 404
        await client.put(API, headers=h),  # 405
        await client.get("/openapi.json"),
    ]
    ids = [r.headers.get("x-trace-id") for r in responses]
    assert all(i and re.fullmatch(r"[0-9a-f]{32}", i) for i in ids), list(zip([r.status_code for r in responses],
                                                                             ids, strict=True))
    assert len(set(ids)) == len(ids)  # one trace per request


async def test_caller_trace_context_is_continued(client, auth):
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    r = await client.get(API, headers=auth(EAST_REP) | {"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"})
    assert r.headers["x-trace-id"] == trace_id


async def test_trace_reaches_the_customers_service(client, auth, unique, sql, span_exporter):
    span_exporter.clear()
    r = await client.post(API, headers=auth(EAST_REP), json={"name": f"Traced {unique()}"})
    assert r.status_code == 201
    trace_id = r.headers["x-trace-id"]
    # the service recorded the event in its outbox inside the same trace
    rows = await sql("SELECT headers FROM outbox WHERE headers->>'ce-subject' = :id", id=r.json()["id"])
    assert len(rows) == 1
    headers = rows[0][0]
    assert headers["ce-type"] == "crm.customers.v1.CustomerCreated"
    assert headers["ce-actor"] == EAST_REP.subject
    assert headers["traceparent"].split("-")[1] == trace_id
    # and the service's gRPC server span belongs to the gateway's trace
    spans = [s for s in span_exporter.get_finished_spans() if format(s.context.trace_id, "032x") == trace_id]
    server = [s for s in spans if s.kind == SpanKind.SERVER and "CreateCustomer" in s.name]
    assert server, [s.name for s in spans]
    assert any(s.kind == SpanKind.CLIENT and "CreateCustomer" in s.name for s in spans)


# ------------------------------------------------------------------------------------- OpenAPI


def _render() -> str:
    spec = importlib.util.spec_from_file_location("crm_tools_openapi", ROOT / "tools" / "openapi.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.render()


def test_openapi_document_is_up_to_date():
    checked_in = (ROOT / "gateway" / "openapi.json").read_text(encoding="utf-8")
    assert checked_in == _render(), (
        "gateway/openapi.json is out of date with the gateway's routes: run `make openapi` "
        "(uv run python tools/openapi.py) and commit the result")


async def test_served_openapi_matches_checked_in(client):
    served = await client.get("/openapi.json")
    assert served.status_code == 200
    assert served.json() == json.loads((ROOT / "gateway" / "openapi.json").read_text(encoding="utf-8"))


def test_every_api_operation_requires_the_bearer_scheme():
    doc = json.loads((ROOT / "gateway" / "openapi.json").read_text(encoding="utf-8"))
    schemes = doc["components"]["securitySchemes"]
    bearer = [name for name, s in schemes.items() if s.get("type") == "http" and s.get("scheme") == "bearer"]
    assert bearer, schemes
    # signing in needs no token; nor does a browser session's refresh (its cookie is the credential)
    public = {("/api/v1/auth/token", "post"), ("/api/v1/auth/session", "post"),
              ("/api/v1/auth/session/refresh", "post")}
    operations = [(path, method, op) for path, ops in doc["paths"].items() if path.startswith("/api/")
                  for method, op in ops.items() if (path, method) not in public]
    assert len(operations) >= 14
    for path, method, op in operations:
        assert any(set(req) & set(bearer) for req in op.get("security", [])), f"{method.upper()} {path}"
    assert not any(p.startswith(("/healthz", "/readyz", "/metrics")) for p in doc["paths"])
    # customer ids in paths are documented as UUIDs
    for path, method, op in operations:
        if not path.startswith("/api/v1/customers"):
            continue
        for param in op.get("parameters", []):
            if param["in"] == "path":
                assert param["schema"].get("format") == "uuid", f"{method.upper()} {path} {param['name']}"
