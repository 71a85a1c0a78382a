"""Checking a record another service owns before a write names it (R-SEC-02).

A write that names a customer, an opportunity, a contract, … asks the owner, over a
`Runtime.caller_channel`, for that record *as the caller*: the owner applies the caller's data
scope, so a record out of scope and one that does not exist answer alike, as "not found", and the
answer is current (an event-fed copy may lag behind a record created a moment ago)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import grpc

from crmkit.errors import NotFound, Unavailable
from crmkit.grpc.status import from_rpc_error

Request = TypeVar("Request")
Response = TypeVar("Response")


async def look_up(call: Callable[[Request], Awaitable[Response]], request: Request, *, what: str) -> Response:
    """`call(request)` on the owning service; "not found" and "not yours" both become
    `NotFound(f"{what} not found")`, an owner out of reach becomes `Unavailable` (503)."""
    try:
        return await call(request)
    except grpc.aio.AioRpcError as exc:
        if exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.PERMISSION_DENIED,
                          grpc.StatusCode.INVALID_ARGUMENT):
            raise NotFound(f"{what} not found", reason="REFERENCE_NOT_FOUND", metadata={"reference": what}) from exc
        if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
            raise Unavailable(f"the service that owns the {what} is out of reach; retry shortly",
                              reason="REFERENCE_UNAVAILABLE") from exc
        raise from_rpc_error(exc) from exc
