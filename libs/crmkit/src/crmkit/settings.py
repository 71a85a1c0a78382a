"""Settings every service reads from `CRM_…` environment variables (pydantic-settings).

A service subclasses `ServiceSettings` to add its own; the same image runs locally and on
Kubernetes, only the environment differs.
"""

from __future__ import annotations

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CRM_", extra="ignore")

    environment: str = "dev"
    log_level: str = "INFO"
    nats_url: str = "nats://127.0.0.1:4222"
    # OTLP/gRPC collector; spans are recorded always but exported only when it is set.
    otlp_endpoint: str | None = None


class ServiceSettings(CommonSettings):
    database_url: SecretStr
    database_pool_size: int = 10
    grpc_host: str = "0.0.0.0"  # noqa: S104 - a pod listens on its own interface
    grpc_port: int = 50051
    metrics_port: int = 9090
    # PEM of the gateway's principal-signing key; concatenate several while it rotates.
    principal_public_key: SecretStr
    # The suite's service key pair: the private half signs this service's own principal on calls
    # with no user behind them; the public halves (concatenated while one rotates) are trusted.
    service_private_key: SecretStr | None = None
    service_public_keys: SecretStr | None = None
    # host:port of the identity service (the org chart), for services that resolve people.
    identity_target: str = ""
    stream_replicas: int = 1
    outbox_retention_days: int = 7
    consumer_max_deliver: int = 5
    shutdown_grace_seconds: float = 10.0
