"""HTTP concerns applied to every request before routing: body size and content type limits,
RED metrics per route template, and the trace id on every response."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from crm_gateway.problems import internal_error, problem
from crmkit import metrics
from crmkit.telemetry import current_trace_id

_BODY_METHODS = {"POST", "PUT", "PATCH"}
_JSON_TYPES = ("application/json", "application/merge-patch+json")
_FORM = "application/x-www-form-urlencoded"
# OAuth 2.0 endpoints take form bodies too (RFC 6749 §4, RFC 7009).
FORM_PATHS = frozenset({"/api/v1/auth/token", "/api/v1/auth/revoke"})
# R-CUS-03: the import upload is a file (multipart/form-data), the only one under /api.
_MULTIPART = "multipart/form-data"
MULTIPART_PATHS = frozenset({"/api/v1/imports"})
# Actions without a body (commit, revert an import): an empty body needs no content type.
# Denied answers that become crm.identity.access.denied events; failed sign-ins are not among
# them: identity records those itself (crm.identity.signin.failed).
_DENIED = frozenset({401, 403, 429})
_NOT_AUDITED = frozenset({"/api/v1/auth/token"})


class BodyLimit:
    """Rejects bodies over the limit with 413, whether or not Content-Length was declared.

    The body is read, and counted, before the app runs and then handed to it whole: an
    exception raised from `receive` mid-request would reach the app's body parsing (FastAPI
    turns it into a 400) or an exception group of a BaseHTTPMiddleware (a 500), not this class.
    The limit bounds what is held in memory."""

    def __init__(self, app: ASGIApp, max_bytes: int, path_limits: dict[str, int] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        # Paths allowed a larger body (the import upload), exact match.
        self.path_limits = path_limits or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        limit = self.path_limits.get(scope["path"], self.max_bytes)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._reject(scope, receive, send, limit)
            return
        chunks: list[bytes] = []
        received = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client is gone; nobody to answer
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > limit:
                await self._reject(scope, receive, send, limit)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body, only a disconnect can come

        await self.app(scope, replay, send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        response = problem(413, f"the body is larger than {limit} bytes", reason="PAYLOAD_TOO_LARGE",
                           instance=scope["path"])
        await response(scope, receive, send)


async def content_type(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    if request.method in _BODY_METHODS and request.url.path.startswith("/api/"):
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        oauth = request.url.path in FORM_PATHS and (
            media == _FORM or (not media and request.headers.get("content-length", "0") == "0"))
        upload = request.url.path in MULTIPART_PATHS and media == _MULTIPART
        # Actions such as /commit or /won carry no body; the route's schema decides if one is due.
        bodyless = not media and request.headers.get("content-length", "0") == "0" \
            and "transfer-encoding" not in request.headers
        if media not in _JSON_TYPES and not oauth and not upload and not bodyless:
            return problem(415, f"send the body as application/json, not {media or 'no content type'}",
                           reason="UNSUPPORTED_MEDIA_TYPE", instance=request.url.path)
    return await call_next(request)


async def observe(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    started = time.perf_counter()
    try:
        response = await call_next(request)
    except Exception:
        # Answered here, not by Starlette's ServerErrorMiddleware (outside this middleware), so a
        # 500 is counted in the metrics and carries X-Trace-Id like every other response.
        response = internal_error(request)
    route = request.scope.get("route")
    template = getattr(route, "path", "unmatched")
    metrics.HTTP_REQUESTS.labels(template, request.method, str(response.status_code)).inc()
    metrics.HTTP_LATENCY.labels(template, request.method).observe(time.perf_counter() - started)
    state = request.state
    rate_limit_headers = getattr(state, "rate_limit_headers", None)
    if rate_limit_headers:
        response.headers.update(rate_limit_headers)
    if response.status_code in _DENIED and request.url.path.startswith("/api/") and template not in _NOT_AUDITED:
        reporter = getattr(request.app.state, "denials", None)
        if reporter is not None:
            principal = getattr(state, "principal", None)
            reporter.report(actor=principal.subject if principal is not None else "", method=request.method,
                            path=template, status=response.status_code,
                            reason=getattr(state, "problem_reason", "") or "")
    trace_id = current_trace_id()
    if trace_id:
        response.headers["X-Trace-Id"] = trace_id
    return response
