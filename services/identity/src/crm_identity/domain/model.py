"""Entities of the identity service, the permission vocabulary and the built-in roles."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass, field
from enum import StrEnum

from crmkit.auth import DataScope


class UserStatus(StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"


@dataclass(frozen=True)
class Department:
    id: uuid.UUID
    name: str
    parent_id: uuid.UUID | None
    # Materialised path of ids: "/<root>/<child>/".
    path: str
    head_user_id: uuid.UUID | None = None
    version: int = 1


@dataclass(frozen=True)
class Team:
    id: uuid.UUID
    name: str
    department_id: uuid.UUID
    lead_user_id: uuid.UUID | None = None


@dataclass(frozen=True)
class User:
    id: uuid.UUID
    login: str
    display_name: str
    email: str = ""
    department_id: uuid.UUID | None = None
    team_ids: tuple[uuid.UUID, ...] = ()
    manager_id: uuid.UUID | None = None
    roles: tuple[str, ...] = ()
    status: UserStatus = UserStatus.ACTIVE
    locale: str = "zh-CN"
    locked: bool = False
    created_at: dt.datetime | None = None
    version: int = 1


@dataclass(frozen=True)
class Role:
    name: str
    description: str
    permissions: tuple[str, ...]
    data_scope: DataScope
    sees_sensitive: bool = False
    built_in: bool = False


@dataclass(frozen=True)
class PartnerClient:
    client_id: str
    name: str
    scopes: tuple[str, ...] = ()
    rate_limit_per_minute: int = 60
    disabled: bool = False
    created_at: dt.datetime | None = None


@dataclass(frozen=True)
class ApiKey:
    id: uuid.UUID
    client_id: str
    prefix: str
    name: str
    created_at: dt.datetime | None = None
    last_used_at: dt.datetime | None = None
    revoked_at: dt.datetime | None = None


@dataclass(frozen=True)
class AuditEntry:
    sequence: int
    occurred_at: dt.datetime
    service: str
    entity: str
    entity_id: str
    action: str
    actor: str
    before: dict | None = None
    after: dict | None = None
    event_id: str = ""
    prev_hash: str = ""
    hash: str = ""


# ---------------------------------------------------------------- the permission vocabulary

# Services check these with `principal.may(...)`; `area.*` and `*` grant a whole area / all.
PERMISSIONS: dict[str, str] = {
    "customers.read": "read customers, contacts, follow-ups, leads (within the data scope)",
    "customers.write": "create and change customers, contacts, follow-ups, leads",
    "customers.delete": "delete customers and contacts",
    "customers.export": "export customer lists",
    "industries.manage": "extend the normalised industry list",
    "opportunities.read": "read opportunities and quotes",
    "opportunities.write": "create and change opportunities and quotes",
    "contracts.read": "read contracts",
    "contracts.write": "draft and change contracts",
    "contracts.approve": "approve or reject contracts in an approval chain",
    "orders.read": "read sales orders and deliveries",
    "orders.write": "create and change sales orders",
    "billing.read": "read invoices, payments and statements",
    "billing.write": "record payments, allocate, reconcile",
    "leads.read": "read leads and attribution (within the data scope)",
    "leads.write": "create, assign by hand and convert leads",
    "leads.assign": "edit the lead assignment rules",
    "integrations.read": "read the SAP sync state, sync log and drift reports",
    "integrations.manage": "retry, replay and park SAP sync records",
    "webhooks.manage": "manage outbound webhook subscriptions",
    "insights.read": "dashboards and reports",
    "targets.manage": "set signing, collection and new-customer targets for people in the data scope",
    "notifications.manage": "notification rules and templates",
    "org.read": "read departments, teams, users and roles",
    "org.manage": "manage departments, teams, users and roles",
    "audit.read": "read and verify the audit trail",
    "clients.manage": "manage partner clients and API keys",
}

ALL = "*"


def is_known_permission(permission: str) -> bool:
    if permission == ALL or permission in PERMISSIONS:
        return True
    area, _, rest = permission.partition(".")
    return rest == "*" and any(p.startswith(area + ".") for p in PERMISSIONS)


_SALES = ("customers.read", "customers.write", "opportunities.read", "opportunities.write",
          "contracts.read", "contracts.write", "orders.read", "orders.write")
_LEADS = ("leads.read", "leads.write")

# The built-in role set of the source documents (seed 004): name, description, permissions,
# data scope, sees sensitive fields in full.
BUILT_IN_ROLES: tuple[Role, ...] = (
    Role("admin", "System administrator: everything", (ALL,), DataScope.ALL, True, True),
    Role("general_manager", "General manager: sees and approves everything, manages no system settings",
         (*_SALES, *_LEADS, "leads.assign", "customers.delete", "customers.export", "contracts.approve",
          "billing.read", "insights.read", "targets.manage", "integrations.read", "org.read", "audit.read"),
         DataScope.ALL, True, True),
    Role("sales_director", "Sales director: the sales department subtree",
         (*_SALES, *_LEADS, "leads.assign", "customers.delete", "customers.export", "contracts.approve",
          "billing.read", "insights.read", "targets.manage", "org.read"), DataScope.DEPARTMENT, True, True),
    Role("sales_manager", "Sales manager (team lead): the team's records",
         (*_SALES, *_LEADS, "contracts.approve", "billing.read", "insights.read", "targets.manage", "org.read"),
         DataScope.TEAM, True, True),
    # billing.read: a rep reads the invoices, instalments and payments of their own customers (issue 22);
    # insights.read: their own dashboard (issue 14).
    Role("sales_rep", "Sales representative: own customers only",
         (*_SALES, *_LEADS, "billing.read", "insights.read", "org.read"), DataScope.OWN, True, True),
    Role("customer_service", "Customer service: every customer, follow-ups and orders",
         ("customers.read", "customers.write", "leads.read", "contracts.read", "orders.read", "org.read"),
         DataScope.ALL, True, True),
    # The approval chain of seed 004 ends with finance (rep → manager → director → finance).
    Role("finance", "Finance: customers with a signed contract, billing",
         ("customers.read", "contracts.read", "contracts.approve", "orders.read", "billing.read", "billing.write",
          "insights.read", "org.read"), DataScope.SIGNED, True, True),
    Role("marketing", "Marketing: leads and campaigns, no sensitive fields",
         ("customers.read", *_LEADS, "leads.assign", "insights.read", "org.read"), DataScope.ALL, False, True),
    Role("auditor", "Auditor: read-only, everything, and the audit trail",
         ("customers.read", "leads.read", "opportunities.read", "contracts.read", "orders.read", "billing.read",
          "insights.read", "integrations.read", "org.read", "audit.read"), DataScope.ALL, False, True),
    Role("operator", "Operations: the SAP integration and delivery logs, no customer data",
         ("integrations.read", "integrations.manage", "notifications.manage", "org.read"), DataScope.ALL, False,
         True),
)


@dataclass(frozen=True)
class Grants:
    """What a user's roles add up to, as carried in the access token."""

    permissions: tuple[str, ...] = ()
    data_scope: DataScope = DataScope.OWN
    sees_sensitive: bool = False
    roles: tuple[str, ...] = field(default=())
