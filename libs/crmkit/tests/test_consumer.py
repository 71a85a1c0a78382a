"""The event consumer against real PostgreSQL and NATS JetStream: an event's effect happens once,
failures are redelivered, poison events are dead-lettered without blocking the ones behind, and
the consumer joins the producer's trace."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from nats.js import JetStreamContext
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import REGISTRY
from sqlalchemy import text

from crmkit import telemetry
from crmkit.db import UnitOfWork
from crmkit.events.consumer import EventConsumer, Subscription
from crmkit.events.envelope import Event, build_headers
from crmkit.events.streams import DEAD_LETTER_PREFIX, DEAD_LETTER_STREAM, ensure_dead_letter_stream, ensure_stream

pytestmark = pytest.mark.integration


class Recorder:
    """A handler that writes one effect row per event and fails on demand."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.fail: dict[str, int] = {}  # thing id -> deliveries to fail (-1: always)
        self.calls: Counter[str] = Counter()
        self.deliveries: dict[str, list[int]] = {}
        self.trace_ids: dict[str, str] = {}
        self.emit: Any = None

    async def __call__(self, uow: UnitOfWork, event: Event) -> None:
        thing = event.headers["ce-subject"]
        self.calls[thing] += 1
        self.deliveries.setdefault(thing, []).append(event.delivery)
        self.trace_ids[thing] = telemetry.current_trace_id()
        # the effect is written first: a failure after it must leave no half-written record
        await uow.session.execute(
            text("INSERT INTO effects (consumer, event_id, note) VALUES (:c, :e, :n)"),
            {"c": self.name, "e": event.id, "n": thing})
        if self.emit is not None:
            uow.emit(self.emit(thing_id=thing))
        budget = self.fail.get(thing, 0)
        if budget == -1 or self.calls[thing] <= budget:
            raise ValueError(f"cannot handle {thing} yet")


@pytest.fixture
async def streams(js: JetStreamContext, topic: Any) -> None:
    await ensure_stream(js, topic.stream, [f"{topic.prefix}.>"], 1)
    await ensure_dead_letter_stream(js, 1)


@pytest.fixture
async def consumers(js: JetStreamContext, sessions: Any, topic: Any,
                    streams: None) -> AsyncIterator[Callable[..., tuple[EventConsumer, Recorder]]]:
    tasks: list[asyncio.Task[None]] = []

    def start(**kwargs: Any) -> tuple[EventConsumer, Recorder]:
        name = f"kt-{uuid.uuid4().hex[:8]}"
        recorder = Recorder(name)
        consumer = EventConsumer(Subscription(name, topic.stream, [f"{topic.prefix}.>"], recorder),
                                 js, sessions, source="crm/kt-consumer", **kwargs)
        tasks.append(asyncio.create_task(consumer.run()))
        return consumer, recorder

    yield start
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _publish(js: JetStreamContext, topic: Any, thing: str, *, event_id: str | None = None,
                   msg_id: str | None = None) -> dict[str, str]:
    event_id = event_id or str(uuid.uuid4())
    headers = build_headers(event_id=event_id, event_type=topic.event.DESCRIPTOR.full_name,
                            source="crm/kt", actor="u-alice", subject_id=thing,
                            time=dt.datetime.now(dt.UTC))
    if msg_id:
        headers["Nats-Msg-Id"] = msg_id
    ack = await js.publish(topic.subject, topic.event(thing_id=thing).SerializeToString(), headers=headers)
    assert not ack.duplicate
    return headers


async def _effects(sessions: Any, consumer: str) -> list[str]:
    async with sessions() as session:
        rows = await session.execute(
            text("SELECT note FROM effects WHERE consumer = :c ORDER BY id"), {"c": consumer})
        return list(rows.scalars())


async def _processed(sessions: Any, consumer: str) -> int:
    async with sessions() as session:
        return (await session.execute(text("SELECT count(*) FROM processed_events WHERE consumer = :c"),
                                      {"c": consumer})).scalar_one()


async def _settled(js: JetStreamContext, stream: str, consumer: str) -> bool:
    info = await js.consumer_info(stream, consumer)
    return info.num_pending == 0 and info.num_ack_pending == 0


def _handled(consumer: str, subject: str, outcome: str) -> float:
    return REGISTRY.get_sample_value("crm_consumer_handled_total",
                                     {"consumer": consumer, "subject": subject, "outcome": outcome}) or 0.0


async def _handled_is(consumer: str, subject: str, expected: dict[str, float]) -> bool:
    """The outcome counters (incremented just after the ack) have reached `expected`."""
    return all(_handled(consumer, subject, outcome) == n for outcome, n in expected.items())


