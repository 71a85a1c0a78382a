"""Opaque cursors for keyset pagination.

A cursor is the sort key of the last row served plus the sort it belongs to; a cursor from a
different sort, or one that does not decode, is a client error, never a silent restart.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from crmkit.errors import FieldViolation, InvalidArgument

MAX_PAGE_SIZE = 200
DEFAULT_PAGE_SIZE = 50


@dataclass(frozen=True)
class Cursor:
    sort: str
    values: list[Any]


# Converters for `decode_cursor(types=...)`: each refuses (ValueError) a value a cursor this API
# issued could not hold, before it reaches SQL.
def text_key(value: Any) -> str:
    if not isinstance(value, str) or "\x00" in value:
        raise ValueError("not a text sort key")
    return value


def bigint(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not -(2**63) <= value < 2**63:
        raise ValueError("not a 64-bit integer sort key")
    return value


def aware_datetime(value: Any) -> dt.datetime:
    moment = dt.datetime.fromisoformat(text_key(value))
    if moment.tzinfo is None:
        raise ValueError("a time sort key has a UTC offset")
    return moment


def uuid_key(value: Any) -> uuid.UUID:
    return uuid.UUID(text_key(value))


# The same checks for repositories that take a cursor's values as the strings they were issued as.
def time_text(value: Any) -> str:
    aware_datetime(value)
    return str(value)


def uuid_text(value: Any) -> str:
    uuid_key(value)
    return str(value)


def encode_cursor(sort: str, values: list[Any]) -> str:
    raw = json.dumps({"s": sort, "v": values}, separators=(",", ":"), default=str).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(token: str, sort: str, types: tuple[Callable[[Any], Any], ...] | None = None) -> Cursor | None:
    """The cursor `token` of `sort`, or None without one. With `types` (one converter per sort key,
    e.g. (datetime.fromisoformat, str, uuid.UUID)) its values come back converted, and a cursor
    whose values do not fit them (edited by hand) is refused like any cursor this API did not issue."""
    if not token:
        return None
    try:
        padded = token + "=" * (-len(token) % 4)
        doc = json.loads(base64.urlsafe_b64decode(padded.encode()))
        cursor = Cursor(sort=doc["s"], values=list(doc["v"]))
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise invalid_cursor("is not a cursor this API issued") from None
    if cursor.sort != sort:
        raise invalid_cursor(f"belongs to sort {cursor.sort!r}, not {sort!r}: restart without a cursor")
    if types is not None:
        if len(cursor.values) != len(types) or any(isinstance(v, (dict, list)) for v in cursor.values):
            raise invalid_cursor("is not a cursor this API issued")
        try:
            return Cursor(sort, [convert(value) for convert, value in zip(types, cursor.values, strict=True)])
        except (ValueError, TypeError, AttributeError, ArithmeticError):
            raise invalid_cursor("is not a cursor this API issued") from None
    return cursor


def invalid_cursor(why: str) -> InvalidArgument:
    return InvalidArgument(f"cursor: {why}", reason="INVALID_CURSOR", violations=[FieldViolation("cursor", why)])


def page_size(requested: int) -> int:
    if requested < 0:
        raise InvalidArgument.of("limit", "must not be negative")
    if requested > MAX_PAGE_SIZE:
        raise InvalidArgument.of("limit", f"must be at most {MAX_PAGE_SIZE}")
    return requested or DEFAULT_PAGE_SIZE
