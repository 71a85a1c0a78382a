"""Who is calling, what they may do, and how often: authentication (bearer access token or
X-API-Key), the revoked-token check, per-route permissions and per-principal rate limits. The
result is the signed principal forwarded to services in gRPC metadata."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from crm_gateway.permissions import allows, scope_of
from crmkit.auth import PRINCIPAL_METADATA_KEY, Principal
from crmkit.errors import CrmError, PermissionDenied, Unauthenticated

_bearer = HTTPBearer(auto_error=False, description="An access token from `POST /api/v1/auth/token` "
                     "(in development: `make token USER=<login>`).")
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False,
                        description="A partner system's API key (from `POST /api/v1/api-keys`).")


@dataclass(frozen=True)
class Caller:
    """The authenticated caller of this request, and the gRPC metadata that carries them."""

    principal: Principal
    metadata: tuple[tuple[str, str], ...]


class RateLimited(CrmError):
    """Too many requests from this principal (HTTP 429 with Retry-After)."""


def bearer_token(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


async def authenticate(request: Request) -> Principal:
    """The caller's principal, from the bearer token or the API key (once per request)."""
    known = getattr(request.state, "principal", None)
    if known is not None:
        return known
    state = request.app.state
    token = bearer_token(request)
    api_key = request.headers.get("x-api-key", "").strip()
    if token is None and api_key:
        token = await state.api_keys.access_token(api_key)
    if token is None:
        raise Unauthenticated("this route requires an Authorization: Bearer <access token> header "
                              "(or X-API-Key for partner systems)", reason="MISSING_TOKEN")
    principal: Principal = await state.keys.verify(token)
    if principal.token_id and principal.token_id in state.revoked:
        raise Unauthenticated("this access token was revoked; sign in again", reason="TOKEN_REVOKED")
    request.state.principal = principal
    return principal


async def authenticated(request: Request,
                        credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),
                        api_key: str | None = Depends(_api_key)) -> Caller:
    principal = await authenticate(request)
    state = request.app.state
    settings = state.settings
    limit = principal.rate_limit or (settings.client_rate_limit_per_minute if principal.kind == "client"
                                     else settings.rate_limit_per_minute)
    decision = state.rate_limiter.take(f"{principal.kind}:{principal.subject}", limit)
    request.state.rate_limit_headers = decision.headers()
    if not decision.allowed:
        raise RateLimited(f"more than {decision.limit} requests a minute; retry in {decision.retry_after} s",
                          reason="RATE_LIMITED")
    return Caller(principal, ((PRINCIPAL_METADATA_KEY, state.principal_signer.sign(principal)),))


def require(permission: str) -> Callable[..., Coroutine[Any, Any, Caller]]:
    """A dependency: the authenticated caller, refused with 403 without `permission`. ApiRoute
    documents the permission in OpenAPI (`x-permission`)."""

    async def permitted(caller: Caller = Depends(authenticated)) -> Caller:
        if not allows(caller.principal, permission):
            needed = (f"the permission {permission} (OAuth scope {scope_of(permission)})"
                      if caller.principal.kind == "client" else f"the permission {permission}")
            raise PermissionDenied(f"this needs {needed}", reason="PERMISSION_DENIED",
                                   metadata={"permission": permission})
        return caller

    permitted.permission = permission  # type: ignore[attr-defined]
    return permitted
