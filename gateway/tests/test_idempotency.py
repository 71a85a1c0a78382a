"""Idempotency-Key on POST: a retry returns the first response and creates nothing new."""

from __future__ import annotations

import asyncio

import nats
import pytest
from fastapi import Request, Response
from nats.js.api import KeyValueConfig

from crm_gateway.idempotency import IdempotencyStore
from crmkit import idempotency
from crmkit.testing.principals import EAST_REP, EAST_REP_2

pytestmark = pytest.mark.integration

API = "/api/v1/customers"


async def _count(client, headers, name: str) -> int:
    r = await client.get(API, headers=headers, params={"name": name, "limit": 200})
    assert r.status_code == 200, r.text
    return len(r.json()["items"])


async def test_same_key_same_body_replays_first_response(client, auth, unique):
    h = auth(EAST_REP) | {"Idempotency-Key": f"k-{unique()}"}
    name = f"Idem {unique()}"
    first = await client.post(API, headers=h, json={"name": name, "tags": ["idem"]})
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    second = await client.post(API, headers=h, json={"name": name, "tags": ["idem"]})
    assert second.status_code == 201, second.text
    assert second.headers["idempotent-replayed"] == "true"
    assert second.json() == first.json()
    assert second.content == first.content
    for header in ("location", "etag", "content-type"):
        assert second.headers[header] == first.headers[header]
    assert "x-trace-id" in second.headers
    assert await _count(client, auth(EAST_REP), name) == 1


async def test_same_key_different_body_is_rejected(client, auth, unique, assert_problem):
    h = auth(EAST_REP) | {"Idempotency-Key": f"k-{unique()}"}
    name = f"Idem {unique()}"
    first = await client.post(API, headers=h, json={"name": name})
    assert first.status_code == 201
    other = await client.post(API, headers=h, json={"name": name + " changed"})
    assert_problem(other, 422, reason="IDEMPOTENCY_KEY_REUSED", detail_mentions=("Idempotency-Key",))
    assert await _count(client, auth(EAST_REP), name) == 1


async def test_concurrent_identical_requests_create_once(client, auth, unique, assert_problem):
    h = auth(EAST_REP) | {"Idempotency-Key": f"k-{unique()}"}
    name = f"Idem race {unique()}"
    responses = await asyncio.gather(*(client.post(API, headers=h, json={"name": name}) for _ in range(4)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(201) >= 1, statuses
    originals = [r for r in responses if r.status_code == 201 and "idempotent-replayed" not in r.headers]
    assert len(originals) == 1, [(r.status_code, dict(r.headers)) for r in responses]
    for r in responses:
        if r.status_code == 201:
            assert r.json()["id"] == originals[0].json()["id"]
        else:
            assert_problem(r, 409, reason="IDEMPOTENCY_KEY_IN_USE")
    assert await _count(client, auth(EAST_REP), name) == 1
    # once finished, a retry replays
    retry = await client.post(API, headers=h, json={"name": name})
    assert retry.status_code == 201 and retry.headers["idempotent-replayed"] == "true"
    assert retry.json()["id"] == originals[0].json()["id"]


async def test_failed_attempt_releases_the_key(client, auth, unique, assert_problem):
    h = auth(EAST_REP) | {"Idempotency-Key": f"k-{unique()}"}
    name = f"Idem fix {unique()}"
    failed = await client.post(API, headers=h, json={"name": name, "industry": "no_such_industry"})
    assert_problem(failed, 422, fields=("industry",))
    invalid = await client.post(API, headers=h, json={"name": name, "bogus": 1})
    assert_problem(invalid, 422, fields=("bogus",))
    # the same failing body again fails again: failures are not replayed
    again = await client.post(API, headers=h, json={"name": name, "industry": "no_such_industry"})
    assert_problem(again, 422, fields=("industry",))
    assert "idempotent-replayed" not in again.headers
    fixed = await client.post(API, headers=h, json={"name": name, "industry": "machinery"})
    assert fixed.status_code == 201, fixed.text
    assert "idempotent-replayed" not in fixed.headers
    replay = await client.post(API, headers=h, json={"name": name, "industry": "machinery"})
    assert replay.headers.get("idempotent-replayed") == "true"
    assert await _count(client, auth(EAST_REP), name) == 1


async def test_keys_are_per_caller(client, auth, unique):
    key = f"k-{unique()}"
    name = f"Idem shared key {unique()}"
    mine = await client.post(API, headers=auth(EAST_REP) | {"Idempotency-Key": key}, json={"name": name})
    theirs = await client.post(API, headers=auth(EAST_REP_2) | {"Idempotency-Key": key}, json={"name": name})
    assert mine.status_code == theirs.status_code == 201
    assert "idempotent-replayed" not in theirs.headers
    assert mine.json()["id"] != theirs.json()["id"]
    assert theirs.json()["owner_id"] == EAST_REP_2.subject
    assert await _count(client, auth(EAST_REP), name) == 1
    assert await _count(client, auth(EAST_REP_2), name) == 1


async def test_keys_are_per_route(client, auth, create, unique):
    customer = await create(EAST_REP)
    key = f"k-{unique()}"
    h = auth(EAST_REP) | {"Idempotency-Key": key}
    contact = await client.post(f"{API}/{customer['id']}/contacts", headers=h, json={"name": "Same Key"})
    follow_up = await client.post(f"{API}/{customer['id']}/follow-ups", headers=h,
                                  json={"kind": "call", "summary": "same key"})
    assert contact.status_code == follow_up.status_code == 201
    assert "idempotent-replayed" not in follow_up.headers
    replay = await client.post(f"{API}/{customer['id']}/contacts", headers=h, json={"name": "Same Key"})
    assert replay.headers.get("idempotent-replayed") == "true"
    contacts = (await client.get(f"{API}/{customer['id']}/contacts", headers=auth(EAST_REP))).json()["items"]
    assert len(contacts) == 1


async def test_invalid_key_and_unauthenticated_retry(client, auth, unique, assert_problem):
    name = f"Idem bad key {unique()}"
    long_key = await client.post(API, headers=auth(EAST_REP) | {"Idempotency-Key": "x" * 256}, json={"name": name})
    assert_problem(long_key, 422, fields=("Idempotency-Key",))
    no_auth = await client.post(API, headers={"Idempotency-Key": f"k-{unique()}"}, json={"name": name})
    assert_problem(no_auth, 401)
    assert await _count(client, auth(EAST_REP), name) == 0


async def test_an_unreachable_bucket_lets_the_request_run_with_the_key_forwarded(nats_server):
    """The bucket's NATS connection is gone: the request still runs (the services dedupe on the
    forwarded key), instead of answering 500."""
    nc = await nats.connect(nats_server.url)
    store = IdempotencyStore(await nc.jetstream().create_key_value(KeyValueConfig(bucket="idempotency_unreachable")))
    await nc.close()
    forwarded: list[object] = []

    async def handler(request: Request) -> Response:
        forwarded.append(idempotency.forwarded_metadata())
        return Response(b'{"id": "1"}', status_code=201, media_type="application/json")

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b'{"name": "x"}', "more_body": False}

    request = Request({"type": "http", "method": "POST", "path": API, "headers": [], "query_string": b""}, receive)
    response = await store.run(request, "rep-east", "key-1", handler)
    assert response.status_code == 201 and forwarded and forwarded[0]
