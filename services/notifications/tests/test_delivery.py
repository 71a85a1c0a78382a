"""Deliveries reach real servers on loopback: an SMTP server, a partner's webhook endpoint that
verifies the signature, one that fails (retries with backoff, then parked, then replayed), and
stand-ins for the WeCom, DingTalk and Feishu robots (R-NOT-02, R-NOT-03). The worker's passes are
driven directly with the clock where the test wants it."""

from __future__ import annotations

import base64
import datetime as dt
import email
import email.policy
import hashlib
import hmac
import time
from typing import Any

import pytest

from crm.common.v1.money_pb2 import Money
from crm.contracts.v1 import events_pb2 as contracts
from crm_notifications.adapters.channels import Channels
from crm_notifications.app import use_cases
from crm_notifications.app.delivery import RetryPolicy, Worker
from crm_notifications.app.handling import Notifier
from crm_notifications.domain.defaults import default_rule_id
from crm_notifications.domain.signing import verify_webhook_signature
from crm_notifications.settings import NotificationsSettings
from crmkit.auth import DataScope, Principal
from crmkit.db import UnitOfWork

pytestmark = pytest.mark.integration

NOW = dt.datetime(2026, 11, 25, 2, 0, tzinfo=dt.UTC)
# Robots and webhooks carry what their owner may read: these owners read every contract.
ADMIN = Principal(subject="admin", permissions=("notifications.manage", "webhooks.manage", "contracts.read"),
                  data_scope=DataScope.ALL)
PARTNER = Principal(subject="partner-admin", kind="client", permissions=("webhooks.manage", "contracts.read"),
                    data_scope=DataScope.ALL)


def settings(**overrides: Any) -> NotificationsSettings:
    return NotificationsSettings(database_url="postgresql+asyncpg://unused/x", principal_public_key="unused",
                                 smtp_security="none", public_base_url="https://crm.lingbo.test", **overrides)


def worker(sessions, channels: Channels, *, max_attempts: int = 3) -> Worker:
    return Worker(sessions, channels, RetryPolicy(base_seconds=30, cap_seconds=600, jitter=0,
                                                  max_attempts=max_attempts), base_url="https://crm.lingbo.test")


async def handle(sessions, notifier: Notifier, event) -> None:
    async with UnitOfWork(sessions, "crm/notifications", actor=event.actor) as uow:
        await notifier.handle(uow, event)
        await uow.commit()


def assigned(*approvers: str, number: str = "CON-2026-000123") -> contracts.ApprovalStepAssigned:
    return contracts.ApprovalStepAssigned(
        contract_id="c-1", contract_number=number, step_id="s-1", step_name="Manager", approver_ids=list(approvers),
        submitter_id="rep", amount=Money(amount="120000.00", currency="CNY"))


async def test_email_reaches_the_smtp_server_in_the_recipients_language(sessions, directory, event, smtp_server,
                                                                       sql, outbox) -> None:
    directory.add("mgr", locale="zh-CN")
    directory.add("director", locale="en")
    channels = Channels(settings(smtp_host=smtp_server.host, smtp_port=smtp_server.port))
    notifier = Notifier(directory, email_enabled=True, base_url="https://crm.lingbo.test", clock=lambda: NOW)
    await handle(sessions, notifier, event(assigned("mgr", "director")))
    assert await worker(sessions, channels).deliver_due(NOW) == 2
    assert await worker(sessions, channels).deliver_due(NOW) == 0  # nothing twice
    got = {m.rcpt_tos[0]: email.message_from_bytes(m.content, policy=email.policy.default)
           for m in smtp_server.messages}
    assert set(got) == {"mgr@lingbo.test", "director@lingbo.test"}
    zh, en = got["mgr@lingbo.test"], got["director@lingbo.test"]
    assert zh["Subject"] == "待审批：合同 CON-2026-000123"
    assert en["Subject"] == "Approval waiting: contract CON-2026-000123"
    text = en.get_body(("plain",)).get_content()
    assert "waits for your decision" in text and "https://crm.lingbo.test/api/v1/contracts/c-1" in text
    assert '<a href="https://crm.lingbo.test/api/v1/contracts/c-1">' in en.get_body(("html",)).get_content()
    log = await sql("SELECT d.status, d.attempts, a.outcome FROM deliveries d JOIN delivery_attempts a "
                    "ON a.delivery_id = d.id")
    assert [(r.status, r.attempts, r.outcome) for r in log] == [("delivered", 1, "delivered")] * 2
    delivered = [r.message() for r in await outbox() if r.subject == "crm.notifications.delivery.succeeded"]
    assert sorted(m.recipient for m in delivered) == ["director", "mgr"] and {m.channel for m in delivered} == {"email"}
    await channels.close()


