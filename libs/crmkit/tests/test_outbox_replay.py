"""`crm-outbox replay`: after a stream is lost, republishing a range of the outbox restores its
events in their original order."""

from __future__ import annotations

import datetime as dt
import importlib.util
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from nats.js import JetStreamContext
from sqlalchemy import text

from crmkit.db import UnitOfWork
from crmkit.events.streams import ensure_stream
from crmkit.outbox import cli
from crmkit.outbox.relay import asyncpg_dsn

# The relay fixture and helpers live beside this file.
_spec = importlib.util.spec_from_file_location("outbox_tests", Path(__file__).with_name("test_outbox.py"))
assert _spec and _spec.loader
outbox_tests = importlib.util.module_from_spec(_spec)
sys.modules["outbox_tests"] = outbox_tests
_spec.loader.exec_module(outbox_tests)
relays = outbox_tests.relays


async def _emit(sessions: Any, topic: Any, seqs: range) -> None:
    for seq in seqs:
        async with UnitOfWork(sessions, "crm/kt") as uow:
            await uow.session.execute(text("INSERT INTO widgets (id, name) VALUES (:id, 'w')"), {"id": uuid.uuid4()})
            uow.emit(topic.event(thing_id=f"t-{seq}", seq=seq))
            await uow.commit()


async def _seqs(js: JetStreamContext, topic: Any) -> list[int]:
    messages = await outbox_tests._stream(js, topic.stream)
    seqs = []
    for msg in messages:
        event = topic.event()
        event.ParseFromString(msg.data)
        seqs.append(event.seq)
    return seqs


async def test_replay_republishes_a_lost_range_in_order(database_url: str, sessions: Any, js: JetStreamContext,
                                                        topic: Any, relays: Any, eventually: Any) -> None:
    await ensure_stream(js, topic.stream, [f"{topic.prefix}.>"], 1)
    relays(js, f"kt-{uuid.uuid4().hex[:8]}")
    await _emit(sessions, topic, range(6))
    await eventually(lambda: outbox_tests._count_is(js, topic.stream, 6))

    # The stream is lost (and with it JetStream's memory of which ids it had).
    await js.delete_stream(topic.stream)
    await ensure_stream(js, topic.stream, [f"{topic.prefix}.>"], 1)
    dsn = asyncpg_dsn(database_url)
    assert "pending: 0" in await cli.status(dsn)

    rows = await outbox_tests._outbox(database_url)
    assert await cli.replay(dsn, from_id=rows[2]["id"], to_id=rows[4]["id"], since=None, until=None) == 3
    await eventually(lambda: outbox_tests._count_is(js, topic.stream, 3))
    assert await _seqs(js, topic) == [2, 3, 4]

    # Replaying everything since an hour ago: what the stream already holds again (2, 3, 4) is
    # dropped by JetStream's duplicate window on Nats-Msg-Id; the rest comes back in order.
    since = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    assert await cli.replay(dsn, from_id=None, to_id=None, since=since, until=None) == 6
    await eventually(lambda: outbox_tests._all_published(database_url))
    await eventually(lambda: outbox_tests._count_is(js, topic.stream, 6))
    assert await _seqs(js, topic) == [2, 3, 4, 0, 1, 5]


def test_replay_needs_a_range_and_a_database(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CRM_DATABASE_URL", raising=False)
    with pytest.raises(SystemExit, match="CRM_DATABASE_URL"):
        cli.main(["status"])
    monkeypatch.setenv("CRM_DATABASE_URL", "postgresql+asyncpg://nobody@127.0.0.1:1/none")
    with pytest.raises(SystemExit, match="name a range"):
        cli.main(["replay"])
    with pytest.raises(SystemExit):
        cli.main(["replay", "--since", "2026-11-24T08:00"])  # no UTC offset: ambiguous
