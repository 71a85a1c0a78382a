"""Bearer-token authentication, and the signed principal forwarded to services."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from crmkit.auth import PRINCIPAL_METADATA_KEY, Principal
from crmkit.errors import Unauthenticated

_bearer = HTTPBearer(auto_error=False, description="An access token from `POST /api/v1/auth/token` "
                     "(or `make token` in development).")


@dataclass(frozen=True)
class Caller:
    """The authenticated caller of this request, and the gRPC metadata that carries them."""

    principal: Principal
    metadata: tuple[tuple[str, str], ...]


async def authenticated(request: Request,
                        credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> Caller:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthenticated("this route requires an Authorization: Bearer <access token> header",
                              reason="MISSING_TOKEN")
    state = request.app.state
    principal = state.token_verifier.verify(credentials.credentials)
    request.state.principal = principal
    return Caller(principal, ((PRINCIPAL_METADATA_KEY, state.principal_signer.sign(principal)),))
