"""Opaque keyset cursors: a round trip, and every way a cursor can be wrong is a 4xx."""

from __future__ import annotations

import base64
import datetime as dt
import json

import pytest

from crmkit.errors import InvalidArgument
from crmkit.pagination import (
    DEFAULT_PAGE_SIZE,
    MAX_PAGE_SIZE,
    Cursor,
    decode_cursor,
    encode_cursor,
    page_size,
)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.mark.parametrize("values", [
    ["2026-01-02T03:04:05+00:00", "0190c0de-0000-7000-8000-000000000001"],
    ["迈瑞配件 / 华东", 42, None, 1.5, True],
    [],
])
def test_round_trip(values: list[object]) -> None:
    token = encode_cursor("created_at", values)
    assert "=" not in token and "+" not in token and "/" not in token  # url-safe, unpadded
    assert decode_cursor(token, "created_at") == Cursor(sort="created_at", values=values)


def test_non_json_values_are_encoded_as_text() -> None:
    when = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    cursor = decode_cursor(encode_cursor("-updated_at", [when]), "-updated_at")
    assert cursor is not None and cursor.values == [str(when)]


def test_empty_token_is_first_page() -> None:
    assert decode_cursor("", "name") is None


def test_cursor_of_another_sort_is_rejected() -> None:
    token = encode_cursor("name", ["Acme"])
    with pytest.raises(InvalidArgument) as err:
        decode_cursor(token, "-name")
    assert [v.field for v in err.value.violations] == ["cursor"]
    assert "'name'" in err.value.violations[0].description


@pytest.mark.parametrize("token", [
    "not a cursor!",
    "%%%%",
    "a",
    _b64(b"\xff\xfe\x00garbage"),
    _b64(b"[1, 2]"),
    _b64(b'"just a string"'),
    _b64(b"42"),
    _b64(json.dumps({"s": "name"}).encode()),
    _b64(json.dumps({"v": [1]}).encode()),
    _b64(json.dumps({"s": "name", "v": 5}).encode()),
    _b64(json.dumps({"s": "name", "v": None}).encode()),
])
def test_garbage_is_invalid_argument(token: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        decode_cursor(token, "name")
    assert err.value.reason in {"INVALID_ARGUMENT", "INVALID_CURSOR"}
    assert [v.field for v in err.value.violations] == ["cursor"]


@pytest.mark.parametrize(("requested", "expected"), [
    (0, DEFAULT_PAGE_SIZE), (1, 1), (DEFAULT_PAGE_SIZE, DEFAULT_PAGE_SIZE),
    (MAX_PAGE_SIZE, MAX_PAGE_SIZE),
])
def test_page_size_within_bounds(requested: int, expected: int) -> None:
    assert page_size(requested) == expected


@pytest.mark.parametrize("requested", [-1, -1000, MAX_PAGE_SIZE + 1, 10**9])
def test_page_size_out_of_bounds(requested: int) -> None:
    with pytest.raises(InvalidArgument) as err:
        page_size(requested)
    assert [v.field for v in err.value.violations] == ["limit"]
