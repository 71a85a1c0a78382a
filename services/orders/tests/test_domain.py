"""The order rules without a database: the contract cap, status moves, SAP mapping, deliveries."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import replace
from decimal import Decimal

import pytest

from crm_orders.domain import model as m
from crm_orders.domain.model import (
    Contract,
    ContractLine,
    ContractState,
    Delivery,
    DeliveryLine,
    DeliverySource,
    DeliveryStatus,
    OrderStatus,
    RequestedLine,
)
from crmkit.errors import Conflict, InvalidArgument, StaleVersion

TODAY = dt.date(2026, 11, 25)
D = Decimal


def contract(**kw) -> Contract:
    return Contract(**({
        "id": uuid.uuid4(), "number": "CON-2026-000123", "customer_id": uuid.uuid4(), "customer_name": "Acme",
        "owner_id": "rep-east", "team_ids": ("east",), "department_path": "/sales/east/", "amount": D("150000.00"),
        "currency": "CNY", "start_date": dt.date(2026, 1, 1), "end_date": dt.date(2026, 12, 31),
        "state": ContractState.SIGNED, "version": 1,
        "lines": (ContractLine("L1", "Valve", "DN50", D("100"), "pcs", D("1000.00"), D("100000.00")),
                  ContractLine("L2", "Install", "", D("10"), "day", D("5000.00"), D("50000.00")))} | kw))


def order(c: Contract, *quantities: tuple[str, str], status: OrderStatus = OrderStatus.SUBMITTED) -> m.Order:
    lines = m.price_lines(c, [RequestedLine(lid, D(q)) for lid, q in quantities])
    return m.Order(id=uuid.uuid4(), number="SO-2026-000001", contract_id=c.id, contract_number=c.number,
                   customer_id=c.customer_id, customer_name="", owner_id="rep-east", team_ids=(), department_path="/",
                   status=status, currency="CNY", amount=sum((li.amount for li in lines), D(0)), lines=lines,
                   requested_delivery_date=TODAY)


def test_order_numbers_are_zero_padded_per_year() -> None:
    assert m.order_number(2026, 45) == "SO-2026-000045"
    assert m.order_number(2027, 1234567) == "SO-2027-1234567"


@pytest.mark.parametrize("text", ["", "abc", "0", "-1", "1.23456", "NaN", "1e12"])
def test_quantities_must_be_positive_decimals(text: str) -> None:
    with pytest.raises(InvalidArgument):
        m.parse_quantity(text, "quantity")


def test_lines_are_priced_from_the_contract() -> None:
    c = contract()
    [a, b] = m.price_lines(c, [RequestedLine("L1", D("2.5")), RequestedLine("L2", D("1"), TODAY)])
    assert (a.line_number, a.product, a.unit, a.unit_price, a.amount) == (1, "Valve", "pcs", D("1000.00"),
                                                                          D("2500.00"))
    assert (b.line_number, b.amount, b.requested_delivery_date) == (2, D("5000.00"), TODAY)
    with pytest.raises(InvalidArgument) as err:
        m.price_lines(c, [RequestedLine("L9", D(1))])
    assert err.value.violations[0].field == "lines[0].contract_line_id"
    with pytest.raises(InvalidArgument):
        m.price_lines(c, [])


def took(quantity: str, amount: str, line: str = "L1") -> m.Ordered:
    return m.Ordered({line: D(quantity)}, {line: D(amount)}, D(amount))


def test_the_cap_counts_what_other_orders_took() -> None:
    c = contract()
    lines = m.price_lines(c, [RequestedLine("L1", D(30))])
    m.check_within_contract(c, lines, took("70", "70000"))  # exactly the rest: allowed
    with pytest.raises(Conflict) as err:
        m.check_within_contract(c, lines, took("70.5", "70500"))
    assert err.value.reason == "CONTRACT_QUANTITY_EXCEEDED"
    assert (err.value.metadata["remaining"], err.value.metadata["requested"]) == ("29.5", "30")
    # two lines of one order drawing on the same contract line add up
    twice = m.price_lines(c, [RequestedLine("L1", D(60)), RequestedLine("L1", D(41))])
    with pytest.raises(Conflict):
        m.check_within_contract(c, twice, m.Ordered.nothing())


def test_the_cap_on_the_amount_when_lines_carry_no_net_amount() -> None:
    # lines without amounts are priced at list price; the contract amount (50 000) caps them
    c = contract(amount=D("50000.00"), lines=(ContractLine("L1", "Valve", "", D(100), "pcs", D(1000), D(0)),))
    assert c.net_amount == D("50000.00")
    with pytest.raises(Conflict) as err:
        m.check_within_contract(c, m.price_lines(c, [RequestedLine("L1", D(51))]), m.Ordered.nothing())
    assert err.value.reason == "CONTRACT_AMOUNT_EXCEEDED" and err.value.metadata["remaining"] == "50000.00"


def test_orders_are_priced_at_the_net_terms_and_add_up_exactly() -> None:
    # 3 pumps at 1000.00 list, 10 % discount: net 2700.00 for the line (900.00 each); tax not included.
    c = contract(amount=D("3051.00"), lines=(ContractLine("P", "Pump", "", D(3), "pcs", D(1000), D("2700.00")),))
    assert c.net_amount == D("2700.00")
    [one] = m.price_lines(c, [RequestedLine("P", D(1))])
    assert (one.unit_price, one.amount) == (D("900.0000"), D("900.00"))
    # 200.00 net for 3 units: thirds round to 66.67, so the order taking the last unit pays the rest
    odd = contract(lines=(ContractLine("X", "Seal", "", D(3), "pcs", D("70"), D("200.00")),))
    firsts = [m.price_lines(odd, [RequestedLine("X", D(1))])[0].amount,
              m.price_lines(odd, [RequestedLine("X", D(1))], took("1", "66.67", "X"))[0].amount]
    last = m.price_lines(odd, [RequestedLine("X", D(1))], took("2", "133.34", "X"))[0].amount
    assert firsts == [D("66.67"), D("66.67")] and last == D("66.66")
    assert sum(firsts) + last == D("200.00")
    m.check_within_contract(odd, m.price_lines(odd, [RequestedLine("X", D(1))], took("2", "133.34", "X")),
                            took("2", "133.34", "X"))
    # two lines of one order on the same contract line: the second one completes it
    a, b = m.price_lines(odd, [RequestedLine("X", D(2)), RequestedLine("X", D(1))])
    assert (a.amount, b.amount) == (D("133.33"), D("66.67"))


def test_only_live_contracts_take_orders() -> None:
    m.check_orderable(contract(), TODAY)
    for c, reason in ((contract(state=ContractState.TERMINATED), "CONTRACT_TERMINATED"),
                      (contract(end_date=TODAY - dt.timedelta(days=1)), "CONTRACT_EXPIRED"),
                      (contract(start_date=TODAY + dt.timedelta(days=1)), "CONTRACT_NOT_STARTED")):
        with pytest.raises(Conflict) as err:
            m.check_orderable(c, TODAY)
        assert err.value.reason == reason
    m.check_orderable(contract(end_date=TODAY), TODAY)  # the last day still counts


def test_an_amendment_replaces_lines_and_keeps_dropped_ones_inactive() -> None:
    c = contract()
    amended = m.amend(c, 2, D("200000"), "CNY", [ContractLine("L1", "Valve", "DN50", D(150), "pcs", D(1000),
                                                              D(150000))])
    assert amended is not None and amended.version == 2 and amended.amount == D(200000)
    assert amended.line("L1").quantity == D(150) and amended.line("L2").active is False  # type: ignore[union-attr]
    assert m.amend(amended, 2, D(1), "CNY", []) is None  # a redelivered or late amendment
    with pytest.raises(Conflict) as err:
        m.price_lines(amended, [RequestedLine("L2", D(1))])
    assert err.value.reason == "CONTRACT_LINE_REMOVED"


def test_cancel_only_before_shipping() -> None:
    c = contract()
    for status in (OrderStatus.SUBMITTED, OrderStatus.CONFIRMED, OrderStatus.IN_PRODUCTION):
        cancelled = m.cancel(order(c, ("L1", "1"), status=status), " customer changed plans ")
        assert (cancelled.status, cancelled.cancel_reason, cancelled.version) == (OrderStatus.CANCELLED,
                                                                                  "customer changed plans", 2)
    for status in (OrderStatus.SHIPPED, OrderStatus.DELIVERED, OrderStatus.CLOSED, OrderStatus.CANCELLED):
        with pytest.raises(Conflict) as err:
            m.cancel(order(c, ("L1", "1"), status=status), "late")
        assert err.value.reason == "ORDER_NOT_CANCELLABLE"
    with pytest.raises(InvalidArgument):
        m.cancel(order(c, ("L1", "1")), "  ")


def test_manual_status_actions() -> None:
    o = order(contract(), ("L1", "1"))
    confirmed = m.confirm_by_hand(o)
    producing = m.start_production(confirmed)
    assert (confirmed.status, producing.status, producing.version) == (OrderStatus.CONFIRMED,
                                                                       OrderStatus.IN_PRODUCTION, 3)
    with pytest.raises(Conflict):
        m.confirm_by_hand(producing)
    with pytest.raises(Conflict) as err:
        m.close(producing)
    assert err.value.reason == "ORDER_NOT_DELIVERED"
    assert m.close(replace(o, status=OrderStatus.DELIVERED)).status is OrderStatus.CLOSED
    with pytest.raises(StaleVersion):
        m.check_version(o, 7)
    m.check_version(o, 0)


def test_reported_statuses_only_move_forward() -> None:
    o = order(contract(), ("L1", "1"), status=OrderStatus.IN_PRODUCTION)
    assert m.advance(o, OrderStatus.CONFIRMED) is None
    assert m.advance(o, OrderStatus.IN_PRODUCTION) is None
    assert m.advance(o, OrderStatus.SHIPPED).status is OrderStatus.SHIPPED  # type: ignore[union-attr]
    assert m.advance(replace(o, status=OrderStatus.CANCELLED), OrderStatus.CLOSED) is None


@pytest.mark.parametrize(("overall", "delivery", "expected"), [
    ("", "", None), ("A", "A", None), ("B", "A", OrderStatus.IN_PRODUCTION), ("A", "B", OrderStatus.IN_PRODUCTION),
    ("B", "C", OrderStatus.IN_PRODUCTION), ("C", "C", OrderStatus.CLOSED)])
def test_sap_status_mapping(overall: str, delivery: str, expected: OrderStatus | None) -> None:
    assert m.status_from_sap(overall, delivery) is expected


def test_confirmation_from_sap_records_the_numbers_once() -> None:
    o = order(contract(), ("L1", "1"), ("L2", "1"))
    items = {str(o.lines[0].id): "10", str(o.lines[1].id): "20"}
    confirmed = m.confirm_from_sap(o, "4500012", items)
    assert confirmed is not None and confirmed.status is OrderStatus.CONFIRMED
    assert (confirmed.sap_sales_order, [li.sap_item for li in confirmed.lines]) == ("4500012", ["10", "20"])
    assert m.confirm_from_sap(confirmed, "4500012", items) is None


def delivery(o: m.Order, *quantities: str, status: DeliveryStatus = DeliveryStatus.SHIPPED) -> Delivery:
    return Delivery(id=uuid.uuid4(), order_id=o.id, source=DeliverySource.SAP, status=status,
                    lines=tuple(DeliveryLine(li.id, D(q)) for li, q in zip(o.lines, quantities, strict=False)
                                if D(q)))


def test_shipped_then_delivered_from_goods_issued_deliveries() -> None:
    o = order(contract(), ("L1", "10"), ("L2", "2"))
    assert m.status_from_deliveries(o, [delivery(o, "10", "2", status=DeliveryStatus.PLANNED)]) is None
    first = delivery(o, "4", "0")
    assert m.status_from_deliveries(o, [first]) is OrderStatus.SHIPPED
    assert m.status_from_deliveries(o, [first, delivery(o, "6", "1")]) is OrderStatus.SHIPPED
    assert m.status_from_deliveries(o, [first, delivery(o, "6", "2")]) is OrderStatus.DELIVERED
    assert m.shipped_quantities([first, delivery(o, "6", "2")]) == {o.lines[0].id: D(10), o.lines[1].id: D(2)}


def test_a_manual_delivery_never_exceeds_the_order() -> None:
    o = order(contract(), ("L1", "10"), status=OrderStatus.CONFIRMED)
    m.check_manual_delivery(o, [DeliveryLine(o.lines[0].id, D(6))], [delivery(o, "4")])
    with pytest.raises(Conflict) as err:
        m.check_manual_delivery(o, [DeliveryLine(o.lines[0].id, D(7))], [delivery(o, "4")])
    assert err.value.reason == "DELIVERY_QUANTITY_EXCEEDED"
    with pytest.raises(InvalidArgument):
        m.check_manual_delivery(o, [DeliveryLine(uuid.uuid4(), D(1))], [])
    with pytest.raises(Conflict) as err:
        m.check_manual_delivery(replace(o, status=OrderStatus.CANCELLED), [DeliveryLine(o.lines[0].id, D(1))], [])
    assert err.value.reason == "ORDER_NOT_DELIVERABLE"


def test_a_quantity_whose_price_overflows_is_refused_before_the_cap_is_checked() -> None:
    # 10^14 of a 1000.00 line (no net amount) and of a net-priced line: refused as too large, not a crash
    for c in (contract(lines=(ContractLine("L1", "Valve", "", D("100"), "pcs", D("1000.00"), D("0")),)),
              contract()):
        with pytest.raises(InvalidArgument) as too_large:
            m.price_lines(c, [RequestedLine("L1", D("100000000000000"))])
        assert too_large.value.violations[0].field == "lines[0].quantity"
