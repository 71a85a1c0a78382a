"""The gRPC face of the service: protobuf in, use case, protobuf out. No rules live here."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import grpc
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm.identity.v1 import identity_pb2 as pb
from crm.identity.v1 import identity_pb2_grpc as pb_grpc
from crm_identity.app import audit, clients, org, tokens
from crm_identity.app.messages import (
    api_key_to_pb,
    audit_entry_to_pb,
    client_to_pb,
    department_to_pb,
    from_ts,
    opt_id,
    role_to_pb,
    scope_from_pb,
    team_to_pb,
    user_fields_from_pb,
    user_to_pb,
)
from crm_identity.domain.model import Role
from crmkit.auth import current_principal
from crmkit.db import UnitOfWork
from crmkit.errors import InvalidArgument
from crmkit.ids import parse_id

SOURCE = "crm/identity"
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["IdentityService"].full_name
PUBLIC_METHODS = frozenset({f"/{SERVICE_NAME}/IssueToken", f"/{SERVICE_NAME}/GetJwks"})


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class IdentityServicer(pb_grpc.IdentityServiceServicer):
    def __init__(self, sessions: async_sessionmaker[AsyncSession], config: tokens.TokenConfig,
                 clock: Callable[[], dt.datetime] = _now, anchors: audit.Anchors | None = None) -> None:
        self._sessions = sessions
        self._config = config
        self._clock = clock
        self._anchors = anchors

    def _uow(self, actor: str | None = None) -> UnitOfWork:
        return UnitOfWork(self._sessions, SOURCE, actor=current_principal().subject if actor is None else actor)

    # ------------------------------------------------------------------------ public

    async def IssueToken(self, request: pb.IssueTokenRequest, context: grpc.aio.ServicerContext) -> Any:
        grant = request.grant_type
        cfg, now = self._config, self._clock()
        if grant == "password":
            async with self._uow(actor=request.username.strip().lower()[:128]) as uow:
                issued = await tokens.password_grant(uow, cfg, request.username, request.password, now)
        elif grant == "refresh_token":
            async with self._uow(actor="") as uow:
                issued = await tokens.refresh_grant(uow, cfg, request.refresh_token, now)
        elif grant == "client_credentials":
            async with self._uow(actor=request.client_id[:128]) as uow:
                issued = await tokens.client_credentials_grant(uow, cfg, request.client_id, request.client_secret)
        elif grant == "api_key":
            async with self._uow(actor="") as uow:
                issued = await tokens.api_key_grant(uow, cfg, request.api_key, now)
        else:
            raise InvalidArgument.of("grant_type", f"must be one of {', '.join(tokens.GRANTS)}")
        return pb.IssueTokenResponse(access_token=issued.access_token, expires_in=issued.expires_in,
                                     refresh_token=issued.refresh_token, token_type="Bearer", scope=issued.scope)  # noqa: S106 - a type name

    async def GetJwks(self, request: pb.GetJwksRequest, context: grpc.aio.ServicerContext) -> Any:
        return pb.GetJwksResponse(jwks_json=self._config.keys.jwks())

    # ------------------------------------------------------------------------ tokens

    async def RevokeToken(self, request: pb.RevokeTokenRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            await tokens.revoke(uow, current_principal(), self._config, refresh_token=request.refresh_token,
                                access_token_id=request.access_token_id, now=self._clock())
        return pb.RevokeTokenResponse()

    # ------------------------------------------------------------------------ org chart

    async def CreateDepartment(self, request: pb.CreateDepartmentRequest, context: grpc.aio.ServicerContext) -> Any:
        d = request.department
        async with self._uow() as uow:
            created = await org.create_department(
                uow, current_principal(), name=d.name, parent_id=opt_id(d.parent_id, "department.parent_id"),
                head_user_id=opt_id(d.head_user_id, "department.head_user_id"))
        return pb.CreateDepartmentResponse(department=department_to_pb(created))

    async def UpdateDepartment(self, request: pb.UpdateDepartmentRequest, context: grpc.aio.ServicerContext) -> Any:
        d = request.department
        async with self._uow() as uow:
            updated = await org.update_department(
                uow, current_principal(), parse_id(d.id, "department.id"), name=d.name,
                parent_id=opt_id(d.parent_id, "department.parent_id"),
                head_user_id=opt_id(d.head_user_id, "department.head_user_id"), mask=list(request.update_mask.paths))
        return pb.UpdateDepartmentResponse(department=department_to_pb(updated))

    async def ListDepartments(self, request: pb.ListDepartmentsRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            items, token = await org.list_departments(uow, current_principal(), limit=request.page_size,
                                                      page_token=request.page_token)
        return pb.ListDepartmentsResponse(departments=[department_to_pb(d) for d in items], next_page_token=token)

    async def CreateTeam(self, request: pb.CreateTeamRequest, context: grpc.aio.ServicerContext) -> Any:
        t = request.team
        async with self._uow() as uow:
            team = await org.create_team(uow, current_principal(), name=t.name,
                                         department_id=opt_id(t.department_id, "team.department_id"),
                                         lead_user_id=opt_id(t.lead_user_id, "team.lead_user_id"))
        return pb.CreateTeamResponse(team=team_to_pb(team))

    async def ListTeams(self, request: pb.ListTeamsRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            items, token = await org.list_teams(uow, current_principal(),
                                                department_id=opt_id(request.department_id, "department_id"),
                                                limit=request.page_size, page_token=request.page_token)
        return pb.ListTeamsResponse(teams=[team_to_pb(t) for t in items], next_page_token=token)

    async def CreateUser(self, request: pb.CreateUserRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            user = await org.create_user(uow, current_principal(), user_fields_from_pb(request.user),
                                         request.initial_password)
        return pb.CreateUserResponse(user=user_to_pb(user))

    async def GetUser(self, request: pb.GetUserRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            user = await org.get_user(uow, current_principal(), parse_id(request.id))
        return pb.GetUserResponse(user=user_to_pb(user))

    async def GetMe(self, request: pb.GetMeRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            me = await org.me(uow, current_principal())
        return pb.GetMeResponse(user=user_to_pb(me.user),
                                department=department_to_pb(me.department) if me.department else None,
                                teams=[team_to_pb(t) for t in me.teams],
                                manager=user_to_pb(me.manager) if me.manager else None)

    async def UpdateUser(self, request: pb.UpdateUserRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            user = await org.update_user(uow, current_principal(), parse_id(request.user.id, "user.id"),
                                         user_fields_from_pb(request.user), list(request.update_mask.paths),
                                         request.expected_version)
        return pb.UpdateUserResponse(user=user_to_pb(user))

    async def ListUsers(self, request: pb.ListUsersRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            items, token = await org.list_users(
                uow, current_principal(), department_id=opt_id(request.department_id, "department_id"),
                team_id=opt_id(request.team_id, "team_id"), role=request.role, login=request.login,
                name=request.name, limit=request.page_size,
                page_token=request.page_token)
        return pb.ListUsersResponse(users=[user_to_pb(u) for u in items], next_page_token=token)

    async def SetPassword(self, request: pb.SetPasswordRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            await org.set_password(uow, current_principal(), parse_id(request.user_id, "user_id"),
                                   current_password=request.current_password, new_password=request.new_password)
        return pb.SetPasswordResponse()

    async def ListRoles(self, request: pb.ListRolesRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            items, token = await org.list_roles(uow, current_principal(), limit=request.page_size,
                                                page_token=request.page_token)
        return pb.ListRolesResponse(roles=[role_to_pb(r) for r in items], next_page_token=token)

    async def CreateRole(self, request: pb.CreateRoleRequest, context: grpc.aio.ServicerContext) -> Any:
        r = request.role
        role = Role(name=r.name, description=r.description, permissions=tuple(r.permissions),
                    data_scope=scope_from_pb(r.data_scope), sees_sensitive=r.sees_sensitive)
        async with self._uow() as uow:
            created = await org.create_role(uow, current_principal(), role)
        return pb.CreateRoleResponse(role=role_to_pb(created))

    async def UpdateRole(self, request: pb.UpdateRoleRequest, context: grpc.aio.ServicerContext) -> Any:
        r = request.role
        mask = list(request.update_mask.paths)
        async with self._uow() as uow:
            updated = await org.update_role(
                uow, current_principal(), r.name, description=r.description, permissions=list(r.permissions),
                data_scope=scope_from_pb(r.data_scope) if "data_scope" in mask else None,
                sees_sensitive=r.sees_sensitive, mask=mask)
        return pb.UpdateRoleResponse(role=role_to_pb(updated))

    # ------------------------------------------------------------------------ partner clients

    async def CreatePartnerClient(self, request: pb.CreatePartnerClientRequest,
                                  context: grpc.aio.ServicerContext) -> Any:
        c = request.client
        async with self._uow() as uow:
            client, secret = await clients.create_client(uow, current_principal(), name=c.name, scopes=list(c.scopes),
                                                         rate_limit_per_minute=c.rate_limit_per_minute)
        return pb.CreatePartnerClientResponse(client=client_to_pb(client), client_secret=secret)

    async def ListPartnerClients(self, request: pb.ListPartnerClientsRequest,
                                 context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            items, token = await clients.list_clients(uow, current_principal(), limit=request.page_size,
                                                      page_token=request.page_token)
        return pb.ListPartnerClientsResponse(clients=[client_to_pb(c) for c in items], next_page_token=token)

    async def CreateApiKey(self, request: pb.CreateApiKeyRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            key, secret = await clients.create_api_key(uow, current_principal(), client_id=request.client_id,
                                                       name=request.name)
        return pb.CreateApiKeyResponse(api_key=api_key_to_pb(key), key=secret)

    async def ListApiKeys(self, request: pb.ListApiKeysRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            items, token = await clients.list_api_keys(uow, current_principal(), client_id=request.client_id,
                                                       limit=request.page_size, page_token=request.page_token)
        return pb.ListApiKeysResponse(api_keys=[api_key_to_pb(k) for k in items], next_page_token=token)

    async def RevokeApiKey(self, request: pb.RevokeApiKeyRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            await clients.revoke_api_key(uow, current_principal(), parse_id(request.id), self._clock())
        return pb.RevokeApiKeyResponse()

    # ------------------------------------------------------------------------ approval chains

    async def GetManagerChain(self, request: pb.GetManagerChainRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            managers = await org.manager_chain(uow, current_principal(), parse_id(request.user_id, "user_id"),
                                               request.max_levels)
        return pb.GetManagerChainResponse(managers=[user_to_pb(u) for u in managers])

    async def GetDepartmentHead(self, request: pb.GetDepartmentHeadRequest,
                                context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            head, department_id = await org.department_head(uow, current_principal(),
                                                            parse_id(request.department_id, "department_id"))
        return pb.GetDepartmentHeadResponse(head=user_to_pb(head), department_id=str(department_id))

    async def ListRoleHolders(self, request: pb.ListRoleHoldersRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            users = await org.role_holders(uow, current_principal(), request.role,
                                           parse_id(request.department_id, "department_id"), request.include_subtree)
        return pb.ListRoleHoldersResponse(users=[user_to_pb(u) for u in users])

    # ------------------------------------------------------------------------ audit trail

    async def ListAuditEntries(self, request: pb.ListAuditEntriesRequest,
                               context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            items, token = await audit.list_entries(
                uow, current_principal(), entity=request.entity, entity_id=request.entity_id, actor=request.actor,
                from_time=from_ts(request.from_time, request.HasField("from_time")),
                to_time=from_ts(request.to_time, request.HasField("to_time")), limit=request.page_size,
                page_token=request.page_token)
        return pb.ListAuditEntriesResponse(entries=[audit_entry_to_pb(e) for e in items], next_page_token=token)

    async def VerifyAuditTrail(self, request: pb.VerifyAuditTrailRequest,
                               context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            result = await audit.verify(uow, current_principal(), self._anchors)
        return pb.VerifyAuditTrailResponse(intact=result.intact, entries_checked=result.checked,
                                           first_broken_sequence=result.first_broken, problem=result.problem)
