"""Commands and queries of the API. Each takes a unit of work and the calling principal; every
change emits its event (the audit trail stores them)."""

from __future__ import annotations

import datetime as dt
import uuid

from crm.notifications.v1 import events_pb2 as ev
from crm_notifications.adapters.directory import Directory
from crm_notifications.adapters.repository import Delivery, InboxItem, Repository, Webhook
from crm_notifications.domain import audience, model
from crm_notifications.domain.model import Channel, Preferences, Robot, Rule
from crm_notifications.domain.signing import new_webhook_secret
from crmkit.auth import Principal
from crmkit.db import UnitOfWork
from crmkit.errors import Conflict, FieldViolation, InvalidArgument, NotFound, PermissionDenied, StaleVersion
from crmkit.ids import new_id
from crmkit.pagination import aware_datetime, bigint, decode_cursor, encode_cursor, page_size, uuid_key

MANAGE = "notifications.manage"
WEBHOOKS = "webhooks.manage"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _require(principal: Principal, permission: str) -> None:
    if not principal.may(permission):
        raise PermissionDenied(f"this needs the permission {permission}", metadata={"permission": permission})


# ------------------------------------------------------------------------------------ inbox

INBOX_SORT = "-sequence"


async def list_inbox(uow: UnitOfWork, principal: Principal, *, limit: int, page_token: str, unread_only: bool,
                     after_sequence: int) -> tuple[list[InboxItem], str]:
    size = page_size(limit)
    repo = Repository(uow.session)
    if after_sequence < 0:
        raise InvalidArgument.of("after_sequence", "must not be negative")
    if after_sequence:
        items = await repo.inbox(principal.subject, limit=size + 1, after_sequence=after_sequence,
                                 unread_only=unread_only)
        more = len(items) > size
        # Oldest first; the caller continues after the last sequence it got.
        return items[:size], (str(items[size - 1].sequence) if more else "")
    cursor = decode_cursor(page_token, INBOX_SORT, (bigint,))
    before = cursor.values[0] if cursor else None
    items = await repo.inbox(principal.subject, limit=size + 1, before_sequence=before, unread_only=unread_only)
    token = encode_cursor(INBOX_SORT, [items[size - 1].sequence]) if len(items) > size else ""
    return items[:size], token


async def mark_read(uow: UnitOfWork, principal: Principal, item_id: uuid.UUID) -> InboxItem:
    item, changed = await Repository(uow.session).mark_read(principal.subject, item_id, _now())
    if item is None:
        raise NotFound(f"inbox item {item_id} not found", metadata={"item_id": str(item_id)})
    if changed:
        uow.emit(ev.InboxItemsRead(recipient_id=principal.subject, item_ids=[str(item_id)], count=1),
                 subject_id=principal.subject)
        await uow.commit()
    return item


async def mark_all_read(uow: UnitOfWork, principal: Principal) -> int:
    ids = await Repository(uow.session).mark_all_read(principal.subject, _now())
    if ids:
        # The ids travel only while they are few; the count always.
        uow.emit(ev.InboxItemsRead(recipient_id=principal.subject, item_ids=[str(i) for i in ids[:100]],
                                   count=len(ids)), subject_id=principal.subject)
        await uow.commit()
    return len(ids)


async def unread_count(uow: UnitOfWork, principal: Principal) -> int:
    return await Repository(uow.session).unread(principal.subject)


# ------------------------------------------------------------------------------ preferences

async def get_preferences(uow: UnitOfWork, principal: Principal) -> Preferences:
    return await Repository(uow.session).preferences(principal.subject)


