"""Signing in and out: the OAuth 2.0 token endpoint (RFC 6749), revocation (RFC 7009) and the
public keys tokens are signed with. These routes need no access token (revocation does)."""

from __future__ import annotations

import base64
import binascii
import json
import time
from typing import Any
from urllib.parse import parse_qsl, unquote

import grpc
import jwt
from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from crm.identity.v1 import identity_pb2 as pb
from crm_gateway.api_route import ApiRoute
from crm_gateway.auth import Caller, RateLimited, authenticated, bearer_token
from crm_gateway.problems import API_ERRORS, Problem, problem
from crm_gateway.routes.identity import identity_stub
from crmkit.errors import InvalidArgument, NotFound, PermissionDenied, Unauthenticated
from crmkit.grpc.status import from_rpc_error

router = APIRouter(prefix="/api/v1/auth", route_class=ApiRoute, tags=["auth"])
well_known = APIRouter(tags=["auth"])

_GRANTS = ("password", "client_credentials", "refresh_token")
_FAILED_SIGN_IN = "sign-in failed: the username or password is wrong, or the account is locked or disabled"
_BAD_REFRESH = "the refresh token is invalid, expired or revoked"
_BAD_CLIENT = "client authentication failed"
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_FORM = "application/x-www-form-urlencoded"


class TokenRequest(BaseModel):
    """The token request's fields; send them form-encoded (RFC 6749) or as JSON."""

    grant_type: str = Field(description="password, client_credentials or refresh_token")
    username: str | None = Field(None, description="password grant: the login")
    password: str | None = Field(None, description="password grant")
    client_id: str | None = Field(None, description="client_credentials grant (or HTTP Basic)")
    client_secret: str | None = Field(None, description="client_credentials grant (or HTTP Basic)")
    refresh_token: str | None = Field(None, description="refresh_token grant")
    scope: str | None = None


class TokenResponse(BaseModel):
    access_token: str
    token_type: str = "Bearer"  # noqa: S105 - the token type, no secret
    expires_in: int = Field(description="Seconds the access token is valid")
    refresh_token: str | None = Field(None, description="People only; exchange it for a new access token")
    scope: str | None = None


class OAuthProblem(Problem):
    error: str = Field(description="RFC 6749 error code: invalid_request, invalid_client, invalid_grant, "
                                   "unsupported_grant_type")
    error_description: str


