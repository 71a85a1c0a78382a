"""The API gateway: authenticates callers, forwards a signed principal to the services over gRPC,
and speaks REST + problem+json to clients. It holds no business data."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import nats
import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.middleware.base import BaseHTTPMiddleware

from crm.customers.v1 import customers_pb2_grpc
from crm_gateway import middleware, problems
from crm_gateway.idempotency import IdempotencyStore, open_store
from crm_gateway.routes import customers
from crm_gateway.settings import GatewaySettings
from crmkit import telemetry
from crmkit.auth import PrincipalSigner
from crmkit.auth.tokens import AccessTokenVerifier
from crmkit.grpc import client

log = logging.getLogger(__name__)

DESCRIPTION = """Lead-to-cash CRM for B2B manufacturers of customised products.

Every route but health, metrics and docs needs `Authorization: Bearer <access token>`.
Errors are RFC 9457 `application/problem+json` with a stable `type` and a `trace_id`.
Lists are cursor-paginated (`limit`, `cursor` → `next_cursor`). Reads return an `ETag`; send it as
`If-Match` on changes to avoid overwriting someone else's (412 when stale). POSTs accept an
`Idempotency-Key`: a retry with the same key returns the first response and creates nothing new.
"""


def create_app(settings: GatewaySettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        nc = await nats.connect(settings.nats_url, name="crm-gateway", max_reconnect_attempts=-1)
        app.state.nats = nc
        app.state.idempotency = IdempotencyStore(await open_store(nc.jetstream(), settings.idempotency_ttl_seconds))
        channel = client.channel(settings.customers_target, deadline=settings.rpc_deadline_seconds)
        app.state.channels = [channel]
        app.state.customers = customers_pb2_grpc.CustomersServiceStub(channel)
        yield
        for ch in app.state.channels:
            await ch.close()
        await nc.drain()

    app = FastAPI(title="CRM API", version="1.0.0", description=DESCRIPTION, lifespan=lifespan,
                  docs_url="/docs", redoc_url=None, openapi_url="/openapi.json")
    app.state.token_verifier = AccessTokenVerifier(settings.jwt_jwks.get_secret_value(),
                                                   issuer=settings.jwt_issuer, audience=settings.jwt_audience)
    app.state.principal_signer = PrincipalSigner(settings.principal_private_key.get_secret_value())
    problems.install(app)
    app.add_middleware(BaseHTTPMiddleware, dispatch=middleware.content_type)
    app.add_middleware(middleware.BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(BaseHTTPMiddleware, dispatch=middleware.observe)
    app.include_router(customers.router)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> JSONResponse:
        nc = getattr(request.app.state, "nats", None)
        ready = nc is not None and nc.is_connected
        return JSONResponse({"status": "ready" if ready else "not ready"}, status_code=200 if ready else 503)

    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    app.openapi = lambda: _problems_as_problem_json(app)  # type: ignore[method-assign]
    FastAPIInstrumentor.instrument_app(app, excluded_urls="healthz,readyz,metrics")
    return app


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
                access_log=False, timeout_graceful_shutdown=10)


if __name__ == "__main__":
    cli()
