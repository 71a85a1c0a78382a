"""Settings every service reads from `CRM_…` environment variables (pydantic-settings).

A service subclasses `ServiceSettings` to add its own; the same image runs locally and on
Kubernetes, only the environment differs.
"""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CRM_", extra="ignore")

    environment: str = "dev"
    log_level: str = "INFO"
    nats_url: str = "nats://127.0.0.1:4222"
    # This process's own NATS user (crmkit.events.permissions); empty connects anonymously, which
    # only an open server (the test plugin's) accepts. `tls://` in the URL turns TLS on; the CA's
    # PEM is needed when the server's certificate is not from a public CA (cert-manager's).
    nats_user: str = ""
    nats_password: SecretStr | None = None
    nats_ca_pem: SecretStr | None = None
    # OTLP/gRPC collector; spans are recorded always but exported only when it is set. The
    # standard OpenTelemetry variable, so the one an operator sets is the one the process reads.
    otlp_endpoint: str | None = Field(None, validation_alias="OTEL_EXPORTER_OTLP_ENDPOINT")
    # Replicas of this process's stream, the dead-letter stream and its key-value buckets: the
    # NATS cluster's size in production (3), so an acknowledged event survives losing a server.
    stream_replicas: int = Field(1, ge=1, le=5)
    # Each step of a shutdown (crmkit.service.Shutdown) ends within this, or is left behind.
    shutdown_step_seconds: float = 3.0


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
    outbox_retention_days: int = 7
    consumer_max_deliver: int = 5
    # Shutdown: gRPC calls in flight get `shutdown_grace_seconds` (+ one step), every other step
    # (cancel tasks, flush and close NATS, close channels, dispose the engine)
    # `shutdown_step_seconds`; the process exits within grace + 6 steps (28 s by default, inside
    # Kubernetes' 30 s) even if a step hangs, and logs which one.
    shutdown_grace_seconds: float = 10.0
