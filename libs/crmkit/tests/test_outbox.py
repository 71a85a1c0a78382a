"""The transactional outbox against real PostgreSQL and NATS JetStream: what a committed unit of
work emits is published by the relay once, in commit order, with its envelope; nothing else is."""

from __future__ import annotations

import asyncio
import contextlib
import random
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
import nats
import pytest
from nats.js import JetStreamContext
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import REGISTRY
from sqlalchemy import text

from crmkit.db import UnitOfWork
from crmkit.embedded import EmbeddedNats
from crmkit.events.streams import ensure_stream
from crmkit.outbox.relay import OutboxRelay, asyncpg_dsn
from crmkit.testing.servers import free_port

pytestmark = pytest.mark.integration

SOURCE = "crm/kt"


def _metric(name: str, service: str) -> float:
    return REGISTRY.get_sample_value(name, {"service": service}) or 0.0


async def _stream(js: JetStreamContext, name: str) -> list[Any]:
    """Every message stored in a stream, in stream order."""
    info = await js.stream_info(name)
    return [await js.get_msg(name, seq) for seq in range(info.state.first_seq, info.state.last_seq + 1)
            if info.state.messages]


async def _count(js: JetStreamContext, name: str) -> int:
    return (await js.stream_info(name)).state.messages


async def _outbox(database_url: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        return await conn.fetch("SELECT id, event_id, subject, published_at FROM outbox ORDER BY id")
    finally:
        await conn.close()


@pytest.fixture
async def relays(database_url: str) -> AsyncIterator[Callable[..., asyncio.Task[None]]]:
    """Starts OutboxRelays on the test database; all are cancelled when the test ends."""
    tasks: list[asyncio.Task[None]] = []

    def start(js: JetStreamContext, service: str, **kwargs: Any) -> asyncio.Task[None]:
        kwargs.setdefault("idle_poll_seconds", 0.2)
        task = asyncio.create_task(OutboxRelay(database_url, js, service, **kwargs).run())
        tasks.append(task)
        return task

    yield start
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def _commit(sessions: Any, topic: Any, *seqs: int, actor: str = "u-alice",
                  name: str = "widget") -> list[str]:
    """One unit of work: a business row plus one event per seq; returns the events' thing ids."""
    ids = []
    async with UnitOfWork(sessions, SOURCE, actor=actor) as uow:
        await uow.session.execute(text("INSERT INTO widgets (id, name) VALUES (:id, :name)"),
                                  {"id": uuid.uuid4(), "name": name})
        for seq in seqs:
            thing = f"t-{seq}"
            uow.emit(topic.event(thing_id=thing, seq=seq), subject_id=thing)
            ids.append(thing)
        await uow.commit()
    return ids


def _service() -> str:
    return f"kt-{uuid.uuid4().hex[:8]}"


async def test_committed_events_are_published_in_order_with_their_envelope(
    database_url: str, sessions: Any, js: JetStreamContext, topic: Any, relays: Any,
    eventually: Any, span_exporter: InMemorySpanExporter,
) -> None:
    await ensure_stream(js, topic.stream, [f"{topic.prefix}.>"], 1)
    service = _service()
    relays(js, service)
    with trace.get_tracer("test").start_as_current_span("create widgets") as span:
        await _commit(sessions, topic, 0, 1, 2)
        trace_id = f"{span.get_span_context().trace_id:032x}"
    await _commit(sessions, topic, 3, 4, actor="")

    await eventually(lambda: _count_is(js, topic.stream, 5), what="5 events in the stream")
    messages = await _stream(js, topic.stream)
    rows = await _outbox(database_url)
    assert [m.headers["ce-id"] for m in messages] == [str(r["event_id"]) for r in rows]
    for i, msg in enumerate(messages):
        assert msg.subject == topic.subject
        payload = topic.event()
        payload.ParseFromString(msg.data)
        assert (payload.thing_id, payload.seq) == (f"t-{i}", i)
        h = msg.headers
        assert h["Nats-Msg-Id"] == h["ce-id"]
        assert h["ce-type"] == topic.event.DESCRIPTOR.full_name
        assert h["ce-source"] == SOURCE
        assert h["ce-subject"] == f"t-{i}"
        assert h["ce-specversion"] == "1.0" and h["ce-time"].endswith("Z")
        if i < 3:
            assert h["ce-actor"] == "u-alice"
            assert h["traceparent"].split("-")[1] == trace_id
        else:
            assert "ce-actor" not in h and "traceparent" not in h
    await eventually(lambda: _all_published(database_url), what="outbox rows marked published")
    await eventually(lambda: _metric_is("crm_outbox_backlog", service, 0.0))
    await eventually(lambda: _metric_is("crm_outbox_published_total", service, 5.0))


async def _count_is(js: JetStreamContext, stream: str, n: int) -> bool:
    count = await _count(js, stream)
    assert count <= n, f"{count} messages in the stream, expected {n}"
    return count == n


async def _all_published(database_url: str) -> bool:
    return all(r["published_at"] is not None for r in await _outbox(database_url))


async def _metric_is(name: str, service: str, value: float) -> bool:
    return REGISTRY.get_sample_value(name, {"service": service}) == value


async def test_rolled_back_unit_of_work_publishes_nothing(
    database_url: str, sessions: Any, js: JetStreamContext, topic: Any, relays: Any, eventually: Any,
) -> None:
    await ensure_stream(js, topic.stream, [f"{topic.prefix}.>"], 1)
    relays(js, _service())
    with pytest.raises(RuntimeError):
        async with UnitOfWork(sessions, SOURCE, actor="u-alice") as uow:
            await uow.session.execute(text("INSERT INTO widgets (id, name) VALUES (:id, 'doomed')"),
                                      {"id": uuid.uuid4()})
            uow.emit(topic.event(thing_id="doomed"))
            raise RuntimeError("business rule broken")
    async with UnitOfWork(sessions, SOURCE) as uow:  # left without commit: rolled back
        await uow.session.execute(text("INSERT INTO widgets (id, name) VALUES (:id, 'forgotten')"),
                                  {"id": uuid.uuid4()})
        uow.emit(topic.event(thing_id="forgotten"))
    await _commit(sessions, topic, 7, name="kept")  # the marker behind them

    await eventually(lambda: _count_is(js, topic.stream, 1))
    [msg] = await _stream(js, topic.stream)
    payload = topic.event()
    payload.ParseFromString(msg.data)
    assert payload.thing_id == "t-7"
    assert len(await _outbox(database_url)) == 1
    async with sessions() as session:
        names = (await session.execute(text("SELECT name FROM widgets"))).scalars().all()
    assert names == ["kept"]


async def test_concurrent_committers_publish_in_outbox_id_order_exactly_once(
    database_url: str, sessions: Any, js: JetStreamContext, topic: Any, relays: Any, eventually: Any,
) -> None:
    await ensure_stream(js, topic.stream, [f"{topic.prefix}.>"], 1)
    relays(js, _service())
    tasks, commits, per_commit = 20, 4, 2

    async def committer(t: int) -> None:
        rng = random.Random(t)
        for c in range(commits):
            base = (t * commits + c) * per_commit
            async with UnitOfWork(sessions, SOURCE, actor=f"u-{t}") as uow:
                await uow.session.execute(text("INSERT INTO widgets (id, name, seq) VALUES (:id, :n, :s)"),
                                          {"id": uuid.uuid4(), "n": f"w-{t}", "s": c})
                for k in range(per_commit):
                    uow.emit(topic.event(thing_id=f"{t}", seq=base + k))
                await asyncio.sleep(rng.random() * 0.01)  # interleave the transactions
                await uow.commit()

    await asyncio.gather(*(committer(t) for t in range(tasks)))
    total = tasks * commits * per_commit
    await eventually(lambda: _count_is(js, topic.stream, total), timeout=20)

    messages = await _stream(js, topic.stream)
    rows = await _outbox(database_url)
    published = [m.headers["ce-id"] for m in messages]
    assert published == [str(r["event_id"]) for r in rows]
    assert len(set(published)) == total
    # each committer's events keep their order, and one commit's events stay together
    seqs: dict[str, list[int]] = {}
    for msg in messages:
        payload = topic.event()
        payload.ParseFromString(msg.data)
        seqs.setdefault(payload.thing_id, []).append(payload.seq)
    assert all(s == sorted(s) and len(s) == commits * per_commit for s in seqs.values())
    positions = {m.headers["ce-id"]: i for i, m in enumerate(messages)}
    ids = [str(r["event_id"]) for r in rows]
    for first in range(0, total, per_commit):
        pos = [positions[i] for i in ids[first:first + per_commit]]
        assert pos == list(range(pos[0], pos[0] + per_commit))


async def test_missing_stream_is_retried_then_published_once_in_order(
    database_url: str, sessions: Any, js: JetStreamContext, topic: Any, relays: Any, eventually: Any,
) -> None:
    service = _service()
    await _commit(sessions, topic, 0)
    relays(js, service)
    # no stream captures the subject yet: the relay must keep the events and keep trying
    await eventually(lambda: _metric_at_least("crm_outbox_publish_failures_total", service, 2))
    await eventually(lambda: _metric_is("crm_outbox_backlog", service, 1.0))
    # the backlog keeps growing while the relay is stuck, and its gauges must show it
    for seq in range(1, 4):
        await _commit(sessions, topic, seq)
    await eventually(lambda: _metric_is("crm_outbox_backlog", service, 4.0))
    await eventually(lambda: _metric_at_least("crm_outbox_oldest_pending_seconds", service, 0.1))
    assert not any(r["published_at"] for r in await _outbox(database_url))

    await ensure_stream(js, topic.stream, [f"{topic.prefix}.>"], 1)
    await eventually(lambda: _count_is(js, topic.stream, 4), timeout=15)
    messages = await _stream(js, topic.stream)
    assert [m.headers["ce-id"] for m in messages] == [str(r["event_id"]) for r in await _outbox(database_url)]
    await eventually(lambda: _metric_is("crm_outbox_backlog", service, 0.0))
    await eventually(lambda: _all_published(database_url))


async def _metric_at_least(name: str, service: str, value: float) -> bool:
    return _metric(name, service) >= value


@pytest.fixture
async def own_nats() -> AsyncIterator[EmbeddedNats]:
    """A NATS server of this test's own, to stop and restart."""
    root = Path(tempfile.mkdtemp(prefix="crm-kt-", dir="/tmp"))
    server = EmbeddedNats(root / "nats", free_port(), free_port(), server_name="crmkit-outage")
    await asyncio.to_thread(server.start)
    try:
        yield server
    finally:
        await asyncio.to_thread(server.stop)
        shutil.rmtree(root, ignore_errors=True)


async def test_nats_outage_is_retried_then_published_once_in_order(
    database_url: str, sessions: Any, topic: Any, relays: Any, eventually: Any,
    own_nats: EmbeddedNats,
) -> None:
    nc = await nats.connect(own_nats.url, max_reconnect_attempts=-1, reconnect_time_wait=0.1,
                            name="crmkit-outage-relay")
    try:
        js = nc.jetstream()
        await ensure_stream(js, topic.stream, [f"{topic.prefix}.>"], 1)
        service = _service()
        relays(js, service)
        await _commit(sessions, topic, 0)
        await eventually(lambda: _count_is(js, topic.stream, 1))

        await asyncio.to_thread(own_nats.stop)
        for seq in range(1, 4):
            await _commit(sessions, topic, seq)
        await asyncio.sleep(0.3)  # an outage, not a check: let the relay try against it
        assert not any(r["published_at"] for r in (await _outbox(database_url))[1:])
        await asyncio.to_thread(own_nats.start)

        await eventually(lambda: _count_is(js, topic.stream, 4), timeout=20)
        messages = await _stream(js, topic.stream)
        payloads = []
        for msg in messages:
            payload = topic.event()
            payload.ParseFromString(msg.data)
            payloads.append(payload.seq)
        assert payloads == [0, 1, 2, 3]
        assert [m.headers["ce-id"] for m in messages] == [
            str(r["event_id"]) for r in await _outbox(database_url)]
        await eventually(lambda: _all_published(database_url))
    finally:
        with contextlib.suppress(Exception):
            await nc.close()


async def test_two_relays_one_publishes_and_the_other_takes_over(
    database_url: str, sessions: Any, js: JetStreamContext, topic: Any, relays: Any, eventually: Any,
) -> None:
    await ensure_stream(js, topic.stream, [f"{topic.prefix}.>"], 1)
    a, b = _service(), _service()
    tasks = {a: relays(js, a), b: relays(js, b)}
    for seq in range(10):
        await _commit(sessions, topic, seq)
    await eventually(lambda: _count_is(js, topic.stream, 10))

    async def all_counted() -> bool:  # a relay counts an event just after marking it published
        return sum(_metric("crm_outbox_published_total", s) for s in (a, b)) == 10

    await eventually(all_counted)
    counts = {s: _metric("crm_outbox_published_total", s) for s in (a, b)}
    assert sorted(counts.values()) == [0.0, 10.0], counts
    leader = max(counts, key=counts.__getitem__)
    standby = a if leader == b else b

    tasks[leader].cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await tasks[leader]
    for seq in range(10, 15):
        await _commit(sessions, topic, seq)
    await eventually(lambda: _count_is(js, topic.stream, 15), timeout=15)
    await eventually(lambda: _metric_is("crm_outbox_published_total", standby, 5.0))
    assert _metric("crm_outbox_published_total", leader) == 10
    messages = await _stream(js, topic.stream)
    assert [m.headers["ce-id"] for m in messages] == [
        str(r["event_id"]) for r in await _outbox(database_url)]
    await eventually(lambda: _metric_is("crm_outbox_backlog", standby, 0.0))


async def test_published_events_are_purged_after_the_retention_window(
    database_url: str, sessions: Any, js: JetStreamContext, topic: Any, relays: Any, eventually: Any,
) -> None:
    await ensure_stream(js, topic.stream, [f"{topic.prefix}.>"], 1)
    for seq in range(3):
        await _commit(sessions, topic, seq)
    conn = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        ids = [r["id"] for r in await conn.fetch("SELECT id FROM outbox ORDER BY id")]
        # an old published event, a recent published one, an old one never published
        await conn.execute("UPDATE outbox SET published_at = now() - interval '8 days' WHERE id = $1", ids[0])
        await conn.execute("UPDATE outbox SET published_at = now() - interval '6 days' WHERE id = $1", ids[1])
        await conn.execute("UPDATE outbox SET created_at = now() - interval '9 days' WHERE id = $1", ids[2])
        relays(js, _service(), retention_days=7)

        async def purged() -> bool:
            left = [r["id"] for r in await conn.fetch("SELECT id FROM outbox ORDER BY id")]
            return left == ids[1:]

        await eventually(purged)
        await eventually(lambda: _count_is(js, topic.stream, 1))  # only the unpublished one
        assert await conn.fetchval("SELECT published_at IS NOT NULL FROM outbox WHERE id = $1", ids[2])
    finally:
        await conn.close()
