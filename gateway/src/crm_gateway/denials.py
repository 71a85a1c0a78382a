"""Denied access is audited: every 401, 403 and 429 of the API becomes a
`crm.identity.access.denied` event (identity's audit trail consumes it).

Fire-and-forget: `report` only puts the event on a bounded queue and never waits, and a task
publishes from it. When the queue is full (NATS slow or down, or a flood of bad requests) new
reports are dropped and counted (`crm_gateway_denials_dropped_total`), so a flood cannot exhaust
memory or slow the answers. The token is never part of the event: actor, method, route
template, status and reason only.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

from nats.js import JetStreamContext
from prometheus_client import Counter

from crm.identity.v1 import events_pb2
from crmkit.events.envelope import build_headers, subject_of
from crmkit.ids import new_id

log = logging.getLogger(__name__)

SUBJECT = subject_of(events_pb2.AccessDenied)
DROPPED = Counter("crm_gateway_denials_dropped_total", "Access-denied events dropped (queue full or publish failed)")
PUBLISHED = Counter("crm_gateway_denials_published_total", "Access-denied events published")


class DenialReporter:
    def __init__(self, js: JetStreamContext | None, max_queued: int = 1000, publish_timeout: float = 2.0) -> None:
        self._js = js
        self._queue: asyncio.Queue[events_pb2.AccessDenied] = asyncio.Queue(maxsize=max_queued)
        self._timeout = publish_timeout

    def report(self, *, actor: str, method: str, path: str, status: int, reason: str) -> None:
        try:
            self._queue.put_nowait(events_pb2.AccessDenied(actor=actor, method=method, path=path, status=status,
                                                           reason=reason))
        except asyncio.QueueFull:
            DROPPED.inc()

    async def run(self) -> None:
        while True:
            event = await self._queue.get()
            if self._js is None:
                DROPPED.inc()
                continue
            event_id = str(new_id())
            headers = build_headers(event_id=event_id, event_type=event.DESCRIPTOR.full_name, source="crm/gateway",
                                    actor=event.actor, subject_id="", time=dt.datetime.now(dt.UTC))
            try:
                await self._js.publish(SUBJECT, event.SerializeToString(), headers=headers, timeout=self._timeout)
                PUBLISHED.inc()
            except Exception as exc:  # identity's stream missing, NATS down: the answer went out anyway
                DROPPED.inc()
                log.debug("access-denied event not published: %s", exc)
