"""Notification rules do not leak (issue 12, item 5): a person is told only what they could read
through the API (permission and data scope of the record), masked as the API masks it for them;
robots and webhooks carry only what their owner may read; a rule routing an event to a role that
cannot read it is refused."""

from __future__ import annotations

import datetime as dt

import pytest

from crm.customers.v1 import customers_pb2 as customers
from crm.customers.v1 import events_pb2 as customer_events
from crm_notifications.app import use_cases
from crm_notifications.app.handling import Notifier
from crm_notifications.domain import audience
from crmkit.auth import DataScope, Principal
from crmkit.db import UnitOfWork
from crmkit.errors import InvalidArgument

NOW = dt.datetime(2026, 11, 25, 2, 0, tzinfo=dt.UTC)
ADMIN = Principal(subject="admin", permissions=("*",), data_scope=DataScope.ALL, sees_sensitive=True)
OPERATOR = Principal(subject="ops", roles=("operator",), permissions=("notifications.manage", "integrations.read"),
                     data_scope=DataScope.ALL)
DIRECTOR = Principal(subject="director", permissions=("customers.read",), data_scope=DataScope.ALL)
EAST_MANAGER = Principal(subject="mgr-east", permissions=("customers.read",), data_scope=DataScope.TEAM,
                         team_ids=("east",))
WEST_MANAGER = Principal(subject="mgr-west", permissions=("customers.read",), data_scope=DataScope.TEAM,
                         team_ids=("west",))
EAST_REP = Principal(subject="rep-east", permissions=("customers.read",), data_scope=DataScope.OWN,
                     team_ids=("east",))
FINANCE = Principal(subject="fin", permissions=("customers.read", "billing.read"), data_scope=DataScope.SIGNED)


def contact_added() -> customer_events.ContactAdded:
    return customer_events.ContactAdded(contact=customers.Contact(
        id="k-1", customer_id="c-1", name="Buyer Wu", email="wu.buyer@acme.test", wechat="wu_buyer_88",
        phones=["+86138****5678"]))


EAST_CUSTOMER = customer_events.CustomerScope(owner_id="rep-east", team_id="east", department_path="/sales/east/")


def contact_added_on_east_customer() -> customer_events.ContactAdded:
    added = contact_added()
    added.customer_scope.CopyFrom(EAST_CUSTOMER)
    return added


def customer_created(owner: str, team: str) -> customer_events.CustomerCreated:
    return customer_events.CustomerCreated(customer=customers.Customer(
        id="c-2", name="East Valves", owner_id=owner, team_id=team, department_path="/sales/east/",
        tax_id="91310000MA1FL8TQ4X"))


# ------------------------------------------------------------------------------ pure rules


def test_each_event_needs_its_producers_read_permission():
    assert audience.read_permission("crm.customers.contact.added") == "customers.read"
    assert audience.read_permission("crm.customers.lead.assigned") == "leads.read"
    assert audience.read_permission("crm.billing.invoice.overdue") == "billing.read"
    assert audience.read_permission("crm.sap.sync.failed") == "integrations.read"
    assert audience.read_permission("crm.contracts.approval.step_assigned") == "contracts.read"
    assert audience.producer_permissions("crm.customers.>") == {"customers.read", "leads.read"}
    assert "billing.read" in audience.producer_permissions("crm.>")


def test_the_scope_subject_decides_who_may_read_and_named_people_need_the_permission_only():
    created = {"customer": {"owner_id": "rep-east", "team_id": "east", "department_path": "/sales/east/"}}
    subject = "crm.customers.customer.created"
    assert audience.may_read(EAST_MANAGER, subject, created)
    assert audience.may_read(EAST_REP, subject, created)
    assert not audience.may_read(WEST_MANAGER, subject, created)
    assert not audience.may_read(FINANCE, subject, created)  # no signed contract yet
    assert audience.may_read(FINANCE, subject, {"customer": created["customer"] | {"has_signed_contract": True}})
    assert audience.may_read(FINANCE, "crm.billing.invoice.overdue", {"owner_id": "rep-east"})
    assert not audience.may_read(OPERATOR, subject, created)
    assert not audience.may_read(OPERATOR, subject, created, named=True)
    assert audience.may_read(WEST_MANAGER, subject, created, named=True)
    # an event without a scope subject: only readers of every record
    contact = {"contact": {"customer_id": "c-1", "email": "a@b.test"}}
    assert audience.may_read(DIRECTOR, "crm.customers.contact.added", contact)
    assert not audience.may_read(EAST_MANAGER, "crm.customers.contact.added", contact)
    assert not audience.may_read(None, subject, created)


