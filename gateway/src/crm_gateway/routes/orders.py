"""/api/v1/orders, /deliveries and /customers/{id}/order-overview: REST in front of
crm.orders.v1.OrdersService (R-ORD-01, R-ORD-02)."""

from __future__ import annotations

import datetime as dt
from datetime import UTC
from functools import partial
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request, Response

from crm.common.v1 import money_pb2
from crm.orders.v1 import events_pb2 as ev
from crm.orders.v1 import orders_pb2 as pb
from crm_gateway import permissions as p
from crm_gateway.api_route import ApiRoute
from crm_gateway.auth import Caller, authenticated, require
from crm_gateway.backends import backend
from crm_gateway.etags import etag_of, expected_version
from crm_gateway.problems import API_ERRORS
from crm_gateway.routes import orders_schemas as s
from crm_gateway.routes.common import IDEMPOTENCY, IF_MATCH, link_header
from crm_gateway.routes.common import json_response as _json

_stub = partial(backend, name="orders")
router = APIRouter(prefix="/api/v1", route_class=ApiRoute, tags=["orders"],
                   dependencies=[Depends(authenticated)], responses=API_ERRORS)

_READ = Depends(require(p.ORDERS_READ))
_WRITE = Depends(require(p.ORDERS_WRITE))
_CONFLICT = {409: {"description": "The rule named by `reason` forbids it, e.g. CONTRACT_QUANTITY_EXCEEDED, "
                                  "CONTRACT_AMOUNT_EXCEEDED, CONTRACT_TERMINATED, CONTRACT_EXPIRED, "
                                  "ORDER_NOT_CANCELLABLE, ORDER_NOT_DELIVERED, DELIVERY_QUANTITY_EXCEEDED"}}




def _money(m: money_pb2.Money) -> s.Money:
    return s.Money.of(m.amount, m.currency)


def _date(value: str) -> dt.date | None:
    return dt.date.fromisoformat(value) if value else None


def _order_json(m: pb.SalesOrder) -> s.Order:
    return s.Order(
        id=m.id, order_number=m.order_number, contract_id=m.contract_id, contract_number=m.contract_number,
        customer_id=m.customer_id, customer_name=m.customer_name, owner_id=m.owner_id, team_ids=list(m.team_ids),
        department_path=m.department_path,
        status=pb.OrderStatus.Name(m.status).removeprefix("ORDER_STATUS_").lower(),  # type: ignore[arg-type]
        amount=_money(m.amount), lines=[
            s.OrderLine(id=li.id, line_number=li.line_number, contract_line_id=li.contract_line_id,
                        product=li.product, specification=li.specification, quantity=li.quantity, unit=li.unit,
                        unit_price=_money(li.unit_price), amount=_money(li.amount),
                        requested_delivery_date=_date(li.requested_delivery_date),
                        delivered_quantity=li.delivered_quantity or "0", sap_item=li.sap_item or None)
            for li in m.lines],
        requested_delivery_date=dt.date.fromisoformat(m.requested_delivery_date),
        customer_reference=m.customer_reference, note=m.note, sap_sales_order=m.sap_sales_order or None,
        cancel_reason=m.cancel_reason or None, version=m.version, created_at=m.create_time.ToDatetime(UTC),
        updated_at=m.update_time.ToDatetime(UTC), created_by=m.created_by)


def _delivery_json(m: pb.Delivery) -> s.Delivery:
    return s.Delivery(
        id=m.id, order_id=m.order_id, order_number=m.order_number, customer_id=m.customer_id,
        source=m.source,  # type: ignore[arg-type]
        sap_delivery=m.sap_delivery or None, status=m.status,  # type: ignore[arg-type]
        shipped_on=_date(m.shipped_on), carrier=m.carrier, tracking_number=m.tracking_number,
        lines=[s.DeliveryLine(order_line_id=li.order_line_id, quantity=li.quantity) for li in m.lines],
        created_at=m.create_time.ToDatetime(UTC), updated_at=m.update_time.ToDatetime(UTC), created_by=m.created_by)


def _invoice_json(m: pb.OrderInvoice) -> s.Invoice:
    return s.Invoice(
        invoice_id=m.invoice_id, invoice_number=m.invoice_number, kind=m.kind, order_id=m.order_id or None,
        contract_id=m.contract_id or None, net_amount=_money(m.net_amount), tax_amount=_money(m.tax_amount),
        total=_money(m.total), issued_on=_date(m.issued_on), due_on=_date(m.due_on),
        sap_billing_document=m.sap_billing_document or None)


