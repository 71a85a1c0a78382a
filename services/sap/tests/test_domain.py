"""Pure rules: references that fit SAP's fields, payloads, backoff, drift, wire values."""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal

from crm_sap.adapters.odata import (
    alpha_out,
    datetimeoffset_literal,
    format_date,
    key_segment,
    parse_batch_response,
    parse_datetime,
    parse_time,
    string_literal,
)
from crm_sap.domain.model import (
    CustomerCopy,
    OrderCopy,
    OrderLineCopy,
    SapDefaults,
    backoff,
    business_partner_create,
    business_partner_reference,
    drift,
    sales_order_create,
    sales_order_reference,
    split_name,
)


def test_references_fit_their_sap_fields_and_are_stable() -> None:
    cid = "01930000-0000-7000-8000-0000000000a1"
    ref = business_partner_reference(cid)
    assert len(ref) == 20 and ref == ref.upper() and ref == business_partner_reference(cid)
    assert ref != business_partner_reference("01930000-0000-7000-8000-0000000000a2")
    assert sales_order_reference(cid) == "019300000000700080000000000000A1"  # 32 of PurchaseOrderByCustomer's 35


def test_business_partner_payload() -> None:
    copy = CustomerCopy("c1", "  Suzhou   Precision Valve Manufacturing Company Limited Group ", country="cn",
                        city="Suzhou", postal_code="215000", street="88 Xinghu Street")
    body = business_partner_create(copy, SapDefaults(sales_organization="1710"))
    assert (body["OrganizationBPName1"], body["OrganizationBPName2"]) == (
        "Suzhou Precision Valve Manufacturing Com", "pany Limited Group")
    assert body["SearchTerm1"] == "SUZHOU PRECISION VAL"
    assert body["to_BusinessPartnerAddress"]["results"][0]["Country"] == "CN"
    assert [r["BusinessPartnerRole"] for r in body["to_BusinessPartnerRole"]["results"]] == ["FLCU00", "FLCU01"]
    assert body["to_Customer"]["to_CustomerSalesArea"]["results"][0]["SalesOrganization"] == "1710"
    assert split_name("x" * 90) == ("x" * 40, "x" * 40)


def test_sales_order_payload_items_are_10_20_in_line_order() -> None:
    lines = (OrderLineCopy("l2", 2, "SEAL", "Seal kit", Decimal("3"), "EA", Decimal("50.00")),
             OrderLineCopy("l1", 1, "VALVE", "Valve DN50", Decimal("2"), "EA", Decimal("100.00")))
    order = OrderCopy("01930000-0000-7000-8000-0000000000f1", "SO-1", "c1", "CNY", dt.date(2026, 12, 15), lines)
    body = sales_order_create(order, "10100001", SapDefaults(), format_date=format_date)
    assert body["SoldToParty"] == "10100001" and body["RequestedDeliveryDate"] == "/Date(1797292800000)/"  # 20802 days
    assert [(i["SalesOrderItem"], i["Material"], i["RequestedQuantity"]) for i in body["to_Item"]["results"]] == [
        ("10", "VALVE", "2"), ("20", "SEAL", "3")]
    assert body["to_Item"]["results"][0]["to_PricingElement"]["results"][0] == {
        "ConditionType": "PPR0", "ConditionRateValue": "100.00", "ConditionCurrency": "CNY"}
    assert order.item_numbers() == {"l2": "20", "l1": "10"}


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    rand = random.Random(3)
    delays = [backoff(n, base=5, cap=600, rand=rand) for n in range(1, 12)]
    for n, delay in enumerate(delays, start=1):
        ceiling = min(600, 5 * 2 ** (n - 1))
        assert ceiling / 2 <= delay <= ceiling
    assert delays[-1] <= 600


def test_drift_ignores_case_and_spacing_only() -> None:
    assert drift({"CityName": "Suzhou", "StreetName": "88  Xinghu St"}, {"CityName": "SUZHOU",
                                                                          "StreetName": "88 Xinghu St"}) == []
    [d] = drift({"OrganizationBPName1": "Acme"}, {"OrganizationBPName1": "Acme Old"})
    assert (d.field, d.crm, d.sap) == ("OrganizationBPName1", "Acme", "Acme Old")


def test_wire_values() -> None:
    assert parse_datetime("/Date(1552895997855+0000)/") == dt.datetime(2019, 3, 18, 7, 59, 57, 855000, tzinfo=dt.UTC)
    assert parse_datetime("/Date(1552867200000)/") == dt.datetime(2019, 3, 18, tzinfo=dt.UTC)
    assert parse_time("PT10H06M00S") == dt.timedelta(hours=10, minutes=6)
    assert datetimeoffset_literal(dt.datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=dt.UTC)) == \
        "datetimeoffset'2026-01-02T03:04:05.0000060Z'"
    assert string_literal("O'Neil") == "'O''Neil'"
    assert key_segment(("SalesOrder", "164"), ("SalesOrderItem", "10")) == "(SalesOrder='164',SalesOrderItem='10')"
    assert (alpha_out("0000000164"), alpha_out("000010"), alpha_out("ABC"), alpha_out("0")) == ("164", "10", "ABC", "0")


def test_batch_response_is_flattened() -> None:
    body = (b"--b\r\nContent-Type: multipart/mixed; boundary=cs\r\n\r\n"
            b"--cs\r\nContent-Type: application/http\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n\r\n"
            b"--cs\r\nContent-Type: application/http\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n\r\n--cs--\r\n"
            b"--b\r\nContent-Type: application/http\r\n\r\nHTTP/1.1 400 Bad Request\r\ncontent-type: application/json"
            b"\r\n\r\n{\"error\":{}}\r\n--b--\r\n")
    replies = parse_batch_response("multipart/mixed; boundary=b", body)
    assert [r.status for r in replies] == [204, 204, 400]
    assert replies[2].body == b'{"error":{}}'


def test_missing_properties_names_what_a_system_lacks() -> None:
    from crm_sap.adapters.odata import missing_properties, parse_metadata
    from crm_sap_simulator.schema import SERVICES, edmx

    schema = parse_metadata(edmx(SERVICES["API_SALES_ORDER_SRV"]).encode())
    assert missing_properties(schema, {"A_SalesOrder": ["SalesOrder", "to_Item", "Nope"], "A_Nope": ["X"]}) == [
        "A_SalesOrder.Nope", "A_Nope"]
