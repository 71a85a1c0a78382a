"""The simulator behaves as S/4HANA's OData V2 services do: authentication, CSRF, ETags (428/412),
atomic $batch changesets, SAP error bodies, $filter/$orderby/$select/$expand, server-side paging,
the document chain order -> delivery -> billing document, fault injection."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient

from crm_sap_simulator.app import Simulator, create_app
from crm_sap_simulator.schema import SERVICES
from crm_sap_simulator.wire import parse_filter

AUTH = ("CRM_INTEGRATION", "pw")
SO = "/sap/opu/odata/sap/API_SALES_ORDER_SRV"
BP = "/sap/opu/odata/sap/API_BUSINESS_PARTNER"
DLV = "/sap/opu/odata/sap/API_OUTBOUND_DELIVERY_SRV;v=0002"
BILL = "/sap/opu/odata/sap/API_BILLING_DOCUMENT_SRV"


@pytest.fixture
def api() -> Iterator[TestClient]:
    with TestClient(create_app(Simulator(password="pw", page_size=2)), base_url="http://sap.test") as client:
        client.auth = AUTH
        yield client


def token(api: TestClient, root: str = BP) -> str:
    reply = api.get(root + "/", headers={"x-csrf-token": "Fetch"})
    assert reply.status_code == 200
    return reply.headers["x-csrf-token"]


def partner(api: TestClient, name: str = "Acme") -> str:
    reply = api.post(f"{BP}/A_BusinessPartner", headers={"x-csrf-token": token(api)}, json={
        "BusinessPartnerCategory": "2", "OrganizationBPName1": name,
        "to_BusinessPartnerRole": {"results": [{"BusinessPartnerRole": "FLCU01"}]}})
    assert reply.status_code == 201, reply.text
    return reply.json()["d"]["BusinessPartner"]


def order(api: TestClient, sold_to: str, qty: str = "2", price: str = "10.5") -> dict:
    reply = api.post(f"{SO}/A_SalesOrder", headers={"x-csrf-token": token(api, SO)}, json={
        "SoldToParty": sold_to, "TransactionCurrency": "CNY", "to_Item": {"results": [
            {"Material": "M1", "RequestedQuantity": qty, "RequestedQuantityUnit": "EA",
             "to_PricingElement": {"results": [{"ConditionType": "PPR0", "ConditionRateValue": price}]}}]}})
    assert reply.status_code == 201, reply.text
    return reply.json()["d"]


def test_authentication_and_csrf(api: TestClient) -> None:
    assert api.get(f"{BP}/A_BusinessPartner", auth=("CRM_INTEGRATION", "wrong")).status_code == 401
    refused = api.post(f"{BP}/A_BusinessPartner", json={"BusinessPartnerCategory": "2"})
    assert (refused.status_code, refused.headers["x-csrf-token"]) == (403, "Required")
    fetched = token(api)
    assert api.post(f"{BP}/A_BusinessPartner", headers={"x-csrf-token": "forged"}, json={}).status_code == 403
    api.post("/_sim/faults", json={"expire_csrf_tokens": True})
    expired = api.post(f"{BP}/A_BusinessPartner", headers={"x-csrf-token": fetched},
                       json={"BusinessPartnerCategory": "2", "OrganizationBPName1": "X"})
    assert expired.status_code == 403 and expired.text == "CSRF token validation failed"


def test_sap_error_body_and_validation(api: TestClient) -> None:
    reply = api.post(f"{SO}/A_SalesOrder", headers={"x-csrf-token": token(api, SO)},
                     json={"SoldToParty": "999", "to_Item": {"results": [{"Material": "M", "RequestedQuantity": "1"}]}})
    assert reply.status_code == 400
    error = reply.json()["error"]
    assert error["code"] == "V1/394" and error["message"]["value"] == "Sold-to party 999 does not exist"
    assert error["innererror"]["errordetails"][0]["propertyref"] == "SoldToParty"
    too_long = api.post(f"{BP}/A_BusinessPartner", headers={"x-csrf-token": token(api)},
                        json={"BusinessPartnerCategory": "2", "OrganizationBPName1": "x" * 41})
    assert too_long.status_code == 400 and "longer than 40" in too_long.json()["error"]["message"]["value"]


def test_etags_428_412_and_bump(api: TestClient) -> None:
    created = order(api, partner(api))
    url = f"{SO}/A_SalesOrder('{created['SalesOrder']}')"
    etag = api.get(url).headers["etag"]
    assert etag == created["__metadata"]["etag"] and etag.startswith("W/\"datetimeoffset'")
    csrf = token(api, SO)
    assert api.patch(url, headers={"x-csrf-token": csrf}, json={"DeliveryBlockReason": "01"}).status_code == 428
    assert api.patch(url, headers={"x-csrf-token": csrf, "If-Match": 'W/"stale"'},
                     json={"DeliveryBlockReason": "01"}).status_code == 412
    assert api.patch(url, headers={"x-csrf-token": csrf, "If-Match": etag},
                     json={"DeliveryBlockReason": "01"}).status_code == 204
    assert api.get(url).headers["etag"] != etag
    assert api.patch(url, headers={"x-csrf-token": csrf, "If-Match": etag},
                     json={"DeliveryBlockReason": "02"}).status_code == 412
    assert api.patch(url, headers={"x-csrf-token": csrf, "If-Match": "*"},
                     json={"DeliveryBlockReason": "02"}).status_code == 204


def _batch(ops: list[tuple[str, str, dict | None, dict]]) -> tuple[str, bytes]:
    parts = []
    for method, path, body, headers in ops:
        data = json.dumps(body).encode() if body is not None else b""
        head = "\r\n".join([f"{method} {path} HTTP/1.1", "Content-Type: application/json",
                            *(f"{k}: {v}" for k, v in headers.items())])
        parts.append(b"--cs\r\nContent-Type: application/http\r\n\r\n" + head.encode() + b"\r\n\r\n" + data + b"\r\n")
    payload = (b"--b\r\nContent-Type: multipart/mixed; boundary=cs\r\n\r\n" + b"".join(parts) + b"--cs--\r\n"
               + b"--b--\r\n")
    return "multipart/mixed; boundary=b", payload


def test_batch_changeset_is_atomic(api: TestClient) -> None:
    bp = partner(api)
    ctype, body = _batch([
        ("PATCH", f"A_BusinessPartner('{bp}')", {"OrganizationBPName1": "Renamed"}, {}),
        ("PATCH", "A_BusinessPartner('nope')", {"OrganizationBPName1": "Other"}, {})])
    reply = api.post(f"{BP}/$batch", headers={"x-csrf-token": token(api), "content-type": ctype}, content=body)
    assert reply.status_code == 202 and reply.headers["content-type"].startswith("multipart/mixed; boundary=")
    assert b"HTTP/1.1 404" in reply.content
    assert api.get(f"{BP}/A_BusinessPartner('{bp}')").json()["d"]["OrganizationBPName1"] == "Acme"  # rolled back
    ctype, body = _batch([("PATCH", f"A_BusinessPartner('{bp}')", {"OrganizationBPName1": "Renamed"}, {})])
    reply = api.post(f"{BP}/$batch", headers={"x-csrf-token": token(api), "content-type": ctype}, content=body)
    assert b"HTTP/1.1 204" in reply.content
    assert api.get(f"{BP}/A_BusinessPartner('{bp}')").json()["d"]["BusinessPartnerFullName"] == "Renamed"


def test_query_options_and_server_paging(api: TestClient) -> None:
    names = ["Alpha", "Bravo", "Charlie", "Delta", "Echo"]
    for name in names:
        partner(api, name)
    reply = api.get(f"{BP}/A_BusinessPartner", params={
        "$inlinecount": "allpages", "$orderby": "OrganizationBPName1 desc",
        "$select": "BusinessPartner,OrganizationBPName1"}).json()["d"]
    assert reply["__count"] == "5" and len(reply["results"]) == 2  # the server's page size
    assert [r["OrganizationBPName1"] for r in reply["results"]] == ["Echo", "Delta"]
    assert set(reply["results"][0]) == {"__metadata", "BusinessPartner", "OrganizationBPName1"}
    seen = [r["OrganizationBPName1"] for r in reply["results"]]
    next_url = reply["__next"]
    while next_url:
        page = api.get(httpx.URL(next_url).raw_path.decode()).json()["d"]
        seen += [r["OrganizationBPName1"] for r in page["results"]]
        next_url = page.get("__next")
    assert seen == sorted(names, reverse=True)
    top = api.get(f"{BP}/A_BusinessPartner", params={"$top": "3", "$skip": "1", "$orderby": "OrganizationBPName1"})
    first = top.json()["d"]
    assert [r["OrganizationBPName1"] for r in first["results"]] == ["Bravo", "Charlie"] and "__next" in first
    filtered = api.get(f"{BP}/A_BusinessPartner", params={
        "$filter": "(OrganizationBPName1 eq 'Alpha' or startswith(OrganizationBPName1,'Ec')) "
                   "and BusinessPartnerCategory ne '1'"})
    assert sorted(r["OrganizationBPName1"] for r in filtered.json()["d"]["results"]) == ["Alpha", "Echo"]
    bad = api.get(f"{BP}/A_BusinessPartner", params={"$filter": "Nope eq 1"})
    assert bad.status_code == 400 and "Nope" in bad.json()["error"]["message"]["value"]
    deferred = api.get(f"{BP}/A_BusinessPartner", params={"$top": "1"}).json()["d"]["results"][0]
    assert "__deferred" in deferred["to_BusinessPartnerRole"]


def test_document_chain_and_statuses(api: TestClient) -> None:
    so = order(api, partner(api), qty="4", price="25")
    number = so["SalesOrder"]
    assert (so["TotalNetAmount"], so["OverallTotalDeliveryStatus"]) == ("100.00", "A")
    assert api.post(f"/_sim/sales-orders/{number}/bill").status_code == 400  # nothing delivered yet
    delivery = api.post(f"/_sim/sales-orders/{number}/deliver", json={"goods_issue": False}).json()["key"]
    header = api.get(f"{DLV}/A_OutbDeliveryHeader('{delivery}')", params={"$expand": "to_DeliveryDocumentItem"})
    d = header.json()["d"]
    assert (d["OverallGoodsMovementStatus"], d["__metadata"]["etag"]) == ("A", "W/\"'0001'\"")
    assert [(i["DeliveryDocumentItem"], i["ReferenceSDDocument"], i["ReferenceSDDocumentItem"])
            for i in d["to_DeliveryDocumentItem"]["results"]] == [("000010", number, "10")]
    assert api.post(f"/_sim/deliveries/{delivery}/goods-issue").status_code == 200
    d = api.get(f"{DLV}/A_OutbDeliveryHeader('{delivery}')").json()["d"]
    assert (d["OverallGoodsMovementStatus"], d["DeliveryVersion"]) == ("C", "0002")
    assert d["ActualGoodsMovementDate"].startswith("/Date(")
    bill = api.post(f"/_sim/sales-orders/{number}/bill").json()["key"]
    b = api.get(f"{BILL}/A_BillingDocument('{bill}')", params={"$expand": "to_Item"}).json()["d"]
    assert (b["TotalNetAmount"], b["TaxAmount"], b["TotalGrossAmount"]) == ("100.00", "13.00", "113.00")
    assert (b["to_Item"]["results"][0]["SalesDocument"], b["to_Item"]["results"][0]["ReferenceSDDocument"]) == (
        number, delivery)
    o = api.get(f"{SO}/A_SalesOrder('{number}')").json()["d"]
    assert (o["OverallSDProcessStatus"], o["OverallTotalDeliveryStatus"], o["OverallOrdReltdBillgStatus"]) == (
        "C", "C", "C")
    assert api.post(f"{BILL}/A_BillingDocument", headers={"x-csrf-token": token(api, BILL)}, json={}).status_code == 405


def test_unavailability_and_validation_faults(api: TestClient) -> None:
    api.post("/_sim/faults", json={"unavailable_requests": 2, "reject_names": ["Bad Co"]})
    assert api.get(f"{BP}/A_BusinessPartner").status_code == 503
    assert api.get(f"{BP}/A_BusinessPartner").status_code == 503
    assert api.get(f"{BP}/A_BusinessPartner").status_code == 200
    refused = api.post(f"{BP}/A_BusinessPartner", headers={"x-csrf-token": token(api)},
                       json={"BusinessPartnerCategory": "2", "OrganizationBPName1": "Bad Co"})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "R11/124"
    api.delete("/_sim/faults")
    assert partner(api, "Bad Co")


def test_metadata_is_served_for_every_service(api: TestClient) -> None:
    for service in SERVICES.values():
        reply = api.get(f"/sap/opu/odata/sap/{service.path}/$metadata")
        assert reply.status_code == 200 and reply.headers["content-type"].startswith("application/xml")
        assert f'Namespace="{service.namespace}"' in reply.text


def test_filter_parser_edge_cases() -> None:
    es = SERVICES["API_SALES_ORDER_SRV"].sets["A_SalesOrder"]
    row = {"SalesOrder": "1", "PurchaseOrderByCustomer": "O'Neil", "LastChangeDateTime":
           dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)}
    assert parse_filter(es, "PurchaseOrderByCustomer eq 'O''Neil'")(row)
    assert parse_filter(es, "LastChangeDateTime ge datetimeoffset'2026-01-02T03:04:05.0000000Z'")(row)
    assert not parse_filter(es, "LastChangeDateTime gt datetimeoffset'2026-01-02T03:04:05Z'")(row)
    assert parse_filter(es, "not (SalesOrder eq '2')")(row)
    assert parse_filter(es, "substringof('Nei',PurchaseOrderByCustomer)")(row)
