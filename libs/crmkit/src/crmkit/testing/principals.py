"""A small org chart of principals for tests in every service: two sales teams under a
director, an administrator, finance and marketing. Their data scopes are what the scope rules
are tested against. Sales and administrators see sensitive values in full (a rep calls their own
customers' phones); marketing sees them masked (R-SEC-04). They carry no permissions of their own:
`with_grants(p)` is `p` as identity would issue it, with its role's permissions, for services that
check each RPC's permission (R-SEC-03)."""

from dataclasses import replace

from crmkit.auth import DataScope, Principal

_SALES = ("customers.read", "customers.write", "opportunities.read", "opportunities.write",
          "contracts.read", "contracts.write", "orders.read", "orders.write", "leads.read", "leads.write")
# What identity's BUILT_IN_ROLES grant (services/identity/src/crm_identity/domain/model.py).
ROLE_PERMISSIONS: dict[str, tuple[str, ...]] = {
    "sales_rep": (*_SALES, "billing.read", "org.read"),
    "sales_manager": (*_SALES, "contracts.approve", "billing.read", "insights.read", "org.read"),
    "sales_director": (*_SALES, "leads.assign", "customers.delete", "customers.export", "contracts.approve",
                       "billing.read", "insights.read", "org.read"),
    "admin": ("*",),
    "finance": ("customers.read", "contracts.read", "contracts.approve", "orders.read", "billing.read",
                "billing.write", "insights.read", "org.read"),
    "marketing": ("customers.read", "leads.read", "leads.write", "leads.assign", "insights.read", "org.read"),
}

EAST_REP = Principal(subject="rep-east", name="Li Wei", roles=("sales_rep",), team_ids=("east",),
                     department_path="/sales/east/", data_scope=DataScope.OWN, sees_sensitive=True)
EAST_REP_2 = Principal(subject="rep-east-2", name="Zhang Min", roles=("sales_rep",), team_ids=("east",),
                       department_path="/sales/east/", data_scope=DataScope.OWN, sees_sensitive=True)
WEST_REP = Principal(subject="rep-west", name="Wang Fang", roles=("sales_rep",), team_ids=("west",),
                     department_path="/sales/west/", data_scope=DataScope.OWN, sees_sensitive=True)
EAST_MANAGER = Principal(subject="mgr-east", name="Chen Jie", roles=("sales_manager",), team_ids=("east",),
                         department_path="/sales/east/", data_scope=DataScope.TEAM, sees_sensitive=True)
DIRECTOR = Principal(subject="director", name="Zhao Lei", roles=("sales_director",),
                     department_path="/sales/", data_scope=DataScope.DEPARTMENT, sees_sensitive=True)
ADMIN = Principal(subject="admin", name="Admin", roles=("admin",), data_scope=DataScope.ALL, sees_sensitive=True)
# R-SEC-02: finance sees every customer with a signed contract and nothing else; it invoices and
# reconciles, so it sees tax IDs and bank accounts in full.
FINANCE = Principal(subject="finance", name="Sun Li", roles=("finance",), department_path="/finance/",
                    data_scope=DataScope.SIGNED, sees_sensitive=True)
# Sees every customer for campaigns, but no phone, tax ID or account number in full.
MARKETING = Principal(subject="marketing", name="Hu Jing", roles=("marketing",), department_path="/marketing/",
                      data_scope=DataScope.ALL, sees_sensitive=False)


def with_grants(principal: Principal, *extra: str) -> Principal:
    """`principal` with the permissions identity grants its roles (or its own, if it carries
    some), plus `extra`."""
    granted = principal.permissions or tuple(dict.fromkeys(
        permission for role in principal.roles for permission in ROLE_PERMISSIONS.get(role, ())))
    return replace(principal, permissions=(*granted, *extra))
