"""Domain objects ⇄ the protobuf messages of proto/crm/orders/v1 (API and events)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation

from google.protobuf.timestamp_pb2 import Timestamp

from crm.common.v1 import money_pb2
from crm.contracts.v1 import events_pb2 as contracts_ev
from crm.orders.v1 import events_pb2 as ev
from crm.orders.v1 import orders_pb2 as pb
from crm_orders.adapters.repository import InvoiceRow, PaymentRow
from crm_orders.domain.model import ContractLine, Delivery, Order, OrderStatus
from crmkit.errors import InvalidArgument


def decimal_or(value: str, default: str = "0") -> Decimal:
    """A decimal string from another service's message; `default` when empty or not a number."""
    try:
        out = Decimal(value or default)
    except InvalidOperation:
        return Decimal(default)
    return out if out.is_finite() else Decimal(default)


def iso_date(value: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value) if value else None
    except ValueError:
        return None


def contract_lines(lines: Iterable[contracts_ev.ContractLine]) -> tuple[ContractLine, ...]:
    return tuple(ContractLine(
        id=li.line_id, product=li.product, specification=li.specification, quantity=decimal_or(li.quantity),
        unit=li.unit, unit_price=decimal_or(li.unit_price.amount), amount=decimal_or(li.amount.amount))
        for li in lines if li.line_id)


def ts(value: dt.datetime | None) -> Timestamp | None:
    if value is None:
        return None
    out = Timestamp()
    out.FromDatetime(value.astimezone(dt.UTC))
    return out


def money(amount: Decimal, currency: str) -> money_pb2.Money:
    return money_pb2.Money(amount=f"{amount:.2f}", currency=currency)


def unit_money(amount: Decimal, currency: str) -> money_pb2.Money:
    """Unit prices keep up to 4 decimal places."""
    text = f"{amount.normalize():f}"
    if "." not in text or len(text.split(".")[1]) < 2:
        text = f"{amount:.2f}"
    return money_pb2.Money(amount=text, currency=currency)


def quantity(value: Decimal) -> str:
    return f"{value.normalize():f}"


def iso(value: dt.date | None) -> str:
    return value.isoformat() if value else ""


def parse_date(value: str, field: str) -> dt.date | None:
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise InvalidArgument.of(field, f"{value!r} is not an ISO 8601 date (YYYY-MM-DD)") from None


def status_to_pb(status: OrderStatus) -> pb.OrderStatus.ValueType:
    return pb.OrderStatus.Value(f"ORDER_STATUS_{status.value.upper()}")


def status_from_pb(value: int) -> str:
    if not value:
        return ""
    return OrderStatus(pb.OrderStatus.Name(value).removeprefix("ORDER_STATUS_").lower()).value  # type: ignore[arg-type]


def order_to_pb(o: Order, delivered: dict[object, Decimal] | None = None) -> pb.SalesOrder:
    delivered = delivered or {}
    return pb.SalesOrder(
        id=str(o.id), order_number=o.number, contract_id=str(o.contract_id), contract_number=o.contract_number,
        customer_id=str(o.customer_id), customer_name=o.customer_name, owner_id=o.owner_id,
        team_ids=list(o.team_ids), department_path=o.department_path, status=status_to_pb(o.status),
        amount=money(o.amount, o.currency), lines=[
            pb.SalesOrderLine(
                id=str(li.id), line_number=li.line_number, contract_line_id=li.contract_line_id, product=li.product,
                specification=li.specification, quantity=quantity(li.quantity), unit=li.unit,
                unit_price=unit_money(li.unit_price, o.currency), amount=money(li.amount, o.currency),
                requested_delivery_date=iso(li.requested_delivery_date),
                delivered_quantity=quantity(delivered.get(li.id, Decimal(0))), sap_item=li.sap_item)
            for li in o.lines],
        requested_delivery_date=iso(o.requested_delivery_date), customer_reference=o.customer_reference,
        note=o.note, sap_sales_order=o.sap_sales_order, cancel_reason=o.cancel_reason, version=o.version,
        create_time=ts(o.created_at), update_time=ts(o.updated_at), created_by=o.created_by)


def snapshot(o: Order) -> ev.OrderSnapshot:
    """The order as the rest of the suite sees it (events)."""
    return ev.OrderSnapshot(
        order_id=str(o.id), order_number=o.number, contract_id=str(o.contract_id), contract_number=o.contract_number,
        customer_id=str(o.customer_id), owner_id=o.owner_id, status=o.status.value, amount=money(o.amount, o.currency),
        lines=[ev.OrderLine(line_id=str(li.id), line_number=li.line_number, contract_line_id=li.contract_line_id,
                            product=li.product, specification=li.specification, quantity=quantity(li.quantity),
                            unit=li.unit, unit_price=unit_money(li.unit_price, o.currency),
                            amount=money(li.amount, o.currency),
                            requested_delivery_date=iso(li.requested_delivery_date or o.requested_delivery_date))
               for li in o.lines],
        requested_delivery_date=iso(o.requested_delivery_date), customer_reference=o.customer_reference)


def delivery_to_pb(d: Delivery) -> pb.Delivery:
    return pb.Delivery(
        id=str(d.id), order_id=str(d.order_id), order_number=d.order_number,
        customer_id=str(d.customer_id) if d.customer_id else "", source=d.source.value, sap_delivery=d.sap_delivery,
        status=d.status.value, shipped_on=iso(d.shipped_on), carrier=d.carrier, tracking_number=d.tracking_number,
        lines=[ev.DeliveryLine(order_line_id=str(li.order_line_id), quantity=quantity(li.quantity)) for li in d.lines],
        create_time=ts(d.created_at), update_time=ts(d.updated_at), created_by=d.created_by)


def delivery_event(d: Delivery) -> ev.DeliveryRecorded:
    return ev.DeliveryRecorded(
        delivery_id=str(d.id), order_id=str(d.order_id), customer_id=str(d.customer_id) if d.customer_id else "",
        sap_delivery=d.sap_delivery, carrier=d.carrier, tracking_number=d.tracking_number,
        shipped_on=iso(d.shipped_on), status=d.status.value, order_number=d.order_number,
        lines=[ev.DeliveryLine(order_line_id=str(li.order_line_id), quantity=quantity(li.quantity)) for li in d.lines])


def invoice_to_pb(i: InvoiceRow) -> pb.OrderInvoice:
    return pb.OrderInvoice(
        invoice_id=str(i.id), invoice_number=i.number, kind=i.kind, order_id=str(i.order_id) if i.order_id else "",
        contract_id=str(i.contract_id) if i.contract_id else "", net_amount=money(i.net_amount, i.currency),
        tax_amount=money(i.tax_amount, i.currency), total=money(i.total, i.currency), issued_on=iso(i.issued_on),
        due_on=iso(i.due_on), sap_billing_document=i.sap_billing_document)


def payment_to_pb(p: PaymentRow) -> pb.OrderPayment:
    return pb.OrderPayment(
        payment_id=str(p.id), amount=money(p.amount, p.currency), allocated=money(p.allocated, p.currency),
        unallocated=money(p.unallocated, p.currency), received_on=iso(p.received_on), reference=p.reference,
        contract_ids=[str(c) for c in p.contract_ids])
