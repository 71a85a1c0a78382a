"""From events to notifications on real PostgreSQL: the rules pick the people, preferences the
channels, the locale the language; in-app items get increasing per-recipient sequences and are
published; one event never notifies one person twice on one channel (R-NOT-01..03)."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from crm.billing.v1 import events_pb2 as billing
from crm.common.v1.money_pb2 import Money
from crm.contracts.v1 import events_pb2 as contracts
from crm.sap.v1 import events_pb2 as sap
from crm_notifications.app import use_cases
from crm_notifications.app.handling import Notifier
from crm_notifications.domain.defaults import default_rule_id
from crmkit.auth import DataScope, Principal
from crmkit.db import UnitOfWork

pytestmark = pytest.mark.integration

NOW = dt.datetime(2026, 11, 25, 2, 0, tzinfo=dt.UTC)  # 10:00 in Shanghai


def person(subject: str) -> Principal:
    return Principal(subject=subject, name=subject)


async def handle(sessions, notifier: Notifier, event) -> None:
    async with UnitOfWork(sessions, "crm/notifications", actor=event.actor) as uow:
        await notifier.handle(uow, event)
        await uow.commit()


def step_assigned(*approvers: str) -> contracts.ApprovalStepAssigned:
    return contracts.ApprovalStepAssigned(
        contract_id="c-1", contract_number="CON-2026-000123", step_id="s-1", step_name="Manager",
        approver_ids=list(approvers), submitter_id="rep", amount=Money(amount="120000.00", currency="CNY"))


async def test_approval_waiting_reaches_each_approver_once_in_their_language(sessions, call, directory, event,
                                                                            outbox, sql) -> None:
    directory.add("mgr", locale="zh-CN")
    directory.add("director", locale="en")
    notifier = Notifier(directory, email_enabled=True, clock=lambda: NOW)
    first = event(step_assigned("mgr", "director", "mgr"))
    await handle(sessions, notifier, first)
    await handle(sessions, notifier, first)  # the same event again: nothing new
    await handle(sessions, notifier, event(step_assigned("mgr")))  # a second event: a second item

    mine, _ = await call(person("mgr"), use_cases.list_inbox, limit=10, page_token="", unread_only=False,
                         after_sequence=0)
    assert [(i.sequence, i.title) for i in mine] == [(2, "待审批：合同 CON-2026-000123"),
                                                     (1, "待审批：合同 CON-2026-000123")]
    theirs, _ = await call(person("director"), use_cases.list_inbox, limit=10, page_token="", unread_only=False,
                           after_sequence=0)
    assert [(i.sequence, i.title, i.link) for i in theirs] == [
        (1, "Approval waiting: contract CON-2026-000123", "/api/v1/contracts/c-1")]
    published = [r.message() for r in await outbox() if r.subject == "crm.notifications.inbox.created"]
    assert sorted((m.recipient_id, m.sequence) for m in published) == [("director", 1), ("mgr", 1), ("mgr", 2)]
    assert all(m.kind == "approval.waiting" and m.item_id for m in published)
    emails = await sql("SELECT recipient, target, status, payload->>'title' AS title FROM deliveries "
                       "WHERE channel = 'email' ORDER BY recipient, created_at")
    assert [(e.recipient, e.target, e.status) for e in emails] == [
        ("director", "director@lingbo.test", "pending"), ("mgr", "mgr@lingbo.test", "pending"),
        ("mgr", "mgr@lingbo.test", "pending")]


async def test_inbox_read_unread_and_replay_after_sequence(sessions, call, directory, event, outbox) -> None:
    directory.add("mgr")
    notifier = Notifier(directory, email_enabled=False, clock=lambda: NOW)
    for _ in range(3):
        await handle(sessions, notifier, event(step_assigned("mgr")))
    me = person("mgr")
    assert await call(me, use_cases.unread_count) == 3
    after, token = await call(me, use_cases.list_inbox, limit=10, page_token="", unread_only=False, after_sequence=1)
    assert [i.sequence for i in after] == [2, 3] and token == ""
    page, token = await call(me, use_cases.list_inbox, limit=2, page_token="", unread_only=False, after_sequence=0)
    assert [i.sequence for i in page] == [3, 2] and token
    rest, token = await call(me, use_cases.list_inbox, limit=2, page_token=token, unread_only=False,
                             after_sequence=0)
    assert [i.sequence for i in rest] == [1] and token == ""
    read = await call(me, use_cases.mark_read, page[0].id)
    assert read.read_at is not None and await call(me, use_cases.unread_count) == 2
    # someone else's item is not found for them
    from crmkit.errors import NotFound
    with pytest.raises(NotFound):
        await call(person("intruder"), use_cases.mark_read, page[1].id)
    assert await call(me, use_cases.mark_all_read) == 2
    assert await call(me, use_cases.unread_count) == 0
    reads = [r.message() for r in await outbox() if r.subject == "crm.notifications.inbox.read"]
    assert [(m.recipient_id, m.count) for m in reads] == [("mgr", 1), ("mgr", 2)]


async def test_payment_overdue_reaches_owner_and_manager_and_dispute_reaches_finance(sessions, call, directory,
                                                                                    event, sql) -> None:
    directory.add("rep", manager="boss")
    directory.add("boss", locale="en")
    directory.add("fin-1", roles=("finance",))
    directory.add("fin-2", roles=("finance",), email="")
    directory.add("ops", roles=("operator",))
    notifier = Notifier(directory, email_enabled=True, clock=lambda: NOW)
    await handle(sessions, notifier, event(billing.InvoiceOverdue(
        invoice_id="i-1", invoice_number="INV-9", owner_id="rep", days_overdue=12, due_on="2026-11-13",
        outstanding=Money(amount="5000.00", currency="CNY")), source="crm/billing"))
    await handle(sessions, notifier, event(billing.StatementDisputed(
        statement_id="st-1", statement_number="ST-7", disputed_lines=2, reasons=["price", "quantity"]),
        source="crm/billing"))
    await handle(sessions, notifier, event(sap.SyncFailed(record_kind="sales_order", crm_id="o-1", error="boom",
                                                          parked=True, attempts=5), source="crm/sap"))
    items = await sql("SELECT recipient_id, kind, title FROM inbox_items ORDER BY kind, recipient_id")
    assert [(i.recipient_id, i.kind, i.title) for i in items] == [
        ("boss", "payment.overdue", "Payment overdue: invoice INV-9"),
        ("rep", "payment.overdue", "回款逾期：发票 INV-9"),
        ("fin-1", "statement.disputed", "对账单有异议：ST-7"),
        ("fin-2", "statement.disputed", "对账单有异议：ST-7"),
        ("ops", "sync.failed", "SAP 同步失败：sales_order o-1"),
    ]
    # fin-2 has no email address: inbox only
    emails = await sql("SELECT recipient FROM deliveries WHERE channel = 'email' ORDER BY recipient")
    assert [e.recipient for e in emails] == ["boss", "fin-1", "ops", "rep"]


async def test_preferences_pick_channels_and_quiet_hours_hold_email(sessions, call, directory, event, sql,
                                                                    outbox) -> None:
    directory.add("mgr")
    directory.add("quiet")
    me = person("mgr")
    await call(me, use_cases.update_preferences, channels={"approval.waiting": ["email"]}, quiet_start="",
               quiet_end="", time_zone="Asia/Shanghai", daily_digest=False, digest_hour=8, expected_version=0)
    # 22:00–07:00 Shanghai; it is 23:30 there (15:30 UTC)
    await call(person("quiet"), use_cases.update_preferences, channels={}, quiet_start="22:00", quiet_end="07:00",
               time_zone="Asia/Shanghai", daily_digest=False, digest_hour=8, expected_version=0)
    late = dt.datetime(2026, 11, 25, 15, 30, tzinfo=dt.UTC)
    notifier = Notifier(directory, email_enabled=True, clock=lambda: late)
    await handle(sessions, notifier, event(step_assigned("mgr", "quiet")))
    items = await sql("SELECT recipient_id FROM inbox_items")
    assert [i.recipient_id for i in items] == ["quiet"]  # mgr chose email only for this kind
    emails = await sql("SELECT recipient, next_attempt_at FROM deliveries ORDER BY recipient")
    assert [(e.recipient, e.next_attempt_at) for e in emails] == [
        ("mgr", late), ("quiet", dt.datetime(2026, 11, 25, 23, 0, tzinfo=dt.UTC))]
    prefs = await call(me, use_cases.get_preferences)
    assert prefs.version == 2 and prefs.channels_for("approval.waiting") == ("email",)
    from crmkit.errors import StaleVersion
    with pytest.raises(StaleVersion):
        await call(me, use_cases.update_preferences, channels={}, quiet_start="", quiet_end="",
                   time_zone="UTC", daily_digest=True, digest_hour=8, expected_version=7)
    assert [r.subject for r in await outbox()].count("crm.notifications.preferences.changed") == 2


async def test_rules_are_data_an_admin_edits(sessions, call, directory, event, sql, outbox) -> None:
    admin = Principal(subject="admin", permissions=("notifications.manage", "contracts.read"),
                      data_scope=DataScope.ALL)
    from crmkit.errors import InvalidArgument, PermissionDenied
    with pytest.raises(PermissionDenied):
        await call(person("rep"), use_cases.list_rules)
    seeded = await call(admin, use_cases.list_rules)
    assert {r.event_subject for r in seeded} >= {"crm.contracts.approval.step_assigned",
                                                 "crm.billing.invoice.overdue", "crm.sap.sync.failed"}
    # the submitter should hear about step assignments too, and the manager rule goes away
    rule_id = default_rule_id("crm.contracts.approval.step_assigned")
    updated = await call(admin, use_cases.update_rule, rule_id, directory=directory, name="Approval waiting",
                         kind="approval.waiting",
                         event_subject="crm.contracts.approval.step_assigned",
                         recipients=["field:approver_ids", "field:submitter_id"],
                         robots=[("wecom", "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=K", "", "zh-CN")],
                         enabled=True, expected_version=1)
    assert updated.version == 2
    with pytest.raises(InvalidArgument):
        await call(admin, use_cases.create_rule, directory=directory, name="x", event_subject="crm.a.b.c", kind="k",
                   recipients=["everyone"], robots=[], enabled=True)
    await call(admin, use_cases.delete_rule, default_rule_id("crm.billing.invoice.overdue"))
    directory.add("mgr")
    directory.add("rep")
    notifier = Notifier(directory, email_enabled=False, clock=lambda: NOW)
    await handle(sessions, notifier, event(step_assigned("mgr")))
    await handle(sessions, notifier, event(billing.InvoiceOverdue(invoice_id="i", owner_id="rep"),
                                           source="crm/billing"))
    items = await sql("SELECT recipient_id, kind FROM inbox_items ORDER BY recipient_id")
    assert [(i.recipient_id, i.kind) for i in items] == [("mgr", "approval.waiting"), ("rep", "approval.waiting")]
    robots = await sql("SELECT channel, recipient FROM deliveries")
    assert [(r.channel, r.recipient) for r in robots] == [("wecom", f"rule:{rule_id}#0")]
    changes = [r.message() for r in await outbox() if r.subject == "crm.notifications.rule.changed"]
    assert [(c.change, c.version) for c in changes] == [("updated", 2), ("deleted", 1)]


async def test_unknown_people_are_skipped(sessions, directory, event, sql) -> None:
    notifier = Notifier(directory, email_enabled=True, clock=lambda: NOW)
    await handle(sessions, notifier, event(step_assigned(str(uuid.uuid4()))))
    assert await sql("SELECT * FROM inbox_items") == [] and await sql("SELECT * FROM deliveries") == []


async def test_customer_reassigned_reaches_old_and_new_owner(sessions, directory, event, sql) -> None:
    from crm.customers.v1 import customers_pb2
    from crm.customers.v1 import events_pb2 as customer_events

    directory.add("old-owner", locale="en")
    directory.add("new-owner")
    moved = customer_events.CustomerReassigned(customer=customers_pb2.Customer(id="k-1", name="Huaxin Imaging"),
                                               previous_owner_id="old-owner", owner_id="new-owner")
    await handle(sessions, Notifier(directory, email_enabled=False, clock=lambda: NOW),
                 event(moved, source="crm/customers"))
    items = await sql("SELECT recipient_id, title, link FROM inbox_items ORDER BY recipient_id")
    assert [(i.recipient_id, i.title, i.link) for i in items] == [
        ("new-owner", "客户已转交：Huaxin Imaging", "/api/v1/customers/k-1"),
        ("old-owner", "Customer reassigned: Huaxin Imaging", "/api/v1/customers/k-1")]


async def test_an_old_event_notifies_nobody(sessions, directory, event, sql) -> None:
    """A consumer created on a stream with history (or a replay) must not page people about last month."""
    directory.add("mgr")
    notifier = Notifier(directory, email_enabled=True, max_age=dt.timedelta(hours=72), clock=lambda: NOW)
    await handle(sessions, notifier, event(step_assigned("mgr"), time=NOW - dt.timedelta(hours=73)))
    assert await sql("SELECT * FROM inbox_items") == [] and await sql("SELECT * FROM deliveries") == []
    await handle(sessions, notifier, event(step_assigned("mgr"), time=NOW - dt.timedelta(hours=71)))
    assert len(await sql("SELECT * FROM inbox_items")) == 1
