"""REST in front of the notifications service: the caller's inbox, the live event stream (SSE)
with Last-Event-ID resume, preferences with ETags, rules and webhooks behind their permissions
(R-NOT-01..03). Inbox items are made by the service's own event handler, and published through
its outbox to real NATS, where the gateway picks them up."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import uvicorn

from crm.contracts.v1 import events_pb2 as contracts
from crm_gateway.main import create_app
from crm_notifications.app.handling import Notifier
from crm_notifications.domain.model import Person
from crmkit.auth import DataScope, Principal
from crmkit.db import UnitOfWork
from crmkit.events.envelope import Event, build_headers, subject_of
from crmkit.ids import new_id

pytestmark = pytest.mark.integration


class Everyone:
    """Identity stand-in: every id is an English-speaking person without email who reads everything."""

    async def person(self, user_id: str) -> Person | None:
        return Person(user_id, user_id, "", "en", Principal(subject=user_id, permissions=("*",),
                                                           data_scope=DataScope.ALL))

    async def managers(self, user_id: str) -> list[Person]:
        return []

    async def role_holders(self, role: str) -> list[Person]:
        return []

    async def role_access(self, role: str) -> Principal | None:
        return None


def user(prefix: str = "n", *permissions: str) -> Principal:
    return Principal(subject=f"{prefix}-{uuid.uuid4().hex[:8]}", name=prefix, permissions=permissions)


@pytest.fixture(scope="session")
async def n_app(gateway_settings: Any, notifications_target: str) -> AsyncIterator[Any]:
    app = create_app(gateway_settings.model_copy(update={"notifications_target": notifications_target}))
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture(scope="session")
async def n_client(n_app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=n_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway.test", timeout=30) as c:
        yield c


@pytest.fixture(scope="session")
async def n_server(n_app: Any) -> AsyncIterator[str]:
    """The same app behind a real HTTP server: an event stream never ends, so it is read over a
    socket (httpx's ASGI transport waits for the whole body)."""
    server = uvicorn.Server(uvicorn.Config(n_app, host="127.0.0.1", port=0, lifespan="off", log_config=None,
                                           timeout_graceful_shutdown=1))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    server.should_exit = True
    await task


@pytest.fixture(scope="session")
def notify(notifications_sessions: Any) -> Any:
    notifier = Notifier(Everyone(), email_enabled=False)

    async def send(*recipients: str, number: str = "CON-1") -> None:
        message = contracts.ApprovalStepAssigned(contract_id=str(uuid.uuid4()), contract_number=number,
                                                 step_name="Manager", approver_ids=list(recipients))
        event_id = str(new_id())
        event = Event(id=event_id, subject=subject_of(message), type=message.DESCRIPTOR.full_name,
                      payload=message.SerializeToString(),
                      headers=build_headers(event_id=event_id, event_type=message.DESCRIPTOR.full_name,
                                            source="crm/contracts", actor="", subject_id="",
                                            time=dt.datetime.now(dt.UTC)))
        async with UnitOfWork(notifications_sessions, "crm/notifications") as uow:
            await notifier.handle(uow, event)
            await uow.commit()

    return send


class EventStream:
    """Reads Server-Sent Events off an open response."""

    def __init__(self, response: httpx.Response) -> None:
        self._lines = response.aiter_lines()

    async def next(self, timeout: float = 10.0) -> dict[str, str]:
        async def read() -> dict[str, str]:
            fields: dict[str, str] = {}
            async for line in self._lines:
                if not line:
                    if "data" in fields or "event" in fields:
                        return fields
                    continue
                if line.startswith(":"):
                    continue  # keep-alive comment
                name, _, value = line.partition(":")
                fields[name] = value.removeprefix(" ")
            raise AssertionError("the stream ended")

        return await asyncio.wait_for(read(), timeout)


@contextlib.asynccontextmanager
async def open_stream(base_url: str, headers: dict[str, str]) -> AsyncIterator[EventStream]:
    async with httpx.AsyncClient(base_url=base_url, timeout=httpx.Timeout(30, read=None)) as client, \
            client.stream("GET", "/api/v1/notifications/stream", headers=headers) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        stream = EventStream(response)
        ready = await stream.next()
        assert ready["event"] == "ready" and "id" not in ready
        yield stream


async def test_inbox_over_rest(n_client, auth, notify, assert_problem) -> None:
    me, other = user("inbox"), user("other")
    await notify(me.subject, number="CON-A")
    await notify(me.subject, other.subject, number="CON-B")
    page = (await n_client.get("/api/v1/notifications", headers=auth(me))).json()
    assert [(i["title"], i["sequence"], i["read_at"]) for i in page["items"]] == [
        ("Approval waiting: contract CON-B", 2, None), ("Approval waiting: contract CON-A", 1, None)]
    assert page["items"][0]["link"].startswith("/api/v1/contracts/") and page["next_cursor"] is None
    assert (await n_client.get("/api/v1/notifications/unread-count", headers=auth(me))).json() == {"unread": 2}
    first = page["items"][1]["id"]
    assert_problem(await n_client.post(f"/api/v1/notifications/{first}/read", headers=auth(other)), 404)
    read = await n_client.post(f"/api/v1/notifications/{first}/read", headers=auth(me))
    assert read.status_code == 200 and read.json()["read_at"] is not None
    unread = (await n_client.get("/api/v1/notifications", params={"unread_only": True}, headers=auth(me))).json()
    assert [i["sequence"] for i in unread["items"]] == [2]
    assert (await n_client.post("/api/v1/notifications/read-all", headers=auth(me))).json() == {"marked": 1}
    assert (await n_client.get("/api/v1/notifications/unread-count", headers=auth(me))).json() == {"unread": 0}
    assert (await n_client.get("/api/v1/notifications/unread-count", headers=auth(other))).json() == {"unread": 1}


async def test_stream_pushes_live_items_and_resumes_after_last_event_id(n_server, auth, notify) -> None:
    me, other = user("stream"), user("bystander")
    await notify(me.subject, number="CON-OLD")  # before the stream: not sent to a fresh stream
    async with open_stream(n_server, auth(me)) as stream:
        await notify(other.subject, number="CON-NOT-MINE")
        await notify(me.subject, number="CON-2")
        await notify(me.subject, number="CON-3")
        got = [await stream.next(), await stream.next()]
    assert [(e["event"], e["id"]) for e in got] == [("notification", "2"), ("notification", "3")]
    assert [json.loads(e["data"])["title"] for e in got] == ["Approval waiting: contract CON-2",
                                                            "Approval waiting: contract CON-3"]
    # offline: two more arrive
    await notify(me.subject, number="CON-4")
    await notify(me.subject, number="CON-5")
    async with open_stream(n_server, auth(me) | {"Last-Event-ID": "3"}) as stream:
        replayed = [await stream.next(), await stream.next()]
        await notify(me.subject, number="CON-6")
        live = await stream.next()
        await notify(me.subject, number="CON-7")
        after = await stream.next()
    assert [e["id"] for e in [*replayed, live, after]] == ["4", "5", "6", "7"]
    assert [json.loads(e["data"])["sequence"] for e in [*replayed, live, after]] == [4, 5, 6, 7]


async def test_stream_refuses_a_bad_last_event_id(n_client, auth, assert_problem) -> None:
    response = await n_client.get("/api/v1/notifications/stream", headers=auth(user()) | {"Last-Event-ID": "x"})
    assert_problem(response, 422, fields=("Last-Event-ID",))


async def test_preferences_with_etags(n_client, auth, assert_problem) -> None:
    me = user("prefs")
    read = await n_client.get("/api/v1/notifications/preferences", headers=auth(me))
    assert read.status_code == 200 and read.headers["etag"] == '"v1"'
    assert read.json() == {"channels": {}, "quiet_start": None, "quiet_end": None, "time_zone": "Asia/Shanghai",
                           "daily_digest": False, "digest_hour": 8, "version": 1}
    body = {"channels": {"payment.overdue": ["inbox"]}, "quiet_start": "22:00", "quiet_end": "07:00",
            "time_zone": "Asia/Shanghai", "daily_digest": True, "digest_hour": 9}
    saved = await n_client.put("/api/v1/notifications/preferences", json=body, headers=auth(me) | {"If-Match": '"v1"'})
    assert saved.status_code == 200, saved.text
    assert saved.headers["etag"] == '"v2"' and saved.json() == body | {"version": 2}
    stale = await n_client.put("/api/v1/notifications/preferences", json=body, headers=auth(me) | {"If-Match": '"v1"'})
    assert_problem(stale, 412, reason="STALE_VERSION")
    half = await n_client.put("/api/v1/notifications/preferences", json=body | {"quiet_end": None},
                              headers=auth(me))
    assert_problem(half, 422, fields=("preferences.quiet_end",))
    bad = await n_client.put("/api/v1/notifications/preferences", json=body | {"channels": {"x": ["sms"]}},
                             headers=auth(me))
    assert bad.status_code == 422


async def test_rules_need_notifications_manage(n_client, auth, assert_problem) -> None:
    # Robots carry what the rule's owner may read: this operator reads the SAP sync state.
    rep, operator = user("rep"), user("operator", "notifications.manage", "integrations.read")
    assert_problem(await n_client.get("/api/v1/notification-rules", headers=auth(rep)), 403,
                   reason="PERMISSION_DENIED")
    rules = (await n_client.get("/api/v1/notification-rules", headers=auth(operator))).json()["items"]
    assert {r["kind"] for r in rules} >= {"approval.waiting", "approval.decided", "contract.expiring",
                                          "payment.overdue", "statement.disputed", "sync.failed"}
    body = {"name": "Orders to the ops chat", "event_subject": "crm.sap.sync.failed", "kind": "sync.failed",
            "recipients": [], "robots": [{"kind": "dingtalk", "url": "https://oapi.dingtalk.com/robot/send?"
                                          "access_token=tok", "secret": "SEC1", "locale": "zh-CN"}]}
    created = await n_client.post("/api/v1/notification-rules", json=body, headers=auth(operator))
    assert created.status_code == 201, created.text
    rule = created.json()
    assert rule["robots"] == [{"kind": "dingtalk", "url": "https://oapi.dingtalk.com/robot/send?access_token=***",
                               "locale": "zh-CN"}]  # the token masked, the secret never returned
    url = f"/api/v1/notification-rules/{rule['id']}"
    changed = await n_client.put(url, json=body | {"enabled": False}, headers=auth(operator) | {"If-Match": '"v1"'})
    assert changed.status_code == 200 and changed.json()["enabled"] is False and changed.headers["etag"] == '"v2"'
    invalid = await n_client.post("/api/v1/notification-rules", json=body | {"recipients": ["everyone"]},
                                  headers=auth(operator))
    assert_problem(invalid, 422, fields=("rule.recipients[0]",))
    assert (await n_client.delete(url, headers=auth(operator))).status_code == 204
    assert_problem(await n_client.delete(url, headers=auth(operator)), 404)


async def test_webhooks_show_their_secret_once(n_client, auth, assert_problem) -> None:
    # A webhook carries what its creator may read: this partner reads contracts.
    partner_admin = user("partner", "webhooks.manage", "contracts.read")
    operator = user("ops", "notifications.manage")
    assert_problem(await n_client.get("/api/v1/webhooks", headers=auth(operator)), 403)
    created = await n_client.post("/api/v1/webhooks", json={"url": "https://erp.example/hooks/crm",
                                                            "event_types": ["crm.contracts.>"]},
                                  headers=auth(partner_admin))
    assert created.status_code == 201, created.text
    hook = created.json()
    assert hook["secret"].startswith("whsec_") and created.headers["cache-control"] == "no-store"
    listed = (await n_client.get("/api/v1/webhooks", headers=auth(partner_admin))).json()["items"]
    mine = [h for h in listed if h["id"] == hook["id"]]
    assert len(mine) == 1 and "secret" not in mine[0]
    deliveries = await n_client.get("/api/v1/webhooks/deliveries", headers=auth(partner_admin))
    assert deliveries.status_code == 200 and deliveries.json()["next_cursor"] is None
    assert_problem(await n_client.get("/api/v1/notifications/deliveries", headers=auth(partner_admin)), 403)
    assert (await n_client.get("/api/v1/notifications/deliveries", headers=auth(operator))).status_code == 200
    missing = await n_client.post(f"/api/v1/webhooks/deliveries/{uuid.uuid4()}/replay", headers=auth(partner_admin))
    assert_problem(missing, 404)
    bad = await n_client.post("/api/v1/webhooks", json={"url": "ftp://x", "event_types": ["x"]},
                              headers=auth(partner_admin))
    assert_problem(bad, 422, fields=("webhook.url", "webhook.event_types[0]"))
    assert (await n_client.delete(f"/api/v1/webhooks/{hook['id']}", headers=auth(partner_admin))).status_code == 204


async def test_stream_fills_a_gap_from_the_service(n_server, auth, notify, notifications_sessions) -> None:
    """An item whose publication never reached this gateway (core NATS is at-most-once) is fetched
    when the next one arrives with a sequence that skips it."""
    from crm_notifications.adapters.repository import InboxItem, Repository

    me = user("gap")
    async with open_stream(n_server, auth(me)) as stream:
        await notify(me.subject, number="CON-G1")
        first = await stream.next()
        async with UnitOfWork(notifications_sessions, "crm/notifications") as uow:  # written, never published
            repo = Repository(uow.session)
            await repo.add_inbox_item(InboxItem(
                id=new_id(), recipient_id=me.subject, sequence=await repo.next_sequence(me.subject),
                kind="approval.waiting", title="Lost on the wire", body="", link="", event_id=str(new_id()),
                created_at=dt.datetime.now(dt.UTC), read_at=None))
            await uow.commit()
        await notify(me.subject, number="CON-G3")
        got = [first, await stream.next(), await stream.next()]
    assert [e["id"] for e in got] == ["1", "2", "3"]
    assert [json.loads(e["data"])["title"] for e in got] == [
        "Approval waiting: contract CON-G1", "Lost on the wire", "Approval waiting: contract CON-G3"]