async def update_preferences(uow: UnitOfWork, principal: Principal, *, channels: dict[str, list[str]],
                             quiet_start: str, quiet_end: str, time_zone: str, daily_digest: bool, digest_hour: int,
                             expected_version: int) -> Preferences:
    checked = model.check_preferences(channels, quiet_start, quiet_end, time_zone or "Asia/Shanghai", digest_hour)
    repo = Repository(uow.session)
    current = await repo.preferences(principal.subject, for_update=True)
    if expected_version and expected_version != current.version:
        raise StaleVersion(f"the preferences are at version {current.version}, not {expected_version}")
    saved = Preferences(user_id=principal.subject, channels=checked.channels, quiet_start=checked.quiet_start,
                        quiet_end=checked.quiet_end, time_zone=checked.time_zone, daily_digest=daily_digest,
                        digest_hour=checked.digest_hour, version=current.version + 1)
    await repo.save_preferences(saved, _now())
    uow.emit(ev.PreferencesChanged(user_id=principal.subject, version=saved.version), subject_id=principal.subject)
    await uow.commit()
    return saved


# ------------------------------------------------------------------------------------ rules

async def list_rules(uow: UnitOfWork, principal: Principal) -> list[Rule]:
    _require(principal, MANAGE)
    return await Repository(uow.session).rules()


def _robots(raw: list[tuple[str, str, str, str]]) -> list[Robot]:
    robots = []
    for i, (kind, url, secret, locale) in enumerate(raw):
        if kind not in model.ROBOT_CHANNELS:
            raise InvalidArgument.of(f"rule.robots[{i}].kind", "must be wecom, dingtalk or feishu")
        robots.append(Robot(Channel(kind), url.strip(), secret, locale or "zh-CN"))
    return robots


async def _check_audience(directory: Directory | None, principal: Principal, event_subject: str,
                          recipients: list[str], robots: list[Robot]) -> None:
    """A rule may only route an event to whom could read its record: every `role:` recipient's
    role and, for robots, who saves the rule, must hold the event's read permission. (Without a
    directory, as in tests of the API alone, roles are not looked up; delivery filters anyway.)"""
    needed = audience.read_permission(event_subject)
    problems = []
    for i, spec in enumerate(recipients):
        how, _, role = spec.partition(":")
        if how != "role" or directory is None:
            continue  # people named by the event or their managers: filtered one by one when it comes
        access = await directory.role_access(role)
        if access is None:
            problems.append(FieldViolation(f"rule.recipients[{i}]", f"there is no role {role!r}"))
        elif not access.may(needed):
            problems.append(FieldViolation(
                f"rule.recipients[{i}]", f"the role {role} cannot read what {event_subject} is about "
                                         f"(it needs {needed}), so its holders may not be told"))
    if robots and not principal.may(needed):
        problems.append(FieldViolation(
            "rule.robots", f"a robot carries what its rule's owner may read; you lack {needed}"))
    if problems:
        raise InvalidArgument("the rule would tell people what they may not read", reason="AUDIENCE_NOT_ALLOWED",
                              violations=problems)


def _owner(principal: Principal) -> Principal:
    """What of the saver's access robots and webhooks speak for (no token id, no rate limit)."""
    return Principal(subject=principal.subject, kind=principal.kind, roles=principal.roles,
                     team_ids=principal.team_ids, department_path=principal.department_path,
                     data_scope=principal.data_scope, permissions=principal.permissions,
                     sees_sensitive=principal.sees_sensitive)


async def create_rule(uow: UnitOfWork, principal: Principal, *, directory: Directory | None, name: str,
                      event_subject: str, kind: str, recipients: list[str], robots: list[tuple[str, str, str, str]],
                      enabled: bool) -> Rule:
    _require(principal, MANAGE)
    parsed = _robots(robots)
    model.check_rule(name, event_subject, kind, recipients, parsed)
    await _check_audience(directory, principal, event_subject, recipients, parsed)
    rule = Rule(id=new_id(), name=name.strip(), event_subject=event_subject, kind=kind,
                recipients=tuple(dict.fromkeys(recipients)), robots=tuple(parsed), enabled=enabled, version=1,
                updated_at=_now(), updated_by=principal.subject, owner=_owner(principal))
    await Repository(uow.session).save_rule(rule, new=True)
    uow.emit(ev.RuleChanged(rule_id=str(rule.id), change="created", name=rule.name, event_subject=event_subject,
                            version=1), subject_id=str(rule.id))
    await uow.commit()
    return rule


