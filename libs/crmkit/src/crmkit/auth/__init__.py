"""Who is calling: the principal the gateway authenticates and forwards, signed, to services."""

from crmkit.auth.permissions import MethodPermissions, allows, require
from crmkit.auth.principal import (
    PRINCIPAL_METADATA_KEY,
    SERVICE_PERMISSIONS,
    DataScope,
    Principal,
    PrincipalSigner,
    PrincipalVerifier,
    ServiceToken,
    current_principal,
    current_principal_token,
    service_principal,
    use_principal,
)

__all__ = [
    "PRINCIPAL_METADATA_KEY",
    "SERVICE_PERMISSIONS",
    "DataScope",
    "MethodPermissions",
    "Principal",
    "PrincipalSigner",
    "PrincipalVerifier",
    "ServiceToken",
    "allows",
    "current_principal",
    "current_principal_token",
    "require",
    "service_principal",
    "use_principal",
]
