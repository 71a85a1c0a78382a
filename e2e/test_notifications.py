"""R-NOT-01/02 end to end in the started suite: an approval step assigned to a manager (the
contracts service's ApprovalStepAssigned, published on the suite's NATS with crmkit's envelope)
becomes exactly one item in the approver's inbox and exactly one message on their live event
stream, even when the event is delivered twice; the recipient comes from identity's org chart."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import nats
import pytest

from crm.common.v1 import money_pb2
from crm.contracts.v1 import events_pb2 as contract_events
from crm_devstack import Suite
from crmkit.events.envelope import build_headers, subject_of
from crmkit.events.streams import ensure_service_stream

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def _publish(suite: Suite, event: Any, event_id: str, *, msg_id: str | None = None) -> None:
    nc = await nats.connect(suite.nats_url)
    js = nc.jetstream()
    await ensure_service_stream(js, "contracts", 1)  # the contracts service's stream, if it is not running
    headers = build_headers(event_id=event_id, event_type=event.DESCRIPTOR.full_name, source="crm/contracts",
                            actor="e2e", subject_id=event.contract_id, time=dt.datetime.now(dt.UTC))
    if msg_id is not None:
        headers["Nats-Msg-Id"] = msg_id  # a redelivery JetStream cannot tell from a new message
    await js.publish(subject_of(event), event.SerializeToString(), headers=headers)
    await nc.close()


class Stream:
    def __init__(self, response: httpx.Response) -> None:
        self._lines = response.aiter_lines()

    async def next(self, timeout: float = 60.0) -> dict[str, str]:  # noqa: ASYNC109
        async def read() -> dict[str, str]:
            fields: dict[str, str] = {}
            async for line in self._lines:
                if not line:
                    if fields:
                        return fields
                    continue
                if not line.startswith(":"):
                    name, _, value = line.partition(":")
                    fields[name] = value.removeprefix(" ")
            raise AssertionError("the event stream ended")

        return await asyncio.wait_for(read(), timeout)


@contextlib.asynccontextmanager
async def _stream(suite: Suite, headers: dict[str, str]) -> AsyncIterator[Stream]:
    async with httpx.AsyncClient(base_url=suite.gateway_url, timeout=httpx.Timeout(10, read=None)) as client, \
            client.stream("GET", "/api/v1/notifications/stream", headers=headers) as response:
        assert response.status_code == 200, await response.aread()
        stream = Stream(response)
        assert (await stream.next())["event"] == "ready"
        yield stream


def _assigned(approver_id: str, number: str) -> contract_events.ApprovalStepAssigned:
    return contract_events.ApprovalStepAssigned(
        contract_id=str(uuid.uuid4()), contract_number=number, step_id=str(uuid.uuid4()), step_name="Sales manager",
        approver_ids=[approver_id], submitter_id="", amount=money_pb2.Money(amount="250000.00", currency="CNY"))


async def test_step_assigned_reaches_the_approver_once_in_inbox_and_stream(suite: Suite, sign_in, eventually) -> None:
    approver, bystander = sign_in("chen.jie"), sign_in("zhou.qiang")
    number, sentinel = f"CON-E2E-{uuid.uuid4().hex[:6]}", f"CON-E2E-{uuid.uuid4().hex[:6]}"
    first = _assigned(approver.id, number)
    first_id = str(uuid.uuid4())
    async with _stream(suite, approver.headers) as stream:
        await _publish(suite, first, first_id)
        await _publish(suite, first, first_id, msg_id=str(uuid.uuid4()))  # the same event, delivered again
        await _publish(suite, _assigned(approver.id, sentinel), str(uuid.uuid4()))
        # The approver's stream carries the first event once, then the sentinel: no duplicate between.
        got = [await stream.next(), await stream.next()]
    items = [json.loads(e["data"]) for e in got]
    assert [e["event"] for e in got] == ["notification", "notification"]
    assert [i["title"] for i in items] == [f"待审批：合同 {number}", f"待审批：合同 {sentinel}"]
    assert [int(e["id"]) for e in got] == [items[0]["sequence"], items[0]["sequence"] + 1]

    async with httpx.AsyncClient(base_url=suite.gateway_url, timeout=10) as api:
        inbox = (await api.get("/api/v1/notifications", headers=approver.headers, params={"limit": 200})).json()
        mine = [i for i in inbox["items"] if number in i["title"]]
        assert len(mine) == 1 and mine[0]["kind"] == "approval.waiting" and mine[0]["read_at"] is None
        assert "250000.00 CNY" in mine[0]["body"]
        others = (await api.get("/api/v1/notifications", headers=bystander.headers)).json()
        assert not [i for i in others["items"] if number in i["title"]]
        read = await api.post(f"/api/v1/notifications/{mine[0]['id']}/read", headers=approver.headers)
        assert read.status_code == 200 and read.json()["read_at"]