class _OAuthError(Exception):
    def __init__(self, status: int, error: str, description: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(description)
        self.status, self.error, self.description, self.headers = status, error, description, headers


def _oauth_problem(request: Request, err: _OAuthError) -> JSONResponse:
    return problem(err.status, err.description, reason=err.error.upper(), instance=request.url.path,
                   extra={"error": err.error, "error_description": err.description},
                   headers=_NO_STORE | (err.headers or {}))


async def _params(request: Request) -> dict[str, str]:
    raw = await request.body()
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media == _FORM:
        try:
            pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError:
            raise _OAuthError(400, "invalid_request", "the body is not UTF-8") from None
        names = [k for k, _ in pairs]
        if len(names) != len(set(names)):
            raise _OAuthError(400, "invalid_request", "a parameter is repeated")
        return dict(pairs)
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise _OAuthError(400, "invalid_request", "the body is neither JSON nor form-encoded") from None
    if not isinstance(body, dict) or not all(isinstance(v, str) for v in body.values()):
        raise _OAuthError(400, "invalid_request", "the body must be an object of string parameters")
    return body


def _basic(request: Request) -> tuple[str, str] | None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, sep, secret = base64.b64decode(value.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise _OAuthError(401, "invalid_client", _BAD_CLIENT, {"WWW-Authenticate": 'Basic realm="crm"'}) from None
    if not sep:
        raise _OAuthError(401, "invalid_client", _BAD_CLIENT, {"WWW-Authenticate": 'Basic realm="crm"'})
    return unquote(user), unquote(secret)


def _grant(request: Request, params: dict[str, str]) -> tuple[pb.IssueTokenRequest, bool]:
    grant = params.get("grant_type", "")
    if not grant:
        raise _OAuthError(400, "invalid_request", "grant_type is required")
    if grant not in _GRANTS:
        raise _OAuthError(400, "unsupported_grant_type",
                          f"grant_type {grant!r} is not supported; use one of {', '.join(_GRANTS)}")

    def need(*names: str) -> None:
        missing = [n for n in names if not params.get(n)]
        if missing:
            raise _OAuthError(400, "invalid_request", f"{', '.join(missing)} required for grant_type {grant}")

    if grant == "password":
        need("username", "password")
        return pb.IssueTokenRequest(grant_type=grant, username=params["username"], password=params["password"]), False
    if grant == "refresh_token":
        need("refresh_token")
        return pb.IssueTokenRequest(grant_type=grant, refresh_token=params["refresh_token"]), False
    basic = _basic(request)
    if basic is not None and (params.get("client_id") or params.get("client_secret")):
        if params.get("client_id", basic[0]) != basic[0] or params.get("client_secret"):
            raise _OAuthError(400, "invalid_request", "send the client credentials once: HTTP Basic or the body")
    client_id, secret = basic or (params.get("client_id", ""), params.get("client_secret", ""))
    if not client_id or not secret:
        raise _OAuthError(400, "invalid_request", "client_id and client_secret required (body or HTTP Basic)")
    return pb.IssueTokenRequest(grant_type=grant, client_id=client_id, client_secret=secret), basic is not None


@router.post("/token", response_model=TokenResponse, summary="Sign in: exchange credentials for tokens",
             description="OAuth 2.0 token endpoint. Body form-encoded (`application/x-www-form-urlencoded`) "
                         "or JSON, with `grant_type` `password` (username, password), `client_credentials` "
                         "(client_id and client_secret, in the body or as HTTP Basic) or `refresh_token`. "
                         "Errors carry the RFC 6749 `error` code inside problem+json; a wrong password, an "
                         "unknown user and a locked account get the same answer.",
             openapi_extra={"requestBody": {"required": True, "content": {
                 _FORM: {"schema": TokenRequest.model_json_schema()},
                 "application/json": {"schema": TokenRequest.model_json_schema()}}}},
             responses={400: {"model": OAuthProblem, "description": "invalid_request or unsupported_grant_type",
                              "content": {"application/problem+json": {}}},
                        401: {"model": OAuthProblem, "description": "invalid_client or invalid_grant",
                              "content": {"application/problem+json": {}}},
                        429: API_ERRORS[429], 503: API_ERRORS[503]})
async def issue_token(request: Request) -> Response:
    _throttle_sign_in(request)
    try:
        message, basic = _grant(request, await _params(request))
        try:
            reply = await identity_stub(request).IssueToken(message)
        except grpc.aio.AioRpcError as exc:
            error = from_rpc_error(exc)
            if isinstance(error, Unauthenticated | PermissionDenied | NotFound):
                if message.grant_type == "client_credentials":
                    raise _OAuthError(401, "invalid_client", _BAD_CLIENT,
                                      {"WWW-Authenticate": 'Basic realm="crm"'} if basic else None) from None
                raise _OAuthError(401, "invalid_grant", _FAILED_SIGN_IN if message.grant_type == "password"
                                  else _BAD_REFRESH) from None
            if isinstance(error, InvalidArgument):
                raise _OAuthError(400, "invalid_request", error.message) from None
            raise error from None
    except _OAuthError as err:
        return _oauth_problem(request, err)
    body = TokenResponse(access_token=reply.access_token, expires_in=reply.expires_in,
                         refresh_token=reply.refresh_token or None, scope=reply.scope or None)
    return Response(body.model_dump_json(exclude_none=True), media_type="application/json", headers=_NO_STORE)


# ------------------------------------------------------------------ browser sessions (the console)

SESSION_COOKIE = "crm_refresh"
_SESSION_PATH = "/api/v1/auth"
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


class SessionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(min_length=1, max_length=200)
    password: str = Field(min_length=1, max_length=1000)


class SessionResponse(BaseModel):
    access_token: str = Field(description="Keep it in memory only; refresh it with POST /api/v1/auth/session/refresh")
    token_type: str = "Bearer"  # noqa: S105 - the token type, no secret
    expires_in: int = Field(description="Seconds the access token is valid")


_SESSION_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": OAuthProblem, "description": "invalid_grant: wrong credentials, or no live session",
          "content": {"application/problem+json": {}}},
    429: API_ERRORS[429], 503: API_ERRORS[503]}