def _with_etag(reply_order: pb.SalesOrder, status_code: int = 200) -> Response:
    order = _order_json(reply_order)
    headers = {"ETag": etag_of(order.version),
               "Link": link_header({"invoices": f"/api/v1/invoices?order_id={order.id}"})}
    if status_code == 201:
        headers["Location"] = f"/api/v1/orders/{order.id}"
    return _json(order, status_code, headers)


# Orders ------------------------------------------------------------------------------------------

@router.post("/orders", status_code=201, response_model=s.Order, responses=_CONFLICT,
             summary="Place a sales order against a signed contract (within what the contract allows)",
             description="404 until the orders service has the signed contract (seconds after signing). "
                         "SAP's part is **asynchronous**: the order goes to SAP and becomes `confirmed` with "
                         "`sap_sales_order` once S/4HANA has created the sales order; a delivery in SAP makes "
                         "it `delivered` (`deliveries`); a billing document in SAP becomes an invoice, found "
                         "with `GET /api/v1/invoices?order_id=…` (the `Link` rel=\"invoices\"). Poll "
                         "`GET /api/v1/orders/{id}` and that list.")
async def create_order(body: s.OrderCreate, request: Request, caller: Caller = _WRITE,
                       idempotency_key: str | None = IDEMPOTENCY) -> Response:
    reply = await _stub(request).CreateOrder(pb.CreateOrderRequest(
        contract_id=body.contract_id, requested_delivery_date=body.requested_delivery_date.isoformat(),
        customer_reference=body.customer_reference, note=body.note,
        lines=[pb.NewOrderLine(contract_line_id=li.contract_line_id, quantity=li.quantity,
                               requested_delivery_date=li.requested_delivery_date.isoformat()
                               if li.requested_delivery_date else "") for li in body.lines]),
        metadata=caller.metadata)
    return _with_etag(reply.order, 201)


@router.get("/orders", response_model=s.OrderPage, summary="List orders in your data scope, newest first")
async def list_orders(
    request: Request, caller: Caller = _READ,
    limit: int = Query(50, ge=1, le=200), cursor: str = Query("", max_length=2000),
    customer_id: UUID | None = None, contract_id: UUID | None = None, status: s.OrderStatus | None = None,
) -> Response:
    reply = await _stub(request).ListOrders(pb.ListOrdersRequest(
        page_size=limit, page_token=cursor, customer_id=str(customer_id or ""), contract_id=str(contract_id or ""),
        status=pb.OrderStatus.Value(f"ORDER_STATUS_{status.upper()}") if status else 0), metadata=caller.metadata)
    return _json(s.OrderPage(items=[_order_json(o) for o in reply.orders], next_cursor=reply.next_page_token or None))


@router.get("/orders/{order_id}", response_model=s.Order, summary="Read an order with its lines")
async def get_order(order_id: UUID, request: Request, caller: Caller = _READ) -> Response:
    reply = await _stub(request).GetOrder(pb.GetOrderRequest(id=str(order_id)), metadata=caller.metadata)
    return _with_etag(reply.order)


@router.post("/orders/{order_id}/cancel", response_model=s.Order, responses=_CONFLICT,
             summary="Cancel an order that has not shipped; its quantities are free to order again")
async def cancel_order(order_id: UUID, body: s.Cancellation, request: Request, caller: Caller = _WRITE,
                       if_match: str | None = IF_MATCH) -> Response:
    reply = await _stub(request).CancelOrder(pb.CancelOrderRequest(
        id=str(order_id), reason=body.reason, expected_version=expected_version(if_match)), metadata=caller.metadata)
    return _with_etag(reply.order)


@router.post("/orders/{order_id}/confirm", response_model=s.Order, responses=_CONFLICT,
             summary="Confirm a submitted order by hand (setups without SAP; SAP confirms it otherwise)")
async def confirm_order(order_id: UUID, request: Request, caller: Caller = _WRITE,
                        if_match: str | None = IF_MATCH) -> Response:
    reply = await _stub(request).ConfirmOrder(pb.ConfirmOrderRequest(
        id=str(order_id), expected_version=expected_version(if_match)), metadata=caller.metadata)
    return _with_etag(reply.order)


