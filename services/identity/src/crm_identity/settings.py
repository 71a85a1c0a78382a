"""Identity configuration from `CRM_…` environment variables."""

from __future__ import annotations

from pydantic import SecretStr

from crmkit.settings import ServiceSettings

DEFAULT_AUDIT_STREAMS = ("CRM_CUSTOMERS,CRM_IDENTITY,CRM_CONTRACTS,CRM_OPPORTUNITIES,CRM_ORDERS,CRM_BILLING,"
                         "CRM_SAP,CRM_NOTIFICATIONS,CRM_INSIGHTS")


class IdentitySettings(ServiceSettings):
    # One or more Ed25519 private keys (PEM, concatenated). The first signs; all are published.
    identity_signing_keys: SecretStr
    # If set and there are no users yet, `serve` creates the `admin` user with this password.
    identity_bootstrap_admin_password: SecretStr | None = None
    token_issuer: str = "crm-identity"  # noqa: S105 - not a secret
    token_audience: str = "crm-api"  # noqa: S105 - not a secret
    access_token_ttl: int = 600
    refresh_token_ttl: int = 14 * 24 * 3600
    lockout_max_failures: int = 5
    lockout_minutes: int = 15
    # Streams whose every event lands in the audit trail.
    audit_streams: str = DEFAULT_AUDIT_STREAMS
    # How often the audit chain's head is anchored outside the database (NATS key-value).
    audit_anchor_seconds: float = 10.0

    def audit_stream_names(self) -> list[str]:
        return [s.strip() for s in self.audit_streams.split(",") if s.strip()]
