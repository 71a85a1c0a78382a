"""The notifications service's settings (`CRM_…` environment variables)."""

from __future__ import annotations

from pydantic import Field, SecretStr

from crmkit.settings import ServiceSettings


class NotificationsSettings(ServiceSettings):
    # SMTP. Email is off while smtp_host is empty (as in `make dev`): no email deliveries are queued.
    smtp_host: str = ""
    smtp_port: int = 587
    smtp_username: str = ""
    smtp_password: SecretStr | None = None
    # "starttls" (upgrade a plain connection, port 587), "tls" (implicit TLS, port 465) or "none".
    smtp_security: str = Field("starttls", pattern="^(starttls|tls|none)$")
    smtp_from: str = "CRM <no-reply@crm.local>"
    smtp_timeout_seconds: float = 15.0
    # Prefix of the links in emails (the web console), e.g. https://crm.example.com
    public_base_url: str = ""
    # Events older than this notify nobody (a new consumer reading weeks of stream history).
    max_event_age_hours: float = Field(72.0, gt=0)
    # Outbound HTTP (webhooks, chat robots).
    http_timeout_seconds: float = 10.0
    # Retries: after the n-th failure wait base·2^(n-1) seconds (at most the cap, plus up to
    # `retry_jitter` of it); park the delivery after max_attempts.
    retry_base_seconds: float = Field(30.0, gt=0)
    retry_cap_seconds: float = Field(3600.0, gt=0)
    retry_jitter: float = Field(0.1, ge=0, le=1)
    max_attempts: int = Field(8, ge=1)
    # The delivery worker: deliveries per pass, and the pause when nothing is due.
    worker_batch: int = Field(50, ge=1)
    worker_idle_seconds: float = Field(2.0, gt=0)
