"""/api/v1/users, departments, teams, roles, partner-clients, api-keys and audit: REST in front of
crm.identity.v1.IdentityService (R-SEC-01, 03, 05)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.timestamp_pb2 import Timestamp
from pydantic import AwareDatetime

from crm.identity.v1 import identity_pb2 as pb
from crm_gateway import permissions as p
from crm_gateway.api_route import ApiRoute
from crm_gateway.auth import Caller, authenticated, require
from crm_gateway.etags import etag_of, expected_version
from crm_gateway.problems import API_ERRORS
from crm_gateway.routes import identity_schemas as s
from crm_gateway.routes.common import IDEMPOTENCY, IF_MATCH
from crm_gateway.routes.common import json_response as _json
from crmkit.errors import PermissionDenied, Unavailable

router = APIRouter(prefix="/api/v1", route_class=ApiRoute, tags=["organisation and access"],
                   dependencies=[Depends(authenticated)], responses=API_ERRORS)



def identity_stub(request: Request) -> Any:
    stub = getattr(request.app.state, "identity", None)
    if stub is None:
        raise Unavailable("the identity service is not configured (CRM_IDENTITY_TARGET)", reason="UNAVAILABLE")
    return stub



def _time(ts: Timestamp) -> datetime | None:
    return ts.ToDatetime(UTC) if ts.seconds or ts.nanos else None


def _scope(value: int) -> str:
    return pb.DataScope.Name(value).removeprefix("DATA_SCOPE_").lower() if value else "own"


def _user_json(m: pb.User) -> s.User:
    return s.User(id=m.id, login=m.login, display_name=m.display_name, email=m.email, department_id=m.department_id,
                  team_ids=list(m.team_ids), manager_id=m.manager_id, roles=list(m.roles),
                  status="disabled" if m.status == pb.USER_STATUS_DISABLED else "active", locale=m.locale,
                  locked=m.locked, version=m.version, created_at=_time(m.create_time))


def _department_json(m: pb.Department) -> s.Department:
    return s.Department(id=m.id, name=m.name, parent_id=m.parent_id, path=m.path, head_user_id=m.head_user_id)


def _team_json(m: pb.Team) -> s.Team:
    return s.Team(id=m.id, name=m.name, department_id=m.department_id, lead_user_id=m.lead_user_id)


def _role_json(m: pb.Role) -> s.Role:
    return s.Role(name=m.name, description=m.description, permissions=list(m.permissions),
                  data_scope=_scope(m.data_scope), sees_sensitive=m.sees_sensitive,  # type: ignore[arg-type]
                  built_in=m.built_in)


def _role_pb(fields: dict[str, Any]) -> pb.Role:
    message = pb.Role()
    for key, value in fields.items():
        if key == "data_scope":
            message.data_scope = pb.DataScope.Value(f"DATA_SCOPE_{value.upper()}")
        elif key == "permissions":
            message.permissions.extend(value)
        else:
            setattr(message, key, value)
    return message


def _client_json(m: pb.PartnerClient) -> dict[str, Any]:
    return {"client_id": m.client_id, "name": m.name, "scopes": list(m.scopes),
            "rate_limit_per_minute": m.rate_limit_per_minute, "disabled": m.disabled,
            "created_at": _time(m.create_time)}


def _api_key_json(m: pb.ApiKey) -> dict[str, Any]:
    return {"id": m.id, "client_id": m.client_id, "prefix": m.prefix, "name": m.name,
            "created_at": _time(m.create_time), "last_used_at": _time(m.last_use_time),
            "revoked_at": _time(m.revoke_time)}


# Users ---------------------------------------------------------------------------------------

@router.get("/me", response_model=s.Me, summary="Who am I: user, roles, permissions, data scope, team, manager",
            description="Needs no permission. For a person: the user record, department, teams and direct "
                        "manager, with the roles, permissions and data scope of this access token. For a "
                        "partner system: its client id, scopes and permissions (no user).")
async def me(request: Request, caller: Caller = Depends(authenticated)) -> Response:
    principal = caller.principal
    body = s.Me(kind="client" if principal.kind == "client" else "user", subject=principal.subject,
                roles=list(principal.roles), permissions=sorted(principal.permissions), scopes=list(principal.scopes),
                data_scope=principal.data_scope.value, sees_sensitive=principal.sees_sensitive)
    if principal.kind == "user":
        reply = await identity_stub(request).GetMe(pb.GetMeRequest(), metadata=caller.metadata)
        body.user = _user_json(reply.user)
        body.department = _department_json(reply.department) if reply.HasField("department") else None
        body.teams = [_team_json(t) for t in reply.teams]
        if reply.HasField("manager"):
            body.manager = s.UserSummary(id=reply.manager.id, login=reply.manager.login,
                                         display_name=reply.manager.display_name)
    return _json(body)


@router.get("/users", response_model=s.UserPage, summary="List users",
            description="Filters combine: `login` is exact, `name` matches part of the display name or login "
                        "(case-insensitive).")
async def list_users(request: Request, caller: Caller = Depends(require(p.ORG_READ)),
                     limit: int = Query(50, ge=1, le=200), cursor: str = Query("", max_length=2000),
                     department_id: str = Query("", max_length=100), team_id: str = Query("", max_length=100),
                     role: str = Query("", max_length=100), login: str = Query("", max_length=100),
                     name: str = Query("", max_length=200)) -> Response:
    reply = await identity_stub(request).ListUsers(pb.ListUsersRequest(
        department_id=department_id, team_id=team_id, role=role, login=login, name=name, page_size=limit,
        page_token=cursor), metadata=caller.metadata)
    return _json(s.UserPage(items=[_user_json(u) for u in reply.users], next_cursor=reply.next_page_token or None))


@router.post("/users", status_code=201, response_model=s.User, summary="Create a user with an initial password")
async def create_user(body: s.UserCreate, request: Request, caller: Caller = Depends(require(p.ORG_MANAGE)),
                      idempotency_key: str | None = IDEMPOTENCY) -> Response:
    fields = body.model_dump(exclude={"password"})
    reply = await identity_stub(request).CreateUser(pb.CreateUserRequest(
        user=pb.User(**fields), initial_password=body.password), metadata=caller.metadata)
    user = _user_json(reply.user)
    return _json(user, 201, {"ETag": etag_of(user.version), "Location": f"/api/v1/users/{user.id}"})


@router.get("/users/{user_id}", response_model=s.User, summary="Read a user")
async def get_user(request: Request, user_id: str = Path(max_length=100),
                   caller: Caller = Depends(require(p.ORG_READ))) -> Response:
    reply = await identity_stub(request).GetUser(pb.GetUserRequest(id=user_id), metadata=caller.metadata)
    user = _user_json(reply.user)
    return _json(user, headers={"ETag": etag_of(user.version)})


@router.patch("/users/{user_id}", response_model=s.User, summary="Change a user (merge patch)")
async def update_user(body: s.UserPatch, request: Request, user_id: str = Path(max_length=100),
                      caller: Caller = Depends(require(p.ORG_MANAGE)), if_match: str | None = IF_MATCH) -> Response:
    fields = body.model_dump(exclude_unset=True)
    message = pb.User(id=user_id)
    for key, value in fields.items():
        if value is None:
            continue
        if key == "status":
            message.status = pb.USER_STATUS_DISABLED if value == "disabled" else pb.USER_STATUS_ACTIVE
        elif key in ("team_ids", "roles"):
            getattr(message, key).extend(value)
        else:
            setattr(message, key, value)
    reply = await identity_stub(request).UpdateUser(pb.UpdateUserRequest(
        user=message, update_mask=FieldMask(paths=sorted(fields)), expected_version=expected_version(if_match)),
        metadata=caller.metadata)
    user = _user_json(reply.user)
    return _json(user, headers={"ETag": etag_of(user.version)})


@router.post("/users/{user_id}/password", status_code=204, summary="Set a user's password (and unlock)",
             description="Your own (with `current_password`), or anyone's with the permission `org.manage`.",
             openapi_extra={"x-permission": f"{p.ORG_MANAGE} (or your own account)"})
async def set_password(body: s.PasswordChange, request: Request, user_id: str = Path(max_length=100),
                       caller: Caller = Depends(authenticated)) -> Response:
    own = caller.principal.kind == "user" and caller.principal.subject == user_id
    if not own and not p.allows(caller.principal, p.ORG_MANAGE):
        raise PermissionDenied(f"this needs the permission {p.ORG_MANAGE}, or to be your own account",
                               reason="PERMISSION_DENIED", metadata={"permission": p.ORG_MANAGE})
    await identity_stub(request).SetPassword(pb.SetPasswordRequest(
        user_id=user_id, current_password=body.current_password, new_password=body.new_password),
        metadata=caller.metadata)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# Departments and teams -----------------------------------------------------------------------

@router.get("/departments", response_model=s.DepartmentList, summary="The department tree, in path order")
async def list_departments(request: Request, caller: Caller = Depends(require(p.ORG_READ))) -> Response:
    reply = await identity_stub(request).ListDepartments(pb.ListDepartmentsRequest(), metadata=caller.metadata)
    return _json(s.DepartmentList(items=[_department_json(d) for d in reply.departments]))


@router.post("/departments", status_code=201, response_model=s.Department, summary="Create a department")
async def create_department(body: s.DepartmentCreate, request: Request,
                            caller: Caller = Depends(require(p.ORG_MANAGE)),
                            idempotency_key: str | None = IDEMPOTENCY) -> Response:
    reply = await identity_stub(request).CreateDepartment(
        pb.CreateDepartmentRequest(department=pb.Department(**body.model_dump())), metadata=caller.metadata)
    department = _department_json(reply.department)
    return _json(department, 201, {"Location": f"/api/v1/departments/{department.id}"})


@router.patch("/departments/{department_id}", response_model=s.Department,
              summary="Rename, move or give a department a new head (merge patch)")
async def update_department(body: s.DepartmentPatch, request: Request, department_id: str = Path(max_length=100),
                            caller: Caller = Depends(require(p.ORG_MANAGE))) -> Response:
    fields = {k: v for k, v in body.model_dump(exclude_unset=True).items() if v is not None}
    reply = await identity_stub(request).UpdateDepartment(pb.UpdateDepartmentRequest(
        department=pb.Department(id=department_id, **fields), update_mask=FieldMask(paths=sorted(fields))),
        metadata=caller.metadata)
    return _json(_department_json(reply.department))


@router.get("/teams", response_model=s.TeamList, summary="List teams")
async def list_teams(request: Request, caller: Caller = Depends(require(p.ORG_READ)),
                     department_id: str = Query("", max_length=100)) -> Response:
    reply = await identity_stub(request).ListTeams(pb.ListTeamsRequest(department_id=department_id),
                                                   metadata=caller.metadata)
    return _json(s.TeamList(items=[_team_json(t) for t in reply.teams]))


@router.post("/teams", status_code=201, response_model=s.Team, summary="Create a team in a department")
async def create_team(body: s.TeamCreate, request: Request, caller: Caller = Depends(require(p.ORG_MANAGE)),
                      idempotency_key: str | None = IDEMPOTENCY) -> Response:
    reply = await identity_stub(request).CreateTeam(pb.CreateTeamRequest(team=pb.Team(**body.model_dump())),
                                                    metadata=caller.metadata)
    return _json(_team_json(reply.team), 201)


# Roles ---------------------------------------------------------------------------------------

@router.get("/roles", response_model=s.RoleList, summary="Roles with their permissions and data scope")
async def list_roles(request: Request, caller: Caller = Depends(require(p.ORG_READ))) -> Response:
    reply = await identity_stub(request).ListRoles(pb.ListRolesRequest(), metadata=caller.metadata)
    return _json(s.RoleList(items=[_role_json(r) for r in reply.roles]))


@router.post("/roles", status_code=201, response_model=s.Role, summary="Create a custom role")
async def create_role(body: s.RoleCreate, request: Request, caller: Caller = Depends(require(p.ORG_MANAGE)),
                      idempotency_key: str | None = IDEMPOTENCY) -> Response:
    reply = await identity_stub(request).CreateRole(pb.CreateRoleRequest(role=_role_pb(body.model_dump())),
                                                    metadata=caller.metadata)
    return _json(_role_json(reply.role), 201)


@router.patch("/roles/{role_name}", response_model=s.Role, summary="Change a role's permissions or data scope")
async def update_role(body: s.RolePatch, request: Request, role_name: str = Path(max_length=100),
                      caller: Caller = Depends(require(p.ORG_MANAGE))) -> Response:
    fields = {k: v for k, v in body.model_dump(exclude_unset=True).items() if v is not None}
    message = _role_pb(fields)
    message.name = role_name
    reply = await identity_stub(request).UpdateRole(pb.UpdateRoleRequest(
        role=message, update_mask=FieldMask(paths=sorted(fields))), metadata=caller.metadata)
    return _json(_role_json(reply.role))


# Partner clients and API keys ----------------------------------------------------------------

@router.get("/partner-clients", response_model=s.PartnerClientList, summary="Partner systems (never their secrets)")
async def list_partner_clients(request: Request, caller: Caller = Depends(require(p.CLIENTS_MANAGE))) -> Response:
    reply = await identity_stub(request).ListPartnerClients(pb.ListPartnerClientsRequest(),
                                                            metadata=caller.metadata)
    return _json(s.PartnerClientList(items=[s.PartnerClient(**_client_json(c)) for c in reply.clients]))


@router.post("/partner-clients", status_code=201, response_model=s.PartnerClientCreated,
             summary="Register a partner system; its secret is shown once")
async def create_partner_client(body: s.PartnerClientCreate, request: Request,
                                caller: Caller = Depends(require(p.CLIENTS_MANAGE)),
                                idempotency_key: str | None = IDEMPOTENCY) -> Response:
    fields = body.model_dump() | {"scopes": [p.normalise_scope(scope) for scope in body.scopes]}
    reply = await identity_stub(request).CreatePartnerClient(pb.CreatePartnerClientRequest(
        client=pb.PartnerClient(**fields)), metadata=caller.metadata)
    created = s.PartnerClientCreated(**_client_json(reply.client), client_secret=reply.client_secret)
    return _json(created, 201, {"Cache-Control": "no-store"})


@router.get("/api-keys", response_model=s.ApiKeyList, summary="API keys (prefix and metadata, never the key)")
async def list_api_keys(request: Request, caller: Caller = Depends(require(p.CLIENTS_MANAGE)),
                        client_id: str = Query("", max_length=100)) -> Response:
    reply = await identity_stub(request).ListApiKeys(pb.ListApiKeysRequest(client_id=client_id),
                                                     metadata=caller.metadata)
    return _json(s.ApiKeyList(items=[s.ApiKey(**_api_key_json(k)) for k in reply.api_keys]))


@router.post("/api-keys", status_code=201, response_model=s.ApiKeyCreated,
             summary="Issue an API key for a partner client; the key is shown once")
async def create_api_key(body: s.ApiKeyCreate, request: Request, caller: Caller = Depends(require(p.CLIENTS_MANAGE)),
                         idempotency_key: str | None = IDEMPOTENCY) -> Response:
    reply = await identity_stub(request).CreateApiKey(pb.CreateApiKeyRequest(client_id=body.client_id,
                                                                             name=body.name),
                                                      metadata=caller.metadata)
    return _json(s.ApiKeyCreated(**_api_key_json(reply.api_key), key=reply.key), 201, {"Cache-Control": "no-store"})


@router.delete("/api-keys/{key_id}", status_code=204, summary="Revoke an API key",
               description="Identity refuses the key at once; a gateway replica that exchanged it in the last "
                           "`CRM_API_KEY_CACHE_SECONDS` (≤ 60 s) may still accept it until then.")
async def revoke_api_key(request: Request, key_id: str = Path(max_length=100),
                         caller: Caller = Depends(require(p.CLIENTS_MANAGE))) -> Response:
    await identity_stub(request).RevokeApiKey(pb.RevokeApiKeyRequest(id=key_id), metadata=caller.metadata)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# Audit trail ---------------------------------------------------------------------------------

def _ts(value: datetime | None) -> Timestamp | None:
    if value is None:
        return None
    ts = Timestamp()
    ts.FromDatetime(value)
    return ts


@router.get("/audit", response_model=s.AuditPage, summary="The audit trail, newest first")
async def list_audit(request: Request, caller: Caller = Depends(require(p.AUDIT_READ)),
                     entity: str = Query("", max_length=100, description="e.g. customer"),
                     entity_id: str = Query("", max_length=100), actor: str = Query("", max_length=100),
                     from_: AwareDatetime | None = Query(None, alias="from", description="With a UTC offset"),
                     to: AwareDatetime | None = Query(None, description="With a UTC offset"),
                     limit: int = Query(50, ge=1, le=200), cursor: str = Query("", max_length=2000)) -> Response:
    reply = await identity_stub(request).ListAuditEntries(pb.ListAuditEntriesRequest(
        entity=entity, entity_id=entity_id, actor=actor, from_time=_ts(from_), to_time=_ts(to),
        page_size=limit, page_token=cursor), metadata=caller.metadata)
    items = [s.AuditEntry(sequence=e.sequence, occurred_at=_time(e.occur_time), service=e.service, entity=e.entity,
                          entity_id=e.entity_id, action=e.action, actor=e.actor, before=e.before_json,
                          after=e.after_json, event_id=e.event_id, hash=e.hash) for e in reply.entries]
    return _json(s.AuditPage(items=items, next_cursor=reply.next_page_token or None))


@router.get("/audit/verify", response_model=s.AuditVerification,
            summary="Walk the audit trail's hash chain and report the first entry that does not match")
async def verify_audit(request: Request, caller: Caller = Depends(require(p.AUDIT_READ))) -> Response:
    reply = await identity_stub(request).VerifyAuditTrail(pb.VerifyAuditTrailRequest(), metadata=caller.metadata,
                                                          timeout=60.0)
    return _json(s.AuditVerification(intact=reply.intact, entries_checked=reply.entries_checked,
                                     first_broken_sequence=reply.first_broken_sequence or None,
                                     problem=reply.problem or None))
