"""A simulator with a state file continues after a restart where it stopped: its documents, number
ranges (never a number twice) and change log; a reset that would make the CRM see old numbers
again is refused with what to run instead."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from fastapi.testclient import TestClient

from crm_sap_simulator.app import Simulator, create_app

AUTH = ("CRM_INTEGRATION", "pw")
BP = "/sap/opu/odata/sap/API_BUSINESS_PARTNER"
SO = "/sap/opu/odata/sap/API_SALES_ORDER_SRV"
DLV = "/sap/opu/odata/sap/API_OUTBOUND_DELIVERY_SRV;v=0002"
BILL = "/sap/opu/odata/sap/API_BILLING_DOCUMENT_SRV"


def _client(state_file: Path) -> TestClient:
    client = TestClient(create_app(Simulator(password="pw", state_file=state_file)), base_url="http://sap.test")
    client.auth = AUTH
    return client


def _token(api: TestClient) -> str:
    return api.get(BP + "/", headers={"x-csrf-token": "Fetch"}).headers["x-csrf-token"]


def _document_chain(api: TestClient) -> dict[str, str]:
    """A business partner, a sales order, its delivery with goods issue and its invoice."""
    partner = api.post(f"{BP}/A_BusinessPartner", headers={"x-csrf-token": _token(api)}, json={
        "BusinessPartnerCategory": "2", "OrganizationBPName1": "Acme",
        "to_BusinessPartnerRole": {"results": [{"BusinessPartnerRole": "FLCU01"}]}})
    assert partner.status_code == 201, partner.text
    bp = partner.json()["d"]["BusinessPartner"]
    order = api.post(f"{SO}/A_SalesOrder", headers={"x-csrf-token": _token(api)}, json={
        "SoldToParty": bp, "TransactionCurrency": "CNY", "to_Item": {"results": [
            {"Material": "M1", "RequestedQuantity": "2", "RequestedQuantityUnit": "EA",
             "to_PricingElement": {"results": [{"ConditionType": "PPR0", "ConditionRateValue": "10.5"}]}}]}})
    assert order.status_code == 201, order.text
    so = order.json()["d"]["SalesOrder"]
    delivery = api.post(f"/_sim/sales-orders/{so}/deliver", json={"bill_of_lading": "SF1"})
    bill = api.post(f"/_sim/sales-orders/{so}/bill")
    assert delivery.status_code == bill.status_code == 200, delivery.text + bill.text
    return {"bp": bp, "so": so, "dlv": delivery.json()["key"], "bill": bill.json()["key"]}


def test_a_restart_continues_documents_numbers_and_log(tmp_path: Path) -> None:
    state_file = tmp_path / "sap-simulator" / "state.json"
    with _client(state_file) as first_run:
        before = _document_chain(first_run)
        order_before = first_run.get(f"{SO}/A_SalesOrder('{before['so']}')", params={"$expand": "to_Item"}).json()
        log_before = first_run.get("/_sim/log").json()
    assert state_file.is_file() and not list(state_file.parent.glob(".*.tmp"))

    with _client(state_file) as second_run:  # a new process on the same data
        order_after = second_run.get(f"{SO}/A_SalesOrder('{before['so']}')", params={"$expand": "to_Item"}).json()
        assert order_after == order_before  # every value, decimals and timestamps included
        delivery = second_run.get(f"{DLV}/A_OutbDeliveryHeader('{before['dlv']}')").json()["d"]
        assert (delivery["BillOfLading"], delivery["OverallGoodsMovementStatus"]) == ("SF1", "C")
        invoice = second_run.get(f"{BILL}/A_BillingDocument('{before['bill']}')").json()["d"]
        assert invoice["TotalNetAmount"] == "21.00"
        assert second_run.get("/_sim/log").json() == log_before

        after = _document_chain(second_run)
        for kind in ("bp", "so", "dlv", "bill"):
            assert int(after[kind]) == int(before[kind]) + 1, kind  # the ranges go on, nothing reused
        # a delta pull after the restart still sees only newer changes
        newer = second_run.get(f"{SO}/A_SalesOrder", params={
            "$filter": f"LastChangeDateTime gt datetimeoffset'{_iso(order_before)}'"}).json()["d"]["results"]
        assert [o["SalesOrder"] for o in newer] == [after["so"]]


def _iso(order: dict) -> str:
    """Just after the order's last change (the wire has milliseconds, the store microseconds)."""
    ms = int(order["d"]["LastChangeDateTime"].removeprefix("/Date(").split("+")[0]) + 1
    return (dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(milliseconds=ms)).strftime(
        "%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def test_a_failed_changeset_leaves_the_stored_state_alone(tmp_path: Path) -> None:
    state_file = tmp_path / "state.json"
    with _client(state_file) as api:
        api.post(f"{BP}/A_BusinessPartner", headers={"x-csrf-token": _token(api)}, json={
            "BusinessPartnerCategory": "2", "OrganizationBPName1": "Kept"})
        stored = state_file.read_bytes()
        refused = api.post(f"{SO}/A_SalesOrder", headers={"x-csrf-token": _token(api)}, json={
            "SoldToParty": "999", "to_Item": {"results": [{"Material": "M", "RequestedQuantity": "1"}]}})
        assert refused.status_code == 400
        assert state_file.read_bytes() == stored


def test_reset_is_refused_with_a_state_file_and_says_what_to_run(tmp_path: Path) -> None:
    state_file = tmp_path / "state.json"
    with _client(state_file) as api:
        bp = _document_chain(api)["bp"]
        refused = api.post("/_sim/reset")
        assert refused.status_code == 409
        assert "make reset" in refused.json()["instead"] and str(state_file) in refused.json()["instead"]
        assert api.get(f"{BP}/A_BusinessPartner('{bp}')").status_code == 200  # nothing forgotten


def test_reset_without_a_state_file_forgets_everything() -> None:
    with TestClient(create_app(Simulator(password="pw")), base_url="http://sap.test") as api:
        api.auth = AUTH
        bp = _document_chain(api)["bp"]
        assert api.post("/_sim/reset").json() == {"ok": True}
        assert api.get(f"{BP}/A_BusinessPartner('{bp}')").status_code == 404
