"""R-SEC-02 data scopes as SQL (compiled here; executed against PostgreSQL in test_db.py) and
the assignment rule."""

from __future__ import annotations

import pytest
from sqlalchemy import Column, MetaData, Table, Text, select
from sqlalchemy.dialects import postgresql

from crmkit.auth import DataScope, Principal
from crmkit.scopes import may_assign, scope_clause
from crmkit.testing.principals import ADMIN, DIRECTOR, EAST_MANAGER, EAST_REP, WEST_REP

records = Table("records", MetaData(), Column("owner_id", Text), Column("team_id", Text),
                Column("department_path", Text))


def _sql(principal: Principal) -> tuple[str, dict[str, object]]:
    clause = scope_clause(principal, owner=records.c.owner_id, team=records.c.team_id,
                          department_path=records.c.department_path)
    compiled = select(records.c.owner_id).where(clause).compile(dialect=postgresql.dialect())
    where = str(compiled).split("WHERE", 1)[1].strip().replace("::VARCHAR", "")
    return where, dict(compiled.params)


def test_all_scope_is_unfiltered() -> None:
    where, params = _sql(ADMIN)
    assert where == "true" and params == {}


def test_own_scope() -> None:
    where, params = _sql(EAST_REP)
    assert where == "records.owner_id = %(owner_id_1)s"
    assert params == {"owner_id_1": "rep-east"}


def test_team_scope() -> None:
    where, params = _sql(EAST_MANAGER)
    assert where == ("records.team_id IN (__[POSTCOMPILE_team_id_1]) "
                     "OR records.owner_id = %(owner_id_1)s")
    assert {k: list(v) if k == "team_id_1" else v for k, v in params.items()} == {
        "team_id_1": ["east"], "owner_id_1": "mgr-east"}


def test_team_scope_without_teams_is_own() -> None:
    where, params = _sql(Principal(subject="lonely", data_scope=DataScope.TEAM))
    assert where == "records.owner_id = %(owner_id_1)s" and params == {"owner_id_1": "lonely"}


def test_department_scope_is_an_escaped_prefix_match() -> None:
    where, params = _sql(DIRECTOR)
    assert where.startswith("(records.department_path LIKE ")
    assert "ESCAPE '/'" in where and "OR records.owner_id = %(owner_id_1)s" in where
    assert params["owner_id_1"] == "director"
    # autoescape: the path's own '/', '%' and '_' cannot act as wildcards
    tricky = Principal(subject="d", department_path="/sa_les%/", data_scope=DataScope.DEPARTMENT)
    _, params = _sql(tricky)
    assert "//sa/_les/%//" in params.values()


# may_assign truth table: (principal, owner, team, department) -> allowed
TABLE = [
    (ADMIN, "anyone", "west", "/elsewhere/", True),
    (ADMIN, "", "", "/", True),
    (DIRECTOR, "rep-west", "west", "/sales/west/", True),
    (DIRECTOR, "rep-east", "east", "/sales/east/", True),
    (DIRECTOR, "director", "", "/sales/", True),
    (DIRECTOR, "someone", "ops", "/operations/", False),
    (DIRECTOR, "director", "", "/operations/", False),
    (EAST_MANAGER, "rep-east", "east", "/sales/east/", True),
    (EAST_MANAGER, "mgr-east", "", "/sales/east/", True),
    (EAST_MANAGER, "rep-west", "west", "/sales/west/", False),
    (EAST_MANAGER, "rep-west", "", "/sales/west/", False),
    (EAST_REP, "rep-east", "", "/sales/east/", True),
    (EAST_REP, "rep-east", "east", "/sales/east/", True),
    (EAST_REP, "rep-east", "west", "/sales/west/", False),
    (EAST_REP, "rep-east-2", "east", "/sales/east/", False),
    (EAST_REP, "rep-west", "", "/sales/west/", False),
    (WEST_REP, "rep-west", "west", "/sales/west/", True),
]


@pytest.mark.parametrize(("principal", "owner", "team", "department", "allowed"), TABLE,
                         ids=[f"{p.subject}->{o or '-'}/{t or '-'}" for p, o, t, _, _ in TABLE])
def test_may_assign(principal: Principal, owner: str, team: str, department: str, allowed: bool) -> None:
    assert may_assign(principal, owner_id=owner, team_id=team, department_path=department) is allowed
