"""Fixtures shared by crmkit's own tests.

With `--import-mode=importlib` test modules cannot import this file, so helpers are handed out as
fixtures: `eventually` (poll with a deadline, never a bare sleep in an assertion), `event_type`
(a protobuf event message with a subject of its own, so a test's stream never overlaps another's),
`js` (a JetStream context on the session NATS), `span_exporter` (spans recorded in memory).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import nats
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.message import Message
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from crm.common.v1 import options_pb2

# --------------------------------------------------------------------------------- polling


async def _eventually(check: Callable[[], Awaitable[Any]], timeout: float = 10.0,
                      interval: float = 0.02, what: str = "condition") -> Any:
    """Calls `check` until it returns a truthy value (returned) or the deadline passes.

    An AssertionError raised by `check` counts as "not yet"; the last one is re-raised at the
    deadline so the failure says what was wrong."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            result = await check()
            if result:
                return result
            last = None
        except AssertionError as exc:
            last = exc
        if time.monotonic() > deadline:
            if last is not None:
                raise last
            raise AssertionError(f"{what} not reached within {timeout}s")
        await asyncio.sleep(interval)


@pytest.fixture(scope="session")
def eventually() -> Callable[..., Awaitable[Any]]:
    return _eventually


# ------------------------------------------------------------------------- test event types

_PACKAGE = "crmkit_tests.v1"


def make_event_type(subject: str) -> type[Message]:
    """A new protobuf message type carrying `(crm.common.v1.event_subject) = subject`."""
    suffix = uuid.uuid4().hex[:12]
    file_name = f"crmkit_tests/v1/event_{suffix}.proto"
    fdp = descriptor_pb2.FileDescriptorProto(
        name=file_name, package=_PACKAGE, syntax="proto3", dependency=[options_pb2.DESCRIPTOR.name])
    msg = fdp.message_type.add(name=f"ThingHappened{suffix}")
    msg.field.add(name="thing_id", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_STRING,
                  label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    msg.field.add(name="seq", number=2, type=descriptor_pb2.FieldDescriptorProto.TYPE_INT64,
                  label=descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL)
    msg.options.Extensions[options_pb2.event_subject] = subject
    pool = descriptor_pool.Default()
    pool.AddSerializedFile(fdp.SerializeToString())
    return message_factory.GetMessageClass(pool.FindMessageTypeByName(f"{_PACKAGE}.{msg.name}"))


class TestTopic:
    """A subject space and stream of a test's own: `crm.kt<hex>.>` stored in `KT<hex>`."""

    __test__ = False

    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:10]
        self.prefix = f"crm.kt{tag}"
        self.stream = f"KT{tag.upper()}"
        self.event = make_event_type(f"{self.prefix}.thing.happened")
        self.subject = f"{self.prefix}.thing.happened"


@pytest.fixture
def topic() -> TestTopic:
    return TestTopic()


# ---------------------------------------------------------------------------------- NATS


@pytest.fixture
async def nc(nats_server: Any) -> AsyncIterator[nats.NATS]:
    client = await nats.connect(nats_server.url, name="crmkit-tests")
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
async def js(nc: nats.NATS, topic: TestTopic) -> AsyncIterator[Any]:
    context = nc.jetstream()
    yield context
    try:
        await context.delete_stream(topic.stream)
    except Exception:
        pass


# --------------------------------------------------------------------------------- tracing

_exporter: InMemorySpanExporter | None = None


@pytest.fixture
def span_exporter() -> Iterator[InMemorySpanExporter]:
    """Finished spans of the current test. The global tracer provider can be set only once per
    process, so crmkit's own setup makes it and the exporter is attached to it once."""
    global _exporter
    if _exporter is None:
        from crmkit import telemetry

        telemetry.setup_tracing("crmkit-tests", None)
        provider = trace.get_tracer_provider()
        if not isinstance(provider, TracerProvider):
            pytest.skip("the global tracer provider is not the OpenTelemetry SDK's")
        _exporter = InMemorySpanExporter()
        provider.add_span_processor(SimpleSpanProcessor(_exporter))
    _exporter.clear()
    yield _exporter
    _exporter.clear()


# ------------------------------------------------------------------------------- databases

_BUSINESS_DDL = [
    "CREATE TABLE widgets (id uuid PRIMARY KEY, name text NOT NULL, seq int NOT NULL DEFAULT 0)",
    "CREATE TABLE effects (id bigserial PRIMARY KEY, consumer text NOT NULL, event_id text NOT NULL,"
    " note text NOT NULL DEFAULT '')",
    "CREATE TABLE scoped_records (name text PRIMARY KEY, owner_id text NOT NULL,"
    " team_id text NOT NULL DEFAULT '', department_path text NOT NULL)",
]


def migrate(url: str) -> None:
    """The infrastructure tables every service database has, plus a few tiny business tables.
    Runs in a thread of its own (the fixture's), so `asyncio.run` is fine here."""
    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    from crmkit.outbox.schema import metadata

    async def run() -> None:
        engine = create_async_engine(url)
        try:
            async with engine.begin() as conn:
                await conn.run_sync(metadata.create_all)
                for ddl in _BUSINESS_DDL:
                    await conn.execute(text(ddl))
        finally:
            await engine.dispose()

    asyncio.run(run())


@pytest.fixture
def database_url(database_factory: Callable[[str, Callable[[str], None]], str]) -> str:
    return database_factory("crmkit_tests", migrate)


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[Any]:
    from crmkit.db import create_engine, session_factory

    engine = create_engine(database_url, pool_size=10)
    try:
        yield session_factory(engine)
    finally:
        await engine.dispose()
