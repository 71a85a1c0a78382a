"""From an event to notifications (R-NOT-01): the rules for its subject name the people; only
those who could read the event's record through the API are told, masked as the API would mask
it for them (domain/audience.py), and robots and webhooks likewise for their owner; each
person's preferences pick the channels; their locale picks the template. In-app items are written
at once (and published for live push); email, robots and webhooks are queued as deliveries for
the worker. Runs in the consumer's unit of work, so it all commits with the processed-event mark.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from google.protobuf import descriptor_pool, message_factory
from google.protobuf.json_format import MessageToDict
from google.protobuf.timestamp_pb2 import Timestamp

# Every event the service may hear is registered in the descriptor pool by importing it.
from crm.billing.v1 import events_pb2 as _billing  # noqa: F401
from crm.contracts.v1 import events_pb2 as _contracts  # noqa: F401
from crm.customers.v1 import events_pb2 as _customers  # noqa: F401
from crm.notifications.v1 import events_pb2 as ev
from crm.sap.v1 import events_pb2 as _sap  # noqa: F401
from crm_notifications.adapters.directory import Directory
from crm_notifications.adapters.repository import InboxItem, Repository
from crm_notifications.domain import audience
from crm_notifications.domain.model import Channel, Person, Rule, user_ids_in, webhook_matches
from crm_notifications.domain.schedule import first_attempt
from crm_notifications.domain.templates import render
from crmkit.db import UnitOfWork
from crmkit.events.envelope import Event
from crmkit.ids import new_id

log = logging.getLogger(__name__)

# The streams and subjects the service listens to: everything of these producers, so webhook
# subscriptions may name any of their events, not only those a rule reacts to.
STREAMS = ("CRM_CONTRACTS", "CRM_BILLING", "CRM_SAP", "CRM_CUSTOMERS")


def decode(event: Event) -> dict[str, Any]:
    """The event's fields by their proto names (zero values included, so templates see them)."""
    descriptor = descriptor_pool.Default().FindMessageTypeByName(event.type)
    message = message_factory.GetMessageClass(descriptor).FromString(event.payload)
    return MessageToDict(message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)


def envelope(event: Event, data: dict[str, Any]) -> dict[str, Any]:
    """The webhook body: CloudEvents attributes around the event's JSON."""
    return {"specversion": "1.0", "id": event.id, "type": event.subject, "source": event.headers.get("ce-source", ""),
            "time": event.headers.get("ce-time", ""), "datacontenttype": "application/json",
            "subject": event.headers.get("ce-subject", ""), "data": data}


def event_time(event: Event) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(event.headers.get("ce-time", "").replace("Z", "+00:00"))
    except ValueError:
        return None


class Notifier:
    """`max_age`: an older event notifies nobody (a consumer created on a stream with weeks of
    history, or a replay, must not page people about last month)."""

    def __init__(self, directory: Directory, *, email_enabled: bool, base_url: str = "",
                 max_age: dt.timedelta = dt.timedelta(hours=72),
                 clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)) -> None:
        self._directory = directory
        self._email = email_enabled
        self._base_url = base_url
        self._max_age = max_age
        self._clock = clock

    async def handle(self, uow: UnitOfWork, event: Event) -> None:
        happened = event_time(event)
        if happened is not None and self._clock() - happened > self._max_age:
            log.info("event too old to notify about", extra={"event_id": event.id, "subject": event.subject,
                                                             "event_time": happened.isoformat()})
            return
        repo = Repository(uow.session)
        matching_rules = await repo.rules(subject=event.subject)
        hooks = [h for h in await repo.webhooks() if h.enabled and webhook_matches(h.event_types, event.subject)]
        if not matching_rules and not hooks:
            return
        data = decode(event)
        now = self._clock()
        for rule in matching_rules:
            await self._apply_rule(uow, repo, rule, event, data, now)
        for hook in hooks:
            if hook.owner is None or not audience.may_read(hook.owner, event.subject, data):
                continue  # the webhook's owner may not read this record: neither may the webhook
            await repo.enqueue(delivery_id=new_id(), event_id=event.id, channel=Channel.WEBHOOK,
                               recipient=str(hook.id), kind=event.subject, target=hook.url,
                               payload=envelope(event, audience.as_seen_by(hook.owner, data)), digest=False,
                               first_attempt=now, now=now)

    async def recipients(self, rule: Rule, data: dict[str, Any]) -> list[tuple[Person, bool]]:
        """The people the rule names, each with whether the event itself names them (`field:`)."""
        people: dict[str, tuple[Person, bool]] = {}
        for spec in rule.recipients:
            how, _, what = spec.partition(":")
            found: list[Person] = []
            if how == "field":
                for user_id in user_ids_in(data, what):
                    if (person := await self._directory.person(user_id)) is not None:
                        found.append(person)
            elif how == "manager_of":
                for user_id in user_ids_in(data, what):
                    found += await self._directory.managers(user_id)
            elif how == "role":
                found += await self._directory.role_holders(what)
            for person in found:
                named = how == "field" or (person.id in people and people[person.id][1])
                people[person.id] = (person, named)
        return list(people.values())

    async def _apply_rule(self, uow: UnitOfWork, repo: Repository, rule: Rule, event: Event, data: dict[str, Any],
                          now: dt.datetime) -> None:
        for person, named in await self.recipients(rule, data):
            if person.access is None or not audience.may_read(person.access, event.subject, data, named=named):
                log.info("recipient may not read the record; not told",
                         extra={"event_id": event.id, "rule_id": str(rule.id), "recipient": person.id})
                continue
            prefs = await repo.preferences(person.id)
            channels = prefs.channels_for(rule.kind)
            text = render(rule.kind, event.subject, audience.as_seen_by(person.access, data), person.locale,
                          self._base_url)
            if Channel.INBOX in channels and not await repo.in_inbox(event.id, person.id):
                item = InboxItem(id=new_id(), recipient_id=person.id, sequence=await repo.next_sequence(person.id),
                                 kind=rule.kind, title=text.title, body=text.body, link=text.link, event_id=event.id,
                                 created_at=now, read_at=None)
                await repo.add_inbox_item(item)
                created = Timestamp()
                created.FromDatetime(now)
                uow.emit(ev.InboxItemCreated(item_id=str(item.id), recipient_id=person.id, kind=item.kind,
                                             title=item.title, body=item.body, link=item.link, created_at=created,
                                             sequence=item.sequence), subject_id=person.id)
            if Channel.EMAIL in channels and self._email and person.email:
                await repo.enqueue(
                    delivery_id=new_id(), event_id=event.id, channel=Channel.EMAIL, recipient=person.id,
                    kind=rule.kind, target=person.email,
                    payload={"title": text.title, "body": text.body, "html": text.html, "link": text.link,
                             "locale": text.locale, "name": person.display_name},
                    digest=prefs.daily_digest, first_attempt=first_attempt(now, prefs, digest=prefs.daily_digest),
                    now=now)
        if rule.owner is None or not audience.may_read(rule.owner, event.subject, data):
            return  # robots speak for who saved the rule: not what that person may not read
        for i, robot in enumerate(rule.robots):
            text = render(rule.kind, event.subject, audience.as_seen_by(rule.owner, data), robot.locale,
                          self._base_url)
            await repo.enqueue(delivery_id=new_id(), event_id=event.id, channel=robot.kind,
                               recipient=f"rule:{rule.id}#{i}", kind=rule.kind, target=robot.url,
                               payload={"title": text.title, "body": text.body, "link": text.link,
                                        "secret": robot.secret},
                               digest=False, first_attempt=now, now=now)
