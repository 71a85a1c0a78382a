"""A small org chart of principals for tests in every service: two sales teams under a
director, an administrator, finance and marketing. Their data scopes are what the scope rules
are tested against. Sales and administrators see sensitive values in full (a rep calls their own
customers' phones); marketing sees them masked (R-SEC-04)."""

from crmkit.auth import DataScope, Principal

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
