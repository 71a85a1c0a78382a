"""The API gateway: authenticates callers, forwards a signed principal to the services over gRPC,
and speaks REST + problem+json to clients. It holds no business data."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import grpc
import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from crm.identity.v1 import identity_pb2
from crm_gateway import console, docs_pages, middleware, problems
from crm_gateway.api_keys import ApiKeyCache
from crm_gateway.backends import BACKENDS
from crm_gateway.denials import DenialReporter
from crm_gateway.idempotency import IdempotencyStore, open_store
from crm_gateway.jwks import KeyRing
from crm_gateway.ratelimit import RateLimiter
from crm_gateway.revocations import DenySet, RevocationFollower
from crm_gateway.routes import (
    auth,
    billing,
    contracts,
    customers,
    duplicates,
    identity,
    imports,
    insights,
    integrations,
    leads,
    notifications,
    opportunities,
    orders,
)
from crm_gateway.settings import GatewaySettings
from crmkit import telemetry
from crmkit.auth import PrincipalSigner
from crmkit.errors import Unauthenticated
from crmkit.events import connection
from crmkit.grpc import client
from crmkit.grpc.status import from_rpc_error
from crmkit.service import Shutdown, cancel_tasks, close_channels

log = logging.getLogger(__name__)

# Each routes module has a `router`; the order is the order of the OpenAPI document.
ROUTES = (auth, imports, duplicates, customers, leads, identity, opportunities, contracts, orders, billing,
          notifications, integrations, insights)

DESCRIPTION = """Lead-to-cash CRM for B2B manufacturers of customised products.

