"""The rules of sales orders, deliveries and the contract copy they draw on (R-ORD-01, R-ORD-02).

Pure Python: no I/O. The application layer loads the records, asks these functions what the new
state is, and stores it.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from enum import StrEnum

from crmkit.errors import Conflict, InvalidArgument, StaleVersion
from crmkit.ids import new_id
from crmkit.money import cents, line_total

MAX_QUANTITY = Decimal("1e12")
MAX_LINES = 500



def qty(value: Decimal) -> str:
    """A quantity as people write it: 40, 12.5 (never 40.0000 or 4E+1)."""
    return f"{value.normalize():f}"


def parse_quantity(text: str, field_name: str) -> Decimal:
    """A quantity from a client: a decimal string, more than zero, at most 4 decimal places."""
    raw = (text or "").strip()
    if not raw:
        raise InvalidArgument.of(field_name, "is required")
    try:
        value = Decimal(raw)
    except InvalidOperation:
        raise InvalidArgument.of(field_name, f"{text!r} is not a decimal number") from None
    if not value.is_finite():
        raise InvalidArgument.of(field_name, "must be a finite number")
    if value.as_tuple().exponent < -4:  # type: ignore[operator]
        raise InvalidArgument.of(field_name, "has more than 4 decimal places")
    if value <= 0:
        raise InvalidArgument.of(field_name, "must be more than zero")
    if value >= MAX_QUANTITY:
        raise InvalidArgument.of(field_name, "is too large")
    return value


# The contract copy --------------------------------------------------------------------------------


class ContractState(StrEnum):
    SIGNED = "signed"
    TERMINATED = "terminated"


@dataclass(frozen=True)
class ContractLine:
    id: str
    product: str
    specification: str
    quantity: Decimal
    unit: str
    # The list price per unit, before the line's discount.
    unit_price: Decimal
    # Net: after discount, before tax (0 when the contract did not say).
    amount: Decimal
    # False once an amendment dropped the line: nothing more may be ordered of it.
    active: bool = True

    @property
    def has_net(self) -> bool:
        return self.amount > 0 and self.quantity > 0

    @property
    def net_unit_price(self) -> Decimal:
        """What one unit costs after the line's discount (4 places); the list price when the
        contract gave no line amount."""
        if not self.has_net:
            return self.unit_price
        return (self.amount / self.quantity).quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class Contract:
    """The local, read-only copy of a signed contract (from the contracts service's events)."""

    id: uuid.UUID
    number: str
    customer_id: uuid.UUID
    customer_name: str
    owner_id: str
    team_ids: tuple[str, ...]
    department_path: str
    amount: Decimal
    currency: str
    start_date: dt.date | None
    end_date: dt.date | None
    state: ContractState
    version: int
    lines: tuple[ContractLine, ...] = ()

    def line(self, line_id: str) -> ContractLine | None:
        return next((li for li in self.lines if li.id == line_id), None)

    @property
    def net_amount(self) -> Decimal:
        """What may be ordered in money: the lines' net amounts (orders are priced net, before
        tax, while the contract amount includes tax); the contract amount when lines carry none."""
        if self.lines and all(li.has_net for li in self.lines):
            # Lines an amendment dropped still count: orders placed on them keep their money.
            return sum((li.amount for li in self.lines), Decimal(0))
        return self.amount


@dataclass(frozen=True)
class Ordered:
    """What the contract's non-cancelled orders took so far: per contract line, quantity and net
    amount; and the net total."""

    quantity: Mapping[str, Decimal]
    amount: Mapping[str, Decimal]
    total: Decimal

    @classmethod
    def nothing(cls) -> Ordered:
        return cls({}, {}, Decimal(0))


def check_orderable(contract: Contract, today: dt.date) -> None:
    """An order may only be placed against a signed contract that is neither terminated nor
    expired (nor not yet started)."""
    meta = {"contract_id": str(contract.id), "contract_number": contract.number}
    if contract.state is ContractState.TERMINATED:
        raise Conflict(f"contract {contract.number} is terminated: it takes no new orders",
                       reason="CONTRACT_TERMINATED", metadata=meta)
    if contract.end_date is not None and contract.end_date < today:
        raise Conflict(f"contract {contract.number} expired on {contract.end_date.isoformat()}",
                       reason="CONTRACT_EXPIRED", metadata=meta | {"end_date": contract.end_date.isoformat()})
    if contract.start_date is not None and contract.start_date > today:
        raise Conflict(f"contract {contract.number} only starts on {contract.start_date.isoformat()}",
                       reason="CONTRACT_NOT_STARTED", metadata=meta | {"start_date": contract.start_date.isoformat()})


def amend(contract: Contract, version: int, amount: Decimal, currency: str,
          lines: Iterable[ContractLine]) -> Contract | None:
    """A newer version of the contract: its lines replace the old ones; an old line the
    amendment no longer has stays known (orders refer to it) but inactive. An amendment not
    newer than what we hold is a redelivery or arrived late: None, nothing changes."""
    if version <= contract.version:
        return None
    new_lines = {li.id: li for li in lines}
    dropped = tuple(replace(li, active=False) for li in contract.lines if li.id not in new_lines)
    return replace(contract, version=version, amount=amount, currency=currency or contract.currency,
                   lines=tuple(new_lines.values()) + dropped)


# Orders ---------------------------------------------------------------------------------------------


class OrderStatus(StrEnum):
    SUBMITTED = "submitted"
    CONFIRMED = "confirmed"
    IN_PRODUCTION = "in_production"
    SHIPPED = "shipped"
    DELIVERED = "delivered"
    CLOSED = "closed"
    CANCELLED = "cancelled"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {s: i for i, s in enumerate(OrderStatus)}
# Cancelling is possible until goods left.
CANCELLABLE = frozenset({OrderStatus.SUBMITTED, OrderStatus.CONFIRMED, OrderStatus.IN_PRODUCTION})
# Deliveries may be recorded while an order is live and not closed.
DELIVERABLE = frozenset({OrderStatus.SUBMITTED, OrderStatus.CONFIRMED, OrderStatus.IN_PRODUCTION,
                         OrderStatus.SHIPPED, OrderStatus.DELIVERED})


@dataclass(frozen=True)
class OrderLine:
    id: uuid.UUID
    line_number: int
    contract_line_id: str
    product: str
    specification: str
    quantity: Decimal
    unit: str
    unit_price: Decimal
    amount: Decimal
    requested_delivery_date: dt.date | None = None
    sap_item: str = ""


@dataclass(frozen=True)
class Order:
    id: uuid.UUID
    number: str
    contract_id: uuid.UUID
    contract_number: str
    customer_id: uuid.UUID
    customer_name: str
    owner_id: str
    team_ids: tuple[str, ...]
    department_path: str
    status: OrderStatus
    currency: str
    amount: Decimal
    lines: tuple[OrderLine, ...]
    requested_delivery_date: dt.date
    customer_reference: str = ""
    note: str = ""
    sap_sales_order: str = ""
    cancel_reason: str = ""
    version: int = 1
    created_by: str = ""
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None


@dataclass(frozen=True)
class RequestedLine:
    contract_line_id: str
    quantity: Decimal
    requested_delivery_date: dt.date | None = None


def order_number(year: int, sequence: int) -> str:
    return f"SO-{year}-{sequence:06d}"


def check_requested_date(value: dt.date | None, today: dt.date, field_name: str) -> None:
    if value is not None and value < today:
        raise InvalidArgument.of(field_name, "must not be in the past")


def price_lines(contract: Contract, requested: list[RequestedLine], ordered: Ordered | None = None
                ) -> tuple[OrderLine, ...]:
    """The order's lines, priced at the contract's net terms: quantity × the line's net amount /
    its quantity, to cents. The order that takes the last of a line pays what is left of the
    line's net amount, so a line's orders add up to the contract exactly, never a cent more."""
    ordered = ordered or Ordered.nothing()
    taken_qty = dict(ordered.quantity)
    taken_amount = dict(ordered.amount)
    if not requested:
        raise InvalidArgument.of("lines", "at least one line is required")
    if len(requested) > MAX_LINES:
        raise InvalidArgument.of("lines", f"at most {MAX_LINES} lines")
    out = []
    for i, req in enumerate(requested):
        cline = contract.line(req.contract_line_id)
        if cline is None:
            raise InvalidArgument.of(f"lines[{i}].contract_line_id",
                                     f"contract {contract.number} has no line {req.contract_line_id!r}")
        if not cline.active:
            raise Conflict(f"line {cline.id} of contract {contract.number} was removed by an amendment",
                           reason="CONTRACT_LINE_REMOVED", metadata={"contract_line_id": cline.id})
        before_qty = taken_qty.get(cline.id, Decimal(0))
        before_amount = taken_amount.get(cline.id, Decimal(0))
        # A quantity far beyond the contract's is refused below; priced first, it must not overflow.
        if not cline.has_net:
            amount = cents(line_total(req.quantity, cline.unit_price, f"lines[{i}].quantity"))
        elif before_qty + req.quantity == cline.quantity:
            amount = max(cline.amount - before_amount, Decimal(0))
        else:
            amount = cents(line_total(req.quantity, cline.amount / cline.quantity, f"lines[{i}].quantity"))
        taken_qty[cline.id] = before_qty + req.quantity
        taken_amount[cline.id] = before_amount + amount
        out.append(OrderLine(
            id=new_id(), line_number=i + 1, contract_line_id=cline.id, product=cline.product,
            specification=cline.specification, quantity=req.quantity, unit=cline.unit,
            unit_price=cline.net_unit_price, amount=amount, requested_delivery_date=req.requested_delivery_date))
    return tuple(out)


def check_within_contract(contract: Contract, lines: Iterable[OrderLine], ordered: Ordered) -> None:
    """R-ORD-01: together with the contract's other non-cancelled orders, an order may not
    order more of a contract line than the contract has, nor more money than its net amount."""
    already_ordered, already_ordered_amount = ordered.quantity, ordered.total
    wanted: dict[str, Decimal] = {}
    amount = Decimal(0)
    for li in lines:
        wanted[li.contract_line_id] = wanted.get(li.contract_line_id, Decimal(0)) + li.quantity
        amount += li.amount
    for line_id, quantity in wanted.items():
        cline = contract.line(line_id)
        assert cline is not None  # price_lines checked it
        before = already_ordered.get(line_id, Decimal(0))
        if before + quantity > cline.quantity:
            remaining = max(cline.quantity - before, Decimal(0))
            raise Conflict(
                f"contract {contract.number} line {cline.product!r} has {qty(remaining)} {cline.unit} left to order, "
                f"not {qty(quantity)}: amend the contract first", reason="CONTRACT_QUANTITY_EXCEEDED",
                metadata={"contract_id": str(contract.id), "contract_line_id": line_id,
                          "contract_quantity": qty(cline.quantity), "already_ordered": qty(before),
                          "requested": qty(quantity), "remaining": qty(remaining)})
    if already_ordered_amount + amount > contract.net_amount:
        remaining_amount = cents(max(contract.net_amount - already_ordered_amount, Decimal(0)))
        raise Conflict(
            f"contract {contract.number} has {remaining_amount} {contract.currency} left to order, not {amount}: "
            "amend the contract first", reason="CONTRACT_AMOUNT_EXCEEDED",
            metadata={"contract_id": str(contract.id), "contract_amount": str(cents(contract.net_amount)),
                      "already_ordered": str(cents(already_ordered_amount)), "requested": str(cents(amount)),
                      "remaining": str(remaining_amount)})


def check_version(order: Order, expected_version: int) -> None:
    if expected_version and expected_version != order.version:
        raise StaleVersion(f"the order is at version {order.version}, not {expected_version}",
                           metadata={"current_version": str(order.version)})


def _transition_error(order: Order, action: str, reason: str) -> Conflict:
    return Conflict(f"order {order.number} is {order.status.value}: it cannot be {action}", reason=reason,
                    metadata={"order_status": order.status.value})


def cancel(order: Order, reason: str) -> Order:
    if order.status not in CANCELLABLE:
        raise _transition_error(order, "cancelled", "ORDER_NOT_CANCELLABLE")
    reason = reason.strip()
    if not reason:
        raise InvalidArgument.of("reason", "is required")
    if len(reason) > 500:
        raise InvalidArgument.of("reason", "must be at most 500 characters")
    return replace(order, status=OrderStatus.CANCELLED, cancel_reason=reason, version=order.version + 1)


def confirm_by_hand(order: Order) -> Order:
    if order.status is not OrderStatus.SUBMITTED:
        raise _transition_error(order, "confirmed", "ORDER_NOT_SUBMITTED")
    return replace(order, status=OrderStatus.CONFIRMED, version=order.version + 1)


def start_production(order: Order) -> Order:
    if order.status is not OrderStatus.CONFIRMED:
        raise _transition_error(order, "put into production", "ORDER_NOT_CONFIRMED")
    return replace(order, status=OrderStatus.IN_PRODUCTION, version=order.version + 1)


def close(order: Order) -> Order:
    if order.status is not OrderStatus.DELIVERED:
        raise _transition_error(order, "closed before it is delivered", "ORDER_NOT_DELIVERED")
    return replace(order, status=OrderStatus.CLOSED, version=order.version + 1)


def advance(order: Order, to: OrderStatus) -> Order | None:
    """A status reported by SAP or derived from deliveries: orders only move forward, so a late
    or repeated report changes nothing (None). A cancelled order stays cancelled."""
    if order.status is OrderStatus.CANCELLED or to is OrderStatus.CANCELLED or to.rank <= order.status.rank:
        return None
    return replace(order, status=to, version=order.version + 1)


def confirm_from_sap(order: Order, sales_order: str, item_numbers: Mapping[str, str]) -> Order | None:
    """SAP created the sales order: the order is confirmed and knows its SAP numbers. A second
    report with the same number is a no-op (None)."""
    if order.sap_sales_order == sales_order and all(
            li.sap_item == item_numbers.get(str(li.id), li.sap_item) for li in order.lines):
        return None
    lines = tuple(replace(li, sap_item=item_numbers.get(str(li.id), li.sap_item)) for li in order.lines)
    moved = advance(order, OrderStatus.CONFIRMED)
    base = moved or replace(order, version=order.version + 1)
    return replace(base, sap_sales_order=sales_order, lines=lines)


# SAP status codes (S/4HANA A_SalesOrder): "" / "A" not yet processed, "B" partly, "C" completely.
def status_from_sap(overall: str, delivery: str) -> OrderStatus | None:
    """What an SAP sales-order status says about the order (deliveries say shipped/delivered):

    - OverallSDProcessStatus "C" (completely processed: delivered and billed) → closed;
    - OverallSDProcessStatus "B", or OverallTotalDeliveryStatus "B"/"C" (deliveries are being
      created, so the goods are being made or picked) → in_production;
    - anything else ("" / "A": nothing has happened to it yet) → no change.
    """
    if overall == "C":
        return OrderStatus.CLOSED
    if overall == "B" or delivery in {"B", "C"}:
        return OrderStatus.IN_PRODUCTION
    return None


# Deliveries -----------------------------------------------------------------------------------------


class DeliveryStatus(StrEnum):
    PLANNED = "planned"  # an SAP outbound delivery exists; goods not issued yet
    SHIPPED = "shipped"  # goods issued: the goods left


class DeliverySource(StrEnum):
    SAP = "sap"
    MANUAL = "manual"


@dataclass(frozen=True)
class DeliveryLine:
    order_line_id: uuid.UUID
    quantity: Decimal
    sap_item: str = ""


@dataclass(frozen=True)
class Delivery:
    id: uuid.UUID
    order_id: uuid.UUID
    source: DeliverySource
    status: DeliveryStatus
    lines: tuple[DeliveryLine, ...]
    sap_delivery: str = ""
    shipped_on: dt.date | None = None
    carrier: str = ""
    tracking_number: str = ""
    created_by: str = ""
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    order_number: str = ""
    customer_id: uuid.UUID | None = None


def sap_delivery_status(goods_movement_status: str) -> DeliveryStatus:
    """OverallGoodsMovementStatus "C" (goods issued completely) or "B" (partly) means the goods
    left; "" / "A" means the delivery is planned."""
    return DeliveryStatus.SHIPPED if goods_movement_status in {"B", "C"} else DeliveryStatus.PLANNED


def shipped_quantities(deliveries: Iterable[Delivery]) -> dict[uuid.UUID, Decimal]:
    """Per order line, what goods-issued deliveries carried."""
    out: dict[uuid.UUID, Decimal] = {}
    for d in deliveries:
        if d.status is not DeliveryStatus.SHIPPED:
            continue
        for li in d.lines:
            out[li.order_line_id] = out.get(li.order_line_id, Decimal(0)) + li.quantity
    return out


def status_from_deliveries(order: Order, deliveries: Iterable[Delivery]) -> OrderStatus | None:
    """Shipped once goods were issued for any of the order; delivered once goods were issued for
    every line's full quantity. (SAP's standard delta carries no proof of delivery: goods issue
    completes the delivery on the seller's side.) None when nothing left yet."""
    shipped = shipped_quantities(deliveries)
    if not any(q > 0 for q in shipped.values()):
        return None
    if all(shipped.get(li.id, Decimal(0)) >= li.quantity for li in order.lines):
        return OrderStatus.DELIVERED
    return OrderStatus.SHIPPED


def check_manual_delivery(order: Order, lines: list[DeliveryLine], existing: Iterable[Delivery]) -> None:
    """A delivery recorded by hand: of this order's lines, and never more than was ordered."""
    if order.status not in DELIVERABLE:
        raise _transition_error(order, "delivered", "ORDER_NOT_DELIVERABLE")
    if not lines:
        raise InvalidArgument.of("lines", "at least one line is required")
    by_id = {li.id: li for li in order.lines}
    shipped = shipped_quantities(existing)
    seen: set[uuid.UUID] = set()
    for i, li in enumerate(lines):
        oline = by_id.get(li.order_line_id)
        if oline is None:
            raise InvalidArgument.of(f"lines[{i}].order_line_id", f"order {order.number} has no such line")
        if li.order_line_id in seen:
            raise InvalidArgument.of(f"lines[{i}].order_line_id", "appears twice")
        seen.add(li.order_line_id)
        before = shipped.get(li.order_line_id, Decimal(0))
        if before + li.quantity > oline.quantity:
            raise Conflict(
                f"line {oline.line_number} of order {order.number} has {qty(max(oline.quantity - before, Decimal(0)))} "
                f"{oline.unit} left to deliver, not {qty(li.quantity)}", reason="DELIVERY_QUANTITY_EXCEEDED",
                metadata={"order_line_id": str(oline.id), "ordered": qty(oline.quantity),
                          "already_delivered": qty(before), "requested": qty(li.quantity)})
