"""The delivery worker: takes due deliveries from the durable queue, sends them, logs every
attempt, retries with exponential backoff and parks after the last attempt (R-NOT-02, R-NOT-03).

`deliver_due` is one pass; the background task repeats it. Tests call passes directly with the
clock where they want it, so no test waits for a retry.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import Counter, Histogram
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm.notifications.v1 import events_pb2 as ev
from crm_notifications.adapters.channels import Channels, DeliveryError, Outgoing
from crm_notifications.adapters.repository import Delivery, Repository
from crm_notifications.domain.model import Channel
from crm_notifications.domain.schedule import backoff
from crm_notifications.domain.templates import Rendered, render_digest
from crmkit.db import UnitOfWork

log = logging.getLogger(__name__)
SOURCE = "crm/notifications"
ACTOR = "service:notifications"

ATTEMPTS = Counter("crm_notifications_delivery_attempts_total",
                   "Delivery attempts on external channels, by outcome (delivered, failed, parked)",
                   ["channel", "outcome"])
SEND_SECONDS = Histogram("crm_notifications_send_seconds", "Time to hand one message to its channel", ["channel"],
                         buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))


@dataclass(frozen=True)
class RetryPolicy:
    base_seconds: float = 30.0
    cap_seconds: float = 3600.0
    jitter: float = 0.1
    max_attempts: int = 8

    def delay(self, attempt: int, rand: float) -> dt.timedelta:
        return backoff(attempt, self.base_seconds, self.cap_seconds) * (1 + self.jitter * rand)


class Worker:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], channels: Channels, policy: RetryPolicy, *,
                 batch: int = 50, idle_seconds: float = 2.0, base_url: str = "",
                 clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
                 rand: Callable[[], float] = random.random) -> None:
        self._sessions = sessions
        self._channels = channels
        self._policy = policy
        self._batch = batch
        self._idle = idle_seconds
        self._base_url = base_url
        self._clock = clock
        self._rand = rand

    async def run(self) -> None:
        try:
            while True:
                try:
                    done = await self.deliver_due()
                except Exception:  # the database may be briefly away; the queue is durable
                    log.exception("delivery pass failed")
                    done = 0
                if done == 0:
                    await asyncio.sleep(self._idle)
        finally:
            await self._channels.close()

    async def deliver_due(self, now: dt.datetime | None = None) -> int:
        """Sends up to `batch` due deliveries; returns how many it tried."""
        tried = 0
        while tried < self._batch:
            at = now or self._clock()
            async with UnitOfWork(self._sessions, SOURCE, actor=ACTOR) as uow:
                repo = Repository(uow.session)
                first = await repo.claim_due(at)
                if first is None:
                    break
                group = [first, *(await repo.claim_digest_group(first, at))] if first.digest else [first]
                await self._attempt(uow, repo, group, at)
                await uow.commit()
            tried += 1
        return tried

    async def _outgoing(self, repo: Repository, group: list[Delivery]) -> Outgoing | str:
        first = group[0]
        if first.channel is Channel.WEBHOOK:
            hook = await repo.webhook(uuid.UUID(first.recipient))
            if hook is None:
                return "the webhook subscription was deleted"
            return Outgoing(str(first.id), first.channel, first.target, first.payload, hook.secret)
        if first.digest:
            items = [Rendered(d.payload["title"], d.payload["body"], d.payload.get("link", ""), "",
                              d.payload.get("locale", "zh-CN")) for d in group]
            digest = render_digest(items, items[0].locale, self._base_url)
            payload = {"title": digest.title, "body": digest.body, "html": digest.html, "link": "",
                       "name": first.payload.get("name", "")}
            return Outgoing(str(first.id), first.channel, first.target, payload)
        return Outgoing(str(first.id), first.channel, first.target, first.payload, first.payload.get("secret", ""))

    async def _attempt(self, uow: UnitOfWork, repo: Repository, group: list[Delivery], now: dt.datetime) -> None:
        out = await self._outgoing(repo, group)
        started = time.monotonic()
        error = ""
        if isinstance(out, str):
            error = out
        else:
            try:
                await self._channels.send(out)
            except DeliveryError as exc:
                error = str(exc) or type(exc).__name__
            except Exception as exc:  # a bug must not wedge the queue: log it, count the attempt, back off
                log.exception("sending a delivery failed unexpectedly", extra={"delivery_id": out.delivery_id})
                error = f"{type(exc).__name__}: {exc}"
        seconds = time.monotonic() - started
        elapsed = int(seconds * 1000)
        SEND_SECONDS.labels(group[0].channel.value).observe(seconds)
        for d in group:
            attempts = d.attempts + 1
            await repo.record_attempt(d.id, now, "failed" if error else "delivered", error, elapsed)
            if not error:
                ATTEMPTS.labels(d.channel.value, "delivered").inc()
                await repo.update_delivery(d.id, status="delivered", attempts=attempts, delivered_at=now,
                                           last_error="")
                uow.emit(ev.NotificationDelivered(delivery_id=str(d.id), channel=d.channel.value,
                                                  recipient=d.recipient, kind=d.kind, attempts=attempts),
                         subject_id=str(d.id))
            elif attempts >= self._policy.max_attempts or isinstance(out, str):
                ATTEMPTS.labels(d.channel.value, "parked").inc()
                await repo.update_delivery(d.id, status="parked", attempts=attempts, last_error=error)
                uow.emit(ev.NotificationFailed(delivery_id=str(d.id), channel=d.channel.value, recipient=d.recipient,
                                               kind=d.kind, attempts=attempts, error=error[:1000]),
                         subject_id=str(d.id))
                log.warning("delivery parked", extra={"delivery_id": str(d.id), "channel": d.channel.value,
                                                      "attempts": attempts, "error": error})
            else:
                ATTEMPTS.labels(d.channel.value, "failed").inc()
                await repo.update_delivery(d.id, attempts=attempts, last_error=error,
                                           next_attempt_at=now + self._policy.delay(attempts, self._rand()))
