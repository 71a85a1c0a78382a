"""The event consumer every service uses.

A durable pull consumer with explicit ack. Each event is handled in a unit of work that also
records its id in `processed_events`, so a redelivered event has no second effect. An event that
fails `max_deliver` times is copied to the dead-letter stream with the error and acknowledged, so
one poison event never blocks the ones behind it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeout
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError
from opentelemetry import trace
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crmkit import metrics
from crmkit.db import UnitOfWork
from crmkit.events.envelope import Event
from crmkit.events.streams import DEAD_LETTER_PREFIX
from crmkit.outbox.schema import processed_events
from crmkit.telemetry import extract_context, tracer

log = logging.getLogger(__name__)

Handler = Callable[[UnitOfWork, Event], Awaitable[None]]


@dataclass(frozen=True)
class Subscription:
    """What a consumer listens to: a producer's stream, subjects in it, and the handler."""

    name: str
    stream: str
    subjects: list[str]
    handler: Handler


class EventConsumer:
    def __init__(self, subscription: Subscription, js: JetStreamContext,
                 sessions: async_sessionmaker[AsyncSession], source: str, *,
                 max_deliver: int = 5, ack_wait_seconds: float = 30.0, batch: int = 50) -> None:
        self.sub = subscription
        self._js = js
        self._sessions = sessions
        self._source = source
        self._max_deliver = max_deliver
        self._ack_wait = ack_wait_seconds
        self._batch = batch
        self._tracer = tracer(__name__)

    async def run(self) -> None:
        pull = await self._subscribe()
        while True:
            try:
                messages = await pull.fetch(self._batch, timeout=5.0)
            except (TimeoutError, NatsTimeout):
                continue
            for msg in messages:
                await self.handle(msg)
            info = await pull.consumer_info()
            metrics.CONSUMER_LAG.labels(self.sub.name).set(info.num_pending or 0)

    async def _subscribe(self) -> JetStreamContext.PullSubscription:
        config = ConsumerConfig(
            durable_name=self.sub.name, ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.ALL,
            max_deliver=self._max_deliver, ack_wait=self._ack_wait, filter_subjects=self.sub.subjects,
        )
        delay = 1.0
        while True:
            try:
                await self._js.add_consumer(self.sub.stream, config)
                return await self._js.pull_subscribe_bind(durable=self.sub.name, stream=self.sub.stream)
            except NotFoundError:
                # The producer creates its stream when it starts; wait for it rather than
                # creating it with a configuration the producer does not own. A service that is
                # not deployed yet may never start: say so once, then poll quietly, backing off.
                level = logging.INFO if delay == 1.0 else logging.DEBUG
                log.log(level, "stream not there yet; waiting", extra={"stream": self.sub.stream})
                await asyncio.sleep(delay)
                # A stream lookup is cheap: a producer that starts later is picked up within 5 s.
                delay = min(delay * 2, 5.0)

    async def handle(self, msg: Msg) -> None:
        headers = dict(msg.headers or {})
        delivery = msg.metadata.num_delivered if msg.metadata else 1
        event = Event(id=headers.get("ce-id", ""), subject=msg.subject, type=headers.get("ce-type", ""),
                      payload=msg.data, headers=headers, delivery=delivery)
        if delivery > 1:
            metrics.CONSUMER_REDELIVERIES.labels(self.sub.name).inc()
        with self._tracer.start_as_current_span(
            f"consume {msg.subject}", context=extract_context(headers), kind=trace.SpanKind.CONSUMER,
            attributes={"messaging.system": "nats", "messaging.destination.name": msg.subject,
                        "messaging.message.id": event.id, "messaging.consumer.group.name": self.sub.name},
        ):
            try:
                outcome = await self._apply(event)
            except Exception as exc:
                await self._failed(msg, event, exc)
                return
            await msg.ack()
            metrics.CONSUMER_HANDLED.labels(self.sub.name, msg.subject, outcome).inc()

    async def _apply(self, event: Event) -> str:
        async with UnitOfWork(self._sessions, self._source, actor=event.actor) as uow:
            first_time = await uow.session.execute(
                insert(processed_events).values(consumer=self.sub.name, event_id=event.id)
                .on_conflict_do_nothing().returning(processed_events.c.event_id))
            if first_time.first() is None:
                return "duplicate"
            await self.sub.handler(uow, event)
            await uow.commit()
        return "handled"

    async def _failed(self, msg: Msg, event: Event, exc: Exception) -> None:
        if event.delivery >= self._max_deliver:
            log.error("event failed its last delivery; dead-lettered",
                      extra={"event_id": event.id, "subject": event.subject, "error": repr(exc)})
            await self._js.publish(
                f"{DEAD_LETTER_PREFIX}.{self.sub.name}", msg.data,
                headers=event.headers | {"crm-error": repr(exc)[:1000], "crm-original-subject": event.subject,
                                         "Nats-Msg-Id": f"dlq-{self.sub.name}-{event.id}"})
            await msg.ack()
            metrics.CONSUMER_DEAD_LETTERS.labels(self.sub.name).inc()
            metrics.CONSUMER_HANDLED.labels(self.sub.name, event.subject, "dead_lettered").inc()
            return
        log.warning("event handling failed; will be redelivered",
                    extra={"event_id": event.id, "subject": event.subject, "delivery": event.delivery,
                           "error": repr(exc)})
        await msg.nak(delay=min(2.0 ** event.delivery, 60.0))
        metrics.CONSUMER_HANDLED.labels(self.sub.name, event.subject, "failed").inc()
