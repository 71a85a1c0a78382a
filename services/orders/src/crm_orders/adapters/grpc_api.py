"""The gRPC face of the service: protobuf in, use case, protobuf out. No rules live here."""

from __future__ import annotations

import uuid
from typing import Any

import grpc
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm.orders.v1 import orders_pb2 as pb
from crm.orders.v1 import orders_pb2_grpc as pb_grpc
from crm_orders.app import use_cases
from crm_orders.app.messages import (
    delivery_to_pb,
    invoice_to_pb,
    order_to_pb,
    parse_date,
    payment_to_pb,
    status_from_pb,
)
from crm_orders.app.references import References
from crm_orders.domain.model import DeliveryLine, RequestedLine, parse_quantity
from crmkit.auth import current_principal
from crmkit.db import UnitOfWork
from crmkit.ids import parse_id

SOURCE = "crm/orders"


def _optional_id(value: str, field: str) -> uuid.UUID | None:
    return parse_id(value, field) if value else None


def _order(view: use_cases.OrderView) -> pb.SalesOrder:
    return order_to_pb(view.order, view.delivered)  # type: ignore[arg-type]


READ, WRITE = "orders.read", "orders.write"


class OrdersServicer(pb_grpc.OrdersServiceServicer):
    # R-SEC-03, defence in depth: the service refuses a caller without the permission itself.
    permissions = {"CreateOrder": WRITE, "GetOrder": READ, "ListOrders": READ, "CancelOrder": WRITE,
                   "ConfirmOrder": WRITE, "StartProduction": WRITE, "CloseOrder": WRITE, "CreateDelivery": WRITE,
                   "GetDelivery": READ, "ListDeliveries": READ, "GetOrderOverview": READ}

    def __init__(self, sessions: async_sessionmaker[AsyncSession], references: References) -> None:
        self._sessions = sessions
        self._references = references

    def _uow(self) -> UnitOfWork:
        return UnitOfWork(self._sessions, SOURCE, actor=current_principal().subject)

    async def CreateOrder(self, request: pb.CreateOrderRequest, context: grpc.aio.ServicerContext) -> Any:
        new = use_cases.NewOrder(
            contract_id=parse_id(request.contract_id, "contract_id"),
            lines=[RequestedLine(contract_line_id=li.contract_line_id,
                                 quantity=parse_quantity(li.quantity, f"lines[{i}].quantity"),
                                 requested_delivery_date=parse_date(li.requested_delivery_date,
                                                                    f"lines[{i}].requested_delivery_date"))
                   for i, li in enumerate(request.lines)],
            requested_delivery_date=parse_date(request.requested_delivery_date, "requested_delivery_date"),
            customer_reference=request.customer_reference, note=request.note)
        async with self._uow() as uow:
            created = await use_cases.create_order(uow, current_principal(), new, self._references)
        return pb.CreateOrderResponse(order=_order(created))

    async def GetOrder(self, request: pb.GetOrderRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            found = await use_cases.get_order(uow, current_principal(), parse_id(request.id))
        return pb.GetOrderResponse(order=_order(found))

    async def ListOrders(self, request: pb.ListOrdersRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            items, token = await use_cases.list_orders(
                uow, current_principal(), page_token=request.page_token, limit=request.page_size,
                customer_id=_optional_id(request.customer_id, "customer_id"),
                contract_id=_optional_id(request.contract_id, "contract_id"), status=status_from_pb(request.status))
        return pb.ListOrdersResponse(orders=[_order(v) for v in items], next_page_token=token)

    async def CancelOrder(self, request: pb.CancelOrderRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            view = await use_cases.cancel_order(uow, current_principal(), parse_id(request.id), request.reason,
                                                request.expected_version)
        return pb.CancelOrderResponse(order=_order(view))

    async def ConfirmOrder(self, request: pb.ConfirmOrderRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            view = await use_cases.confirm_order(uow, current_principal(), parse_id(request.id),
                                                 request.expected_version)
        return pb.ConfirmOrderResponse(order=_order(view))

    async def StartProduction(self, request: pb.StartProductionRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            view = await use_cases.start_production(uow, current_principal(), parse_id(request.id),
                                                    request.expected_version)
        return pb.StartProductionResponse(order=_order(view))

    async def CloseOrder(self, request: pb.CloseOrderRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            view = await use_cases.close_order(uow, current_principal(), parse_id(request.id),
                                               request.expected_version)
        return pb.CloseOrderResponse(order=_order(view))

    async def CreateDelivery(self, request: pb.CreateDeliveryRequest, context: grpc.aio.ServicerContext) -> Any:
        new = use_cases.NewDelivery(
            order_id=parse_id(request.order_id, "order_id"),
            shipped_on=parse_date(request.shipped_on, "shipped_on"),
            lines=[DeliveryLine(order_line_id=parse_id(li.order_line_id, f"lines[{i}].order_line_id"),
                                quantity=parse_quantity(li.quantity, f"lines[{i}].quantity"))
                   for i, li in enumerate(request.lines)],
            carrier=request.carrier, tracking_number=request.tracking_number)
        async with self._uow() as uow:
            created = await use_cases.create_delivery(uow, current_principal(), new)
        return pb.CreateDeliveryResponse(delivery=delivery_to_pb(created))

    async def GetDelivery(self, request: pb.GetDeliveryRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            found = await use_cases.get_delivery(uow, current_principal(), parse_id(request.id))
        return pb.GetDeliveryResponse(delivery=delivery_to_pb(found))

    async def ListDeliveries(self, request: pb.ListDeliveriesRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            items, token = await use_cases.list_deliveries(
                uow, current_principal(), order_id=_optional_id(request.order_id, "order_id"),
                page_token=request.page_token, limit=request.page_size)
        return pb.ListDeliveriesResponse(deliveries=[delivery_to_pb(d) for d in items], next_page_token=token)

    async def GetOrderOverview(self, request: pb.GetOrderOverviewRequest,
                               context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            overview = await use_cases.order_overview(uow, current_principal(),
                                                      parse_id(request.customer_id, "customer_id"),
                                                      self._references, limit=request.limit)
        return pb.GetOrderOverviewResponse(
            customer_id=str(overview.customer_id), truncated=overview.truncated,
            entries=[pb.OrderOverviewEntry(order=_order(e.view), deliveries=[delivery_to_pb(d) for d in e.deliveries],
                                           invoices=[invoice_to_pb(i) for i in e.invoices])
                     for e in overview.entries],
            contract_invoices=[invoice_to_pb(i) for i in overview.contract_invoices],
            payments=[payment_to_pb(p) for p in overview.payments])
