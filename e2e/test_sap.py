"""R-SAP-01 end to end in the started suite, against the SAP simulator: a customer created
through REST becomes a business partner in SAP; an order placed through REST (against a signed
contract) becomes a sales order whose sold-to party is that business partner; SAP confirms,
delivers and bills it (the simulator's commands), and the integration publishes
SalesOrderCreated, OutboundDeliveryChanged and BillingDocumentChanged with the CRM's ids; the
CRM shows the delivery and the invoice through REST (orders and billing consume those events);
the operator sees the records as synced."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import httpx
import nats

from crm.sap.v1 import events_pb2 as sap_ev
from crm_devstack import Suite
from crm_sap.domain.model import business_partner_reference, sales_order_reference
from crmkit.events.envelope import subject_of

from .test_orders import _signed_contract

TODAY = dt.date.today()
ODATA = "/sap/opu/odata/sap"
SAP_AUTH = ("CRM_INTEGRATION", "simulator-dev-2026")


async def test_customer_and_order_reach_sap_and_documents_come_back(suite: Suite, sign_in, eventually) -> None:
    rep, operator = sign_in("li.wei"), sign_in("ma.lin")
    sim = next(h.url for h in suite.config.http_services if h.name == "sap-simulator")
    events: dict[str, list[Any]] = {"created": [], "delivery": [], "billing": []}
    nc = await nats.connect(suite.nats_url)
    for key, cls in (("created", sap_ev.SalesOrderCreated), ("delivery", sap_ev.OutboundDeliveryChanged),
                     ("billing", sap_ev.BillingDocumentChanged)):
        async def collect(msg: nats.aio.msg.Msg, key: str = key, cls: Any = cls) -> None:
            events[key].append(cls.FromString(msg.data))
        await nc.subscribe(subject_of(cls), cb=collect)
    await nc.flush()  # subscribed at the server before the requests below

    async with httpx.AsyncClient(base_url=suite.gateway_url, timeout=30) as api, \
            httpx.AsyncClient(base_url=sim + ODATA, auth=SAP_AUTH, timeout=10,
                              params={"$format": "json", "sap-client": "100"}) as sap, \
            httpx.AsyncClient(base_url=sim, timeout=10) as commands:
        name = f"Ningbo Pump Works {uuid.uuid4().hex[:6]}"
        created = await api.post("/api/v1/customers", headers=rep.headers, json={"name": name, "addresses": [
            {"kind": "registered", "line": "9 Harbour Road", "city": "Ningbo", "province": "Zhejiang",
             "country": "CN", "postal_code": "315000"}]})
        assert created.status_code == 201, created.text
        customer_id = created.json()["id"]

        async def partner() -> dict | None:
            reply = await sap.get("/API_BUSINESS_PARTNER/A_BusinessPartner", params={
                "$filter": f"BusinessPartnerIDByExtSystem eq '{business_partner_reference(customer_id)}'",
                "$expand": "to_BusinessPartnerAddress,to_BusinessPartnerRole"})
            rows = reply.json()["d"]["results"]
            return rows[0] if rows else None
        bp = await eventually(partner, what="the business partner in SAP")
        assert (bp["OrganizationBPName1"], bp["Customer"]) == (name, bp["BusinessPartner"])
        assert bp["to_BusinessPartnerAddress"]["results"][0]["CityName"] == "Ningbo"
        assert {r["BusinessPartnerRole"] for r in bp["to_BusinessPartnerRole"]["results"]} == {"FLCU00", "FLCU01"}

        contract = await _signed_contract(api, rep, sign_in, customer_id)
        valves, _ = (li["line_id"] for li in contract["lines"])

        async def placed() -> httpx.Response | None:
            reply = await api.post("/api/v1/orders", headers=rep.headers | {"Idempotency-Key": contract["id"]},
                                   json={"contract_id": contract["id"], "customer_reference": "PO-NB-7",
                                         "requested_delivery_date": (TODAY + dt.timedelta(days=20)).isoformat(),
                                         "lines": [{"contract_line_id": valves, "quantity": "10"}]})
            return reply if reply.status_code != 404 else None
        reply = await eventually(placed, what="the signed contract copied into orders")
        assert reply.status_code == 201, reply.text
        order = reply.json()

        async def sales_order() -> dict | None:
            reply = await sap.get("/API_SALES_ORDER_SRV/A_SalesOrder", params={
                "$filter": f"PurchaseOrderByCustomer eq '{sales_order_reference(order['id'])}'", "$expand": "to_Item"})
            rows = reply.json()["d"]["results"]
            return rows[0] if rows else None
        so = await eventually(sales_order, timeout=30, what="the sales order in SAP")
        assert so["SoldToParty"] == bp["BusinessPartner"]
        assert [(i["SalesOrderItem"], i["RequestedQuantity"]) for i in so["to_Item"]["results"]] == [("10", "10")]
        created_events = await eventually(
            lambda: _matching(events["created"], order["id"]), what="SalesOrderCreated")
        assert created_events[0].sales_order == so["SalesOrder"]
        assert dict(created_events[0].item_numbers) == {order["lines"][0]["id"]: "10"}

        # SAP delivers (goods issue) and bills the order.
        delivered = await commands.post(f"/_sim/sales-orders/{so['SalesOrder']}/deliver",
                               json={"bill_of_lading": "SF777", "means_of_transport": "SF Express"})
        assert delivered.status_code == 200, delivered.text
        [delivery] = await eventually(lambda: _matching(events["delivery"], order["id"]), timeout=30,
                                      what="OutboundDeliveryChanged")
        assert (delivery.delivery_document, delivery.goods_movement_status, delivery.tracking_number) == (
            delivered.json()["key"], "C", "SF777")
        assert [(i.order_line_id, i.quantity) for i in delivery.items] == [(order["lines"][0]["id"], "10")]

        async def crm_delivery() -> list[dict]:
            reply = await api.get("/api/v1/deliveries", headers=rep.headers, params={"order_id": order["id"]})
            return [d for d in reply.json()["items"] if d["sap_delivery"] == delivery.delivery_document]
        [shown] = await eventually(crm_delivery, timeout=30, what="the SAP delivery in the CRM")
        assert shown["tracking_number"] == "SF777"

        billed = await commands.post(f"/_sim/sales-orders/{so['SalesOrder']}/bill")
        assert billed.status_code == 200, billed.text
        [invoice] = await eventually(lambda: _matching(events["billing"], order["id"]), timeout=30,
                                     what="BillingDocumentChanged")
        net = order["amount"]["amount"]
        assert (invoice.billing_document, invoice.customer_id, invoice.net_amount.amount) == (
            billed.json()["key"], customer_id, net)

        finance = sign_in("liu.yang")

        async def crm_invoice() -> list[dict]:
            reply = await api.get("/api/v1/invoices", headers=finance.headers, params={"customer_id": customer_id})
            return [i for i in reply.json().get("items", []) if i["sap_billing_document"] == invoice.billing_document]
        await eventually(crm_invoice, timeout=30, what="the SAP invoice in the CRM")

        records = await api.get("/api/v1/integrations/sap/records", headers=operator.headers,
                                params={"crm_id": order["id"]})
        assert records.status_code == 200, records.text
        [record] = records.json()["items"]
        assert (record["kind"], record["state"], record["sap_number"], record["customer_id"]) == (
            "sales_order", "synced", so["SalesOrder"], customer_id)
    await nc.close()


async def _matching(found: list[Any], order_id: str) -> list[Any]:
    return [e for e in found if e.order_id == order_id]
