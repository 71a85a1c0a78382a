"""HTTP concerns applied to every request before routing: body size and content type limits,
RED metrics per route template, and the trace id on every response."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from crm_gateway.problems import problem
from crmkit import metrics
from crmkit.telemetry import current_trace_id

_BODY_METHODS = {"POST", "PUT", "PATCH"}
_JSON_TYPES = ("application/json", "application/merge-patch+json")


class _TooLarge(Exception):
    pass


class BodyLimit:
    """Rejects bodies over the limit with 413, whether or not Content-Length was declared."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(scope, receive, send)
            return
        received = 0
        started = False

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise _TooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited, tracking_send)
        except _TooLarge:
            if not started:
                await self._reject(scope, receive, send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem(413, f"the body is larger than {self.max_bytes} bytes", reason="PAYLOAD_TOO_LARGE",
                           instance=scope["path"])
        await response(scope, receive, send)


async def content_type(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    if request.method in _BODY_METHODS and request.url.path.startswith("/api/"):
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media not in _JSON_TYPES:
            return problem(415, f"send the body as application/json, not {media or 'no content type'}",
                           reason="UNSUPPORTED_MEDIA_TYPE", instance=request.url.path)
    return await call_next(request)


async def observe(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    started = time.perf_counter()
    response = await call_next(request)
    route = request.scope.get("route")
    template = getattr(route, "path", "unmatched")
    metrics.HTTP_REQUESTS.labels(template, request.method, str(response.status_code)).inc()
    metrics.HTTP_LATENCY.labels(template, request.method).observe(time.perf_counter() - started)
    trace_id = current_trace_id()
    if trace_id:
        response.headers["X-Trace-Id"] = trace_id
    return response
