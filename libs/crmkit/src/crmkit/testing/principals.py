"""A small org chart of principals for tests in every service: two sales teams under a
director, and an administrator. Their data scopes are what the scope rules are tested against."""

from crmkit.auth import DataScope, Principal

EAST_REP = Principal(subject="rep-east", name="Li Wei", roles=("sales_rep",), team_ids=("east",),
                     department_path="/sales/east/", data_scope=DataScope.OWN)
EAST_REP_2 = Principal(subject="rep-east-2", name="Zhang Min", roles=("sales_rep",), team_ids=("east",),
                       department_path="/sales/east/", data_scope=DataScope.OWN)
WEST_REP = Principal(subject="rep-west", name="Wang Fang", roles=("sales_rep",), team_ids=("west",),
                     department_path="/sales/west/", data_scope=DataScope.OWN)
EAST_MANAGER = Principal(subject="mgr-east", name="Chen Jie", roles=("sales_manager",), team_ids=("east",),
                         department_path="/sales/east/", data_scope=DataScope.TEAM)
DIRECTOR = Principal(subject="director", name="Zhao Lei", roles=("sales_director",),
                     department_path="/sales/", data_scope=DataScope.DEPARTMENT)
ADMIN = Principal(subject="admin", name="Admin", roles=("admin",), data_scope=DataScope.ALL)
