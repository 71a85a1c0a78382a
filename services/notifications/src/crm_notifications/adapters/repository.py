"""Reads and writes of the notifications tables. No rules here: the app layer decides."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, delete, func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from crm_notifications.adapters.tables import (
    deliveries,
    delivery_attempts,
    inbox_items,
    inbox_sequences,
    preferences,
    rules,
    webhooks,
)
from crm_notifications.domain.model import Channel, Preferences, Robot, Rule
from crmkit.auth import Principal


@dataclass(frozen=True)
class InboxItem:
    id: uuid.UUID
    recipient_id: str
    sequence: int
    kind: str
    title: str
    body: str
    link: str
    event_id: str
    created_at: dt.datetime
    read_at: dt.datetime | None


@dataclass(frozen=True)
class Webhook:
    id: uuid.UUID
    url: str
    event_types: tuple[str, ...]
    description: str
    enabled: bool
    created_at: dt.datetime
    created_by: str
    secret: str = ""
    # What its creator may read: all the webhook may carry (None: unknown, so nothing).
    owner: Principal | None = None


@dataclass(frozen=True)
class Attempt:
    attempt: int
    attempted_at: dt.datetime
    outcome: str
    error: str
    duration_ms: int


@dataclass(frozen=True)
class Delivery:
    id: uuid.UUID
    event_id: str
    channel: Channel
    recipient: str
    kind: str
    target: str
    payload: dict[str, Any]
    status: str
    digest: bool
    attempts: int
    next_attempt_at: dt.datetime
    last_error: str
    created_at: dt.datetime
    delivered_at: dt.datetime | None
    history: tuple[Attempt, ...] = ()


def _item(r: Row[Any]) -> InboxItem:
    return InboxItem(r.id, r.recipient_id, r.sequence, r.kind, r.title, r.body, r.link, r.event_id, r.created_at,
                     r.read_at)


def _rule(r: Row[Any]) -> Rule:
    return Rule(id=r.id, name=r.name, event_subject=r.event_subject, kind=r.kind, recipients=tuple(r.recipients),
                robots=tuple(Robot(Channel(b["kind"]), b["url"], b.get("secret", ""), b.get("locale", "zh-CN"))
                             for b in r.robots),
                enabled=r.enabled, version=r.version, updated_at=r.updated_at, updated_by=r.updated_by,
                owner=_access(r.owner_access))


def _webhook(r: Row[Any]) -> Webhook:
    return Webhook(r.id, r.url, tuple(r.event_types), r.description, r.enabled, r.created_at, r.created_by, r.secret,
                   owner=_access(r.owner_access))


def _access(claims: dict[str, Any] | None) -> Principal | None:
    return Principal.from_claims(claims) if claims else None


def _claims(access: Principal | None) -> dict[str, Any] | None:
    return access.to_claims() if access is not None else None


def _delivery(r: Row[Any], history: tuple[Attempt, ...] = ()) -> Delivery:
    return Delivery(r.id, r.event_id, Channel(r.channel), r.recipient, r.kind, r.target, r.payload, r.status,
                    r.digest, r.attempts, r.next_attempt_at, r.last_error, r.created_at, r.delivered_at, history)


def _robots_json(robots: tuple[Robot, ...]) -> list[dict[str, str]]:
    return [{"kind": b.kind.value, "url": b.url, "secret": b.secret, "locale": b.locale} for b in robots]


class Repository:
    def __init__(self, session: AsyncSession) -> None:
        self.s = session

    # ------------------------------------------------------------------------------ rules

    async def rules(self, *, subject: str | None = None) -> list[Rule]:
        query = select(rules).order_by(rules.c.event_subject, rules.c.name)
        if subject is not None:
            query = query.where(rules.c.event_subject == subject, rules.c.enabled)
        return [_rule(r) for r in await self.s.execute(query)]

    async def rule(self, rule_id: uuid.UUID, *, for_update: bool = False) -> Rule | None:
        query = select(rules).where(rules.c.id == rule_id)
        row = (await self.s.execute(query.with_for_update() if for_update else query)).first()
        return _rule(row) if row else None

    async def save_rule(self, rule: Rule, *, new: bool) -> None:
        values = {"name": rule.name, "event_subject": rule.event_subject, "kind": rule.kind,
                  "recipients": list(rule.recipients), "robots": _robots_json(rule.robots), "enabled": rule.enabled,
                  "version": rule.version, "updated_at": rule.updated_at, "updated_by": rule.updated_by,
                  "owner_access": _claims(rule.owner)}
        if new:
            await self.s.execute(insert(rules).values(id=rule.id, **values))
        else:
            await self.s.execute(update(rules).where(rules.c.id == rule.id).values(**values))

    async def delete_rule(self, rule_id: uuid.UUID) -> None:
        await self.s.execute(delete(rules).where(rules.c.id == rule_id))

    # ---------------------------------------------------------------------------- inbox

    async def in_inbox(self, event_id: str, recipient_id: str) -> bool:
        query = select(inbox_items.c.id).where(inbox_items.c.event_id == event_id,
                                               inbox_items.c.recipient_id == recipient_id)
        return (await self.s.execute(query)).first() is not None

    async def next_sequence(self, recipient_id: str) -> int:
        """Locks the recipient's counter until commit, so their items commit in sequence order."""
        stmt = pg_insert(inbox_sequences).values(recipient_id=recipient_id, last_sequence=1)
        stmt = stmt.on_conflict_do_update(index_elements=[inbox_sequences.c.recipient_id],
                                          set_={"last_sequence": inbox_sequences.c.last_sequence + 1})
        return int((await self.s.execute(stmt.returning(inbox_sequences.c.last_sequence))).scalar_one())

    async def add_inbox_item(self, item: InboxItem) -> None:
        await self.s.execute(insert(inbox_items).values(
            id=item.id, recipient_id=item.recipient_id, sequence=item.sequence, kind=item.kind, title=item.title,
            body=item.body, link=item.link, event_id=item.event_id, created_at=item.created_at))

    async def inbox(self, recipient_id: str, *, limit: int, before_sequence: int | None = None,
                    after_sequence: int | None = None, unread_only: bool = False) -> list[InboxItem]:
        query = select(inbox_items).where(inbox_items.c.recipient_id == recipient_id)
        if unread_only:
            query = query.where(inbox_items.c.read_at.is_(None))
        if after_sequence is not None:
            query = query.where(inbox_items.c.sequence > after_sequence).order_by(inbox_items.c.sequence)
        else:
            if before_sequence is not None:
                query = query.where(inbox_items.c.sequence < before_sequence)
            query = query.order_by(inbox_items.c.sequence.desc())
        return [_item(r) for r in await self.s.execute(query.limit(limit))]

    async def mark_read(self, recipient_id: str, item_id: uuid.UUID, now: dt.datetime) -> tuple[InboxItem | None, bool]:
        """The item, and whether this call changed it."""
        changed = (await self.s.execute(
            update(inbox_items).where(inbox_items.c.id == item_id, inbox_items.c.recipient_id == recipient_id,
                                      inbox_items.c.read_at.is_(None))
            .values(read_at=now).returning(inbox_items))).first()
        if changed:
            return _item(changed), True
        row = (await self.s.execute(select(inbox_items).where(
            inbox_items.c.id == item_id, inbox_items.c.recipient_id == recipient_id))).first()
        return (_item(row) if row else None), False

    async def mark_all_read(self, recipient_id: str, now: dt.datetime) -> list[uuid.UUID]:
        rows = await self.s.execute(
            update(inbox_items).where(inbox_items.c.recipient_id == recipient_id, inbox_items.c.read_at.is_(None))
            .values(read_at=now).returning(inbox_items.c.id))
        return [r.id for r in rows]

    async def unread(self, recipient_id: str) -> int:
        return int((await self.s.execute(select(func.count()).where(
            inbox_items.c.recipient_id == recipient_id, inbox_items.c.read_at.is_(None)))).scalar_one())

    # ----------------------------------------------------------------------- preferences

    async def preferences(self, user_id: str, *, for_update: bool = False) -> Preferences:
        query = select(preferences).where(preferences.c.user_id == user_id)
        row = (await self.s.execute(query.with_for_update() if for_update else query)).first()
        if row is None:
            return Preferences(user_id=user_id)
        return Preferences(
            user_id=user_id, channels={k: tuple(Channel(c) for c in v) for k, v in row.channels.items()},
            quiet_start=dt.time.fromisoformat(row.quiet_start) if row.quiet_start else None,
            quiet_end=dt.time.fromisoformat(row.quiet_end) if row.quiet_end else None,
            time_zone=row.time_zone, daily_digest=row.daily_digest, digest_hour=row.digest_hour, version=row.version)

    async def save_preferences(self, p: Preferences, now: dt.datetime) -> None:
        values = {"channels": {k: [c.value for c in v] for k, v in p.channels.items()},
                  "quiet_start": p.quiet_start.strftime("%H:%M") if p.quiet_start else None,
                  "quiet_end": p.quiet_end.strftime("%H:%M") if p.quiet_end else None,
                  "time_zone": p.time_zone, "daily_digest": p.daily_digest, "digest_hour": p.digest_hour,
                  "version": p.version, "updated_at": now}
        stmt = pg_insert(preferences).values(user_id=p.user_id, **values)
        await self.s.execute(stmt.on_conflict_do_update(index_elements=[preferences.c.user_id], set_=values))

    # -------------------------------------------------------------------------- webhooks

    async def webhooks(self) -> list[Webhook]:
        return [_webhook(r) for r in await self.s.execute(select(webhooks).order_by(webhooks.c.created_at))]

    async def webhook(self, webhook_id: uuid.UUID) -> Webhook | None:
        row = (await self.s.execute(select(webhooks).where(webhooks.c.id == webhook_id))).first()
        return _webhook(row) if row else None

    async def add_webhook(self, hook: Webhook) -> None:
        await self.s.execute(insert(webhooks).values(
            id=hook.id, url=hook.url, event_types=list(hook.event_types), description=hook.description,
            secret=hook.secret, enabled=hook.enabled, created_at=hook.created_at, created_by=hook.created_by,
            owner_access=_claims(hook.owner)))

    async def delete_webhook(self, webhook_id: uuid.UUID) -> bool:
        return (await self.s.execute(delete(webhooks).where(webhooks.c.id == webhook_id)
                                     .returning(webhooks.c.id))).first() is not None

    # ------------------------------------------------------------------------ deliveries

    async def enqueue(self, *, delivery_id: uuid.UUID, event_id: str, channel: Channel, recipient: str, kind: str,
                      target: str, payload: dict[str, Any], digest: bool, first_attempt: dt.datetime,
                      now: dt.datetime) -> bool:
        """False when this event already went to this recipient on this channel."""
        stmt = pg_insert(deliveries).values(
            id=delivery_id, event_id=event_id, channel=channel.value, recipient=recipient, kind=kind, target=target,
            payload=payload, status="pending", digest=digest, attempts=0, next_attempt_at=first_attempt,
            created_at=now).on_conflict_do_nothing(constraint="deliveries_event_recipient_channel")
        return (await self.s.execute(stmt.returning(deliveries.c.id))).first() is not None

    async def claim_due(self, now: dt.datetime) -> Delivery | None:
        """The most overdue pending delivery, locked; replicas skip each other's."""
        row = (await self.s.execute(
            select(deliveries).where(deliveries.c.status == "pending", deliveries.c.next_attempt_at <= now)
            .order_by(deliveries.c.next_attempt_at).limit(1).with_for_update(skip_locked=True))).first()
        return _delivery(row) if row else None

    async def claim_digest_group(self, first: Delivery, now: dt.datetime) -> list[Delivery]:
        """The other due digest deliveries of the same person and channel, locked."""
        rows = await self.s.execute(
            select(deliveries).where(deliveries.c.status == "pending", deliveries.c.digest,
                                     deliveries.c.next_attempt_at <= now, deliveries.c.recipient == first.recipient,
                                     deliveries.c.channel == first.channel.value, deliveries.c.id != first.id)
            .order_by(deliveries.c.created_at).with_for_update(skip_locked=True))
        return [_delivery(r) for r in rows]

    async def delivery(self, delivery_id: uuid.UUID, *, for_update: bool = False) -> Delivery | None:
        query = select(deliveries).where(deliveries.c.id == delivery_id)
        row = (await self.s.execute(query.with_for_update() if for_update else query)).first()
        if row is None:
            return None
        return _delivery(row, tuple((await self.attempts([delivery_id])).get(delivery_id, ())))

    async def record_attempt(self, delivery_id: uuid.UUID, at: dt.datetime, outcome: str, error: str,
                             duration_ms: int) -> None:
        number = select(func.coalesce(func.max(delivery_attempts.c.attempt), 0) + 1).where(
            delivery_attempts.c.delivery_id == delivery_id).scalar_subquery()
        await self.s.execute(insert(delivery_attempts).values(
            delivery_id=delivery_id, attempt=number, attempted_at=at, outcome=outcome, error=error[:2000],
            duration_ms=duration_ms))

    async def update_delivery(self, delivery_id: uuid.UUID, **values: Any) -> None:
        await self.s.execute(update(deliveries).where(deliveries.c.id == delivery_id).values(**values))

    async def park_pending_of(self, recipient: str, channel: Channel, why: str) -> None:
        await self.s.execute(update(deliveries).where(
            deliveries.c.recipient == recipient, deliveries.c.channel == channel.value,
            deliveries.c.status == "pending").values(status="parked", last_error=why))

    async def attempts(self, ids: list[uuid.UUID]) -> dict[uuid.UUID, list[Attempt]]:
        found: dict[uuid.UUID, list[Attempt]] = {}
        if not ids:
            return found
        rows = await self.s.execute(select(delivery_attempts).where(delivery_attempts.c.delivery_id.in_(ids))
                                    .order_by(delivery_attempts.c.delivery_id, delivery_attempts.c.attempt))
        for r in rows:
            found.setdefault(r.delivery_id, []).append(
                Attempt(r.attempt, r.attempted_at, r.outcome, r.error, r.duration_ms))
        return found

    async def list_deliveries(self, *, limit: int, after: tuple[dt.datetime, uuid.UUID] | None,
                              channels: tuple[str, ...] | None, status: str, recipient: str,
                              event_id: str) -> list[Delivery]:
        query = select(deliveries)
        if channels is not None:
            query = query.where(deliveries.c.channel.in_(channels))
        if status:
            query = query.where(deliveries.c.status == status)
        if recipient:
            query = query.where(deliveries.c.recipient == recipient)
        if event_id:
            query = query.where(deliveries.c.event_id == event_id)
        if after is not None:
            at, last_id = after
            query = query.where(or_(deliveries.c.created_at < at,
                                    and_(deliveries.c.created_at == at, deliveries.c.id < last_id)))
        rows = list(await self.s.execute(
            query.order_by(deliveries.c.created_at.desc(), deliveries.c.id.desc()).limit(limit)))
        history = await self.attempts([r.id for r in rows])
        return [_delivery(r, tuple(history.get(r.id, ()))) for r in rows]