def _secure(request: Request) -> bool:
    # Secure everywhere but plain-http loopback, where `make dev` runs without TLS.
    return not (request.url.scheme == "http" and request.url.hostname in _LOOPBACK)


def _set_session_cookie(request: Request, response: Response, refresh_token: str) -> None:
    max_age = request.app.state.settings.session_cookie_max_age_seconds
    response.set_cookie(SESSION_COOKIE, refresh_token, max_age=max_age, path=_SESSION_PATH, secure=_secure(request),
                        httponly=True, samesite="strict")


def _clear_session_cookie(request: Request, response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path=_SESSION_PATH, secure=_secure(request), httponly=True,
                           samesite="strict")


async def _session(request: Request, message: pb.IssueTokenRequest) -> Response:
    """Issues tokens for a browser: the access token in the body, the refresh token only in the
    HttpOnly cookie, out of reach of page scripts."""
    try:
        reply = await identity_stub(request).IssueToken(message)
    except grpc.aio.AioRpcError as exc:
        error = from_rpc_error(exc)
        if not isinstance(error, Unauthenticated | PermissionDenied | NotFound | InvalidArgument):
            raise error from None
        detail = _FAILED_SIGN_IN if message.grant_type == "password" else _BAD_REFRESH
        response = _oauth_problem(request, _OAuthError(401, "invalid_grant", detail))
        _clear_session_cookie(request, response)
        return response
    body = SessionResponse(access_token=reply.access_token, expires_in=reply.expires_in)
    response = Response(body.model_dump_json(), media_type="application/json", headers=_NO_STORE)
    _set_session_cookie(request, response, reply.refresh_token)
    return response


@router.post("/session", response_model=SessionResponse, summary="Browser sign-in: tokens with a session cookie",
             description="For the web console and other browser clients. Answers the access token (keep it in "
                         "memory) and sets the refresh token as an HttpOnly, Secure, SameSite=Strict cookie "
                         f"`{SESSION_COOKIE}` scoped to `{_SESSION_PATH}`, so no long-lived token is readable by "
                         "page scripts. Partner systems use `POST /api/v1/auth/token`.",
             responses=_SESSION_ERRORS)
async def sign_in_session(request: Request, body: SessionRequest) -> Response:
    _throttle_sign_in(request)
    return await _session(request, pb.IssueTokenRequest(grant_type="password", username=body.username,
                                                        password=body.password))


@router.post("/session/refresh", response_model=SessionResponse,
             summary="Browser session: a new access token from the session cookie",
             description=f"Reads the `{SESSION_COOKIE}` cookie set by `POST /api/v1/auth/session`, answers a new "
                         "access token and replaces the cookie (refresh tokens rotate; a replayed one ends the "
                         "session). No cookie, or a dead session: 401 `invalid_grant` and the cookie is cleared.",
             responses=_SESSION_ERRORS)
async def refresh_session(request: Request) -> Response:
    _throttle_sign_in(request)
    refresh_token = request.cookies.get(SESSION_COOKIE, "")
    if not refresh_token:
        response = _oauth_problem(request, _OAuthError(401, "invalid_grant", "no session: sign in"))
        _clear_session_cookie(request, response)
        return response
    return await _session(request, pb.IssueTokenRequest(grant_type="refresh_token", refresh_token=refresh_token))


@router.delete("/session", status_code=204, summary="Browser sign-out: end the session",
               description="Revokes the session of the cookie (its refresh tokens) and the access token of this "
                           "request, and clears the cookie.",
               responses={401: API_ERRORS[401], 429: API_ERRORS[429], 503: API_ERRORS[503]})
async def sign_out_session(request: Request, caller: Caller = Depends(authenticated)) -> Response:
    refresh_token = request.cookies.get(SESSION_COOKIE, "")
    if refresh_token:
        try:
            await identity_stub(request).RevokeToken(pb.RevokeTokenRequest(refresh_token=refresh_token),
                                                     metadata=caller.metadata)
        except grpc.aio.AioRpcError as exc:
            if not isinstance(from_rpc_error(exc), Unauthenticated | NotFound | InvalidArgument):
                raise
    await _revoke_access(request, caller, bearer_token(request))
    response = Response(status_code=204, headers=_NO_STORE)
    _clear_session_cookie(request, response)
    return response


