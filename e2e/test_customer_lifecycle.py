"""R-CUS-01/02/05 end to end: a customer with contacts and follow-ups created through the REST
API, read back, its events arriving on NATS with the trace id of the request that caused them,
and a retried POST creating nothing new."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import nats

from crm.customers.v1 import events_pb2
from crm_customers.domain.tax_id import uscc_check_char
from crm_devstack import Suite


def _tax_id() -> str:
    body = "91330100" + uuid.uuid4().hex[:9].upper().replace("I", "1").replace("O", "0")
    body = "".join(c if c in "0123456789ABCDEFGHJKLMNPQRTUWXY" else "1" for c in body)
    return body + uscc_check_char(body)


class EventLog:
    """Every event the suite publishes on crm.customers.>, in arrival order."""

    def __init__(self) -> None:
        self.messages: list[nats.aio.msg.Msg] = []
        self._arrived = asyncio.Condition()

    async def on_message(self, msg: nats.aio.msg.Msg) -> None:
        async with self._arrived:
            self.messages.append(msg)
            self._arrived.notify_all()

    async def wait_for(self, predicate, timeout: float = 15.0) -> nats.aio.msg.Msg:  # noqa: ASYNC109
        async def find() -> nats.aio.msg.Msg:
            async with self._arrived:
                while True:
                    for msg in self.messages:
                        if predicate(msg):
                            return msg
                    await self._arrived.wait()
        return await asyncio.wait_for(find(), timeout)


def _trace_id(msg: nats.aio.msg.Msg) -> str:
    return (msg.headers or {}).get("traceparent", "---").split("-")[1]


async def test_customer_with_contacts_and_follow_ups_end_to_end(suite: Suite, sign_in) -> None:
    nc = await nats.connect(suite.nats_url)
    log = EventLog()
    await nc.subscribe("crm.customers.>", cb=log.on_message)
    await nc.flush()  # subscribed at the server before the requests below
    rep = sign_in("li.wei")  # a sales rep of the East team (demo org chart)
    async with httpx.AsyncClient(base_url=suite.gateway_url, headers=rep.headers, timeout=10) as api:
        key = str(uuid.uuid4())
        tax_id = _tax_id()
        body = {"name": "Ningbo Precision Catheter Co., Ltd.", "tax_id": tax_id, "industry": "medical_devices",
                "region": "Zhejiang", "tags": ["OEM", "key account"],
                "addresses": [{"kind": "registered", "line": "88 Jiangnan Rd", "city": "Ningbo", "country": "CN"}]}
        created = await api.post("/api/v1/customers", json=body, headers={"Idempotency-Key": key})
        assert created.status_code == 201, created.text
        customer = created.json()
        customer_id, create_trace = customer["id"], created.headers["X-Trace-Id"]
        assert created.headers["Location"] == f"/api/v1/customers/{customer_id}"
        assert customer["owner_id"] == rep.id and customer["team_id"] == rep.team_ids[0]

        contact_traces = []
        for contact in ({"name": "Chen Hui", "title": "Purchasing manager", "phones": ["13812345678"],
                         "email": "chen.hui@example.cn", "is_key": True},
                        {"name": "Anna Weber", "title": "Quality engineer", "email": "a.weber@example.de"}):
            reply = await api.post(f"/api/v1/customers/{customer_id}/contacts", json=contact)
            assert reply.status_code == 201, reply.text
            contact_traces.append(reply.headers["X-Trace-Id"])
        follow_up_traces = []
        for follow_up in ({"kind": "visit", "occurred_at": "2026-11-20T09:30:00+08:00",
                           "summary": "Factory audit of the catheter line",
                           "key_facts": ["interested in 6F guiding catheters"]},
                          {"kind": "call", "occurred_at": "2026-11-24T15:00:00+08:00",
                           "summary": "Asked for a quote on 20k units"}):
            reply = await api.post(f"/api/v1/customers/{customer_id}/follow-ups", json=follow_up)
            assert reply.status_code == 201, reply.text
            follow_up_traces.append(reply.headers["X-Trace-Id"])

        read = (await api.get(f"/api/v1/customers/{customer_id}")).json()
        assert read["name"] == body["name"] and read["tax_id"] == tax_id and read["tags"] == ["key account", "OEM"]
        contacts = (await api.get(f"/api/v1/customers/{customer_id}/contacts")).json()["items"]
        assert [c["name"] for c in contacts] == ["Chen Hui", "Anna Weber"]  # key contact first
        assert contacts[0]["phones"] == ["+8613812345678"]
        timeline = (await api.get(f"/api/v1/customers/{customer_id}/follow-ups")).json()["items"]
        assert [f["kind"] for f in timeline] == ["call", "visit"]  # newest first
        assert timeline[1]["key_facts"] == ["interested in 6F guiding catheters"]

        # Every change arrives on NATS, carrying the trace of the request that made it.
        created_event = await log.wait_for(lambda m: m.subject == "crm.customers.customer.created"
                                           and m.headers.get("ce-subject") == customer_id)
        assert _trace_id(created_event) == create_trace
        assert created_event.headers["ce-actor"] == rep.id
        assert created_event.headers["Nats-Msg-Id"] == created_event.headers["ce-id"]
        payload = events_pb2.CustomerCreated.FromString(created_event.data)
        # Events carry sensitive values masked (R-SEC-04, docs/services/customers.md "Events").
        assert payload.customer.id == customer_id
        assert payload.customer.tax_id == tax_id[:4] + "*" * 12 + tax_id[-2:]
        for trace in contact_traces:
            event = await log.wait_for(lambda m, t=trace: _trace_id(m) == t)
            assert event.subject == "crm.customers.contact.added"
        for trace in follow_up_traces:
            event = await log.wait_for(lambda m, t=trace: _trace_id(m) == t)
            assert event.subject == "crm.customers.followup.recorded"

        # A retried POST with the same key returns the first response and creates nothing.
        retried = await api.post("/api/v1/customers", json=body, headers={"Idempotency-Key": key})
        assert retried.status_code == 201 and retried.json()["id"] == customer_id
        assert retried.headers["Idempotent-Replayed"] == "true"
        same_name = (await api.get("/api/v1/customers", params={"name": "Ningbo Precision Catheter"})).json()
        assert [c["id"] for c in same_name["items"]] == [customer_id]
        # Events are published in commit order, so once a later change's event has arrived, a
        # second creation event would have arrived before it.
        marker = await api.patch(f"/api/v1/customers/{customer_id}", json={"region": "Ningbo, Zhejiang"},
                                 headers={"If-Match": created.headers["ETag"]})
        assert marker.status_code == 200, marker.text
        await log.wait_for(lambda m: _trace_id(m) == marker.headers["X-Trace-Id"])
        creations = [m for m in log.messages if m.subject == "crm.customers.customer.created"
                     and m.headers.get("ce-subject") == customer_id]
        assert len(creations) == 1

        # The first ETag is now stale: a change based on it is refused, not applied.
        stale = await api.patch(f"/api/v1/customers/{customer_id}", json={"region": "Shanghai"},
                                headers={"If-Match": created.headers["ETag"]})
        assert stale.status_code == 412
        assert stale.headers["content-type"] == "application/problem+json"
        assert (await api.get(f"/api/v1/customers/{customer_id}")).json()["region"] == "Ningbo, Zhejiang"
    await nc.drain()


async def test_a_duplicate_tax_id_is_refused_naming_the_existing_customer(suite: Suite, sign_in) -> None:
    async with httpx.AsyncClient(base_url=suite.gateway_url, headers=sign_in("zhang.yu").headers, timeout=10) as api:
        tax_id = _tax_id()
        first = await api.post("/api/v1/customers", json={"name": "Suzhou Tubing Ltd", "tax_id": tax_id})
        assert first.status_code == 201
        second = await api.post("/api/v1/customers", json={"name": "Suzhou Tubing Limited", "tax_id": tax_id})
        assert second.status_code == 409
        problem = second.json()
        assert problem["type"] == "/problems/duplicate-tax-id"
        assert problem["existing_customer_id"] == first.json()["id"]
        assert "Suzhou Tubing Ltd" in problem["detail"]


async def test_every_process_exposes_metrics(suite: Suite) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        gateway = (await http.get(f"{suite.gateway_url}/metrics")).text
        customers = (await http.get(suite.metrics_url("customers"))).text
    assert "crm_http_requests_total" in gateway
    assert 'crm_grpc_server_handled_total{code="OK"' in customers or "crm_grpc_server_handled_total{" in customers
    assert "crm_outbox_backlog" in customers
