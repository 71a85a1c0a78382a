"""Gateway configuration from `CRM_…` environment variables."""

from __future__ import annotations

from pydantic import SecretStr

from crmkit.settings import CommonSettings


class GatewaySettings(CommonSettings):
    http_host: str = "0.0.0.0"  # noqa: S104 - a pod listens on its own interface
    http_port: int = 8000
    customers_target: str = "127.0.0.1:50051"
    jwt_jwks: SecretStr  # JWKS JSON of the token issuer; list old and new keys while rotating
    jwt_issuer: str = "crm-identity"
    jwt_audience: str = "crm-api"
    principal_private_key: SecretStr  # PEM; services hold its public half
    max_body_bytes: int = 1_048_576
    idempotency_ttl_seconds: int = 24 * 3600
    rpc_deadline_seconds: float = 5.0