def _throttle_sign_in(request: Request) -> None:
    """Password guessing across many logins from one address: identity locks each account, this
    slows the address down (per gateway replica)."""
    state = request.app.state
    address = request.client.host if request.client else "unknown"
    decision = state.rate_limiter.take(f"sign-in:{address}", state.settings.sign_in_rate_limit_per_minute)
    request.state.rate_limit_headers = decision.headers()
    if not decision.allowed:
        raise RateLimited(f"more than {decision.limit} sign-in attempts a minute from this address; retry in "
                          f"{decision.retry_after} s", reason="RATE_LIMITED")


class RevokeRequest(BaseModel):
    token: str | None = Field(None, description="A refresh token, or an access token of yours; "
                                                "absent: the access token of this request")
    token_type_hint: str | None = Field(None, description="refresh_token or access_token")


@router.post("/revoke", status_code=200, summary="Sign out: revoke a refresh token or your access token",
             description="RFC 7009. Form-encoded or JSON. Without `token`, revokes the access token this "
                         "request carries (every gateway refuses it from then on, 401 TOKEN_REVOKED). "
                         "Answers 200 also for a token that was invalid already.",
             openapi_extra={"requestBody": {"required": False, "content": {
                 _FORM: {"schema": RevokeRequest.model_json_schema()},
                 "application/json": {"schema": RevokeRequest.model_json_schema()}}}},
             responses={401: API_ERRORS[401], 429: API_ERRORS[429], 503: API_ERRORS[503]})
async def revoke_token(request: Request, caller: Caller = Depends(authenticated)) -> Response:
    try:
        params = await _params(request)
    except _OAuthError as err:
        return _oauth_problem(request, err)
    token = params.get("token") or ""
    own = bearer_token(request)
    stub = identity_stub(request)
    if not token or token == own:
        await _revoke_access(request, caller, own)
        return Response(status_code=200, headers=_NO_STORE)
    if params.get("token_type_hint") == "access_token" or token.count(".") == 2:
        try:
            principal = await request.app.state.keys.verify(token)
        except Exception:  # RFC 7009: an invalid token is no error
            return Response(status_code=200, headers=_NO_STORE)
        if principal.subject == caller.principal.subject and principal.kind == caller.principal.kind:
            await stub.RevokeToken(pb.RevokeTokenRequest(access_token_id=principal.token_id), metadata=caller.metadata)
            request.app.state.revoked.add(principal.token_id, _expiry(token))
        return Response(status_code=200, headers=_NO_STORE)
    try:
        await stub.RevokeToken(pb.RevokeTokenRequest(refresh_token=token), metadata=caller.metadata)
    except grpc.aio.AioRpcError as exc:
        if not isinstance(from_rpc_error(exc), Unauthenticated | NotFound | InvalidArgument):
            raise
    return Response(status_code=200, headers=_NO_STORE)


async def _revoke_access(request: Request, caller: Caller, own: str | None) -> None:
    token_id = caller.principal.token_id
    if not token_id:
        return
    await identity_stub(request).RevokeToken(pb.RevokeTokenRequest(access_token_id=token_id),
                                             metadata=caller.metadata)
    # This replica refuses it at once; the others when the event arrives.
    request.app.state.revoked.add(token_id, _expiry(own) if own else time.time() + 3600)
    request.app.state.api_keys.forget_token(token_id)


def _expiry(token: str) -> float:
    try:
        return float(jwt.decode(token, options={"verify_signature": False}).get("exp", 0))
    except (jwt.PyJWTError, TypeError, ValueError):
        return time.time() + 3600


@well_known.get("/.well-known/jwks.json", summary="The public keys access tokens are signed with",
                response_model=dict[str, Any])
async def jwks(request: Request) -> Response:
    return Response(request.app.state.keys.jwks_json, media_type="application/json",
                    headers={"Cache-Control": "public, max-age=300"})
