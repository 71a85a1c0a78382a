"""The simulator: API_BUSINESS_PARTNER, API_SALES_ORDER_SRV, API_OUTBOUND_DELIVERY_SRV;v=0002 and
API_BILLING_DOCUMENT_SRV at their S/4HANA paths, OData V2 JSON, CSRF, ETags, `$batch`, SAP error
bodies, server-side paging, and `/_sim/*` commands to move documents along and inject faults.

State lives in memory: this is a test double of an external system. Every request is handled
under one lock, so a changeset is atomic and numbers are never handed out twice. Given a state
file (`make dev` and e2e: in the suite's data dir), every change is also written there before it
is answered, and a restart continues from it: documents, number ranges and the change log
(crm_sap_simulator.store).
"""

from __future__ import annotations

import asyncio
import base64
import copy
import datetime as dt
import json
import secrets
import time
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

from fastapi import FastAPI, Request, Response

from crm_sap_simulator import store
from crm_sap_simulator.schema import SERVICES, EntitySet, Service, edmx
from crm_sap_simulator.wire import FilterError, etag_of, from_wire, key_predicate, parse_filter, parse_key, to_wire

ROOT = "/sap/opu/odata/sap"
ZERO = Decimal("0")
# Children are joined to their parent on the parent's keys, except where SAP's association says otherwise.
JOINS: dict[tuple[str, str], dict[str, str]] = {("A_BusinessPartner", "to_Customer"): {"Customer": "Customer"}}