def test_a_contact_or_follow_up_is_read_by_whoever_may_read_its_customer():
    scope = {"owner_id": "rep-east", "team_id": "east", "department_path": "/sales/east/",
             "has_signed_contract": False}
    contact = {"contact": {"customer_id": "c-1", "email": "a@b.test"}, "customer_scope": scope}
    updated = {"before": {"customer_id": "c-1"}, "after": {"customer_id": "c-1"}, "customer_scope": scope}
    follow_up = {"follow_up": {"customer_id": "c-1", "summary": "called"}, "customer_scope": scope}
    for subject, data in (("crm.customers.contact.added", contact), ("crm.customers.contact.updated", updated),
                          ("crm.customers.followup.recorded", follow_up)):
        assert audience.may_read(EAST_REP, subject, data) and audience.may_read(EAST_MANAGER, subject, data)
        assert audience.may_read(DIRECTOR, subject, data)
        assert not audience.may_read(WEST_MANAGER, subject, data) and not audience.may_read(FINANCE, subject, data)
    signed = {**contact, "customer_scope": scope | {"has_signed_contract": True}}
    assert audience.may_read(FINANCE, "crm.customers.contact.added", signed)


def test_sensitive_values_are_masked_for_a_reader_without_the_right():
    data = {"contact": {"name": "Buyer Wu", "email": "wu.buyer@acme.test", "wechat": "wu_buyer_88",
                        "phones": ["13812345678"]}, "customer": {"tax_id": "91310000MA1FL8TQ4X"}}
    seen = audience.as_seen_by(DIRECTOR, data)
    assert seen["contact"]["name"] == "Buyer Wu"
    assert seen["contact"]["email"] == "w*******@acme.test"
    assert "wu_buyer_88" not in str(seen) and "13812345678" not in str(seen) and "MA1FL8TQ4X" not in str(seen)
    assert audience.as_seen_by(ADMIN, data) == data


# ---------------------------------------------------------------------- rules and fan-out

async def _handle(sessions, notifier: Notifier, event) -> None:
    async with UnitOfWork(sessions, "crm/notifications", actor=event.actor) as uow:
        await notifier.handle(uow, event)
        await uow.commit()


@pytest.mark.integration
async def test_an_operator_cannot_route_contact_events_to_a_role_without_customer_data(call, directory):
    directory.role_grants["operator"] = Principal(subject="role:operator",
                                                  permissions=("integrations.read", "notifications.manage"))
    with pytest.raises(InvalidArgument) as caught:
        await call(OPERATOR, use_cases.create_rule, directory=directory, name="Contacts to ops",
                   event_subject="crm.customers.contact.added", kind="contact.added", recipients=["role:operator"],
                   robots=[("wecom", "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=K", "", "zh-CN")],
                   enabled=True)
    assert caught.value.reason == "AUDIENCE_NOT_ALLOWED"
    fields = {v.field: v.description for v in caught.value.violations}
    assert "customers.read" in fields["rule.recipients[0]"] and "rule.robots" in fields
    with pytest.raises(InvalidArgument):
        await call(OPERATOR, use_cases.create_rule, directory=directory, name="x",
                   event_subject="crm.customers.contact.added", kind="contact.added", recipients=["role:nobody"],
                   robots=[], enabled=True)
    # its own events are fine
    rule = await call(OPERATOR, use_cases.create_rule, directory=directory, name="Sync failures",
                      event_subject="crm.sap.sync.failed", kind="sync.failed", recipients=["role:operator"],
                      robots=[], enabled=True)
    assert rule.owner is not None and rule.owner.subject == "ops"


@pytest.mark.integration
async def test_whoever_a_rule_routes_to_is_told_only_what_they_may_read(sessions, call, directory, event, sql):
    for who, access in (("ops", OPERATOR), ("director", DIRECTOR), ("mgr-east", EAST_MANAGER),
                        ("mgr-west", WEST_MANAGER), ("rep-east", EAST_REP), ("fin", FINANCE)):
        directory.add(who, access=access, roles=("everyone",))
    # An admin's rule (made before roles were checked, or with a role that lost the right later)
    for subject, kind in (("crm.customers.contact.added", "contact.added"),
                          ("crm.customers.customer.created", "customer.created")):
        await call(ADMIN, use_cases.create_rule, directory=None, name=kind, event_subject=subject, kind=kind,
                   recipients=["role:everyone"], robots=[], enabled=True)
    notifier = Notifier(directory, email_enabled=False, clock=lambda: NOW)
    await _handle(sessions, notifier, event(contact_added(), source="crm/customers"))
    await _handle(sessions, notifier, event(customer_created("rep-east", "east"), source="crm/customers"))
    items = await sql("SELECT recipient_id, kind, body FROM inbox_items ORDER BY kind, recipient_id")
    told = [(i.kind, i.recipient_id) for i in items]
    # the contact carries no owner: only readers of every customer; the operator never
    assert told == [("contact.added", "director"), ("customer.created", "director"),
                    ("customer.created", "mgr-east"), ("customer.created", "rep-east")]
    contact_body = items[0].body
    assert "Buyer Wu" in contact_body
    assert "wu.buyer@acme.test" not in contact_body and "wu_buyer_88" not in contact_body


