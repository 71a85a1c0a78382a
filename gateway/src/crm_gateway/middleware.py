"""HTTP concerns applied to every request before routing: body size and content type limits,
text no backend can store, RED metrics per route template, and the trace id on every response."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl

from starlette.datastructures import Headers, MutableHeaders
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from crm_gateway.problems import internal_error, problem
from crmkit import metrics
from crmkit.errors import FieldViolation
from crmkit.telemetry import current_trace_id

_BODY_METHODS = {"POST", "PUT", "PATCH"}
_JSON_TYPES = ("application/json", "application/merge-patch+json")
_FORM = "application/x-www-form-urlencoded"
# OAuth 2.0 endpoints take form bodies too (RFC 6749 §4, RFC 7009).
FORM_PATHS = frozenset({"/api/v1/auth/token", "/api/v1/auth/revoke"})
# R-CUS-03: the import upload is a file (multipart/form-data), the only one under /api.
_MULTIPART = "multipart/form-data"
MULTIPART_PATHS = frozenset({"/api/v1/imports"})
# R-CUS-03: the chunks of a resumable import upload (PUT …/uploads/{id}) are raw bytes.
_OCTETS = "application/octet-stream"
UPLOAD_CHUNK_PREFIX = "/api/v1/imports/uploads/"
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


class ContentType:
    """415 for an /api body that is not JSON (or the form, multipart or empty body a path allows)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in _BODY_METHODS and scope["path"].startswith("/api/"):
            refusal = _refuse_content_type(scope["path"], Headers(scope=scope))
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _refuse_content_type(path: str, headers: Headers) -> Response | None:
    media = headers.get("content-type", "").split(";")[0].strip().lower()
    empty = headers.get("content-length", "0") == "0" and "transfer-encoding" not in headers
    oauth = path in FORM_PATHS and (media == _FORM or (not media and empty))
    upload = (path in MULTIPART_PATHS and media == _MULTIPART) or \
        (path.startswith(UPLOAD_CHUNK_PREFIX) and media == _OCTETS)
    # Actions such as /commit or /won carry no body; the route's schema decides if one is due.
    bodyless = not media and empty
    if media in _JSON_TYPES or oauth or upload or bodyless:
        return None
    return problem(415, f"send the body as application/json, not {media or 'no content type'}",
                   reason="UNSUPPORTED_MEDIA_TYPE", instance=path)


# A JSON body can only carry a NUL or a lone surrogate as a \\u escape; most bodies have none, so
# only those that match are parsed a second time.
_SUSPECT_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")
MAX_NAMED_FIELDS = 20
_UNSTORABLE = "contains a NUL character or an unpaired surrogate, which text may not hold"


def unstorable(text: str) -> bool:
    """NUL (PostgreSQL text refuses it) or a lone surrogate (not UTF-8: protobuf refuses it)."""
    if "\x00" in text:
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _unstorable_fields(value: Any, at: str) -> Iterator[str]:
    if isinstance(value, str):
        if unstorable(value):
            yield at
    elif isinstance(value, dict):
        for key, item in value.items():
            name = f"{at}.{key}" if at else str(key)
            if unstorable(key):
                yield at or "body"
            else:
                yield from _unstorable_fields(item, name)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _unstorable_fields(item, f"{at}.{index}" if at else str(index))


def _unstorable_pairs(encoded: str) -> Iterator[str]:
    for name, value in parse_qsl(encoded, keep_blank_values=True):
        if unstorable(name) or unstorable(value):
            yield name if not unstorable(name) else "query"


class TextCheck:
    """422 naming the field for text that no service can store, in the path, the query, a JSON or
    a form body: one check for every route (the sign-in form included) instead of one per field.
    Bodies arrive whole (BodyLimit reads them first)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return
        fields = ["path"] if unstorable(scope["path"]) else []
        fields += _unstorable_pairs(scope.get("query_string", b"").decode("latin-1"))
        body = b""
        if scope["method"] in _BODY_METHODS:
            message = await receive()
            body = message.get("body", b"")
            while message.get("more_body", False):
                message = await receive()
                body += message.get("body", b"")
            fields += _unstorable_body(Headers(scope=scope), body)
        if fields:
            shown = sorted(set(fields))[:MAX_NAMED_FIELDS]
            violations = [FieldViolation(name, _UNSTORABLE) for name in shown]
            response = problem(422, f"the request is not valid: {', '.join(shown)} {_UNSTORABLE}",
                               reason="INVALID_ARGUMENT", instance=scope["path"], violations=violations)
            await response(scope, receive, send)
            return
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay if scope["method"] in _BODY_METHODS else receive, send)


def _unstorable_body(headers: Headers, body: bytes) -> list[str]:
    media = headers.get("content-type", "").split(";")[0].strip().lower()
    if media == _FORM:
        return list(_unstorable_pairs(body.decode("utf-8", "replace")))
    if media in _JSON_TYPES and _SUSPECT_ESCAPE.search(body):
        try:
            document = json.loads(body)
        except ValueError:
            return []  # FastAPI answers malformed JSON (400)
        return list(_unstorable_fields(document, ""))
    return []


class Observe:
    """RED metrics per route template, rate-limit headers, X-Trace-Id on every response, denied
    answers reported as events, and a problem+json 500 for an unhandled error (counted too).

    Plain ASGI rather than BaseHTTPMiddleware: no extra task and body copy per request, and
    streamed responses (Server-Sent Events) pass straight through."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        state: dict[str, object] = scope.setdefault("state", {})
        status = 500
        response_started = False

        async def observed_send(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status = message["status"]
                headers = MutableHeaders(scope=message)
                rate_limit_headers = state.get("rate_limit_headers")
                if isinstance(rate_limit_headers, dict):
                    headers.update(rate_limit_headers)
                trace_id = current_trace_id()
                if trace_id:
                    headers["X-Trace-Id"] = trace_id
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        except Exception:
            if response_started:
                raise  # half an answer is out; the server closes the connection
            # Answered here, not by Starlette's ServerErrorMiddleware (outside this one), so a 500
            # is counted in the metrics and carries X-Trace-Id like every other response.
            await internal_error(Request(scope))(scope, receive, observed_send)
        finally:
            self._record(scope, state, status, time.perf_counter() - started)

    @staticmethod
    def _record(scope: Scope, state: dict[str, object], status: int, seconds: float) -> None:
        template = getattr(scope.get("route"), "path", "unmatched")
        method = scope["method"]
        metrics.HTTP_REQUESTS.labels(template, method, str(status)).inc()
        metrics.HTTP_LATENCY.labels(template, method).observe(seconds)
        if status in _DENIED and scope["path"].startswith("/api/") and template not in _NOT_AUDITED:
            reporter = getattr(scope["app"].state, "denials", None)
            if reporter is not None:
                principal = state.get("principal")
                reporter.report(actor=getattr(principal, "subject", ""), method=method, path=template,
                                status=status, reason=str(state.get("problem_reason", "") or ""))
