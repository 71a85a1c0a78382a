"""Live push of in-app notifications (R-NOT-02): each gateway replica holds ONE core NATS
subscription to `crm.notifications.inbox.created` and fans items out to the event streams open
for their recipient on this replica.

Core NATS is at-most-once, and a stream may be opened after items were published, so the stream
never trusts it alone: items carry a per-recipient `sequence` (the SSE event id); a stream
replays what the client missed from the notifications service (`Last-Event-ID`), and whenever a
live item's sequence is not the next one it expects, it fills the gap from the service first.
Anything already sent is skipped, so the client sees every item once, in order.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from crm.notifications.v1 import events_pb2
from crmkit.events.envelope import subject_of

log = logging.getLogger(__name__)

SUBJECT = subject_of(events_pb2.InboxItemCreated)
# Items waiting for a slow client; beyond it the stream refills from the service instead.
QUEUE_SIZE = 256


class Overflow:
    """Put on a stream's queue when items were dropped for it: refill from the service."""


OVERFLOW = Overflow()


class InboxPush:
    def __init__(self, nc: NATS) -> None:
        self._nc = nc
        self._listeners: dict[str, set[asyncio.Queue[events_pb2.InboxItemCreated | Overflow]]] = {}
        self._sub: Subscription | None = None
        self._lock = asyncio.Lock()

    async def _ensure_subscribed(self) -> None:
        async with self._lock:
            if self._sub is None:
                self._sub = await self._nc.subscribe(SUBJECT, cb=self._on_message)
                await self._nc.flush()  # the server knows the interest before the stream replays

    async def _on_message(self, msg: Msg) -> None:
        item = events_pb2.InboxItemCreated()
        try:
            item.ParseFromString(msg.data)
        except Exception:  # not ours to crash over; the stream's gap fill recovers
            log.warning("unreadable inbox event on %s", msg.subject)
            return
        for queue in tuple(self._listeners.get(item.recipient_id, ())):
            try:
                queue.put_nowait(item)
            except asyncio.QueueFull:
                queue.get_nowait()
                queue.put_nowait(OVERFLOW)

    @asynccontextmanager
    async def listen(self, recipient_id: str) -> AsyncIterator[asyncio.Queue[events_pb2.InboxItemCreated | Overflow]]:
        """A queue of the recipient's live items, registered before the caller replays anything,
        so nothing published from now on is missed."""
        await self._ensure_subscribed()
        queue: asyncio.Queue[events_pb2.InboxItemCreated | Overflow] = asyncio.Queue(QUEUE_SIZE)
        self._listeners.setdefault(recipient_id, set()).add(queue)
        try:
            yield queue
        finally:
            listeners = self._listeners.get(recipient_id, set())
            listeners.discard(queue)
            if not listeners:
                self._listeners.pop(recipient_id, None)


def push_of(app_state: object, nc: NATS) -> InboxPush:
    """The replica's hub, made on first use (the NATS connection is the gateway's own)."""
    push = getattr(app_state, "inbox_push", None)
    if push is None:
        push = InboxPush(nc)
        app_state.inbox_push = push  # type: ignore[attr-defined]
    return push