async def update_rule(uow: UnitOfWork, principal: Principal, rule_id: uuid.UUID, *, directory: Directory | None,
                      name: str, event_subject: str, kind: str, recipients: list[str],
                      robots: list[tuple[str, str, str, str]], enabled: bool, expected_version: int) -> Rule:
    _require(principal, MANAGE)
    repo = Repository(uow.session)
    current = await repo.rule(rule_id, for_update=True)
    if current is None:
        raise NotFound(f"rule {rule_id} not found", metadata={"rule_id": str(rule_id)})
    if expected_version and expected_version != current.version:
        raise StaleVersion(f"the rule is at version {current.version}, not {expected_version}")
    parsed = _robots(robots)
    # A robot's secret is write-only: an empty one keeps what the same URL had.
    kept = {b.url: b.secret for b in current.robots}
    parsed = [Robot(b.kind, b.url, b.secret or kept.get(b.url, ""), b.locale) for b in parsed]
    model.check_rule(name, event_subject, kind, recipients, parsed)
    await _check_audience(directory, principal, event_subject, recipients, parsed)
    rule = Rule(id=rule_id, name=name.strip(), event_subject=event_subject, kind=kind,
                recipients=tuple(dict.fromkeys(recipients)), robots=tuple(parsed), enabled=enabled,
                version=current.version + 1, updated_at=_now(), updated_by=principal.subject,
                owner=_owner(principal))
    await repo.save_rule(rule, new=False)
    uow.emit(ev.RuleChanged(rule_id=str(rule.id), change="updated", name=rule.name, event_subject=event_subject,
                            version=rule.version), subject_id=str(rule.id))
    await uow.commit()
    return rule


async def delete_rule(uow: UnitOfWork, principal: Principal, rule_id: uuid.UUID) -> None:
    _require(principal, MANAGE)
    repo = Repository(uow.session)
    current = await repo.rule(rule_id, for_update=True)
    if current is None:
        raise NotFound(f"rule {rule_id} not found", metadata={"rule_id": str(rule_id)})
    await repo.delete_rule(rule_id)
    uow.emit(ev.RuleChanged(rule_id=str(rule_id), change="deleted", name=current.name,
                            event_subject=current.event_subject, version=current.version), subject_id=str(rule_id))
    await uow.commit()


# --------------------------------------------------------------------------------- webhooks

async def list_webhooks(uow: UnitOfWork, principal: Principal) -> list[Webhook]:
    _require(principal, WEBHOOKS)
    return await Repository(uow.session).webhooks()


async def create_webhook(uow: UnitOfWork, principal: Principal, *, url: str, event_types: list[str],
                         description: str) -> Webhook:
    _require(principal, WEBHOOKS)
    url = url.strip()
    types = list(dict.fromkeys(t.strip() for t in event_types))
    model.check_webhook(url, types)
    if len(description) > 500:
        raise InvalidArgument.of("webhook.description", "must be at most 500 characters")
    # A webhook carries what its creator may read: event types beyond that are refused.
    unreadable = []
    for i, event_type in enumerate(types):
        missing = sorted(p for p in audience.producer_permissions(event_type) if not principal.may(p))
        if missing:
            unreadable.append(FieldViolation(f"webhook.event_types[{i}]",
                                             f"you may not read these events (needs {', '.join(missing)})"))
    if unreadable:
        raise InvalidArgument("the webhook would carry what you may not read", reason="AUDIENCE_NOT_ALLOWED",
                              violations=unreadable)
    hook = Webhook(id=new_id(), url=url, event_types=tuple(types), description=description, enabled=True,
                   created_at=_now(), created_by=principal.subject, secret=new_webhook_secret(),
                   owner=_owner(principal))
    await Repository(uow.session).add_webhook(hook)
    uow.emit(ev.WebhookChanged(webhook_id=str(hook.id), change="created", url=url, event_types=types),
             subject_id=str(hook.id))
    await uow.commit()
    return hook


