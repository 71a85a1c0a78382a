"""R-SEC-01: the org chart (departments, teams, users, roles) and the approval-chain queries."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import uuid
from collections.abc import Sequence

from crm.identity.v1 import events_pb2 as ev
from crm_identity.adapters import repository as repo
from crm_identity.app import tokens
from crm_identity.app.credentials import hash_password, verify_password
from crm_identity.app.messages import department_to_pb, role_to_pb, user_to_pb
from crm_identity.domain.model import Department, Role, Team, User, UserStatus, is_known_permission
from crm_identity.domain.org import check_manager, check_move, clean_name, ids_of_path, nearest_head, path_of, rebase
from crm_identity.domain.passwords import check_login, check_password
from crmkit.auth import DataScope, Principal
from crmkit.db import UnitOfWork
from crmkit.errors import AlreadyExists, Conflict, InvalidArgument, NotFound, PermissionDenied, StaleVersion
from crmkit.ids import new_id, parse_id
from crmkit.pagination import page_size

ROLE_NAME = re.compile(r"^[a-z][a-z0-9_]{1,47}$")


def require(principal: Principal, permission: str) -> None:
    if not principal.may(permission):
        raise PermissionDenied(f"this needs the permission {permission}", metadata={"permission": permission})


def _is_self(principal: Principal, user_id: uuid.UUID) -> bool:
    return principal.kind == "user" and principal.subject == str(user_id)


# ------------------------------------------------------------------------------ departments

async def _department(uow: UnitOfWork, department_id: uuid.UUID, field: str = "department_id",
                      *, for_update: bool = False) -> Department:
    d = await repo.get_department(uow.session, department_id, for_update=for_update)
    if d is None:
        raise NotFound(f"department {department_id} not found", metadata={"field": field})
    return d


async def _existing_user(uow: UnitOfWork, user_id: uuid.UUID | None, field: str) -> None:
    if user_id is not None and await repo.get_user(uow.session, user_id) is None:
        raise InvalidArgument.of(field, f"user {user_id} does not exist")


async def create_department(uow: UnitOfWork, principal: Principal, *, name: str, parent_id: uuid.UUID | None,
                            head_user_id: uuid.UUID | None) -> Department:
    require(principal, "org.manage")
    name = clean_name(name, "department.name")
    department_id = new_id()
    if parent_id is None:
        if await repo.count_roots(uow.session):
            raise Conflict("there is a root department already; give a parent_id", reason="ROOT_EXISTS")
        path = path_of(department_id, None)
    else:
        path = path_of(department_id, (await _department(uow, parent_id, "department.parent_id")).path)
    await _existing_user(uow, head_user_id, "department.head_user_id")
    department = Department(id=department_id, name=name, parent_id=parent_id, path=path, head_user_id=head_user_id)
    await repo.add_department(uow.session, department)
    uow.emit(ev.DepartmentChanged(after=department_to_pb(department)), subject_id=str(department.id))
    await uow.commit()
    return department


async def update_department(uow: UnitOfWork, principal: Principal, department_id: uuid.UUID, *, name: str,
                            parent_id: uuid.UUID | None, head_user_id: uuid.UUID | None,
                            mask: Sequence[str]) -> Department:
    require(principal, "org.manage")
    unknown = set(mask) - {"name", "parent_id", "head_user_id"}
    if not mask or unknown:
        raise InvalidArgument.of("update_mask", "name one or more of name, parent_id, head_user_id")
    before = await _department(uow, department_id, "department.id", for_update=True)
    after = before
    if "name" in mask:
        after = dataclasses.replace(after, name=clean_name(name, "department.name"))
    if "head_user_id" in mask:
        await _existing_user(uow, head_user_id, "department.head_user_id")
        after = dataclasses.replace(after, head_user_id=head_user_id)
    moved: list[tuple[Department, Department]] = []
    if "parent_id" in mask and parent_id != before.parent_id:
        if parent_id is None:
            raise Conflict("there is one root department; a department cannot become another",
                           reason="ROOT_EXISTS")
        parent = await _department(uow, parent_id, "department.parent_id")
        check_move(department_id, parent_id, parent.path)
        new_path = path_of(department_id, parent.path)
        for child_id, child_path in await repo.subtree_paths(uow.session, before.path):
            child_before = await _department(uow, child_id)
            child_after = dataclasses.replace(child_before, path=rebase(child_path, before.path, new_path))
            moved.append((child_before, child_after))
        after = dataclasses.replace(after, parent_id=parent_id, path=new_path)
    if after == before:
        return before
    after = dataclasses.replace(after, version=before.version + 1)
    await repo.save_department(uow.session, after)
    uow.emit(ev.DepartmentChanged(before=department_to_pb(before), after=department_to_pb(after)),
             subject_id=str(after.id))
    for child_before, child_after in moved:
        await repo.set_path(uow.session, child_after.id, child_after.path)
        uow.emit(ev.DepartmentChanged(before=department_to_pb(child_before), after=department_to_pb(child_after)),
                 subject_id=str(child_after.id))
    await uow.commit()
    return after


async def list_departments(uow: UnitOfWork, principal: Principal, *, limit: int,
                           page_token: str) -> tuple[list[Department], str]:
    require(principal, "org.read")
    return await repo.list_departments(uow.session, limit=page_size(limit), page_token=page_token)


# ------------------------------------------------------------------------------------ teams

async def create_team(uow: UnitOfWork, principal: Principal, *, name: str, department_id: uuid.UUID | None,
                      lead_user_id: uuid.UUID | None) -> Team:
    require(principal, "org.manage")
    name = clean_name(name, "team.name")
    if department_id is None:
        raise InvalidArgument.of("team.department_id", "is required")
    await _department(uow, department_id, "team.department_id")
    await _existing_user(uow, lead_user_id, "team.lead_user_id")
    team = Team(id=new_id(), name=name, department_id=department_id, lead_user_id=lead_user_id)
    await repo.add_team(uow.session, team)
    await uow.commit()
    return team


async def list_teams(uow: UnitOfWork, principal: Principal, *, department_id: uuid.UUID | None, limit: int,
                     page_token: str) -> tuple[list[Team], str]:
    require(principal, "org.read")
    return await repo.list_teams(uow.session, department_id=department_id, limit=page_size(limit),
                                 page_token=page_token)


# ------------------------------------------------------------------------------------ users

async def _check_links(uow: UnitOfWork, user: User) -> None:
    if user.department_id is not None:
        await _department(uow, user.department_id, "user.department_id")
    missing_teams = set(user.team_ids) - await repo.existing_team_ids(uow.session, user.team_ids)
    if missing_teams:
        raise InvalidArgument.of("user.team_ids", f"unknown teams: {', '.join(sorted(map(str, missing_teams)))}")
    known_roles = {r.name for r in await repo.roles_named(uow.session, user.roles)}
    if set(user.roles) - known_roles:
        raise InvalidArgument.of("user.roles", f"unknown roles: {', '.join(sorted(set(user.roles) - known_roles))}")
    if user.manager_id is not None:
        if await repo.get_user(uow.session, user.manager_id) is None:
            raise InvalidArgument.of("user.manager_id", f"user {user.manager_id} does not exist")
        check_manager(user.id, user.manager_id, await repo.manager_chain_ids(uow.session, user.manager_id, 0))


def _clean_user(user: User) -> User:
    display = clean_name(user.display_name, "user.display_name")
    email = user.email.strip()
    if email and ("@" not in email or len(email) > 254):
        raise InvalidArgument.of("user.email", "is not an email address")
    return dataclasses.replace(user, display_name=display, email=email, locale=user.locale.strip() or "zh-CN",
                               roles=tuple(sorted(set(user.roles))), team_ids=tuple(sorted(set(user.team_ids))))


async def create_user(uow: UnitOfWork, principal: Principal, fields: dict[str, object], password: str) -> User:
    require(principal, "org.manage")
    login = check_login(str(fields.get("login", "")))
    check_password(password, login, "initial_password")
    user = _clean_user(User(id=new_id(), login=login, display_name=str(fields.get("display_name", "")),
                            email=str(fields.get("email", "")), department_id=fields.get("department_id"),  # type: ignore[arg-type]
                            team_ids=fields.get("team_ids", ()), manager_id=fields.get("manager_id"),  # type: ignore[arg-type]
                            roles=fields.get("roles", ()), locale=str(fields.get("locale", "")),  # type: ignore[arg-type]
                            status=fields.get("status", UserStatus.ACTIVE)))  # type: ignore[arg-type]
    if await repo.login_taken(uow.session, login):
        raise AlreadyExists(f"login {login!r} is taken", metadata={"field": "user.login"})
    await _check_links(uow, user)
    await repo.add_user(uow.session, user, hash_password(password))
    created = await repo.get_user(uow.session, user.id)
    assert created is not None
    uow.emit(ev.UserCreated(user=user_to_pb(created)), subject_id=str(created.id))
    await uow.commit()
    return created


async def get_user(uow: UnitOfWork, principal: Principal, user_id: uuid.UUID) -> User:
    if not _is_self(principal, user_id):
        require(principal, "org.read")
    user = await repo.get_user(uow.session, user_id)
    if user is None:
        raise NotFound(f"user {user_id} not found")
    return user


USER_MASK = ("display_name", "email", "department_id", "team_ids", "manager_id", "roles", "status", "locale")


async def update_user(uow: UnitOfWork, principal: Principal, user_id: uuid.UUID, fields: dict[str, object],
                      mask: Sequence[str], expected_version: int) -> User:
    require(principal, "org.manage")
    unknown = set(mask) - set(USER_MASK)
    if not mask or unknown:
        raise InvalidArgument.of("update_mask", f"name one or more of {', '.join(USER_MASK)}")
    before = await repo.get_user(uow.session, user_id, for_update=True)
    if before is None:
        raise NotFound(f"user {user_id} not found")
    if expected_version and expected_version != before.version:
        raise StaleVersion(f"user is at version {before.version}, not {expected_version}")
    changes = {name: fields[name] for name in mask if name in fields}
    if "status" in mask:
        changes["status"] = fields.get("status", UserStatus.ACTIVE)
    after = _clean_user(dataclasses.replace(before, **changes))  # type: ignore[arg-type]
    changed = [name for name in USER_MASK if getattr(before, name) != getattr(after, name)]
    if not changed:
        return before
    if str(user_id) == principal.subject and ("roles" in changed or "status" in changed):
        raise Conflict("administrators cannot change their own roles or status", reason="SELF_CHANGE")
    await _check_links(uow, after)
    after = dataclasses.replace(after, version=before.version + 1)
    await repo.save_user(uow.session, after)
    uow.emit(ev.UserUpdated(before=user_to_pb(before), after=user_to_pb(after), changed_fields=changed),
             subject_id=str(user_id))
    if "status" in changed and after.status != UserStatus.ACTIVE:
        # A disabled user is out now, not when their access token expires.
        await tokens.end_sessions(uow, user_id, dt.datetime.now(dt.UTC))
    await uow.commit()
    return after


async def list_users(uow: UnitOfWork, principal: Principal, *, department_id: uuid.UUID | None,
                     team_id: uuid.UUID | None, role: str, login: str, name: str, limit: int,
                     page_token: str) -> tuple[list[User], str]:
    require(principal, "org.read")
    return await repo.list_users(uow.session, department_id=department_id, team_id=team_id, role=role,
                                 login=login.strip(), name=name.strip(), limit=page_size(limit), page_token=page_token)


@dataclasses.dataclass(frozen=True)
class Me:
    user: User
    department: Department | None
    teams: list[Team]
    manager: User | None


async def me(uow: UnitOfWork, principal: Principal) -> Me:
    """The calling user and where they sit: anyone signed in may read this about themselves."""
    if principal.kind != "user":
        raise NotFound(f"the caller is a {principal.kind}, not a user")
    user = await repo.get_user(uow.session, parse_id(principal.subject, "subject"))
    if user is None:
        raise NotFound(f"user {principal.subject} not found")
    department = await repo.get_department(uow.session, user.department_id) if user.department_id else None
    manager = await repo.get_user(uow.session, user.manager_id) if user.manager_id else None
    return Me(user, department, await repo.teams_by_ids(uow.session, user.team_ids), manager)


async def set_password(uow: UnitOfWork, principal: Principal, user_id: uuid.UUID, *, current_password: str,
                       new_password: str) -> None:
    """Administrators set anyone's password (and so unlock them); users change their own with the
    current one."""
    administrator = principal.may("org.manage")
    if not administrator and not _is_self(principal, user_id):
        raise PermissionDenied("this needs the permission org.manage", metadata={"permission": "org.manage"})
    user = await repo.get_user(uow.session, user_id, for_update=True)
    if user is None:
        raise NotFound(f"user {user_id} not found")
    if _is_self(principal, user_id) and not administrator:
        hashed = await repo.password_hash(uow.session, user_id)
        if not current_password or not hashed or not verify_password(hashed, current_password):
            raise InvalidArgument.of("current_password", "does not match")
    check_password(new_password, user.login, "new_password")
    await repo.set_password_hash(uow.session, user_id, hash_password(new_password))
    after = dataclasses.replace(user, locked=False)
    uow.emit(ev.UserUpdated(before=user_to_pb(user), after=user_to_pb(after), changed_fields=["password"]),
             subject_id=str(user_id))
    await uow.commit()


# ------------------------------------------------------------------------------------ roles

def _check_role(role: Role) -> Role:
    bad = [p for p in role.permissions if not is_known_permission(p)]
    if bad:
        raise InvalidArgument.of("role.permissions", f"unknown permissions: {', '.join(bad)}")
    return dataclasses.replace(role, permissions=tuple(sorted(set(role.permissions))),
                               description=role.description.strip())


async def list_roles(uow: UnitOfWork, principal: Principal, *, limit: int, page_token: str) -> tuple[list[Role], str]:
    require(principal, "org.read")
    return await repo.list_roles(uow.session, limit=page_size(limit), page_token=page_token)


async def create_role(uow: UnitOfWork, principal: Principal, role: Role) -> Role:
    require(principal, "org.manage")
    if not ROLE_NAME.match(role.name):
        raise InvalidArgument.of("role.name", "2-48 characters: lower-case letters, digits and _")
    role = _check_role(dataclasses.replace(role, built_in=False))
    if await repo.get_role(uow.session, role.name) is not None:
        raise AlreadyExists(f"role {role.name!r} exists", metadata={"field": "role.name"})
    await repo.add_role(uow.session, role)
    uow.emit(ev.RoleChanged(after=role_to_pb(role)), subject_id=role.name)
    await uow.commit()
    return role


async def update_role(uow: UnitOfWork, principal: Principal, name: str, *, description: str,
                      permissions: Sequence[str], data_scope: DataScope | None, sees_sensitive: bool,
                      mask: Sequence[str]) -> Role:
    require(principal, "org.manage")
    allowed = {"description", "permissions", "data_scope", "sees_sensitive"}
    if not mask or set(mask) - allowed:
        raise InvalidArgument.of("update_mask", f"name one or more of {', '.join(sorted(allowed))}")
    before = await repo.get_role(uow.session, name, for_update=True)
    if before is None:
        raise NotFound(f"role {name!r} not found")
    if before.name == "admin":
        raise Conflict("the admin role cannot be changed", reason="BUILT_IN_ROLE")
    after = before
    if "description" in mask:
        after = dataclasses.replace(after, description=description)
    if "permissions" in mask:
        after = dataclasses.replace(after, permissions=tuple(permissions))
    if "data_scope" in mask:
        if data_scope is None:
            raise InvalidArgument.of("role.data_scope", "must be own, team, department, all or signed")
        after = dataclasses.replace(after, data_scope=data_scope)
    if "sees_sensitive" in mask:
        after = dataclasses.replace(after, sees_sensitive=sees_sensitive)
    after = _check_role(after)
    if after == before:
        return before
    await repo.save_role(uow.session, after)
    uow.emit(ev.RoleChanged(before=role_to_pb(before), after=role_to_pb(after)), subject_id=name)
    await uow.commit()
    return after


# ---------------------------------------------------------------- approval-chain queries

async def manager_chain(uow: UnitOfWork, principal: Principal, user_id: uuid.UUID, max_levels: int) -> list[User]:
    if not _is_self(principal, user_id):
        require(principal, "org.read")
    if max_levels < 0:
        raise InvalidArgument.of("max_levels", "must not be negative")
    if await repo.get_user(uow.session, user_id) is None:
        raise NotFound(f"user {user_id} not found")
    chain = await repo.manager_chain_ids(uow.session, user_id, max_levels)
    found = await repo.users_by_ids(uow.session, chain)
    return [found[i] for i in chain if i in found]


async def department_head(uow: UnitOfWork, principal: Principal, department_id: uuid.UUID) -> tuple[User, uuid.UUID]:
    require(principal, "org.read")
    department = await _department(uow, department_id)
    heads = await repo.heads_on_path(uow.session, ids_of_path(department.path))
    found = nearest_head(department.path, heads)
    if found is None:
        raise NotFound(f"neither department {department_id} nor any above it has a head", reason="NO_HEAD")
    answered_by, head_id = found
    head = await repo.get_user(uow.session, head_id)
    if head is None:
        raise NotFound(f"the head of department {answered_by} does not exist", reason="NO_HEAD")
    return head, answered_by


async def role_holders(uow: UnitOfWork, principal: Principal, role: str, department_id: uuid.UUID,
                       include_subtree: bool) -> list[User]:
    require(principal, "org.read")
    if not role:
        raise InvalidArgument.of("role", "is required")
    department = await _department(uow, department_id)
    return await repo.role_holders(uow.session, role, department, include_subtree)


# ---------------------------------------------------------------------------- bootstrap

async def bootstrap_admin(uow: UnitOfWork, password: str) -> bool:
    """First start: a root department and an `admin` user, if there are no users at all."""
    await repo.lock_bootstrap(uow.session)  # replicas starting together: one bootstraps
    if await repo.count_users(uow.session):
        return False
    check_password(password, "admin", "CRM_IDENTITY_BOOTSTRAP_ADMIN_PASSWORD")
    root_id = new_id()
    if not await repo.count_roots(uow.session):
        root = Department(id=root_id, name="Company", parent_id=None, path=path_of(root_id, None))
        await repo.add_department(uow.session, root)
        uow.emit(ev.DepartmentChanged(after=department_to_pb(root)), subject_id=str(root.id))
    else:
        root_id = (await repo.list_departments(uow.session, limit=1, page_token=""))[0][0].id
    admin = User(id=new_id(), login="admin", display_name="Administrator", department_id=root_id, roles=("admin",))
    await repo.add_user(uow.session, admin, hash_password(password))
    created = await repo.get_user(uow.session, admin.id)
    assert created is not None
    uow.emit(ev.UserCreated(user=user_to_pb(created)), subject_id=str(created.id))
    await uow.commit()
    return True
