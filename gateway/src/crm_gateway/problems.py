"""RFC 9457 problem details for every error the gateway returns.

Each problem has a stable `type` derived from the error's reason (e.g. /problems/duplicate-tax-id,
listed in docs/problems.md), the HTTP status, a human `detail` that says what is wrong, the field
`errors` when there are any, and the `trace_id` to quote to operators.
"""

from __future__ import annotations

import logging
from typing import Any

import grpc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from crmkit import errors
from crmkit.grpc.status import from_rpc_error
from crmkit.telemetry import current_trace_id

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"

_STATUS: list[tuple[type[errors.CrmError], int]] = [
    (errors.InvalidArgument, 422),
    (errors.NotFound, 404),
    (errors.AlreadyExists, 409),
    (errors.Conflict, 409),
    (errors.StaleVersion, 412),
    (errors.PermissionDenied, 403),
    (errors.Unauthenticated, 401),
    (errors.Unavailable, 503),
]
# Reasons whose status differs from their error class's.
_STATUS_BY_REASON = {"INVALID_CURSOR": 400, "MALFORMED_REQUEST": 400, "DEADLINE_EXCEEDED": 504,
                     "PAYLOAD_TOO_LARGE": 413, "UNSUPPORTED_MEDIA_TYPE": 415, "IDEMPOTENCY_KEY_IN_USE": 409,
                     "IDEMPOTENCY_KEY_REUSED": 422, "PRECONDITION_REQUIRED": 428,
                     "RATE_LIMITED": 429}
_TITLES = {400: "Bad request", 401: "Authentication required", 403: "Forbidden", 404: "Not found",
           405: "Method not allowed", 409: "Conflict", 412: "Precondition failed", 413: "Payload too large",
           415: "Unsupported media type", 422: "Invalid request", 428: "Precondition required",
           429: "Too many requests", 500: "Internal error", 503: "Service unavailable", 504: "Gateway timeout"}


class FieldError(BaseModel):
    field: str
    message: str


