"""R-SAP-03: sync records with state, SAP number and last error; retry, replay, drift, stats;
permissions."""

from __future__ import annotations

import uuid

import pytest
from sap_test_helpers import OPERATOR, Bus, created, customer, drain_outbound, order

from crm.orders.v1 import events_pb2 as order_events
from crm_sap.app import operations
from crm_sap.domain.model import SapDefaults
from crmkit.auth import DataScope, Principal
from crmkit.db import UnitOfWork
from crmkit.errors import Conflict, InvalidArgument, PermissionDenied

pytestmark = pytest.mark.integration

AUDITOR = Principal(subject="user:gao.shan", roles=("auditor",), data_scope=DataScope.ALL,
                    permissions=("integrations.read",))
REP = Principal(subject="user:li.wei", roles=("sales_rep",), permissions=("customers.read", "customers.write"))
ACME, BOLT = uuid.UUID("01930000-0000-7000-8000-0000000000a1"), uuid.UUID("01930000-0000-7000-8000-0000000000b1")
O1 = uuid.UUID("01930000-0000-7000-8000-0000000000f1")


async def test_records_retry_replay_drift_and_permissions(
        nats_server, sessions, simulator, sap, outbound, clock, outbox):
    simulator.command("POST", "/_sim/faults", {"reject_names": ["Bolt Pumps"]})
    async with Bus(nats_server.url, sessions) as bus:
        await bus.publish(created(customer(ACME, "Acme Valves")), created(customer(BOLT, "Bolt Pumps")),
                          order_events.OrderSubmitted(order=order(O1, ACME, [("VALVE", "4", "12.5")])))
        await bus.drain()
    await drain_outbound(outbound, clock)

    async def call(principal, fn, *args, **kw):
        async with UnitOfWork(sessions, "crm/sap", actor=principal.subject) as uow:
            return await fn(uow, principal, *args, **kw)

    rows, cursor = await call(AUDITOR, operations.list_records)
    assert {(r.kind, r.crm_id, r.state) for r in rows} == {
        ("business_partner", ACME, "synced"), ("business_partner", BOLT, "parked"), ("sales_order", O1, "synced")}
    assert cursor == ""
    parked, _ = await call(AUDITOR, operations.list_records, state="parked")
    assert [(r.crm_id, r.sap_number, r.attempts, r.pending_changes) for r in parked] == [(BOLT, "", 1, 1)]
    assert "R11/124" in parked[0].last_error
    page1, cursor = await call(AUDITOR, operations.list_records, limit=2)
    page2, end = await call(AUDITOR, operations.list_records, limit=2, cursor=cursor)
    assert len(page1) == 2 and len(page2) == 1 and end == ""
    assert {r.crm_id for r in page1 + page2} == {ACME, BOLT, O1}
    so, _ = await call(AUDITOR, operations.list_records, kind="sales_order")
    assert so[0].customer_id == ACME and so[0].sap_number != ""

    with pytest.raises(PermissionDenied):
        await call(REP, operations.list_records)
    with pytest.raises(PermissionDenied):
        await call(AUDITOR, operations.retry, "business_partner", str(BOLT))
    with pytest.raises(Conflict):
        await call(OPERATOR, operations.retry, "business_partner", str(ACME))  # nothing queued
    with pytest.raises(InvalidArgument):
        await call(OPERATOR, operations.retry, "invoice", str(ACME))

    # Drift: somebody renamed the partner in SAP directly.
    acme_bp = next(r.sap_number for r in rows if r.crm_id == ACME)
    await sap.batch("API_BUSINESS_PARTNER", [__import__("crm_sap.adapters.odata", fromlist=["BatchOp"]).BatchOp(
        "PATCH", f"A_BusinessPartner('{acme_bp}')", {"OrganizationBPName1": "ACME VALVES (OLD)"})])
    report = await call(AUDITOR, operations.drift_report, sap, crm_id=str(ACME))
    assert [(d.field, d.crm, d.sap) for d in report[0].fields] == [
        ("OrganizationBPName1", "Acme Valves", "ACME VALVES (OLD)")]
    order_report = await call(AUDITOR, operations.drift_report, sap, kind="sales_order", crm_id=str(O1))
    assert order_report[0].fields == []

    # Replay sends the CRM's state again: the drift is repaired.
    view = await call(OPERATOR, operations.replay, "business_partner", str(ACME))
    assert view.state == "pending" and view.pending_changes == 1
    await drain_outbound(outbound, clock)
    report = await call(AUDITOR, operations.drift_report, sap, crm_id=str(ACME))
    assert report[0].fields == []

    requeued = await outbox("crm.sap.sync.requeued")
    assert [(m.record_kind, m.crm_id, m.action) for m in requeued] == [("business_partner", str(ACME), "replay")]
    stats = await call(AUDITOR, operations.stats)
    assert (stats.pending_changes, stats.parked_changes, stats.synced_records) == (0, 1, 2)
    assert SapDefaults().delivery_block  # defaults exist for the cancellation path
