"""Opaque cursors for keyset pagination.

A cursor is the sort key of the last row served plus the sort it belongs to; a cursor from a
different sort, or one that does not decode, is a client error, never a silent restart.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from crmkit.errors import FieldViolation, InvalidArgument

MAX_PAGE_SIZE = 200
DEFAULT_PAGE_SIZE = 50


@dataclass(frozen=True)
class Cursor:
    sort: str
    values: list[Any]


def encode_cursor(sort: str, values: list[Any]) -> str:
    raw = json.dumps({"s": sort, "v": values}, separators=(",", ":"), default=str).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode_cursor(token: str, sort: str) -> Cursor | None:
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
    return cursor


def invalid_cursor(why: str) -> InvalidArgument:
    return InvalidArgument(f"cursor: {why}", reason="INVALID_CURSOR", violations=[FieldViolation("cursor", why)])


def page_size(requested: int) -> int:
    if requested < 0:
        raise InvalidArgument.of("limit", "must not be negative")
    if requested > MAX_PAGE_SIZE:
        raise InvalidArgument.of("limit", f"must be at most {MAX_PAGE_SIZE}")
    return requested or DEFAULT_PAGE_SIZE
