"""REST for the SAP integration's operations (R-SAP-03): sync records with state, SAP number and
last error; retry, replay; the drift report; statistics; integrations.read / integrations.manage."""

from __future__ import annotations

import datetime as dt
import random
import uuid

import httpx
import pytest

from crm.customers.v1 import customers_pb2
from crm.customers.v1 import events_pb2 as customer_events
from crm_sap.adapters.odata import ODataClient
from crm_sap.app import intake
from crm_sap.app.outbound import Outbound
from crm_sap.domain.model import SapDefaults
from crmkit.auth import DataScope, Principal
from crmkit.db import UnitOfWork
from crmkit.events.envelope import Event

pytestmark = pytest.mark.integration

TAG = uuid.uuid4().hex[:6]
OPERATOR = Principal(subject=f"ops-{TAG}", name="Ma Lin", roles=("operator",), data_scope=DataScope.ALL,
                     permissions=("integrations.read", "integrations.manage", "org.read"))
REP = Principal(subject=f"rep-{TAG}", roles=("sales_rep",), team_ids=(f"east-{TAG}",))
BASE = "/api/v1/integrations/sap"


async def _customer_created(sessions, cid: uuid.UUID, name: str) -> None:
    event = customer_events.CustomerCreated(customer=customers_pb2.Customer(
        id=str(cid), name=name, version=1, addresses=[customers_pb2.Address(
            kind=customers_pb2.ADDRESS_KIND_REGISTERED, line="1 Binhe Road", city="Hangzhou", country="CN",
            postal_code="310000")]))
    async with UnitOfWork(sessions, "crm/sap") as uow:
        await intake.on_customer_created(uow, Event(id=str(uuid.uuid4()), subject="crm.customers.customer.created",
                                                    type=event.DESCRIPTOR.full_name,
                                                    payload=event.SerializeToString(), headers={}))
        await uow.commit()


@pytest.fixture
async def synced(sap_sessions, sap_simulator) -> dict[str, uuid.UUID]:
    """Two customers through the real outbound worker: one in SAP, one refused by SAP (parked)."""
    good, bad = uuid.uuid4(), uuid.uuid4()
    bad_name = f"Refused {TAG} {bad.hex[:6]}"
    async with httpx.AsyncClient() as http:
        (await http.post(f"{sap_simulator}/_sim/faults", json={"reject_names": [bad_name]})).raise_for_status()
    await _customer_created(sap_sessions, good, f"Hangzhou Gears {good.hex[:6]}")
    await _customer_created(sap_sessions, bad, bad_name)
    sap = ODataClient(sap_simulator, "CRM_INTEGRATION", "sim", sap_client="100")
    worker = Outbound(sap_sessions, sap, SapDefaults(), rand=random.Random(1),
                      clock=lambda: dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1))
    result = await worker.run_pass()
    await sap.aclose()
    assert result.applied >= 1 and result.parked >= 1  # (earlier tests may have queued more)
    return {"good": good, "bad": bad}


async def test_records_filters_actions_drift_and_stats(client, auth, assert_problem, synced, sap_simulator):
    good, bad = str(synced["good"]), str(synced["bad"])
    response = await client.get(f"{BASE}/records", params={"crm_id": good}, headers=auth(OPERATOR))
    assert response.status_code == 200, response.text
    [record] = response.json()["items"]
    assert (record["kind"], record["state"], record["pending_changes"], record["last_error"]) == (
        "business_partner", "synced", 0, "")
    assert record["sap_number"].isdigit()

    parked = (await client.get(f"{BASE}/records", params={"state": "parked", "kind": "business_partner"},
                               headers=auth(OPERATOR))).json()["items"]
    mine = [r for r in parked if r["crm_id"] == bad]
    assert len(mine) == 1 and mine[0]["sap_number"] is None and mine[0]["attempts"] == 1
    assert "R11/124" in mine[0]["last_error"]
    by_error = (await client.get(f"{BASE}/records", params={"error": "R11/124"}, headers=auth(OPERATOR))).json()
    assert bad in [r["crm_id"] for r in by_error["items"]]

    one = await client.get(f"{BASE}/records/business_partner/{bad}", headers=auth(OPERATOR))
    assert one.json()["state"] == "parked"

    retried = await client.post(f"{BASE}/records/business_partner/{bad}/retry", headers=auth(OPERATOR))
    assert retried.status_code == 200, retried.text
    assert (retried.json()["state"], retried.json()["pending_changes"]) == ("pending", 1)
    assert_problem(await client.post(f"{BASE}/records/business_partner/{good}/retry", headers=auth(OPERATOR)),
                   409, reason="NOTHING_TO_RETRY")
    replayed = await client.post(f"{BASE}/records/business_partner/{good}/replay", headers=auth(OPERATOR))
    assert replayed.status_code == 200 and replayed.json()["state"] == "pending"

    drift = await client.get(f"{BASE}/drift", params={"customer_id": good}, headers=auth(OPERATOR))
    assert drift.status_code == 200, drift.text
    assert drift.json()["compared"] == 1 and drift.json()["drifted"] == 0
    assert drift.json()["records"][0]["sap_number"] == record["sap_number"]
    ranged = await client.get(f"{BASE}/drift", params={"from": "2020-01-01T00:00:00Z", "kind": "business_partner"},
                              headers=auth(OPERATOR))
    assert good in [r["crm_id"] for r in ranged.json()["records"]]
    assert_problem(await client.get(f"{BASE}/drift", headers=auth(OPERATOR)), 422, fields=("crm_id",))

    stats = (await client.get(f"{BASE}/stats", headers=auth(OPERATOR))).json()
    assert stats["pending_changes"] >= 2 and stats["synced_records"] >= 0


async def test_permissions(client, auth, assert_problem, synced):
    assert_problem(await client.get(f"{BASE}/records", headers=auth(REP)), 403)
    assert_problem(await client.post(f"{BASE}/records/business_partner/{synced['bad']}/replay", headers=auth(REP)),
                   403)
    assert (await client.get(f"{BASE}/records")).status_code == 401
    assert_problem(await client.get(f"{BASE}/records/invoice/{synced['bad']}", headers=auth(OPERATOR)), 422)
