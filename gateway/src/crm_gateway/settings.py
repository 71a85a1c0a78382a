"""Gateway configuration from `CRM_…` environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode

from crmkit.settings import CommonSettings


class GatewaySettings(CommonSettings):
    http_host: str = "0.0.0.0"  # noqa: S104 - a pod listens on its own interface
    http_port: int = 8000
    # Idle keep-alive connections are closed after this long. It must exceed the idle timeout of
    # whatever sits in front (load balancer, ingress: typically 60 s), or a request sent on a
    # connection at the moment the gateway closes it fails ("server disconnected").
    http_keep_alive_seconds: int = Field(75, ge=1)
    customers_target: str = "127.0.0.1:50051"
    # host:port of the opportunities service; without it its routes answer 503.
    opportunities_target: str = ""
    # host:port of the orders service; without it its routes answer 503.
    orders_target: str = ""
    # host:port of the contracts service; without it its routes answer 503.
    contracts_target: str = ""
    # host:port of the identity service: token issuing, its JWKS, the org and audit admin API.
    identity_target: str = ""
    # host:port of the billing service; without it its routes answer 503.
    billing_target: str = ""
    # host:port of the notifications service; without it its routes answer 503.
    notifications_target: str = ""
    # host:port of the SAP integration; without it its routes answer 503.
    sap_target: str = ""
    # host:port of the insights service (dashboard, targets); without it its routes answer 503.
    insights_target: str = ""
    # A static JWKS trusted in addition to identity's (tests, air-gapped setups, a development
    # key); without an identity target it is the only one.
    jwt_jwks: SecretStr | None = None
    jwt_issuer: str = "crm-identity"
    jwt_audience: str = "crm-api"
    # Identity's JWKS is fetched again this often, and at once (at most every
    # jwks_min_refresh_seconds) when a token names an unknown key.
    jwks_refresh_seconds: float = 300.0
    jwks_min_refresh_seconds: float = 10.0
    # The longest access-token lifetime identity issues: how far back revocations are replayed.
    access_token_max_ttl_seconds: int = 3600
    # How long an API key's exchange for an access token is reused (at most 60 s).
    api_key_cache_seconds: float = Field(30.0, ge=0, le=60)
    # Requests per minute: people, and partner clients whose token names no limit.
    rate_limit_per_minute: int = Field(600, ge=1)
    client_rate_limit_per_minute: int = Field(120, ge=1)
    # Token requests per minute from one client address (password guessing across many logins).
    sign_in_rate_limit_per_minute: int = Field(120, ge=1)
    # Access-denied events waiting to be published; beyond it they are dropped and counted.
    denial_queue_size: int = Field(1000, ge=1)
    principal_private_key: SecretStr  # PEM; services hold its public half
    max_body_bytes: int = 1_048_576
    # R-CUS-03: the import upload's body (the file, at most 7 MiB, plus the form around it).
    import_max_bytes: int = 7 * 1024 * 1024 + 65_536
    idempotency_ttl_seconds: int = 24 * 3600
    # A claim on a key older than this is taken to be a dead replica's; a retry may take it over
    # (the service still runs the command at most once: crmkit.idempotency).
    idempotency_claim_seconds: float = Field(60.0, gt=0)
    rpc_deadline_seconds: float = 5.0
    # Origins whose pages may call the API from a browser (a mobile shell, a partner portal), comma
    # separated, e.g. `https://m.example.com,https://portal.example.com`. Empty: same origin only.
    cors_origins: Annotated[tuple[str, ...], NoDecode] = ()
    # The built web console (`vite build`), served at `/`; absent: the gateway serves the API only.
    # The default is the checkout's web/dist (`make dev`); the image sets its own path.
    console_dir: Path = Path(__file__).resolve().parents[3] / "web" / "dist"
    # How long a browser session's refresh cookie lives (identity's refresh tokens last 14 days).
    session_cookie_max_age_seconds: int = Field(14 * 24 * 3600, ge=60)

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _origins(cls, value: object) -> object:
        origins = value.split(",") if isinstance(value, str) else value
        if not isinstance(origins, list | tuple):
            return value
        cleaned = tuple(str(origin).strip().rstrip("/") for origin in origins if str(origin).strip())
        # Credentials (the session cookie) travel cross-origin only to origins named one by one.
        bad = [o for o in cleaned if not o.startswith(("https://", "http://")) or o.count("/") != 2]
        if bad:
            raise ValueError(f"CRM_CORS_ORIGINS takes origins like https://m.example.com, not {', '.join(bad)}")
        return cleaned

    @model_validator(mode="after")
    def _some_keys(self) -> GatewaySettings:
        if not self.identity_target and self.jwt_jwks is None:
            raise ValueError("set CRM_IDENTITY_TARGET (tokens from identity) or CRM_JWT_JWKS (a static JWKS)")
        return self