Every route but health, metrics, docs, `POST /api/v1/auth/token` and `/.well-known/jwks.json` needs
`Authorization: Bearer <access token>` (partner systems may send `X-API-Key` instead). Each operation
names the permission it needs (`x-permission`); without it the answer is 403 PERMISSION_DENIED.
Callers are rate-limited per user or partner client (429 with `Retry-After`).
Errors are RFC 9457 `application/problem+json` with a stable `type` and a `trace_id`.
Lists are cursor-paginated (`limit`, `cursor` → `next_cursor`). Reads return an `ETag`; send it as
`If-Match` on changes to avoid overwriting someone else's (412 when stale). POSTs accept an
`Idempotency-Key`: a retry with the same key returns the first response and creates nothing new.
"""


def create_app(settings: GatewaySettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        nc = await connection.connect(settings, "crm-gateway")
        app.state.nats = nc
        js = nc.jetstream()
        app.state.idempotency = IdempotencyStore(
            await open_store(js, settings.idempotency_ttl_seconds, settings.stream_replicas),
            claim_seconds=settings.idempotency_claim_seconds)
        app.state.channels = []
        for name, stub in BACKENDS.items():
            target = getattr(settings, f"{name}_target")
            if target:
                # Connects lazily: the gateway starts (not ready) while a service is not up yet.
                channel = client.channel(target, deadline=settings.rpc_deadline_seconds)
                app.state.channels.append(channel)
                setattr(app.state, name, stub(channel))
        app.state.denials = DenialReporter(js, max_queued=settings.denial_queue_size)
        app.state.revocations = RevocationFollower(js, app.state.revoked, settings.access_token_max_ttl_seconds,
                                                   on_revoked=app.state.api_keys.forget_token,
                                                   on_api_key_revoked=app.state.api_keys.forget_client)
        tasks = [asyncio.create_task(app.state.denials.run(), name="denials"),
                 asyncio.create_task(app.state.revocations.run(), name="revocations")]
        if settings.identity_target:
            await app.state.keys.refresh()
            tasks.append(asyncio.create_task(app.state.keys.run(), name="jwks"))
        yield
        # each step bounded (crmkit.service.Shutdown): the process ends even if NATS is gone
        step = settings.shutdown_step_seconds
        shutdown = Shutdown(total_seconds=4 * step)
        await shutdown.step("cancel tasks", cancel_tasks(tasks), step,
                            pending=lambda: [t.get_name() for t in tasks if not t.done()])
        await shutdown.step("stop revocations", app.state.revocations.stop(), step)
        await shutdown.step("close channels", close_channels(app.state.channels), step)
        await shutdown.step("drain NATS", nc.drain(), step)
        shutdown.finish()

    app = FastAPI(title="CRM API", version="1.0.0", description=DESCRIPTION, lifespan=lifespan,
                  docs_url=None, redoc_url=None, openapi_url="/openapi.json")
    app.state.settings = settings
    for name in BACKENDS:
        setattr(app.state, name, None)
    static_jwks = settings.jwt_jwks.get_secret_value() if settings.jwt_jwks is not None else None
    app.state.keys = KeyRing(static_jwks, issuer=settings.jwt_issuer, audience=settings.jwt_audience,
                             fetch=(lambda: _fetch_jwks(app)) if settings.identity_target else None,
                             refresh_seconds=settings.jwks_refresh_seconds,
                             min_refresh_seconds=settings.jwks_min_refresh_seconds,
                             max_lifetime_seconds=settings.access_token_max_ttl_seconds)
    app.state.revoked = DenySet()
    app.state.rate_limiter = RateLimiter()
    app.state.api_keys = ApiKeyCache(lambda key: _exchange_api_key(app, key),
                                     max_age_seconds=settings.api_key_cache_seconds)
    app.state.principal_signer = PrincipalSigner(settings.principal_private_key.get_secret_value())
    problems.install(app)
    app.add_middleware(middleware.TextCheck)
    app.add_middleware(middleware.ContentType)
    app.add_middleware(middleware.BodyLimit, max_bytes=settings.max_body_bytes,
                       path_limits=dict.fromkeys(middleware.MULTIPART_PATHS, settings.import_max_bytes))
    if console.built(settings.console_dir):
        app.add_middleware(console.Console, dist=settings.console_dir)
    app.add_middleware(middleware.Observe)
    if settings.cors_origins:
        # Outermost, so preflights and error answers carry the headers too.
        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins), allow_credentials=True,
                           allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                           allow_headers=["Authorization", "Content-Type", "If-Match", "Idempotency-Key",
                                          "X-API-Key", "Last-Event-ID"],
                           expose_headers=["ETag", "Location", "X-Trace-Id", "Retry-After", "Idempotent-Replayed",
                                           "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"],
                           max_age=600)
    for module in ROUTES:
        app.include_router(module.router)
    app.include_router(auth.well_known)
    docs_pages.install(app)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> JSONResponse:
        state = request.app.state
        nc = getattr(state, "nats", None)
        checks = {"nats": nc is not None and nc.is_connected}
        if settings.identity_target:
            revocations = getattr(state, "revocations", None)
            checks["identity_keys"] = state.keys.loaded
            checks["token_revocations"] = revocations is not None and revocations.ready
        ready = all(checks.values())
        body: dict[str, Any] = {"status": "ready" if ready else "not ready"}
        if not ready:
            body["failing"] = sorted(name for name, ok in checks.items() if not ok)
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    app.openapi = lambda: _problems_as_problem_json(app)  # type: ignore[method-assign]
    FastAPIInstrumentor.instrument_app(app, excluded_urls="healthz,readyz,metrics")
    return app


async def _fetch_jwks(app: FastAPI) -> str:
    stub = app.state.identity
    if stub is None:
        raise RuntimeError("the identity channel is not open yet")
    return str((await stub.GetJwks(identity_pb2.GetJwksRequest())).jwks_json)


async def _exchange_api_key(app: FastAPI, api_key: str) -> str:
    """The access token for an API key; identity's refusal becomes 401 INVALID_API_KEY."""
    stub = app.state.identity
    if stub is None:
        raise Unauthenticated("API keys are not accepted: no identity service is configured", reason="INVALID_API_KEY")
    try:
        reply = await stub.IssueToken(identity_pb2.IssueTokenRequest(grant_type="api_key", api_key=api_key))
    except grpc.aio.AioRpcError as exc:
        error = from_rpc_error(exc)
        if problems.status_of(error) in (400, 401, 403, 404, 422):
            raise Unauthenticated("the API key is unknown, revoked or its client disabled",
                                  reason="INVALID_API_KEY") from None
        raise error from None
    return str(reply.access_token)


def _problems_as_problem_json(app: FastAPI) -> dict[str, Any]:
    """FastAPI documents every response model as application/json; errors are problem+json."""
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        for operation in (op for path in schema["paths"].values() for op in path.values()):
            for response in operation.get("responses", {}).values():
                content = response.get("content", {})
                if problems.PROBLEM_JSON in content and "application/json" in content:
                    content[problems.PROBLEM_JSON] = content.pop("application/json")
        app.openapi_schema = schema
    return app.openapi_schema


def cli() -> None:
    settings = GatewaySettings()  # type: ignore[call-arg]
    telemetry.setup("gateway", log_level=settings.log_level, otlp_endpoint=settings.otlp_endpoint)
    uvicorn.run(create_app(settings), host=settings.http_host, port=settings.http_port, log_config=None,
                access_log=False, timeout_graceful_shutdown=10,
                timeout_keep_alive=settings.http_keep_alive_seconds)


if __name__ == "__main__":
    cli()
