"""R-SEC-02: how a user's roles add up to one data scope, one permission set, one sensitivity."""

from __future__ import annotations

from collections.abc import Iterable

from crm_identity.domain.model import Grants, Role
from crmkit.auth import DataScope

# Wider to the right. SIGNED is a different axis (finance): it applies only when nothing else does.
SCOPE_ORDER = (DataScope.OWN, DataScope.TEAM, DataScope.DEPARTMENT, DataScope.ALL)


def widest_scope(scopes: Iterable[DataScope]) -> DataScope:
    scopes = list(scopes)
    ranked = [s for s in scopes if s in SCOPE_ORDER]
    if ranked:
        return max(ranked, key=SCOPE_ORDER.index)
    if DataScope.SIGNED in scopes:
        return DataScope.SIGNED
    return DataScope.OWN


def grants_of(roles: Iterable[Role]) -> Grants:
    roles = list(roles)
    permissions = sorted({p for r in roles for p in r.permissions})
    return Grants(permissions=tuple(permissions), data_scope=widest_scope(r.data_scope for r in roles),
                  sees_sensitive=any(r.sees_sensitive for r in roles),
                  roles=tuple(sorted(r.name for r in roles)))