async def test_daily_digest_sends_one_email_for_the_day(sessions, call, directory, event, smtp_server, sql) -> None:
    directory.add("mgr", locale="en")
    await call(Principal(subject="mgr"), use_cases.update_preferences, channels={}, quiet_start="", quiet_end="",
               time_zone="Asia/Shanghai", daily_digest=True, digest_hour=8, expected_version=0)
    channels = Channels(settings(smtp_host=smtp_server.host, smtp_port=smtp_server.port))
    notifier = Notifier(directory, email_enabled=True, clock=lambda: NOW)  # 10:00 Shanghai
    await handle(sessions, notifier, event(assigned("mgr", number="CON-1")))
    await handle(sessions, notifier, event(assigned("mgr", number="CON-2")))
    assert await worker(sessions, channels).deliver_due(NOW) == 0  # held for tomorrow 08:00 Shanghai
    tomorrow = dt.datetime(2026, 11, 26, 0, 0, tzinfo=dt.UTC)
    assert await worker(sessions, channels).deliver_due(tomorrow) == 1
    [mail] = smtp_server.messages
    parsed = email.message_from_bytes(mail.content, policy=email.policy.default)
    assert parsed["Subject"] == "Your daily digest (2)"
    body = parsed.get_body(("plain",)).get_content()
    assert "CON-1" in body and "CON-2" in body
    rows = await sql("SELECT status FROM deliveries")
    assert [r.status for r in rows] == ["delivered", "delivered"]
    await channels.close()


async def test_webhook_is_signed_and_verified_by_the_partner(sessions, call, directory, event, http_endpoint,
                                                             sql) -> None:
    secrets: list[str] = []

    def verify(got) -> int:
        return 204 if verify_webhook_signature(secrets[0], got.headers["x-crm-signature"], got.body,
                                               now=int(time.time())) else 401

    partner = http_endpoint(check=verify)
    hook = await call(PARTNER, use_cases.create_webhook, url=partner.url, event_types=["crm.contracts.>"],
                      description="ERP")
    secrets.append(hook.secret)
    assert hook.secret.startswith("whsec_")
    listed = await call(PARTNER, use_cases.list_webhooks)
    assert [h.url for h in listed] == [partner.url]
    channels = Channels(settings())
    signed = event(contracts.ContractSigned(contract_id="c-9", contract_number="CON-9",
                                            amount=Money(amount="10.00", currency="CNY")))
    await handle(sessions, Notifier(directory, email_enabled=False, clock=lambda: NOW), signed)
    assert await worker(sessions, channels).deliver_due(NOW) == 1
    [got] = partner.received
    body = got.json()
    assert body["id"] == signed.id and body["type"] == "crm.contracts.contract.signed"
    assert body["specversion"] == "1.0" and body["source"] == "crm/contracts" and body["time"]
    assert body["data"]["contract_number"] == "CON-9" and body["data"]["amount"] == {"amount": "10.00",
                                                                                      "currency": "CNY"}
    assert got.headers["x-crm-event-type"] == "crm.contracts.contract.signed"
    rows = await sql("SELECT status, attempts FROM deliveries WHERE channel = 'webhook'")
    assert [(r.status, r.attempts) for r in rows] == [("delivered", 1)]


async def test_failing_partner_is_retried_with_backoff_then_parked_then_replayed(
        sessions, call, directory, event, http_endpoint, outbox) -> None:
    partner = http_endpoint(status=503)
    await call(PARTNER, use_cases.create_webhook, url=partner.url, event_types=["crm.contracts.contract.signed"],
               description="")
    channels = Channels(settings())
    w = worker(sessions, channels, max_attempts=3)
    await handle(sessions, Notifier(directory, email_enabled=False, clock=lambda: NOW),
                 event(contracts.ContractSigned(contract_id="c-9")))
    second = NOW + dt.timedelta(seconds=30)
    third = second + dt.timedelta(seconds=60)
    assert await w.deliver_due(NOW) == 1          # attempt 1 fails: next in 30 s
    assert await w.deliver_due(second - dt.timedelta(seconds=1)) == 0
    assert await w.deliver_due(second) == 1       # attempt 2 fails: next in 60 s
    assert await w.deliver_due(third - dt.timedelta(seconds=1)) == 0
    assert await w.deliver_due(third) == 1        # attempt 3 fails: parked
    assert await w.deliver_due(third + dt.timedelta(days=1)) == 0
    assert len(partner.received) == 3
    [parked], _ = await call(PARTNER, use_cases.list_deliveries, limit=10, page_token="", channel="", status="",
                             recipient="", event_id="")
    assert parked.status == "parked" and parked.attempts == 3 and parked.last_error.startswith("HTTP 503")
    assert [(a.attempt, a.attempted_at, a.outcome) for a in parked.history] == [
        (1, NOW, "failed"), (2, second, "failed"), (3, third, "failed")]
    failed = [r.message() for r in await outbox() if r.subject == "crm.notifications.delivery.failed"]
    assert [(m.delivery_id, m.attempts, m.channel) for m in failed] == [(str(parked.id), 3, "webhook")]

    partner.status = 200
    replayed = await call(PARTNER, use_cases.replay_delivery, parked.id, "webhook")
    assert replayed.status == "pending" and replayed.attempts == 0
    assert await w.deliver_due(dt.datetime.now(dt.UTC)) == 1
    [done], _ = await call(ADMIN, use_cases.list_deliveries, limit=10, page_token="", channel="webhook",
                           status="delivered", recipient="", event_id="")
    assert done.id == parked.id and [a.outcome for a in done.history] == ["failed"] * 3 + ["delivered"]
    assert len(partner.received) == 4
    from crmkit.errors import PermissionDenied
    with pytest.raises(PermissionDenied):  # the partner admin sees webhooks, not the email log
        await call(PARTNER, use_cases.list_deliveries, limit=10, page_token="", channel="email", status="",
                   recipient="", event_id="")
    await channels.close()