@router.post("/orders/{order_id}/start-production", response_model=s.Order, responses=_CONFLICT,
             summary="Mark a confirmed order as in production (setups without SAP)")
async def start_production(order_id: UUID, request: Request, caller: Caller = _WRITE,
                           if_match: str | None = IF_MATCH) -> Response:
    reply = await _stub(request).StartProduction(pb.StartProductionRequest(
        id=str(order_id), expected_version=expected_version(if_match)), metadata=caller.metadata)
    return _with_etag(reply.order)


@router.post("/orders/{order_id}/close", response_model=s.Order, responses=_CONFLICT,
             summary="Close a delivered order")
async def close_order(order_id: UUID, request: Request, caller: Caller = _WRITE,
                      if_match: str | None = IF_MATCH) -> Response:
    reply = await _stub(request).CloseOrder(pb.CloseOrderRequest(
        id=str(order_id), expected_version=expected_version(if_match)), metadata=caller.metadata)
    return _with_etag(reply.order)


# Deliveries --------------------------------------------------------------------------------------

@router.post("/deliveries", status_code=201, response_model=s.Delivery, responses=_CONFLICT,
             summary="Record a delivery by hand (setups without SAP); the order becomes shipped / delivered")
async def create_delivery(body: s.DeliveryCreate, request: Request, caller: Caller = _WRITE,
                          idempotency_key: str | None = IDEMPOTENCY) -> Response:
    reply = await _stub(request).CreateDelivery(pb.CreateDeliveryRequest(
        order_id=body.order_id, shipped_on=body.shipped_on.isoformat(), carrier=body.carrier,
        tracking_number=body.tracking_number,
        lines=[ev.DeliveryLine(order_line_id=li.order_line_id, quantity=li.quantity) for li in body.lines]),
        metadata=caller.metadata)
    delivery = _delivery_json(reply.delivery)
    return _json(delivery, 201, {"Location": f"/api/v1/deliveries/{delivery.id}"})


@router.get("/deliveries", response_model=s.DeliveryPage,
            summary="List deliveries in your data scope (of one order with order_id), newest first")
async def list_deliveries(request: Request, caller: Caller = _READ, limit: int = Query(50, ge=1, le=200),
                          cursor: str = Query("", max_length=2000), order_id: UUID | None = None) -> Response:
    reply = await _stub(request).ListDeliveries(pb.ListDeliveriesRequest(
        page_size=limit, page_token=cursor, order_id=str(order_id or "")), metadata=caller.metadata)
    return _json(s.DeliveryPage(items=[_delivery_json(d) for d in reply.deliveries],
                                next_cursor=reply.next_page_token or None))


@router.get("/deliveries/{delivery_id}", response_model=s.Delivery, summary="Read a delivery")
async def get_delivery(delivery_id: UUID, request: Request, caller: Caller = _READ) -> Response:
    reply = await _stub(request).GetDelivery(pb.GetDeliveryRequest(id=str(delivery_id)), metadata=caller.metadata)
    return _json(_delivery_json(reply.delivery))


# The order overview ------------------------------------------------------------------------------

@router.get("/customers/{customer_id}/order-overview", response_model=s.OrderOverview,
            summary="Where is this customer's order: orders with lines and deliveries, their invoices and payments")
async def order_overview(customer_id: UUID, request: Request, caller: Caller = _READ,
                         limit: int = Query(50, ge=1, le=200, description="The most recent orders to include")
                         ) -> Response:
    reply = await _stub(request).GetOrderOverview(pb.GetOrderOverviewRequest(
        customer_id=str(customer_id), limit=limit), metadata=caller.metadata)
    return _json(s.OrderOverview(
        customer_id=reply.customer_id, truncated=reply.truncated,
        orders=[s.OverviewEntry(order=_order_json(e.order), deliveries=[_delivery_json(d) for d in e.deliveries],
                                invoices=[_invoice_json(i) for i in e.invoices]) for e in reply.entries],
        contract_invoices=[_invoice_json(i) for i in reply.contract_invoices],
        payments=[s.Payment(payment_id=x.payment_id, amount=_money(x.amount), allocated=_money(x.allocated),
                            unallocated=_money(x.unallocated), received_on=_date(x.received_on),
                            reference=x.reference, contract_ids=list(x.contract_ids)) for x in reply.payments]))