@pytest.mark.integration
async def test_robots_and_webhooks_carry_only_what_their_owner_may_read(sessions, call, directory, event, sql):
    robot = ("wecom", "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=K", "", "zh-CN")
    east_ops = Principal(subject="east-ops", permissions=("notifications.manage", "webhooks.manage",
                                                          "customers.read", "leads.read"),
                         data_scope=DataScope.TEAM, team_ids=("east",))
    await call(east_ops, use_cases.create_rule, directory=directory, name="East customers",
               event_subject="crm.customers.customer.created", kind="customer.created", recipients=[],
               robots=[robot], enabled=True)
    await call(east_ops, use_cases.create_webhook, url="https://erp.example/hooks", event_types=["crm.customers.>"],
               description="")
    with pytest.raises(InvalidArgument) as caught:
        await call(east_ops, use_cases.create_webhook, url="https://erp.example/hooks",
                   event_types=["crm.billing.>"], description="")
    assert caught.value.violations[0].field == "webhook.event_types[0]"
    notifier = Notifier(directory, email_enabled=False, clock=lambda: NOW)
    await _handle(sessions, notifier, event(customer_created("rep-west", "west"), source="crm/customers"))
    assert await sql("SELECT channel FROM deliveries") == []
    await _handle(sessions, notifier, event(customer_created("rep-east", "east"), source="crm/customers"))
    sent = await sql("SELECT channel, payload FROM deliveries ORDER BY channel")
    assert [s.channel for s in sent] == ["webhook", "wecom"]
    webhook_payload = sent[0].payload
    assert webhook_payload["data"]["customer"]["name"] == "East Valves"
    assert webhook_payload["data"]["customer"]["tax_id"] != "91310000MA1FL8TQ4X"  # masked for its owner


@pytest.mark.integration
async def test_contact_and_follow_up_events_reach_the_reps_of_their_customer(sessions, call, directory, event, sql):
    west_rep = Principal(subject="rep-west", permissions=("customers.read",), data_scope=DataScope.OWN,
                         team_ids=("west",))
    for who, access in (("director", DIRECTOR), ("mgr-east", EAST_MANAGER), ("mgr-west", WEST_MANAGER),
                        ("rep-east", EAST_REP), ("rep-west", west_rep), ("fin", FINANCE)):
        directory.add(who, access=access, roles=("everyone",))
    for subject, kind in (("crm.customers.contact.added", "contact.added"),
                          ("crm.customers.followup.recorded", "followup.recorded")):
        await call(ADMIN, use_cases.create_rule, directory=None, name=kind, event_subject=subject, kind=kind,
                   recipients=["role:everyone"], robots=[], enabled=True)
    notifier = Notifier(directory, email_enabled=False, clock=lambda: NOW)
    await _handle(sessions, notifier, event(contact_added_on_east_customer(), source="crm/customers"))
    await _handle(sessions, notifier, event(customer_events.FollowUpRecorded(
        follow_up=customers.FollowUp(id="f-1", customer_id="c-1", summary="Visited the plant"),
        customer_scope=EAST_CUSTOMER), source="crm/customers"))
    items = await sql("SELECT recipient_id, kind, body FROM inbox_items ORDER BY kind, recipient_id")
    # the east customer's rep and manager again, and readers of every customer; another scope's rep,
    # its manager and finance (no signed contract) not
    assert [(i.kind, i.recipient_id) for i in items] == [
        ("contact.added", "director"), ("contact.added", "mgr-east"), ("contact.added", "rep-east"),
        ("followup.recorded", "director"), ("followup.recorded", "mgr-east"), ("followup.recorded", "rep-east")]
    rep_contact = next(i.body for i in items if (i.kind, i.recipient_id) == ("contact.added", "rep-east"))
    assert "Buyer Wu" in rep_contact and "wu.buyer@acme.test" not in rep_contact