async def test_robots_get_their_documented_formats(sessions, call, directory, event, http_endpoint) -> None:
    wecom = http_endpoint(reply={"errcode": 0, "errmsg": "ok"})
    dingtalk = http_endpoint(reply={"errcode": 0, "errmsg": "ok"})
    feishu = http_endpoint(reply={"code": 0, "msg": "success", "data": {}})
    rule_id = default_rule_id("crm.contracts.approval.step_assigned")
    await call(ADMIN, use_cases.update_rule, rule_id, directory=directory, name="Approvals to the team chats",
               kind="approval.waiting",
               event_subject="crm.contracts.approval.step_assigned", recipients=[],
               robots=[("wecom", wecom.url + "?key=wk", "", "zh-CN"),
                       ("dingtalk", dingtalk.url + "?access_token=dt", "SECdt", "en"),
                       ("feishu", feishu.url, "fs-secret", "zh-CN")], enabled=True, expected_version=1)
    channels = Channels(settings())
    await handle(sessions, Notifier(directory, email_enabled=False, clock=lambda: NOW), event(assigned()))
    before = int(time.time())
    assert await worker(sessions, channels).deliver_due(NOW) == 3
    after = int(time.time())

    [w] = wecom.received
    assert w.query == {"key": "wk"}
    assert w.json() == {"msgtype": "markdown", "markdown": {"content": (
        "**待审批：合同 CON-2026-000123**\n合同 CON-2026-000123 的审批步骤「Manager」等待您处理，金额 120000.00 CNY。\n"
        "[https://crm.lingbo.test/api/v1/contracts/c-1](https://crm.lingbo.test/api/v1/contracts/c-1)")}}

    [d] = dingtalk.received
    assert d.query["access_token"] == "dt"
    ts = int(d.query["timestamp"])
    assert before * 1000 <= ts <= (after + 1) * 1000
    expected = base64.b64encode(hmac.new(b"SECdt", f"{ts}\nSECdt".encode(), hashlib.sha256).digest()).decode()
    assert d.query["sign"] == expected
    body = d.json()
    assert body["msgtype"] == "markdown"
    assert body["markdown"]["title"] == "Approval waiting: contract CON-2026-000123"
    assert body["markdown"]["text"].startswith("#### Approval waiting: contract CON-2026-000123\n\nStep \"Manager\"")

    [f] = feishu.received
    body = f.json()
    assert body["msg_type"] == "text"
    assert body["content"]["text"].startswith("待审批：合同 CON-2026-000123\n合同 CON-2026-000123")
    fts = int(body["timestamp"])
    assert before <= fts <= after + 1
    mac = hmac.new(f"{fts}\nfs-secret".encode(), b"", hashlib.sha256).digest()
    assert body["sign"] == base64.b64encode(mac).decode()
    await channels.close()


async def test_robot_error_code_counts_as_a_failure(sessions, call, directory, event, http_endpoint, sql) -> None:
    wecom = http_endpoint(reply={"errcode": 93000, "errmsg": "invalid webhook url"})
    await call(ADMIN, use_cases.update_rule, default_rule_id("crm.contracts.approval.step_assigned"),
               directory=directory, name="x",
               kind="approval.waiting", event_subject="crm.contracts.approval.step_assigned", recipients=[],
               robots=[("wecom", wecom.url, "", "zh-CN")], enabled=True, expected_version=0)
    channels = Channels(settings())
    await handle(sessions, Notifier(directory, email_enabled=False, clock=lambda: NOW), event(assigned()))
    assert await worker(sessions, channels).deliver_due(NOW) == 1
    [row] = await sql("SELECT status, attempts, last_error, next_attempt_at FROM deliveries")
    assert row.status == "pending" and row.attempts == 1 and "93000" in row.last_error
    assert row.next_attempt_at == NOW + dt.timedelta(seconds=30)
    await channels.close()
