"""What a caller may do at the gateway: the permission vocabulary and the check every route makes.

A permission is `<area>.<action>` (`customers.write`). Identity resolves a user's roles into the
permissions carried in the access token (`perms`); the gateway only checks them, so changing what
a role may do is an identity change, never a gateway one. `customers.*` grants every action of an
area, `*` everything.

Partner clients are limited twice: by their permissions, and by the OAuth scopes they were
granted. Identity names scopes like permissions (`customers.read`); the OAuth-style spelling
`customers:read` is accepted as the same scope (`customers:*` / `customers.*` the whole area). A
client whose token carries no permissions is limited by its scopes alone.

The vocabulary is identity's (crm_identity.domain.model.PERMISSIONS); the gateway names only
the ones its routes check. `industries.manage` is the gateway's addition (not yet in identity's
list, so only `*` grants it).
"""

from __future__ import annotations

from crmkit.auth import Principal

CUSTOMERS_READ = "customers.read"
CUSTOMERS_WRITE = "customers.write"
CUSTOMERS_DELETE = "customers.delete"
CUSTOMERS_EXPORT = "customers.export"
INDUSTRIES_MANAGE = "industries.manage"
OPPORTUNITIES_READ = "opportunities.read"
OPPORTUNITIES_WRITE = "opportunities.write"
ORDERS_READ = "orders.read"
ORDERS_WRITE = "orders.write"
CONTRACTS_READ = "contracts.read"
CONTRACTS_WRITE = "contracts.write"
CONTRACTS_APPROVE = "contracts.approve"
ORG_READ = "org.read"
ORG_MANAGE = "org.manage"
CLIENTS_MANAGE = "clients.manage"
AUDIT_READ = "audit.read"
NOTIFICATIONS_MANAGE = "notifications.manage"
WEBHOOKS_MANAGE = "webhooks.manage"
LEADS_READ = "leads.read"
LEADS_WRITE = "leads.write"
LEADS_ASSIGN = "leads.assign"
BILLING_READ = "billing.read"
BILLING_WRITE = "billing.write"
INTEGRATIONS_READ = "integrations.read"
INTEGRATIONS_MANAGE = "integrations.manage"
INSIGHTS_READ = "insights.read"
TARGETS_MANAGE = "targets.manage"

VOCABULARY: dict[str, str] = {
    INTEGRATIONS_READ: "read the SAP sync state, sync log and drift reports",
    INTEGRATIONS_MANAGE: "retry and replay SAP sync records",
    CUSTOMERS_READ: "read customers, contacts, follow-ups, tags and industries in the data scope",
    CUSTOMERS_WRITE: "create and change customers, contacts and follow-ups",
    CUSTOMERS_DELETE: "delete customers",
    CUSTOMERS_EXPORT: "export customer lists",
    INDUSTRIES_MANAGE: "extend the industry list",
    OPPORTUNITIES_READ: "read pipelines, opportunities, quotes and the funnel in the data scope",
    OPPORTUNITIES_WRITE: "create and move opportunities; create, send, accept and reject quotes",
    ORDERS_READ: "read sales orders, deliveries and the order overview in the data scope",
    ORDERS_WRITE: "place, cancel, confirm and close sales orders; record deliveries",
    CONTRACTS_READ: "read contracts, versions, receivable plans, approval steps and rules, renewals in the data scope",
    CONTRACTS_WRITE: "draft, edit, submit, sign, amend and terminate contracts; set receivable plans",
    CONTRACTS_APPROVE: "decide approval steps assigned to you (or delegated to you); name delegates",
    ORG_READ: "read users, departments, teams and roles",
    ORG_MANAGE: "create and change users, departments, teams and roles; reset passwords",
    CLIENTS_MANAGE: "register partner clients and issue or revoke their API keys",
    AUDIT_READ: "read and verify the audit trail",
    NOTIFICATIONS_MANAGE: "edit notification rules; read the delivery log and replay deliveries",
    WEBHOOKS_MANAGE: "manage outbound webhook subscriptions; read and replay their deliveries",
    LEADS_READ: "read leads and the lead attribution report in the data scope",
    LEADS_WRITE: "create, assign by hand and convert leads",
    LEADS_ASSIGN: "edit the lead assignment rules",
    BILLING_READ: "read invoices, instalments, payments, allocations, statements and aging in the data scope "
                  "(reps: their own customers')",
    INSIGHTS_READ: "read the dashboard and the targets in the data scope",
    TARGETS_MANAGE: "set, change and remove signing, collection and new-customer targets in the data scope",
    BILLING_WRITE: "create invoices, record and allocate payments, draft, issue and settle statements",
}


def scope_of(permission: str) -> str:
    """The OAuth scope that covers a permission: customers.read -> customers:read."""
    return permission.replace(".", ":", 1)


def normalise_scope(scope: str) -> str:
    """customers:read -> customers.read, the spelling identity stores."""
    return scope.strip().replace(":", ".", 1)


def _scope_covers(scopes: tuple[str, ...], permission: str) -> bool:
    area = permission.split(".", 1)[0]
    return bool({permission, f"{area}.*", "*"} & {normalise_scope(s) for s in scopes})


def allows(principal: Principal, permission: str) -> bool:
    if principal.kind == "client":
        if not _scope_covers(principal.scopes, permission):
            return False
        return not principal.permissions or _scope_covers(principal.permissions, permission)
    return principal.may(permission)
