"""R-SAP-01/02 against the simulator on loopback, with real PostgreSQL and NATS: the outbound
queue survives SAP being down and applies every change once and in order when it returns; CSRF
expiry and stale ETags are absorbed; a validation error parks one record while others proceed;
a crash between SAP's 201 and our commit does not duplicate. Worker passes are driven directly
and time is moved by the test's clock."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from sap_test_helpers import OPERATOR, Bus, created, customer, drain_outbound, line_id, order, updated

from crm.orders.v1 import events_pb2 as order_events
from crm_sap.adapters.odata import BUSINESS_PARTNER, SALES_ORDER, expanded
from crm_sap.domain.model import CustomerCopy, SapDefaults, business_partner_create, business_partner_reference

pytestmark = pytest.mark.integration

ACME, BOLT = uuid.UUID("01930000-0000-7000-8000-0000000000a1"), uuid.UUID("01930000-0000-7000-8000-0000000000b1")
O1, O2 = uuid.UUID("01930000-0000-7000-8000-0000000000f1"), uuid.UUID("01930000-0000-7000-8000-0000000000f2")


async def bp(sap, number: str) -> dict:
    entity, _ = await sap.read(BUSINESS_PARTNER, f"A_BusinessPartner('{number}')",
                               {"$expand": "to_BusinessPartnerAddress,to_BusinessPartnerRole,to_Customer"})
    return entity


async def test_sap_down_then_back_every_change_once_and_in_order(
        nats_server, sessions, simulator, sap, outbound, clock, outbox, sql):
    acme_v1 = customer(ACME, "Acme Valves")
    acme_v2 = customer(ACME, "Acme Valves Group", version=2)
    bolt = customer(BOLT, "Bolt Pumps")
    simulator.command("POST", "/_sim/faults", {"unavailable_requests": 1000})
    async with Bus(nats_server.url, sessions) as bus:
        await bus.publish(created(acme_v1), created(bolt), updated(acme_v1, acme_v2),
                          order_events.OrderSubmitted(order=order(O1, ACME, [("VALVE-DN50", "2", "100.00"),
                                                                             ("SEAL-KIT", "3", "50.00")])),
                          order_events.OrderSubmitted(order=order(O2, BOLT, [("PUMP-X1", "1", "999.90")])))
        # The CRM side only enqueues: every event is handled while SAP is down.
        assert await bus.drain() == 5
    queued = await sql("SELECT kind, crm_id, state FROM changes ORDER BY id")
    assert [(r.kind, r.crm_id, r.state) for r in queued] == [
        ("business_partner", ACME, "pending"), ("business_partner", BOLT, "pending"),
        ("business_partner", ACME, "pending"), ("sales_order", O1, "pending"), ("sales_order", O2, "pending")]

    first = await outbound.run_pass()
    # SAP answers 503: the first change backs off, the rest are left for later (no hammering).
    assert (first.failed, first.applied, first.stopped_early) == (1, 0, True)
    again = await outbound.run_pass()
    assert again.failed + again.applied == 0  # nothing is due before the backoff ends
    clock.advance(minutes=30)
    assert (await outbound.run_pass()).failed == 1
    record = (await sql("SELECT state, attempts, last_error FROM sync_records WHERE crm_id = :id", id=ACME))[0]
    assert record.state == "retrying" and record.attempts == 2 and "503" in record.last_error
    assert simulator.log() == []

    simulator.command("DELETE", "/_sim/faults")
    await drain_outbound(outbound, clock)

    creates = [e for e in simulator.log() if e["op"] == "create"]
    # Exactly one business partner per customer and one sales order per order, customers first.
    assert [e["set"] for e in creates] == ["A_BusinessPartner", "A_BusinessPartner", "A_SalesOrder", "A_SalesOrder"]
    numbers = dict(await sql("SELECT crm_id, sap_number FROM sync_records"))
    acme_bp, bolt_bp = numbers[ACME], numbers[BOLT]
    # Acme's update was queued behind its creation; SAP got the latest name.
    assert (await bp(sap, acme_bp))["OrganizationBPName1"] == "Acme Valves Group"
    roles = {r["BusinessPartnerRole"] for r in expanded(await bp(sap, acme_bp), "to_BusinessPartnerRole")}
    assert roles == {"FLCU00", "FLCU01"}
    so1, _ = await sap.read(SALES_ORDER, f"A_SalesOrder('{numbers[O1]}')", {"$expand": "to_Item,to_Partner"})
    assert so1["SoldToParty"] == acme_bp
    assert so1["PurchaseOrderByCustomer"] == O1.hex.upper()
    assert [(i["SalesOrderItem"], i["Material"], Decimal(i["RequestedQuantity"]), Decimal(i["NetAmount"]))
            for i in expanded(so1, "to_Item")] == [("10", "VALVE-DN50", 2, Decimal("200.00")),
                                                   ("20", "SEAL-KIT", 3, Decimal("150.00"))]
    assert Decimal(so1["TotalNetAmount"]) == Decimal("350.00")
    assert [(p["PartnerFunction"], p["Customer"]) for p in expanded(so1, "to_Partner")] == [("SH", acme_bp)]

    synced = await outbox("crm.sap.business_partner.synced")
    assert sorted((m.customer_id, m.business_partner) for m in synced) == sorted(
        [(str(ACME), acme_bp), (str(BOLT), bolt_bp)])
    so_created = {m.order_id: m for m in await outbox("crm.sap.sales_order.created")}
    assert dict(so_created[str(O1)].item_numbers) == {line_id(O1, 1): "10", line_id(O1, 2): "20"}
    assert so_created[str(O2)].sales_order == numbers[O2]
    states = await sql("SELECT state, count(*) AS n FROM changes GROUP BY state")
    assert [(r.state, r.n) for r in states] == [("done", 5)]

    # A later change goes as an update (a $batch changeset: header and address), never a second create.
    acme_v3 = customer(ACME, "Acme Valves Group", version=3, city="Wuxi")
    async with Bus(nats_server.url, sessions) as bus:
        await bus.publish(updated(acme_v2, acme_v3))
        await bus.drain()
    await drain_outbound(outbound, clock)
    log = simulator.log()
    assert [e["op"] for e in log].count("create") == 4
    assert [(e["set"], e["changes"]) for e in log if e["op"] == "update"] == [
        ("A_BusinessPartner", ["OrganizationBPName1", "OrganizationBPName2", "SearchTerm1"]),
        ("A_BusinessPartnerAddress", ["CityName", "Country", "PostalCode", "StreetName"])]
    assert expanded(await bp(sap, acme_bp), "to_BusinessPartnerAddress")[0]["CityName"] == "Wuxi"


async def test_expired_csrf_token_and_stale_etag_are_absorbed(
        nats_server, sessions, simulator, sap, outbound, clock, sql):
    acme = customer(ACME, "Acme Valves")
    async with Bus(nats_server.url, sessions) as bus:
        await bus.publish(created(acme), order_events.OrderSubmitted(order=order(O1, ACME, [("VALVE", "1", "10")])))
        await bus.drain()
        await drain_outbound(outbound, clock)
        assert sap.csrf_retries == 0

        # SAP forgot our session: the write gets 403 "x-csrf-token: Required", one refetch, one retry.
        simulator.command("POST", "/_sim/faults", {"expire_csrf_tokens": True})
        await bus.publish(updated(acme, customer(ACME, "Acme Valves Ltd", version=2)))
        await bus.drain()
        await drain_outbound(outbound, clock)
        assert sap.csrf_retries == 1
        number = (await sql("SELECT sap_number FROM sync_records WHERE crm_id = :id", id=ACME))[0].sap_number
        assert (await bp(sap, number))["OrganizationBPName1"] == "Acme Valves Ltd"

        # SAP changed the order since we created it (delivery block set there): our ETag is stale.
        so = (await sql("SELECT sap_number FROM sync_records WHERE crm_id = :id", id=O1))[0].sap_number
        simulator.command("POST", "/_sim/faults", {"stale_etags": 1})
        await bus.publish(order_events.OrderCancelled(order=order(O1, ACME, [("VALVE", "1", "10")]), reason="dup"))
        await bus.drain()
        await drain_outbound(outbound, clock)
    assert sap.etag_retries >= 1
    entity, etag = await sap.read(SALES_ORDER, f"A_SalesOrder('{so}')", {"$expand": "to_Item"})
    assert entity["DeliveryBlockReason"] == SapDefaults().delivery_block
    assert [i["SalesDocumentRjcnReason"] for i in expanded(entity, "to_Item")] == [SapDefaults().rejection_reason]
    record = (await sql("SELECT state, sap_data FROM sync_records WHERE crm_id = :id", id=O1))[0]
    assert record.state == "synced" and record.sap_data["etag"] == etag


async def test_validation_error_parks_one_record_others_proceed(
        nats_server, sessions, simulator, sap, outbound, clock, sql, outbox):
    simulator.command("POST", "/_sim/faults", {"reject_names": ["Bolt Pumps"]})
    acme, bolt = customer(ACME, "Acme Valves"), customer(BOLT, "Bolt Pumps")
    async with Bus(nats_server.url, sessions) as bus:
        await bus.publish(created(bolt), created(acme),
                          order_events.OrderSubmitted(order=order(O2, BOLT, [("PUMP", "1", "5")])),
                          order_events.OrderSubmitted(order=order(O1, ACME, [("VALVE", "1", "10")])))
        await bus.drain()
        result = await outbound.run_pass()
        assert (result.parked, result.applied, result.waiting) == (1, 2, 1)
        rows = {r.crm_id: r for r in await sql("SELECT crm_id, state, last_error, sap_number FROM sync_records")}
        assert rows[BOLT].state == "parked" and "R11/124" in rows[BOLT].last_error
        assert "Bolt Pumps" in rows[BOLT].last_error  # SAP's own message, for the operator
        assert rows[ACME].state == rows[O1].state == "synced"
        assert rows[O2].state == "pending" and "waiting for the customer's business partner" in rows[O2].last_error
        failed = await outbox("crm.sap.sync.failed")
        assert [(m.record_kind, m.crm_id, m.parked) for m in failed] == [("business_partner", str(BOLT), True)]

        # A later change of the parked record is held back behind it, however often the worker runs.
        await bus.publish(updated(bolt, customer(BOLT, "Bolt Pumps (Suzhou)", version=2)))
        await bus.drain()
        clock.advance(hours=2)
        assert (await outbound.run_pass()).parked == 0
        assert [e["set"] for e in simulator.log() if e["op"] == "create"] == ["A_BusinessPartner", "A_SalesOrder"]

    # The operator retries: the record's changes go in order with its latest state; its order follows.
    from crm_sap.app import operations
    from crmkit.db import UnitOfWork
    async with UnitOfWork(sessions, "crm/sap", actor=OPERATOR.subject) as uow:
        view = await operations.retry(uow, OPERATOR, "business_partner", str(BOLT))
    assert view.state == "pending" and view.pending_changes == 2
    await drain_outbound(outbound, clock)
    rows = {r.crm_id: r for r in await sql("SELECT crm_id, state, sap_number FROM sync_records")}
    assert rows[BOLT].state == rows[O2].state == "synced"
    assert (await bp(sap, rows[BOLT].sap_number))["OrganizationBPName1"] == "Bolt Pumps (Suzhou)"
    so2, _ = await sap.read(SALES_ORDER, f"A_SalesOrder('{rows[O2].sap_number}')")
    assert so2["SoldToParty"] == rows[BOLT].sap_number


async def test_created_in_sap_but_not_committed_is_adopted_not_duplicated(
        nats_server, sessions, simulator, sap, outbound, clock, sql):
    # A previous attempt reached SAP (201) and the process died before recording it.
    copy = CustomerCopy(customer_id=str(ACME), name="Acme Valves", country="CN", city="Suzhou",
                        postal_code="215000", street="88 Xinghu Street")
    earlier = await sap.create(BUSINESS_PARTNER, "A_BusinessPartner", business_partner_create(copy, SapDefaults()))
    assert earlier["BusinessPartnerIDByExtSystem"] == business_partner_reference(str(ACME))
    async with Bus(nats_server.url, sessions) as bus:
        await bus.publish(created(customer(ACME, "Acme Valves")),
                          order_events.OrderSubmitted(order=order(O1, ACME, [("VALVE", "1", "10")])))
        await bus.drain()
    # The order's first attempt also reached SAP before the crash: claim it, create it, lose the commit.
    await drain_outbound(outbound, clock)
    await sql("UPDATE sync_records SET sap_number = '', state = 'pending' WHERE crm_id = :id", id=O1)
    await sql("UPDATE changes SET state = 'pending' WHERE crm_id = :id", id=O1)
    await drain_outbound(outbound, clock)
    creates = [e for e in simulator.log() if e["op"] == "create"]
    assert [e["set"] for e in creates] == ["A_BusinessPartner", "A_SalesOrder"]
    numbers = dict(await sql("SELECT crm_id, sap_number FROM sync_records"))
    assert numbers[ACME] == earlier["BusinessPartner"]
    assert numbers[O1] == creates[1]["key"]