class ODataError(Exception):
    def __init__(self, status: int, code: str, message: str, *, details: list[dict[str, str]] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.details = details or []
        self.headers = headers or {}


@dataclass
class Faults:
    latency_ms: int = 0
    unavailable_requests: int = 0
    unavailable_until: float = 0.0
    stale_etags: int = 0
    reject_names: set[str] = field(default_factory=set)
    error_status: int = 503


@dataclass
class Reply:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Simulator:
    def __init__(self, *, user: str = "CRM_INTEGRATION", password: str = "simulator",  # noqa: S107 - a test double
                 client: str = "100",
                 page_size: int = 100, tax_rate: Decimal = Decimal("0.13"),
                 state_file: Path | None = None) -> None:
        self.user, self.password, self.client = user, password, client
        self.page_size = page_size
        self.tax_rate = tax_rate
        self.state_file = state_file
        self.lock = asyncio.Lock()
        self.reset()
        if state_file is not None and (state := store.load(state_file)) is not None:
            self._restore(state)

    def reset(self) -> None:
        self.data: dict[str, dict[tuple[str, ...], dict[str, Any]]] = {
            es.name: {} for svc in SERVICES.values() for es in svc.sets.values()}
        self.numbers = {"bp": 10100000, "so": 0, "dlv": 80000000 - 1, "bill": 90000000 - 1}
        self.sessions: dict[str, str] = {}  # session cookie -> CSRF token
        self.faults = Faults()
        self.log: list[dict[str, Any]] = []  # every successful write, for tests and operators
        self._clock = _now()

    # the state file ------------------------------------------------------------------------------
    def commit(self) -> None:
        """Writes the state to the state file (if any); called under the lock after every change.
        Sessions and faults are not kept: a restarted SAP has forgotten both too."""
        if self.state_file is not None:
            store.save(self.state_file, {
                "data": {name: list(rows.values()) for name, rows in self.data.items()},
                "numbers": self.numbers, "log": self.log, "clock": self._clock})

    def _restore(self, state: dict[str, Any]) -> None:
        for name, rows in state["data"].items():
            es = self.set_of(name)
            self.data[name] = {tuple(str(row[k]) for k in es.keys): row for row in rows}
        self.numbers.update(state["numbers"])
        self.log = state["log"]
        self._clock = state["clock"]

    # clock: LastChangeDateTime must strictly increase even when two writes share a microsecond
    def tick(self) -> dt.datetime:
        now = _now()
        self._clock = now if now > self._clock else self._clock + dt.timedelta(microseconds=1)
        return self._clock

    def next_number(self, kind: str) -> str:
        self.numbers[kind] += 1
        return str(self.numbers[kind])

    # storage helpers ------------------------------------------------------------------------
    def set_of(self, name: str) -> EntitySet:
        for svc in SERVICES.values():
            if name in svc.sets:
                return svc.sets[name]
        raise KeyError(name)

    def put(self, es: EntitySet, row: dict[str, Any]) -> dict[str, Any]:
        full = {p.name: row.get(p.name, "" if p.type == "Edm.String" else None) for p in es.props}
        self.data[es.name][tuple(str(full[k]) for k in es.keys)] = full
        return full

    def children(self, es: EntitySet, row: dict[str, Any], nav: str) -> list[dict[str, Any]]:
        target = self.set_of(es.nav(nav).target)
        join = JOINS.get((es.name, nav), {k: k for k in es.keys})
        return [r for r in self.data[target.name].values() if all(r.get(c) == row.get(p) for c, p in join.items())]

    # the document chain -----------------------------------------------------------------------
    def order(self, number: str) -> dict[str, Any]:
        row = self.data["A_SalesOrder"].get((number,))
        if row is None:
            raise ODataError(404, "V1/302", f"Sales document {number} is not in the database or has been archived")
        return row

    def deliver(self, number: str, *, goods_issue: bool = True, bill_of_lading: str = "",
                means_of_transport: str = "") -> dict[str, Any]:
        order = self.order(number)
        items = [i for i in self.children(SALES_ORDER_SET, order, "to_Item")
                 if not i["SalesDocumentRjcnReason"] and i["DeliveryStatus"] != "C"]
        if not items:
            raise ODataError(400, "VL/008", f"Sales document {number} has no items to deliver")
        now = self.tick()
        dlv = self.next_number("dlv")
        header = self.put(self.set_of("A_OutbDeliveryHeader"), {
            "DeliveryDocument": dlv, "DeliveryDocumentType": "LF", "SoldToParty": order["SoldToParty"],
            "ShipToParty": order["SoldToParty"], "ShippingPoint": "1010",
            "SalesOrganization": order["SalesOrganization"],
            "DeliveryDate": order["RequestedDeliveryDate"] or now.replace(hour=0, minute=0, second=0, microsecond=0),
            "PlannedGoodsIssueDate": now.replace(hour=0, minute=0, second=0, microsecond=0),
            "OverallGoodsMovementStatus": "A", "OverallPickingStatus": "C", "OverallDelivReltdBillgStatus": "A",
            "OverallSDProcessStatus": "A", "HeaderGrossWeight": Decimal("0.000"), "HeaderWeightUnit": "KG",
            "BillOfLading": bill_of_lading, "MeansOfTransport": means_of_transport,
            "CreationDate": now.replace(hour=0, minute=0, second=0, microsecond=0), "LastChangeDate": None,
            "DeliveryVersion": "0001", "ActualGoodsMovementDate": None, "ActualGoodsMovementTime": None})
        for n, item in enumerate(items, start=1):
            self.put(self.set_of("A_OutbDeliveryItem"), {
                "DeliveryDocument": dlv, "DeliveryDocumentItem": f"{n * 10:06d}", "Material": item["Material"],
                "DeliveryDocumentItemText": item["SalesOrderItemText"],
                "ActualDeliveryQuantity": item["RequestedQuantity"],
                "DeliveryQuantityUnit": item["RequestedQuantityUnit"],
                "Plant": "1010", "ReferenceSDDocument": number, "ReferenceSDDocumentItem": item["SalesOrderItem"],
                "GoodsMovementStatus": "A", "PickingStatus": "C", "DeliveryVersion": "0001"})
            item["DeliveryStatus"] = "C"
        self._order_status(order, now)
        self.log.append({"op": "deliver", "set": "A_OutbDeliveryHeader", "key": dlv, "order": number})
        if goods_issue:
            self.goods_issue(dlv)
        return header

    def goods_issue(self, delivery: str) -> dict[str, Any]:
        header = self.data["A_OutbDeliveryHeader"].get((delivery,))
        if header is None:
            raise ODataError(404, "VL/001", f"Delivery {delivery} does not exist")
        now = self.tick()
        header.update(OverallGoodsMovementStatus="C", OverallSDProcessStatus="B",
                      ActualGoodsMovementDate=now.replace(hour=0, minute=0, second=0, microsecond=0),
                      ActualGoodsMovementTime=dt.timedelta(hours=now.hour, minutes=now.minute, seconds=now.second),
                      LastChangeDate=now.replace(hour=0, minute=0, second=0, microsecond=0))
        self._bump_delivery(header)
        for item in self.children(self.set_of("A_OutbDeliveryHeader"), header, "to_DeliveryDocumentItem"):
            item["GoodsMovementStatus"] = "C"
        return header

    def bill(self, number: str) -> dict[str, Any]:
        order = self.order(number)
        deliveries = [h for h in self.data["A_OutbDeliveryHeader"].values()
                      if h["OverallDelivReltdBillgStatus"] != "C" and h["OverallGoodsMovementStatus"] == "C"
                      and any(i["ReferenceSDDocument"] == number for i in self.children(
                          self.set_of("A_OutbDeliveryHeader"), h, "to_DeliveryDocumentItem"))]
        if not deliveries:
            raise ODataError(400, "VF/016", f"Sales document {number} has no goods-issued delivery to bill")
        now = self.tick()
        bill = self.next_number("bill")
        order_items = {i["SalesOrderItem"]: i for i in self.children(SALES_ORDER_SET, order, "to_Item")}
        net_total = tax_total = ZERO
        n = 0
        for header in deliveries:
            for d_item in self.children(self.set_of("A_OutbDeliveryHeader"), header, "to_DeliveryDocumentItem"):
                o_item = order_items[d_item["ReferenceSDDocumentItem"]]
                n += 1
                qty = d_item["ActualDeliveryQuantity"] or ZERO
                unit_net = (o_item["NetAmount"] / o_item["RequestedQuantity"]) if o_item["RequestedQuantity"] else ZERO
                net = (unit_net * qty).quantize(Decimal("0.01"))
                tax = (net * self.tax_rate).quantize(Decimal("0.01"))
                net_total += net
                tax_total += tax
                self.put(self.set_of("A_BillingDocumentItem"), {
                    "BillingDocument": bill, "BillingDocumentItem": str(n * 10), "Material": d_item["Material"],
                    "BillingDocumentItemText": d_item["DeliveryDocumentItemText"], "BillingQuantity": qty,
                    "BillingQuantityUnit": d_item["DeliveryQuantityUnit"], "NetAmount": net, "TaxAmount": tax,
                    "GrossAmount": net + tax, "TransactionCurrency": order["TransactionCurrency"],
                    "ReferenceSDDocument": header["DeliveryDocument"],
                    "ReferenceSDDocumentItem": d_item["DeliveryDocumentItem"],
                    "SalesDocument": number, "SalesDocumentItem": o_item["SalesOrderItem"]})
                o_item["OrderRelatedBillingStatus"] = "C"
                o_item["SDProcessStatus"] = "C"
            header["OverallDelivReltdBillgStatus"] = "C"
            header["OverallSDProcessStatus"] = "C"
            header["LastChangeDate"] = now.replace(hour=0, minute=0, second=0, microsecond=0)
            self._bump_delivery(header)
        today = now.replace(hour=0, minute=0, second=0, microsecond=0)
        row = self.put(self.set_of("A_BillingDocument"), {
            "BillingDocument": bill, "BillingDocumentType": "F2", "SDDocumentCategory": "M",
            "BillingDocumentCategory": "L", "BillingDocumentDate": today, "CreationDate": today,
            "LastChangeDateTime": now, "SalesOrganization": order["SalesOrganization"],
            "DistributionChannel": order["DistributionChannel"], "Division": order["OrganizationDivision"],
            "SoldToParty": order["SoldToParty"], "PayerParty": order["SoldToParty"], "TotalNetAmount": net_total,
            "TaxAmount": tax_total, "TotalGrossAmount": net_total + tax_total,
            "TransactionCurrency": order["TransactionCurrency"], "BillingDocumentIsCancelled": False,
            "CompanyCode": "1010", "FiscalYear": str(now.year), "AccountingDocument": bill,
            "DocumentReferenceID": bill, "OverallBillingStatus": "C", "AccountingPostingStatus": "C"})
        self._order_status(order, now)
        self.log.append({"op": "bill", "set": "A_BillingDocument", "key": bill, "order": number})
        return row

    def cancel_billing(self, bill: str) -> dict[str, Any]:
        row = self.data["A_BillingDocument"].get((bill,))
        if row is None or row["BillingDocumentIsCancelled"]:
            raise ODataError(400, "VF/045", f"Billing document {bill} does not exist or is already cancelled")
        now = self.tick()
        row.update(BillingDocumentIsCancelled=True, LastChangeDateTime=now)
        cancel = self.next_number("bill")
        self.put(self.set_of("A_BillingDocument"), row | {
            "BillingDocument": cancel, "BillingDocumentType": "S1", "SDDocumentCategory": "N",
            "CancelledBillingDocument": bill, "BillingDocumentIsCancelled": False, "LastChangeDateTime": now,
            "AccountingDocument": cancel, "DocumentReferenceID": cancel})
        header = self.set_of("A_BillingDocument")
        for item in self.children(header, {"BillingDocument": bill}, "to_Item"):
            self.put(self.set_of("A_BillingDocumentItem"), item | {"BillingDocument": cancel})
        return row

    def _bump_delivery(self, header: dict[str, Any]) -> None:
        header["DeliveryVersion"] = f"{int(header['DeliveryVersion']) + 1:04d}"
        for item in self.children(self.set_of("A_OutbDeliveryHeader"), header, "to_DeliveryDocumentItem"):
            item["DeliveryVersion"] = header["DeliveryVersion"]

    def _order_status(self, order: dict[str, Any], now: dt.datetime) -> None:
        items = [i for i in self.children(SALES_ORDER_SET, order, "to_Item") if not i["SalesDocumentRjcnReason"]]

        def overall(values: list[str]) -> str:
            if not values or all(v == "C" for v in values):
                return "C"
            return "A" if all(v in ("A", "") for v in values) else "B"

        order["OverallTotalDeliveryStatus"] = overall([i["DeliveryStatus"] for i in items])
        order["OverallDeliveryStatus"] = order["OverallTotalDeliveryStatus"]
        order["OverallOrdReltdBillgStatus"] = overall([i["OrderRelatedBillingStatus"] for i in items])
        done = order["OverallTotalDeliveryStatus"] == "C" and order["OverallOrdReltdBillgStatus"] == "C"
        order["OverallSDProcessStatus"] = "C" if done else (
            "A" if order["OverallTotalDeliveryStatus"] == "A" else "B")
        order["TotalNetAmount"] = sum((i["NetAmount"] or ZERO for i in items), ZERO)
        order["LastChangeDateTime"] = now


SALES_ORDER_SET = SERVICES["API_SALES_ORDER_SRV"].sets["A_SalesOrder"]


# --------------------------------------------------------------------------------------------
def error_reply(exc: ODataError, service: Service | None = None) -> Reply:
    body = {"error": {
        "code": exc.code,
        "message": {"lang": "en", "value": exc.message},
        "innererror": {
            "application": {"component_id": "", "service_namespace": "/SAP/",
                            "service_id": service.name if service else "", "service_version": "0001"},
            "transactionid": uuid.uuid4().hex.upper(),
            "timestamp": _now().strftime("%Y%m%d%H%M%S.%f"),
            "Error_Resolution": {"SAP_Transaction": "For backend administrators: use ADT feed reader "
                                 "\"SAP Gateway Error Log\" or run transaction /IWFND/ERROR_LOG on SAP Gateway hub "
                                 "system and search for entries with the timestamp above for more details",
                                 "SAP_Note": "See SAP Note 1797736 for error analysis "
                                 "(https://service.sap.com/sap/support/notes/1797736)"},
            "errordetails": exc.details or [{"code": exc.code, "message": exc.message, "propertyref": "",
                                             "severity": "error", "target": "", "transition": False}],
        }}}
    return Reply(exc.status, json.dumps(body).encode(), {"content-type": "application/json"} | exc.headers)


class Handler:
    """One OData request against one service, inside the simulator's lock."""

    def __init__(self, sim: Simulator, service: Service, base_url: str) -> None:
        self.sim = sim
        self.service = service
        self.base = f"{base_url}{ROOT}/{service.path}"

    def dispatch(self, method: str, resource: str, query: dict[str, str], headers: dict[str, str],
                 body: bytes) -> Reply:
        try:
            return self._dispatch(method, resource, query, headers, body)
        except ODataError as exc:
            return error_reply(exc, self.service)

    def _dispatch(self, method: str, resource: str, query: dict[str, str], headers: dict[str, str],
                  body: bytes) -> Reply:
        resource = resource.strip("/")
        if resource == "$metadata":
            return Reply(200, edmx(self.service).encode(), {"content-type": "application/xml"})
        if resource == "":
            doc = {"d": {"EntitySets": list(self.service.sets)}}
            return Reply(200, json.dumps(doc).encode(), {"content-type": "application/json"})
        es, key, nav = self._resolve(resource)
        if method in ("GET", "HEAD"):
            return self._read(es, key, nav, query)
        payload = self._json(body) if method in ("POST", "PATCH", "MERGE", "PUT") else {}
        if method == "POST" and key is None:
            return self._create(es, payload)
        if method in ("PATCH", "MERGE", "PUT") and key is not None and nav is None:
            return self._update(es, key, payload, headers, replace=method == "PUT")
        raise ODataError(405, "/IWBEP/CM_MGW_RT/021", f"Method {method} is not allowed for {resource}")

    def _json(self, body: bytes) -> dict[str, Any]:
        try:
            value = json.loads(body or b"{}")
        except ValueError as exc:
            raise ODataError(400, "/IWBEP/CM_MGW_RT/004", "Malformed syntax in request body") from exc
        if not isinstance(value, dict):
            raise ODataError(400, "/IWBEP/CM_MGW_RT/004", "Malformed syntax in request body")
        return value

    def _resolve(self, resource: str) -> tuple[EntitySet, tuple[str, ...] | None, str | None]:
        head, _, nav = resource.partition("/")
        name, paren, rest = head.partition("(")
        es = self.service.sets.get(name)
        if es is None:
            raise ODataError(404, "/IWBEP/CM_MGW_RT/020", f"Resource not found for segment '{name}'")
        key = None
        if paren:
            try:
                key = parse_key(es, "(" + rest)
            except ValueError as exc:
                raise ODataError(400, "/IWBEP/CM_MGW_RT/003", str(exc)) from exc
        if nav:
            try:
                es.nav(nav)
            except KeyError as exc:
                raise ODataError(404, "/IWBEP/CM_MGW_RT/020", f"Resource not found for segment '{nav}'") from exc
        return es, key, nav or None

    def _row(self, es: EntitySet, key: tuple[str, ...]) -> dict[str, Any]:
        row = self.sim.data[es.name].get(key)
        if row is None:
            raise ODataError(404, "/IWBEP/CM_MGW_RT/020", f"Resource not found for segment '{es.name}'")
        return row

    # reads ---------------------------------------------------------------------------------------
    def entity_json(self, es: EntitySet, row: dict[str, Any], expand: list[list[str]],
                    select: list[str] | None = None) -> dict[str, Any]:
        uri = f"{self.base}/{es.name}{key_predicate(es, row)}"
        meta: dict[str, Any] = {"id": uri, "uri": uri, "type": f"{self.service.namespace}.{es.type_name}"}
        if (etag := etag_of(es, row)) is not None:
            meta["etag"] = etag
        out: dict[str, Any] = {"__metadata": meta}
        wanted = None if not select or "*" in select else {s for s in select if "/" not in s}
        for p in es.props:
            if wanted is None or p.name in wanted:
                out[p.name] = to_wire(p, row.get(p.name))
        for nav in es.navs:
            sub = [path[1:] for path in expand if path and path[0] == nav.name]
            if sub:
                target = self.sim.set_of(nav.target)
                rows = self.sim.children(es, row, nav.name)
                if nav.many:
                    out[nav.name] = {"results": [self.entity_json(target, r, [p for p in sub if p]) for r in rows]}
                else:
                    out[nav.name] = self.entity_json(target, rows[0], [p for p in sub if p]) if rows else None
            elif wanted is None or nav.name in wanted:
                out[nav.name] = {"__deferred": {"uri": f"{uri}/{nav.name}"}}
        return out

    def _read(self, es: EntitySet, key: tuple[str, ...] | None, nav: str | None, query: dict[str, str]) -> Reply:
        expand = [e.strip().split("/") for e in query.get("$expand", "").split(",") if e.strip()]
        select = [s.strip() for s in query.get("$select", "").split(",") if s.strip()] or None
        if key is not None and nav is None:
            row = self._row(es, key)
            body = {"d": self.entity_json(es, row, expand, select)}
            headers = {"content-type": "application/json"}
            if (etag := etag_of(es, row)) is not None:
                headers["etag"] = etag
            return Reply(200, json.dumps(body).encode(), headers)
        if key is not None and nav is not None:
            parent = self._row(es, key)
            target = self.sim.set_of(es.nav(nav).target)
            rows = self.sim.children(es, parent, nav)
            if not es.nav(nav).many:
                if not rows:
                    return Reply(204)
                return Reply(200, json.dumps({"d": self.entity_json(target, rows[0], expand, select)}).encode(),
                             {"content-type": "application/json"})
            es = target
        else:
            rows = list(self.sim.data[es.name].values())
        if "$filter" in query:
            try:
                predicate = parse_filter(es, query["$filter"])
            except (FilterError, KeyError, ValueError) as exc:
                raise ODataError(400, "/IWBEP/CM_MGW_RT/022", f"Invalid filter expression: '{exc}'") from exc
            rows = [r for r in rows if predicate(r)]
        rows = self._order(es, rows, query.get("$orderby", ""))
        total = len(rows)
        skip = self._int(query, "$skip")
        skiptoken = self._int(query, "$skiptoken")
        top = self._int(query, "$top", default=None)
        start = skip + skiptoken
        remaining = None if top is None else max(top - skiptoken, 0)
        limit = self.sim.page_size if remaining is None else min(remaining, self.sim.page_size)
        page = rows[start:start + limit]
        d: dict[str, Any] = {}
        if query.get("$inlinecount") == "allpages":
            d["__count"] = str(total)
        d["results"] = [self.entity_json(es, r, expand, select) for r in page]
        more = start + len(page) < total and (remaining is None or len(page) < remaining)
        if more:
            nxt = {k: v for k, v in query.items() if k != "$skiptoken"} | {"$skiptoken": str(skiptoken + len(page))}
            d["__next"] = f"{self.base}/{es.name}?{urlencode(nxt, quote_via=quote, safe=chr(36) + ',')}"
        return Reply(200, json.dumps({"d": d}).encode(), {"content-type": "application/json"})

    @staticmethod
    def _int(query: dict[str, str], name: str, default: int | None = 0) -> Any:
        if name not in query:
            return default
        try:
            value = int(query[name])
        except ValueError as exc:
            raise ODataError(400, "/IWBEP/CM_MGW_RT/023", f"Invalid system query option {name}") from exc
        if value < 0:
            raise ODataError(400, "/IWBEP/CM_MGW_RT/023", f"Invalid system query option {name}")
        return value

    @staticmethod
    def _order(es: EntitySet, rows: list[dict[str, Any]], orderby: str) -> list[dict[str, Any]]:
        clauses = [c.split() for c in orderby.split(",") if c.strip()] or [[k] for k in es.keys]
        for clause in reversed(clauses):
            name = clause[0]
            if name not in es.names:
                raise ODataError(400, "/IWBEP/CM_MGW_RT/022", f"Property {name} not found in {es.type_name}")
            desc = len(clause) > 1 and clause[1].lower() == "desc"
            rows = sorted(rows, key=lambda r, n=name: (r.get(n) is not None, r.get(n) or ""), reverse=desc)
        return rows

    # writes --------------------------------------------------------------------------------------
    def _typed(self, es: EntitySet, payload: dict[str, Any], *, creating: bool) -> dict[str, Any]:
        row: dict[str, Any] = {}
        for name, value in payload.items():
            if name == "__metadata" or name in {n.name for n in es.navs}:
                continue
            if name not in es.names:
                raise ODataError(400, "/IWBEP/CM_MGW_RT/010",
                                 f"Property '{name}' is invalid", details=[self._detail(name, "invalid")])
            prop = es.prop(name)
            allowed = prop.creatable if creating else prop.updatable
            if not allowed and name not in es.keys:
                continue  # SAP ignores read-only properties on write
            try:
                row[name] = from_wire(prop, value)
            except (ValueError, ArithmeticError) as exc:
                raise ODataError(400, "/IWBEP/CM_MGW_RT/011", str(exc),
                                 details=[self._detail(name, str(exc))]) from exc
        return row

    @staticmethod
    def _detail(prop: str, message: str, code: str = "/IWBEP/CM_MGW_RT/011") -> dict[str, Any]:
        return {"code": code, "message": message, "propertyref": prop, "severity": "error", "target": prop,
                "transition": False}

    def _create(self, es: EntitySet, payload: dict[str, Any]) -> Reply:
        if not es.creatable:
            raise ODataError(405, "/IWBEP/CM_MGW_RT/021", f"Entity set {es.name} is not creatable")
        if es.name == "A_BusinessPartner":
            row = self._create_business_partner(payload)
        elif es.name == "A_SalesOrder":
            row = self._create_sales_order(payload)
        else:
            raise ODataError(405, "/IWBEP/CM_MGW_RT/021", f"Create of {es.name} is not supported here")
        expand = [[n.name] + ([c.name] if c else []) for n in es.navs
                  for c in (self.sim.set_of(n.target).navs or (None,))]
        body = {"d": self.entity_json(es, row, expand)}
        uri = body["d"]["__metadata"]["uri"]
        headers = {"content-type": "application/json", "location": uri}
        if (etag := etag_of(es, row)) is not None:
            headers["etag"] = etag
        self.sim.log.append({"op": "create", "set": es.name, "key": row[es.keys[0]],
                             "ref": row.get("SearchTerm2") or row.get("PurchaseOrderByCustomer") or ""})
        return Reply(201, json.dumps(body).encode(), headers)

    def _create_business_partner(self, payload: dict[str, Any]) -> dict[str, Any]:
        es = self.service.sets["A_BusinessPartner"]
        row = self._typed(es, payload, creating=True)
        category = row.get("BusinessPartnerCategory", "")
        if category not in ("1", "2"):
            raise ODataError(400, "R11/401", f"Business partner category '{category}' is not defined",
                             details=[self._detail("BusinessPartnerCategory", "invalid category", "R11/401")])
        name = row.get("OrganizationBPName1", "")
        if category == "2" and not name:
            raise ODataError(400, "R11/201", "Enter a name for the organization",
                             details=[self._detail("OrganizationBPName1", "Enter a name", "R11/201")])
        if name in self.sim.faults.reject_names:
            raise ODataError(400, "R11/124", f"Name '{name}' is not allowed (duplicate check: similar business "
                             "partner exists)", details=[self._detail("OrganizationBPName1", "duplicate", "R11/124")])
        number = str(payload.get("BusinessPartner") or self.sim.next_number("bp"))
        if (number,) in self.sim.data[es.name]:
            raise ODataError(400, "R11/106", f"Business partner {number} already exists")
        now = self.sim.tick()
        roles = payload.get("to_BusinessPartnerRole", {}).get("results", [])
        is_customer = (any(r.get("BusinessPartnerRole", "").startswith("FLCU") for r in roles)
                       or bool(payload.get("to_Customer")))
        row.update(BusinessPartner=number, Customer=number if is_customer else "",
                   BusinessPartnerFullName=" ".join(x for x in (name, row.get("OrganizationBPName2", "")) if x),
                   CreationDate=now.replace(hour=0, minute=0, second=0, microsecond=0),
                   CreationTime=dt.timedelta(hours=now.hour, minutes=now.minute, seconds=now.second),
                   ETag=now.strftime("%Y%m%d%H%M%S"))
        row.setdefault("BusinessPartnerIsBlocked", False)
        stored = self.sim.put(es, row)
        for r in roles:
            role = self._typed(self.service.sets["A_BusinessPartnerRole"], r, creating=True)
            self.sim.put(self.service.sets["A_BusinessPartnerRole"], role | {"BusinessPartner": number})
        for n, a in enumerate(payload.get("to_BusinessPartnerAddress", {}).get("results", []), start=1):
            addr = self._typed(self.service.sets["A_BusinessPartnerAddress"], a, creating=True)
            self.sim.put(self.service.sets["A_BusinessPartnerAddress"],
                         addr | {"BusinessPartner": number, "AddressID": addr.get("AddressID") or str(n + 30000)})
        if is_customer:
            cust = payload.get("to_Customer") or {}
            c_row = self._typed(self.service.sets["A_Customer"], cust, creating=True)
            self.sim.put(self.service.sets["A_Customer"], c_row | {
                "Customer": number, "CustomerName": stored["BusinessPartnerFullName"],
                "CustomerFullName": stored["BusinessPartnerFullName"]})
            for sa in cust.get("to_CustomerSalesArea", {}).get("results", []):
                sa_row = self._typed(self.service.sets["A_CustomerSalesArea"], sa, creating=True)
                self.sim.put(self.service.sets["A_CustomerSalesArea"], sa_row | {"Customer": number})
        return stored

    def _create_sales_order(self, payload: dict[str, Any]) -> dict[str, Any]:
        es = self.service.sets["A_SalesOrder"]
        row = self._typed(es, payload, creating=True)
        sold_to = row.get("SoldToParty", "")
        if (sold_to,) not in self.sim.data["A_Customer"]:
            raise ODataError(400, "V1/394", f"Sold-to party {sold_to} does not exist",
                             details=[self._detail("SoldToParty", f"Sold-to party {sold_to} does not exist", "V1/394")])
        items = payload.get("to_Item", {}).get("results", [])
        if not items:
            raise ODataError(400, "V1/555", "Sales document contains no items")
        now = self.sim.tick()
        number = self.sim.next_number("so")
        row.update(SalesOrder=number, CreationDate=now.replace(hour=0, minute=0, second=0, microsecond=0),
                   LastChangeDateTime=now, OverallSDProcessStatus="A", OverallTotalDeliveryStatus="A",
                   OverallDeliveryStatus="A", OverallOrdReltdBillgStatus="A")
        row.setdefault("SalesOrderType", "OR")
        row.setdefault("SalesOrderDate", row["CreationDate"])
        currency = row.get("TransactionCurrency", "")
        item_set = self.service.sets["A_SalesOrderItem"]
        price_set = self.service.sets["A_SalesOrderItemPrElement"]
        total = ZERO
        for n, raw in enumerate(items, start=1):
            item = self._typed(item_set, raw, creating=True)
            item_no = str(int(item.get("SalesOrderItem") or n * 10))
            qty = item.get("RequestedQuantity")
            if qty is None or qty <= 0:
                raise ODataError(400, "V1/306", f"Item {item_no}: enter a quantity greater than zero",
                                 details=[self._detail("RequestedQuantity", "quantity", "V1/306")])
            price = ZERO
            for m, pr in enumerate(raw.get("to_PricingElement", {}).get("results", []), start=1):
                element = self._typed(price_set, pr, creating=True)
                self.sim.put(price_set, element | {"SalesOrder": number, "SalesOrderItem": item_no,
                                                   "PricingProcedureStep": f"{m * 10:03d}",
                                                   "PricingProcedureCounter": "001"})
                if element.get("ConditionType") in ("PPR0", "PR00"):
                    price = element.get("ConditionRateValue") or ZERO
            net = (price * qty).quantize(Decimal("0.01"))
            total += net
            self.sim.put(item_set, item | {"SalesOrder": number, "SalesOrderItem": item_no, "NetAmount": net,
                                           "TransactionCurrency": currency, "SDProcessStatus": "A",
                                           "DeliveryStatus": "A", "OrderRelatedBillingStatus": "A"})
        row["TotalNetAmount"] = total
        stored = self.sim.put(es, row)
        partner_set = self.service.sets["A_SalesOrderHeaderPartner"]
        for p in payload.get("to_Partner", {}).get("results", []):
            partner = self._typed(partner_set, p, creating=True)
            self.sim.put(partner_set, partner | {"SalesOrder": number})
        return stored

    def _update(self, es: EntitySet, key: tuple[str, ...], payload: dict[str, Any], headers: dict[str, str],
                *, replace: bool) -> Reply:
        if not es.updatable:
            raise ODataError(405, "/IWBEP/CM_MGW_RT/021", f"Entity set {es.name} is not updatable")
        row = self._row(es, key)
        current = etag_of(es, row)
        if current is not None:
            given = headers.get("if-match")
            if not given:
                raise ODataError(428, "/IWBEP/CM_MGW_RT/025", "Precondition required: send an If-Match header")
            if self.sim.faults.stale_etags > 0:
                self.sim.faults.stale_etags -= 1
                raise ODataError(412, "/IWBEP/CM_MGW_RT/022", "Precondition failed: the entity was changed")
            if given != "*" and given != current:
                raise ODataError(412, "/IWBEP/CM_MGW_RT/022", "Precondition failed: the entity was changed")
        changes = self._typed(es, payload, creating=False)
        for k in es.keys:
            if k in changes and changes.pop(k) != row[k]:
                raise ODataError(400, "/IWBEP/CM_MGW_RT/003", "Key properties cannot be changed")
        if es.name == "A_BusinessPartner" and changes.get("OrganizationBPName1") in self.sim.faults.reject_names:
            raise ODataError(400, "R11/124", f"Name '{changes['OrganizationBPName1']}' is not allowed",
                             details=[self._detail("OrganizationBPName1", "duplicate", "R11/124")])
        if replace:
            for p in es.props:
                if p.updatable and p.name not in es.keys and p.name not in changes:
                    changes[p.name] = "" if p.type == "Edm.String" else None
        row.update(changes)
        now = self.sim.tick()
        if es.name == "A_BusinessPartner":
            row["BusinessPartnerFullName"] = " ".join(x for x in (row["OrganizationBPName1"],
                                                                  row["OrganizationBPName2"]) if x)
            row["LastChangeDate"] = now.replace(hour=0, minute=0, second=0, microsecond=0)
            row["ETag"] = now.strftime("%Y%m%d%H%M%S")
            for c in self.sim.children(es, row, "to_Customer"):
                c["CustomerName"] = c["CustomerFullName"] = row["BusinessPartnerFullName"]
        elif es.name == "A_SalesOrder":
            row["LastChangeDateTime"] = now
        elif es.name == "A_SalesOrderItem":
            order = self.sim.order(row["SalesOrder"])
            self.sim._order_status(order, now)
            if all(i["SalesDocumentRjcnReason"] for i in self.sim.children(SALES_ORDER_SET, order, "to_Item")):
                order["OverallSDProcessStatus"] = "C"
        elif es.name == "A_OutbDeliveryHeader":
            self.sim._bump_delivery(row)
        self.sim.log.append({"op": "update", "set": es.name, "key": ",".join(key), "changes": sorted(changes)})
        return Reply(204)


# $batch ---------------------------------------------------------------------------------------
def _split_multipart(body: bytes, boundary: str) -> list[tuple[dict[str, str], bytes]]:
    delimiter = b"--" + boundary.encode()
    parts = []
    for chunk in body.split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break
        chunk = chunk.lstrip(b"\r\n")
        head, _, content = chunk.partition(b"\r\n\r\n")
        headers = {}
        for line in head.decode("latin-1").split("\r\n"):
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        parts.append((headers, content.removesuffix(b"\r\n")))
    return parts


def _boundary(content_type: str) -> str:
    for piece in content_type.split(";"):
        name, _, value = piece.strip().partition("=")
        if name.lower() == "boundary":
            return value.strip('"')
    raise ODataError(400, "/IWBEP/CM_MGW_RT/004", "Multipart body without boundary")


def _parse_http(content: bytes) -> tuple[str, str, dict[str, str], bytes]:
    head, _, body = content.partition(b"\r\n\r\n")
    lines = head.decode("utf-8").split("\r\n")
    method, target, _version = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return method, target, headers, body.rstrip(b"\r\n")


_REASONS = {200: "OK", 201: "Created", 204: "No Content", 400: "Bad Request", 404: "Not Found",
            405: "Method Not Allowed", 412: "Precondition Failed", 428: "Precondition Required"}


def _http_part(reply: Reply) -> bytes:
    lines = [f"HTTP/1.1 {reply.status} {_REASONS.get(reply.status, 'Status')}"]
    lines += [f"{k}: {v}" for k, v in reply.headers.items()]
    lines.append(f"content-length: {len(reply.body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + reply.body


def run_batch(sim: Simulator, handler: Handler, content_type: str, body: bytes) -> Reply:
    outer = "batch_" + uuid.uuid4().hex
    out: list[bytes] = []
    for headers, content in _split_multipart(body, _boundary(content_type)):
        ctype = headers.get("content-type", "")
        if ctype.startswith("multipart/mixed"):
            inner_boundary = _boundary(ctype)
            snapshot = copy.deepcopy((sim.data, sim.numbers, sim.log))
            replies: list[tuple[str, Reply]] = []
            failed: Reply | None = None
            for part_headers, part in _split_multipart(content, inner_boundary):
                method, target, h, b = _parse_http(part)
                resource, _, qs = target.partition("?")
                reply = handler.dispatch(method, resource, dict(parse_qsl(qs)), h, b)
                if reply.status >= 400:
                    failed = reply
                    break
                replies.append((part_headers.get("content-id", ""), reply))
            if failed is not None:
                sim.data, sim.numbers, sim.log = snapshot  # the changeset is one LUW
                out.append(b"content-type: application/http\r\ncontent-transfer-encoding: binary\r\n\r\n"
                           + _http_part(failed))
                continue
            cs = "changeset_" + uuid.uuid4().hex
            chunks = [f"--{cs}\r\ncontent-type: application/http\r\ncontent-transfer-encoding: binary\r\n"
                      .encode() + (f"content-id: {cid}\r\n".encode() if cid else b"") + b"\r\n" + _http_part(r)
                      + b"\r\n" for cid, r in replies]
            out.append(f"content-type: multipart/mixed; boundary={cs}\r\n\r\n".encode() + b"".join(chunks)
                       + f"--{cs}--\r\n".encode())
        else:
            method, target, h, b = _parse_http(content)
            resource, _, qs = target.partition("?")
            if method != "GET":
                out.append(b"content-type: application/http\r\ncontent-transfer-encoding: binary\r\n\r\n"
                           + _http_part(error_reply(ODataError(400, "/IWBEP/CM_MGW_RT/026",
                                                               "Modifying requests must be inside a changeset"))))
                continue
            out.append(b"content-type: application/http\r\ncontent-transfer-encoding: binary\r\n\r\n"
                       + _http_part(handler.dispatch(method, resource, dict(parse_qsl(qs)), h, b)))
    payload = b"".join(f"--{outer}\r\n".encode() + part + b"\r\n" for part in out) + f"--{outer}--\r\n".encode()
    return Reply(202, payload, {"content-type": f"multipart/mixed; boundary={outer}"})


# the HTTP app ----------------------------------------------------------------------------------
SESSION_COOKIE = "SAP_SESSIONID_SIM_100"
WRITES = {"POST", "PUT", "PATCH", "MERGE", "DELETE"}


def create_app(sim: Simulator | None = None) -> FastAPI:
    sim = sim or Simulator()
    app = FastAPI(title="SAP S/4HANA simulator", docs_url="/_sim/docs", openapi_url="/_sim/openapi.json")
    app.state.sim = sim

    def _reply(reply: Reply) -> Response:
        return Response(reply.body, status_code=reply.status, headers=reply.headers)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.api_route(ROOT + "/{service_path}/{resource:path}",
                   methods=["GET", "HEAD", "POST", "PUT", "PATCH", "MERGE", "DELETE"], include_in_schema=False)
    async def odata(service_path: str, resource: str, request: Request) -> Response:
        service = SERVICES.get(service_path)
        if service is None:
            return Response(f"Service {service_path} not found", status_code=404)
        auth = request.headers.get("authorization", "")
        expected = "Basic " + base64.b64encode(f"{sim.user}:{sim.password}".encode()).decode()
        if not secrets.compare_digest(auth, expected):
            return Response("Logon failed", status_code=401, headers={"www-authenticate": 'Basic realm="SAP NetWeaver '
                                                                       'Application Server [SIM/100]"'})
        faults = sim.faults
        if faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000)
        if faults.unavailable_requests > 0 or time.monotonic() < faults.unavailable_until:
            faults.unavailable_requests = max(faults.unavailable_requests - 1, 0)
            return Response("Service Unavailable", status_code=faults.error_status)
        method = request.method.upper()
        if request.headers.get("x-http-method"):
            method = request.headers["x-http-method"].upper()
        response_headers: dict[str, str] = {}
        session = request.cookies.get(SESSION_COOKIE)
        if method in WRITES:
            token = request.headers.get("x-csrf-token", "")
            if not session or sim.sessions.get(session) is None or not secrets.compare_digest(
                    sim.sessions[session], token):
                return Response("CSRF token validation failed", status_code=403,
                                headers={"x-csrf-token": "Required"})
        elif request.headers.get("x-csrf-token", "").lower() == "fetch":
            if not session or session not in sim.sessions:
                session = secrets.token_urlsafe(24)
            token = sim.sessions.get(session) or secrets.token_urlsafe(18)
            sim.sessions[session] = token
            response_headers["x-csrf-token"] = token
        query = dict(parse_qsl(request.url.query, keep_blank_values=True))
        client = query.get("sap-client")
        base_url = str(request.base_url).rstrip("/")
        async with sim.lock:
            handler = Handler(sim, service, base_url)
            if client is not None and client != sim.client:
                reply = error_reply(ODataError(401, "/IWFND/CM_CONSUMER/101", f"Client {client} is not available"),
                                    service)
            elif resource.strip("/") == "$batch" and method == "POST":
                reply = run_batch(sim, handler, request.headers.get("content-type", ""), await request.body())
            else:
                headers = {k.lower(): v for k, v in request.headers.items()}
                reply = handler.dispatch(method, resource, query, headers, await request.body())
            if method in WRITES and reply.status < 400:
                sim.commit()
        response = _reply(reply)
        for k, v in response_headers.items():
            response.headers[k] = v
        if "x-csrf-token" in response_headers and session:
            response.set_cookie(SESSION_COOKIE, session, path="/", httponly=True)
        if method == "HEAD":
            response.body = b""
        return response

    # commands --------------------------------------------------------------------------------------
    async def _command(fn: Any, *args: Any, **kwargs: Any) -> Response:
        async with sim.lock:
            try:
                row = fn(*args, **kwargs)
            except ODataError as exc:
                return _reply(error_reply(exc))
            sim.commit()
        key = next(iter(row.values()))
        return Response(json.dumps({"key": key}), media_type="application/json")

    @app.post("/_sim/sales-orders/{number}/deliver")
    async def deliver(number: str, request: Request) -> Response:
        """Creates an outbound delivery for the order's open items (and posts goods issue unless told not to)."""
        body = json.loads(await request.body() or b"{}")
        return await _command(sim.deliver, number, goods_issue=body.get("goods_issue", True),
                              bill_of_lading=body.get("bill_of_lading", ""),
                              means_of_transport=body.get("means_of_transport", ""))

    @app.post("/_sim/deliveries/{number}/goods-issue")
    async def goods_issue(number: str) -> Response:
        return await _command(sim.goods_issue, number)

    @app.post("/_sim/sales-orders/{number}/bill")
    async def bill(number: str) -> Response:
        """Creates the billing document (F2 invoice) for the order's goods-issued deliveries."""
        return await _command(sim.bill, number)

    @app.post("/_sim/billing-documents/{number}/cancel")
    async def cancel_billing(number: str) -> Response:
        return await _command(sim.cancel_billing, number)

    @app.post("/_sim/faults")
    async def set_faults(request: Request) -> dict[str, Any]:
        """Fault injection: latency_ms, unavailable_requests (next N requests fail), unavailable_seconds,
        error_status (503 by default), expire_csrf_tokens, stale_etags (next N If-Match checks fail with
        412), reject_names (business partner names SAP refuses with a validation error)."""
        body = json.loads(await request.body() or b"{}")
        async with sim.lock:
            f = sim.faults
            f.latency_ms = int(body.get("latency_ms", f.latency_ms))
            f.unavailable_requests = int(body.get("unavailable_requests", f.unavailable_requests))
            if "unavailable_seconds" in body:
                f.unavailable_until = time.monotonic() + float(body["unavailable_seconds"])
            f.error_status = int(body.get("error_status", f.error_status))
            f.stale_etags = int(body.get("stale_etags", f.stale_etags))
            f.reject_names |= set(body.get("reject_names", []))
            if body.get("expire_csrf_tokens"):
                sim.sessions.clear()
        return {"ok": True}

    @app.delete("/_sim/faults")
    async def clear_faults() -> dict[str, Any]:
        async with sim.lock:
            sim.faults = Faults()
        return {"ok": True}

    @app.get("/_sim/log")
    async def write_log() -> list[dict[str, Any]]:
        """Every successful write (create, update, deliver, bill), oldest first."""
        return sim.log

    @app.post("/_sim/reset")
    async def reset() -> Response:
        """Forgets every document and restarts the number ranges: only for a simulator without a
        state file. One with a state file serves a suite whose CRM remembers the SAP numbers it
        has seen (database crm_sap), which a reset simulator would hand out again."""
        if sim.state_file is not None:
            return Response(json.dumps({
                "error": "refused: the CRM's SAP service still holds the numbers this simulator handed out "
                         "(database crm_sap), and a reset simulator would hand them out again",
                "instead": "stop the suite (Ctrl-C), then run `make reset`: it clears the simulator's "
                           f"state ({sim.state_file}) together with the CRM's data"}),
                status_code=409, media_type="application/json")
        async with sim.lock:
            sim.reset()
        return Response(json.dumps({"ok": True}), media_type="application/json")

    return app