async def test_a_redelivered_event_has_one_effect(
    js: JetStreamContext, sessions: Any, topic: Any, consumers: Any, eventually: Any,
) -> None:
    _, recorder = consumers()
    event_id = str(uuid.uuid4())
    await _publish(js, topic, "a", event_id=event_id, msg_id="first-copy")
    await _publish(js, topic, "a", event_id=event_id, msg_id="second-copy")  # same event again
    await _publish(js, topic, "b")

    async def done() -> bool:
        return await _effects(sessions, recorder.name) == ["a", "b"] and await _settled(
            js, topic.stream, recorder.name)

    await eventually(done)
    assert recorder.calls["a"] == 1
    assert await _processed(sessions, recorder.name) == 2
    await eventually(lambda: _handled_is(recorder.name, topic.subject, {"duplicate": 1, "handled": 2}))

    async def lag_is_zero() -> bool:
        return REGISTRY.get_sample_value("crm_consumer_pending", {"consumer": recorder.name}) == 0

    await eventually(lag_is_zero)


async def test_a_failing_handler_is_redelivered_and_leaves_no_partial_effect(
    js: JetStreamContext, sessions: Any, topic: Any, consumers: Any, eventually: Any,
) -> None:
    _, recorder = consumers(max_deliver=3)
    recorder.fail["a"] = 1  # the first delivery fails, after writing its effect
    await _publish(js, topic, "a")
    await _publish(js, topic, "b")

    async def b_done() -> bool:
        return "b" in await _effects(sessions, recorder.name)

    await eventually(b_done)  # the failing event does not block the one behind it

    async def a_done() -> bool:
        return sorted(await _effects(sessions, recorder.name)) == ["a", "b"] and await _settled(
            js, topic.stream, recorder.name)

    await eventually(a_done, timeout=15)
    assert recorder.deliveries["a"] == [1, 2]
    assert (await _effects(sessions, recorder.name)).count("a") == 1
    assert await _processed(sessions, recorder.name) == 2
    assert REGISTRY.get_sample_value("crm_consumer_redeliveries_total", {"consumer": recorder.name}) == 1
    await eventually(lambda: _handled_is(recorder.name, topic.subject, {"failed": 1, "handled": 2}))


async def test_a_poison_event_is_dead_lettered_and_acked(
    js: JetStreamContext, sessions: Any, topic: Any, consumers: Any, eventually: Any,
) -> None:
    _, recorder = consumers(max_deliver=2)
    recorder.fail["poison"] = -1
    sent = await _publish(js, topic, "poison")
    await _publish(js, topic, "fine")
    dlq_subject = f"{DEAD_LETTER_PREFIX}.{recorder.name}"

    async def dead_lettered() -> Any:
        try:
            return await js.get_last_msg(DEAD_LETTER_STREAM, dlq_subject)
        except Exception:
            return None

    dead = await eventually(dead_lettered, timeout=15)
    assert dead.headers["crm-error"] == repr(ValueError("cannot handle poison yet"))
    assert dead.headers["crm-original-subject"] == topic.subject
    assert dead.headers["ce-id"] == sent["ce-id"]
    assert dead.headers["ce-type"] == sent["ce-type"]
    assert dead.headers["Nats-Msg-Id"] == f"dlq-{recorder.name}-{sent['ce-id']}"
    payload = topic.event()
    payload.ParseFromString(dead.data)
    assert payload.thing_id == "poison"

    await eventually(lambda: _settled(js, topic.stream, recorder.name))  # acked: nothing pending
    assert recorder.deliveries["poison"] == [1, 2]
    assert await _effects(sessions, recorder.name) == ["fine"]
    assert await _processed(sessions, recorder.name) == 1
    await eventually(lambda: _handled_is(recorder.name, topic.subject,
                                         {"dead_lettered": 1, "failed": 1, "handled": 1}))
    assert REGISTRY.get_sample_value("crm_consumer_dead_letters_total", {"consumer": recorder.name}) == 1


async def test_the_consumer_span_continues_the_producers_trace(
    js: JetStreamContext, sessions: Any, topic: Any, consumers: Any, eventually: Any,
    span_exporter: InMemorySpanExporter,
) -> None:
    _, recorder = consumers()
    recorder.emit = topic.event  # the handler's own event must carry the same trace onwards
    with trace.get_tracer("test").start_as_current_span("produce") as producer:
        sent = await _publish(js, topic, "traced")
    producer_ctx = producer.get_span_context()
    trace_id = f"{producer_ctx.trace_id:032x}"
    assert sent["traceparent"].split("-")[1] == trace_id

    async def consumed() -> list[Any]:
        return [s for s in span_exporter.get_finished_spans() if s.name == f"consume {topic.subject}"]

    [span] = await eventually(consumed)
    assert span.kind == trace.SpanKind.CONSUMER
    assert span.context.trace_id == producer_ctx.trace_id
    assert span.parent is not None and span.parent.span_id == producer_ctx.span_id
    assert span.attributes["messaging.message.id"] == sent["ce-id"]
    assert span.attributes["messaging.consumer.group.name"] == recorder.name
    assert recorder.trace_ids["traced"] == trace_id

    async with sessions() as session:
        headers = (await session.execute(text("SELECT headers FROM outbox"))).scalar_one()
    assert headers["traceparent"].split("-")[1] == trace_id
    assert headers["traceparent"].split("-")[2] == f"{span.context.span_id:016x}"
    assert headers["ce-actor"] == "u-alice"  # the actor travels on with the causing event
    assert headers["ce-source"] == "crm/kt-consumer"
