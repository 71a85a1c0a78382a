"""The audit trail on real PostgreSQL and NATS: events of any service published on a stream are
recorded with before/after by the audit consumer, access denials too; the hash chain verifies,
and a tampered or removed entry is found; the table refuses UPDATE, DELETE and TRUNCATE."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator

import grpc
import nats
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from crm.customers.v1 import customers_pb2
from crm.customers.v1 import events_pb2 as customer_events
from crm.identity.v1 import events_pb2 as identity_events
from crm.identity.v1 import identity_pb2 as pb
from crm_identity.main import audit_subscriptions
from crmkit.events.consumer import EventConsumer
from crmkit.events.envelope import build_headers
from crmkit.events.streams import ensure_dead_letter_stream, ensure_stream

pytestmark = pytest.mark.integration


@pytest.fixture
async def js(nats_server) -> AsyncIterator[nats.js.JetStreamContext]:
    nc = await nats.connect(nats_server.url)
    yield nc.jetstream()
    await nc.close()  # a cancelled pull consumer would hold a drain until its timeout


@pytest.fixture
async def stream(js, sessions) -> AsyncIterator[tuple[str, str]]:
    """A stream of its own (subjects crm.<prefix>.>) with the audit consumer running on it."""
    prefix = f"t{uuid.uuid4().hex[:10]}"
    name = f"CRM_{prefix.upper()}"
    await ensure_stream(js, name, [f"crm.{prefix}.>"], 1)
    await ensure_dead_letter_stream(js, 1)
    consumer = EventConsumer(audit_subscriptions([name])[0], js, sessions, source="crm/identity")
    task = asyncio.create_task(consumer.run())
    yield name, prefix
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await js.delete_stream(name)


async def publish(js, subject: str, message, *, actor: str = "rep-east", subject_id: str = "",
                  event_id: str | None = None, source: str = "crm/customers") -> str:
    event_id = event_id or str(uuid.uuid4())
    headers = build_headers(event_id=event_id, event_type=message.DESCRIPTOR.full_name, source=source,
                            actor=actor, subject_id=subject_id, time=dt.datetime.now(dt.UTC))
    await js.publish(subject, message.SerializeToString(), headers=headers)
    return event_id


async def entries(sessions) -> list:
    async with sessions() as s:
        return list(await s.execute(text("SELECT * FROM audit_entries ORDER BY sequence")))


async def test_events_land_in_a_verifiable_chain_and_tampering_is_found(js, stream, sessions, admin, stub_for,
                                                                          principals, eventually, rpc_error) -> None:
    _, prefix = stream
    customer_id = str(uuid.uuid4())
    updated = customer_events.CustomerUpdated(before=customers_pb2.Customer(id=customer_id, name="Fuzhou"),
                                              after=customers_pb2.Customer(id=customer_id, name="Fuzhou Ltd"))
    first = await publish(js, f"crm.{prefix}.customer.updated", updated, subject_id=customer_id)
    await publish(js, f"crm.{prefix}.customer.updated", updated, subject_id=customer_id, event_id=first)  # dup
    await publish(js, f"crm.{prefix}.access.denied", identity_events.AccessDenied(
        actor="rep-west", method="GET", path=f"/api/v1/customers/{customer_id}", status=404, reason="out of scope"),
        actor="", source="crm/gateway")
    await publish(js, f"crm.{prefix}.user.created", identity_events.UserCreated(user=pb.User(login="li.wei")),
                  actor="admin", subject_id="u1")
    removed = customer_events.CustomerDeleted(customer=customers_pb2.Customer(id=customer_id))
    await publish(js, f"crm.{prefix}.customer.deleted", removed, subject_id=customer_id)

    async def four() -> list:
        rows = await entries(sessions)
        assert len(rows) == 4, rows
        return rows

    rows = await eventually(four)
    update, denied, created, deleted = rows
    summary = (update.service, update.entity, update.action, update.actor, update.entity_id)
    assert summary == (prefix, "customer", "updated", "rep-east", customer_id)
    assert update.before["name"] == "Fuzhou" and update.after["name"] == "Fuzhou Ltd"
    assert (denied.action, denied.entity, denied.actor, denied.service) == ("access_denied", "access", "rep-west",
                                                                            "gateway")
    assert denied.after["status"] == 404 and denied.before is None
    assert created.after == {"user": {"login": "li.wei"}} and deleted.after == {"customer": {"id": customer_id}}
    assert [r.prev_hash for r in rows[1:]] == [r.hash for r in rows[:-1]]

    listed = await admin.ListAuditEntries(pb.ListAuditEntriesRequest(entity="customer", entity_id=customer_id))
    assert [e.action for e in listed.entries] == ["deleted", "updated"]          # newest first
    assert '"Fuzhou Ltd"' in listed.entries[1].after_json
    by_actor = await admin.ListAuditEntries(pb.ListAuditEntriesRequest(actor="rep-west"))
    assert [e.action for e in by_actor.entries] == ["access_denied"]
    page = await admin.ListAuditEntries(pb.ListAuditEntriesRequest(page_size=3))
    rest = await admin.ListAuditEntries(pb.ListAuditEntriesRequest(page_size=3, page_token=page.next_page_token))
    assert len(page.entries) == 3 and [e.sequence for e in rest.entries] == [update.sequence]
    future = await admin.ListAuditEntries(pb.ListAuditEntriesRequest(
        from_time=Timestamp(seconds=int(dt.datetime.now(dt.UTC).timestamp()) + 3600)))
    assert list(future.entries) == []

    auditor = stub_for(principals.auditor)
    verdict = await auditor.VerifyAuditTrail(pb.VerifyAuditTrailRequest())
    assert (verdict.intact, verdict.entries_checked, verdict.first_broken_sequence) == (True, 4, 0), verdict.problem

    # a superuser alters the third entry behind the trigger's back: found, at that entry
    async with sessions() as s, s.begin():
        await s.execute(text("ALTER TABLE audit_entries DISABLE TRIGGER ALL"))
        await s.execute(text("UPDATE audit_entries SET actor = 'someone-else' WHERE sequence = :s"),
                        {"s": created.sequence})
        await s.execute(text("ALTER TABLE audit_entries ENABLE TRIGGER ALL"))
    verdict = await admin.VerifyAuditTrail(pb.VerifyAuditTrailRequest())
    assert (verdict.intact, verdict.first_broken_sequence) == (False, created.sequence)
    assert "altered" in verdict.problem

    async with sessions() as s, s.begin():   # put it back, then remove the second entry instead
        await s.execute(text("ALTER TABLE audit_entries DISABLE TRIGGER ALL"))
        await s.execute(text("UPDATE audit_entries SET actor = 'admin' WHERE sequence = :s"), {"s": created.sequence})
        await s.execute(text("DELETE FROM audit_entries WHERE sequence = :s"), {"s": denied.sequence})
        await s.execute(text("ALTER TABLE audit_entries ENABLE TRIGGER ALL"))
    verdict = await admin.VerifyAuditTrail(pb.VerifyAuditTrailRequest())
    assert (verdict.intact, verdict.first_broken_sequence) == (False, created.sequence)

    rep = stub_for(principals.rep)
    assert (await rpc_error(rep.VerifyAuditTrail(pb.VerifyAuditTrailRequest()))).code() == \
        grpc.StatusCode.PERMISSION_DENIED


async def test_a_rebuilt_chain_or_entries_cut_from_its_end_are_found_by_the_anchor(js, sessions,
                                                                                   principals) -> None:
    from crm_identity.adapters import repository as repo
    from crm_identity.adapters.anchors import JetStreamAnchors
    from crm_identity.app import audit
    from crm_identity.domain.audit import GENESIS, ChainLink, hash_of
    from crmkit.db import UnitOfWork

    async with sessions() as s, s.begin():
        for n in range(3):
            await repo.append_audit_entry(s, occurred_at=dt.datetime.now(dt.UTC), service="customers",
                                          entity="customer", entity_id=f"c{n}", action="updated", actor="rep",
                                          before=None, after={"n": n}, event_id=str(uuid.uuid4()))
    anchors = JetStreamAnchors(js, bucket=f"anchors_{uuid.uuid4().hex[:8]}")

    async def verdicts() -> tuple[audit.Verification, audit.Verification]:
        async with UnitOfWork(sessions, "crm/identity", actor="system") as uow:
            return await audit.verify(uow, principals.auditor), await audit.verify(uow, principals.auditor, anchors)

    async with UnitOfWork(sessions, "crm/identity", actor="system") as uow:
        head = await audit.anchor(uow, anchors)
    assert head is not None and await anchors.latest() == head
    assert all(v.intact for v in await verdicts())

    async with sessions() as s, s.begin():   # every entry rewritten, with a consistent chain of new hashes
        await s.execute(text("ALTER TABLE audit_entries DISABLE TRIGGER ALL"))
        previous = GENESIS
        for r in list(await s.execute(text("SELECT * FROM audit_entries ORDER BY sequence"))):
            link = ChainLink(sequence=r.sequence, occurred_at=r.occurred_at, service=r.service, entity=r.entity,
                             entity_id=r.entity_id, action=r.action, actor="forger", before=None, after=None,
                             event_id=r.event_id, prev_hash=previous)
            previous = hash_of(link)
            await s.execute(text("UPDATE audit_entries SET actor = 'forger', before = NULL, after = NULL, "
                                 "prev_hash = :p, hash = :h WHERE sequence = :s"),
                            {"p": link.prev_hash, "h": previous, "s": r.sequence})
        await s.execute(text("ALTER TABLE audit_entries ENABLE TRIGGER ALL"))
    alone, anchored = await verdicts()
    assert alone.intact                                  # the chain alone cannot tell
    assert (anchored.intact, anchored.first_broken) == (False, head[0]) and "rewritten" in anchored.problem

    async with sessions() as s, s.begin():   # the newest entry cut off
        await s.execute(text("ALTER TABLE audit_entries DISABLE TRIGGER ALL"))
        await s.execute(text("DELETE FROM audit_entries WHERE sequence = :s"), {"s": head[0]})
        await s.execute(text("ALTER TABLE audit_entries ENABLE TRIGGER ALL"))
    alone, anchored = await verdicts()
    assert alone.intact
    assert (anchored.intact, anchored.first_broken) == (False, head[0]) and "removed from its end" in anchored.problem


@pytest.mark.parametrize("statement", [
    "UPDATE audit_entries SET actor = 'x'",
    "DELETE FROM audit_entries",
    "TRUNCATE audit_entries",
])
async def test_the_table_is_append_only(sessions, statement) -> None:
    async with sessions() as s, s.begin():
        await s.execute(text(
            "INSERT INTO audit_entries (sequence, occurred_at, service, entity, action, event_id, prev_hash, hash) "
            "VALUES (1, now(), 's', 'e', 'a', 'ev', '0', '0')"))
    async with sessions() as s:
        with pytest.raises(DBAPIError, match="append-only"):
            await s.execute(text(statement))
    assert len(await entries(sessions)) == 1


async def test_streams_that_do_not_exist_yet_are_waited_for_quietly(js, sessions, caplog) -> None:
    name = f"CRM_NOTYET{uuid.uuid4().hex[:8].upper()}"
    consumer = EventConsumer(audit_subscriptions([name])[0], js, sessions, source="crm/identity")
    task = asyncio.create_task(consumer.run())
    await asyncio.sleep(0.3)
    assert not task.done()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    waiting = [r for r in caplog.records if "not there yet" in r.getMessage() and r.levelname == "INFO"]
    assert len(waiting) <= 1