class Problem(BaseModel):
    """RFC 9457 problem details, as every error is answered (docs/problems.md)."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="Stable identifier of the problem, e.g. /problems/duplicate-tax-id")
    title: str
    status: int
    detail: str = Field(description="What is wrong, for a person")
    reason: str = Field(description="`type` as an UPPER_SNAKE code")
    instance: str | None = None
    errors: list[FieldError] | None = Field(None, description="Every field at fault (at most 20)")
    errors_omitted: int | None = Field(None, description="How many more fields are at fault than `errors` lists")
    trace_id: str = Field(description="Quote it to operators: it finds the request in logs and traces")


def _documented(status: int, description: str) -> dict[str, Any]:
    return {"model": Problem, "description": description, "content": {PROBLEM_JSON: {}}}


# What every /api operation may answer besides success, for the OpenAPI document.
API_ERRORS: dict[int | str, dict[str, Any]] = {
    400: _documented(400, "Malformed request: not JSON, or a cursor this API did not issue"),
    401: _documented(401, "Missing, expired or invalid access token"),
    403: _documented(403, "Not allowed for this caller"),
    404: _documented(404, "No such record within the caller's data scope"),
    409: _documented(409, "Conflicts with existing data or a request in progress"),
    412: _documented(412, "If-Match does not match the current ETag"),
    413: _documented(413, "Body too large"),
    415: _documented(415, "Body is not JSON"),
    422: _documented(422, "A field is missing, unknown or breaks a rule; see `errors`"),
    429: _documented(429, "Over the caller's rate limit; retry after `Retry-After` seconds"),
    503: _documented(503, "A backing service is unavailable; nothing was changed"),
}


def status_of(error: errors.CrmError) -> int:
    if error.reason in _STATUS_BY_REASON:
        return _STATUS_BY_REASON[error.reason]
    for cls, status in _STATUS:
        if isinstance(error, cls):
            return status
    return 500


# A problem never echoes huge input back (a 10,000-character phone, 50 long tags): texts are
# clipped and at most MAX_VIOLATIONS fields are named.
MAX_DETAIL_CHARS = 1000
MAX_TEXT_CHARS = 200
MAX_VIOLATIONS = 20


def clip(text: str, limit: int = MAX_TEXT_CHARS) -> str:
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text) - limit} more characters)"


def problem(status: int, detail: str, *, reason: str, instance: str = "",
            violations: list[errors.FieldViolation] | None = None, extra: dict[str, Any] | None = None,
            headers: dict[str, str] | None = None) -> JSONResponse:
    body: dict[str, Any] = {
        "type": f"/problems/{reason.lower().replace('_', '-')}",
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "detail": clip(detail, MAX_DETAIL_CHARS),
        "reason": reason,
    }
    if instance:
        body["instance"] = clip(instance)
    if violations:
        body["errors"] = [{"field": clip(v.field), "message": clip(v.description)}
                          for v in violations[:MAX_VIOLATIONS]]
        if len(violations) > MAX_VIOLATIONS:
            body["errors_omitted"] = len(violations) - MAX_VIOLATIONS
    if extra:
        # An error's metadata adds members; it never replaces the standard ones (RFC 9457 §3.1).
        body.update({k: clip(v) if isinstance(v, str) else v
                     for k, v in extra.items() if k not in body and k != "trace_id"})
    body["trace_id"] = current_trace_id()
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def from_error(error: errors.CrmError, request: Request) -> JSONResponse:
    status = status_of(error)
    request.state.problem_reason = error.reason  # for the access-denied audit (middleware.observe)
    headers = {"WWW-Authenticate": 'Bearer error="invalid_token"'} if status == 401 else None
    return problem(status, error.message, reason=error.reason, instance=request.url.path,
                   violations=getattr(error, "violations", None), extra=dict(error.metadata) or None,
                   headers=headers)


def _location(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


_REQUIRED = "is required"


def _violations(issue: dict[str, Any], request: Request) -> list[errors.FieldViolation]:
    """A missing value reads "<field> is required"; a missing body names each field it must have."""
    loc = tuple(issue.get("loc", ()))
    if issue.get("type") != "missing":
        return [errors.FieldViolation(_location(loc), str(issue.get("msg", "")))]
    if loc == ("body",):
        return [errors.FieldViolation(name, _REQUIRED) for name in _required_body_fields(request)] or [
            errors.FieldViolation("body", "a JSON body is required")]
    return [errors.FieldViolation(_location(loc), _REQUIRED)]


def _required_body_fields(request: Request) -> list[str]:
    body_field = getattr(request.scope.get("route"), "body_field", None)
    model = body_field.field_info.annotation if body_field is not None else None
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return []
    return [field.alias or name for name, field in model.model_fields.items() if field.is_required()]


def _sentence(violation: errors.FieldViolation) -> str:
    field, description = clip(violation.field), clip(violation.description)
    return f"{field} {description}" if description == _REQUIRED else f"{field}: {description}"


def _allowed_methods(request: Request) -> list[str]:
    return [method for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
            if any(route.matches({**request.scope, "method": method})[0] == Match.FULL
                   for route in request.app.router.routes)]


def install(app: FastAPI) -> None:
    @app.exception_handler(errors.CrmError)
    async def crm_error(request: Request, exc: errors.CrmError) -> JSONResponse:
        return from_error(exc, request)

    @app.exception_handler(grpc.aio.AioRpcError)
    async def rpc_error(request: Request, exc: grpc.aio.AioRpcError) -> JSONResponse:
        error = from_rpc_error(exc)
        if status_of(error) >= 500:
            log.error("backend call failed", extra={"code": exc.code().name, "path": request.url.path})
        return from_error(error, request)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        issues = exc.errors()
        if any(i.get("type") == "json_invalid" for i in issues):
            return problem(400, "the body is not valid JSON", reason="MALFORMED_REQUEST", instance=request.url.path)
        violations = [v for issue in issues for v in _violations(issue, request)]
        summary = "; ".join(_sentence(v) for v in violations[:MAX_VIOLATIONS])
        return problem(422, f"the request is not valid: {summary}", reason="INVALID_ARGUMENT",
                       instance=request.url.path, violations=violations)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        reason = {404: "ROUTE_NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}.get(exc.status_code, "HTTP_ERROR")
        headers = getattr(exc, "headers", None)
        if exc.status_code == 405:
            # Starlette names only the methods of the first route matching the path; a path served
            # by several routes (GET and POST /customers) allows all of theirs.
            headers = (headers or {}) | {"Allow": ", ".join(_allowed_methods(request))}
        return problem(exc.status_code, str(exc.detail), reason=reason, instance=request.url.path,
                       headers=headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        return internal_error(request)


def internal_error(request: Request) -> JSONResponse:
    """The answer to a bug: logged with its traceback (call it from the `except` block)."""
    log.exception("unhandled error", extra={"path": request.url.path})
    return problem(500, "an internal error occurred; quote the trace id to support", reason="INTERNAL",
                   instance=request.url.path)
