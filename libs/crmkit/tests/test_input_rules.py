"""Rules every service and the gateway share for input that would otherwise crash a handler."""

from __future__ import annotations

from decimal import Decimal

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from crm.customers.v1 import customers_pb2
from crmkit import errors, money
from crmkit.grpc.interceptors import refuse_nul_text
from crmkit.grpc.status import to_status_details


def test_a_line_total_reaching_the_maximum_amount_is_an_invalid_argument():
    assert money.line_total(Decimal("3"), Decimal("33.335")) == Decimal("100.005")
    with pytest.raises(errors.InvalidArgument) as caught:
        money.line_total(Decimal("999999999999999"), Decimal("999999999999999"), "lines[0].unit_price")
    assert caught.value.violations[0].field == "lines[0].unit_price"
    with pytest.raises(errors.InvalidArgument):
        money.bounded_total([Decimal("6e14"), Decimal("4e14")])
    assert money.bounded_total([Decimal("6e14"), Decimal("3e14")]) == Decimal("9e14")


def test_currencies_are_iso_4217_codes():
    assert money.check_currency("CNY") == "CNY"
    assert money.is_currency("EUR") and money.is_currency("JPY")
    for code in ("ZZZ", "cny", "XXX", "", "CNY "):
        assert not money.is_currency(code)
    with pytest.raises(errors.InvalidArgument):
        money.check_currency("ABC")


def test_a_currency_from_a_client_is_trimmed_and_upper_cased_then_checked():
    assert money.parse_currency(" cny ") == "CNY"
    for code in ("ZZZ", "", "C N", "€"):
        with pytest.raises(errors.InvalidArgument) as caught:
            money.parse_currency(code, "amount.currency")
        assert caught.value.violations[0].field == "amount.currency"


def test_a_nul_anywhere_in_a_request_is_refused_naming_the_field():
    request = customers_pb2.CreateCustomerRequest()
    request.customer.name = "Acme"
    request.customer.tags.extend(["ok", "b\x00d"])
    with pytest.raises(errors.InvalidArgument) as caught:
        refuse_nul_text(request)
    assert caught.value.violations[0].field == "customer.tags"
    request.customer.tags[1] = "bad"
    refuse_nul_text(request)


def test_status_details_never_carry_huge_input():
    huge = "1" * 10_000
    error = errors.InvalidArgument(f"phone {huge} is wrong",
                                   violations=[errors.FieldViolation(f"tags[{i}]", huge) for i in range(50)])
    code, details = to_status_details(error)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert len(details) < 8 * 1024  # gRPC's default limit on a call's metadata
    status = status_pb2.Status.FromString(details)
    bad = error_details_pb2.BadRequest()
    status.details[1].Unpack(bad)
    assert len(bad.field_violations) == errors.MAX_VIOLATIONS
    assert len(status.message) < 1100


@pytest.mark.parametrize("values", [[], ["2026-01-01T00:00:00+00:00", "customer"], [1, 2, 3],
                                    ["yesterday", "customer", "3f1c8f4e-6d7a-4c1e-9a55-1d2b3c4d5e6f"],
                                    ["2026-01-01T00:00:00+00:00", "customer", "not-a-uuid"],
                                    ["2026-01-01T00:00:00+00:00", {"x": 1}, 5]])
def test_a_tampered_cursor_is_an_invalid_cursor(values):
    import datetime as dt
    import uuid

    from crmkit.pagination import decode_cursor, encode_cursor

    types = (dt.datetime.fromisoformat, str, uuid.UUID)
    with pytest.raises(errors.InvalidArgument) as caught:
        decode_cursor(encode_cursor("updated", values), "updated", types)
    assert caught.value.reason == "INVALID_CURSOR"
    good = decode_cursor(encode_cursor("updated", ["2026-01-01T00:00:00+00:00", "c", str(uuid.UUID(int=1))]),
                         "updated", types)
    assert good is not None and good.values[2] == uuid.UUID(int=1)


@pytest.mark.parametrize("value", ["7", 2**63, True, None, 1.5, "a\x00b"])
def test_cursor_keys_refuse_what_sql_would_choke_on(value):
    from crmkit.pagination import bigint, decode_cursor, encode_cursor, text_key

    with pytest.raises(errors.InvalidArgument):
        decode_cursor(encode_cursor("-sequence", [value]), "-sequence", (bigint,))
    if value != "7":
        with pytest.raises(errors.InvalidArgument):
            decode_cursor(encode_cursor("name", [value]), "name", (text_key,))
    assert decode_cursor(encode_cursor("-sequence", [2**62]), "-sequence", (bigint,)).values == [2**62]
