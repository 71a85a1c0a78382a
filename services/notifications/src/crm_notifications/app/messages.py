"""Domain objects to protobuf messages."""

from __future__ import annotations

import datetime as dt

from google.protobuf.timestamp_pb2 import Timestamp

from crm.notifications.v1 import notifications_pb2 as pb
from crm_notifications.adapters.repository import Delivery, InboxItem, Webhook
from crm_notifications.domain.model import Preferences, Rule
from crm_notifications.domain.signing import mask_url


def ts(value: dt.datetime | None) -> Timestamp | None:
    if value is None:
        return None
    t = Timestamp()
    t.FromDatetime(value)
    return t


def item_to_pb(i: InboxItem) -> pb.InboxItem:
    return pb.InboxItem(id=str(i.id), recipient_id=i.recipient_id, kind=i.kind, title=i.title, body=i.body,
                        link=i.link, sequence=i.sequence, create_time=ts(i.created_at), read_time=ts(i.read_at),
                        event_id=i.event_id)


def preferences_to_pb(p: Preferences) -> pb.Preferences:
    return pb.Preferences(
        user_id=p.user_id, channels=[pb.KindChannels(kind=k, channels=[c.value for c in v])
                                     for k, v in sorted(p.channels.items())],
        quiet_start=p.quiet_start.strftime("%H:%M") if p.quiet_start else "",
        quiet_end=p.quiet_end.strftime("%H:%M") if p.quiet_end else "", time_zone=p.time_zone,
        daily_digest=p.daily_digest, digest_hour=p.digest_hour, version=p.version)


def rule_to_pb(r: Rule) -> pb.Rule:
    # A robot's secret is write-only; its URL (which carries an access token) is masked.
    return pb.Rule(id=str(r.id), name=r.name, event_subject=r.event_subject, kind=r.kind,
                   recipients=list(r.recipients),
                   robots=[pb.Robot(kind=b.kind.value, url=mask_url(b.url), locale=b.locale) for b in r.robots],
                   enabled=r.enabled, version=r.version, update_time=ts(r.updated_at), updated_by=r.updated_by)


def webhook_to_pb(w: Webhook) -> pb.Webhook:
    return pb.Webhook(id=str(w.id), url=w.url, event_types=list(w.event_types), description=w.description,
                      enabled=w.enabled, create_time=ts(w.created_at), created_by=w.created_by)


def delivery_to_pb(d: Delivery) -> pb.Delivery:
    return pb.Delivery(
        id=str(d.id), event_id=d.event_id, channel=d.channel.value, recipient=d.recipient, kind=d.kind,
        target=mask_url(d.target), status=d.status, attempts=d.attempts,
        next_attempt_time=ts(d.next_attempt_at) if d.status == "pending" else None, last_error=d.last_error,
        create_time=ts(d.created_at), deliver_time=ts(d.delivered_at),
        history=[pb.DeliveryAttempt(attempt=a.attempt, attempt_time=ts(a.attempted_at), outcome=a.outcome,
                                    error=a.error, duration_ms=a.duration_ms) for a in d.history])
