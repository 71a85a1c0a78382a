"""R-SEC-02: the data scope as a SQL condition, so every service filters inside its queries.

A record outside the caller's scope is simply not found: it is never counted, sorted or named.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, false, or_, true

from crmkit.auth import DataScope, Principal


def scope_clause(principal: Principal, *, owner: Any, team: Any, department_path: Any,
                 signed: Any = None) -> ColumnElement[bool]:
    """`signed` is the column that says a customer has a signed contract; records without one
    are invisible to the SIGNED scope."""
    match principal.data_scope:
        case DataScope.SIGNED:
            return signed.is_(True) if signed is not None else false()
        case DataScope.ALL:
            return true()
        case DataScope.DEPARTMENT:
            return or_(department_path.startswith(principal.department_path, autoescape=True),
                       owner == principal.subject)
        case DataScope.TEAM:
            if not principal.team_ids:
                return owner == principal.subject
            return or_(team.in_(principal.team_ids), owner == principal.subject)
        case DataScope.OWN:
            return owner == principal.subject
    return false()


def may_assign(principal: Principal, *, owner_id: str, team_id: str, department_path: str) -> bool:
    """Whether the caller may put a record in the hands of this owner/team/department."""
    match principal.data_scope:
        case DataScope.ALL:
            return True
        case DataScope.SIGNED:
            return False
        case DataScope.DEPARTMENT:
            return department_path.startswith(principal.department_path)
        case DataScope.TEAM:
            return team_id in principal.team_ids or (owner_id == principal.subject and team_id == "")
        case DataScope.OWN:
            return owner_id == principal.subject and (team_id == "" or team_id in principal.team_ids)
    return False




def in_scope(principal: Principal, *, owner_id: str, team_ids: tuple[str, ...], department_path: str,
             signed: bool = False) -> bool:
    """`scope_clause` for one record held in memory (a notification about it, say): whether the
    principal could read a record of this owner, team(s), department and signed state."""
    match principal.data_scope:
        case DataScope.SIGNED:
            return signed
        case DataScope.ALL:
            return True
        case DataScope.DEPARTMENT:
            return (bool(department_path) and department_path.startswith(principal.department_path)) or \
                (bool(owner_id) and owner_id == principal.subject)
        case DataScope.TEAM:
            return bool(set(team_ids) & set(principal.team_ids)) or (bool(owner_id) and owner_id == principal.subject)
        case DataScope.OWN:
            return bool(owner_id) and owner_id == principal.subject
    return False