async def delete_webhook(uow: UnitOfWork, principal: Principal, webhook_id: uuid.UUID) -> None:
    _require(principal, WEBHOOKS)
    repo = Repository(uow.session)
    hook = await repo.webhook(webhook_id)
    if hook is None or not await repo.delete_webhook(webhook_id):
        raise NotFound(f"webhook {webhook_id} not found", metadata={"webhook_id": str(webhook_id)})
    await repo.park_pending_of(str(webhook_id), Channel.WEBHOOK, "the webhook subscription was deleted")
    uow.emit(ev.WebhookChanged(webhook_id=str(webhook_id), change="deleted", url=hook.url,
                               event_types=list(hook.event_types)), subject_id=str(webhook_id))
    await uow.commit()


# ------------------------------------------------------------------------------- deliveries

DELIVERY_SORT = "-create_time"


def _visible_channels(principal: Principal, channel: str) -> tuple[str, ...] | None:
    """notifications.manage sees every channel; webhooks.manage the webhook channel."""
    if channel and channel not in {c.value for c in Channel if c is not Channel.INBOX}:
        raise InvalidArgument.of("channel", "must be email, webhook, wecom, dingtalk or feishu")
    if principal.may(MANAGE):
        return (channel,) if channel else None
    if principal.may(WEBHOOKS) and channel in ("", Channel.WEBHOOK.value):
        return (Channel.WEBHOOK.value,)
    raise PermissionDenied(f"the delivery log needs the permission {MANAGE}", metadata={"permission": MANAGE})


async def list_deliveries(uow: UnitOfWork, principal: Principal, *, limit: int, page_token: str, channel: str,
                          status: str, recipient: str, event_id: str) -> tuple[list[Delivery], str]:
    channels = _visible_channels(principal, channel)
    if status and status not in {s.value for s in model.DeliveryStatus}:
        raise InvalidArgument.of("status", "must be pending, delivered or parked")
    size = page_size(limit)
    cursor = decode_cursor(page_token, DELIVERY_SORT, (aware_datetime, uuid_key))
    after = (cursor.values[0], cursor.values[1]) if cursor else None
    items = await Repository(uow.session).list_deliveries(limit=size + 1, after=after, channels=channels,
                                                          status=status, recipient=recipient, event_id=event_id)
    token = ""
    if len(items) > size:
        last = items[size - 1]
        token = encode_cursor(DELIVERY_SORT, [last.created_at.isoformat(), str(last.id)])
    return items[:size], token


async def replay_delivery(uow: UnitOfWork, principal: Principal, delivery_id: uuid.UUID, channel: str) -> Delivery:
    visible = _visible_channels(principal, channel)
    repo = Repository(uow.session)
    found = await repo.delivery(delivery_id, for_update=True)
    if found is None or (visible is not None and found.channel.value not in visible):
        raise NotFound(f"delivery {delivery_id} not found", metadata={"delivery_id": str(delivery_id)})
    if found.status == model.DeliveryStatus.PENDING:
        raise Conflict("the delivery is still queued; it will be tried again by itself", reason="DELIVERY_PENDING")
    await repo.update_delivery(delivery_id, status="pending", attempts=0, next_attempt_at=_now(), last_error="")
    uow.emit(ev.DeliveryReplayed(delivery_id=str(delivery_id), channel=found.channel.value,
                                 previous_status=found.status), subject_id=str(delivery_id))
    await uow.commit()
    replayed = await repo.delivery(delivery_id)
    assert replayed is not None
    return replayed
