"""People, from the identity service's org chart: who a user is (email, locale, and what they may
read: their roles' permissions, data scope and sensitive-value right, their teams and department),
their managers, and who holds a role. Called with this service's own principal
(`runtime.internal_channel`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

import grpc

from crm.identity.v1 import identity_pb2 as pb
from crm.identity.v1 import identity_pb2_grpc as pb_grpc
from crm_notifications.domain.model import Person
from crmkit.auth import DataScope, Principal


class Directory(Protocol):
    async def person(self, user_id: str) -> Person | None: ...

    async def managers(self, user_id: str) -> list[Person]: ...

    async def role_holders(self, role: str) -> list[Person]: ...

    async def role_access(self, role: str) -> Principal | None:
        """What a holder of the role may read (its permissions and scope); None for no such role."""


_SCOPES = {pb.DATA_SCOPE_OWN: DataScope.OWN, pb.DATA_SCOPE_TEAM: DataScope.TEAM,
           pb.DATA_SCOPE_DEPARTMENT: DataScope.DEPARTMENT, pb.DATA_SCOPE_ALL: DataScope.ALL,
           pb.DATA_SCOPE_SIGNED: DataScope.SIGNED}
# Several roles add up as identity adds them in an access token: the widest ranked scope wins;
# `signed` counts only alone.
_RANKED = (DataScope.OWN, DataScope.TEAM, DataScope.DEPARTMENT, DataScope.ALL)


def _widest(scopes: list[DataScope]) -> DataScope:
    ranked = [s for s in scopes if s in _RANKED]
    if ranked:
        return max(ranked, key=_RANKED.index)
    return DataScope.SIGNED if DataScope.SIGNED in scopes else DataScope.OWN


def _active(user: pb.User) -> bool:
    return user.status != pb.USER_STATUS_DISABLED


class IdentityDirectory:
    """Roles and department paths change rarely: they are read once per `cache_seconds`."""

    def __init__(self, channel: grpc.aio.Channel, *, cache_seconds: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._stub = pb_grpc.IdentityServiceStub(channel)
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._loaded_at = float("-inf")
        self._roles: dict[str, pb.Role] = {}
        self._departments: dict[str, pb.Department] = {}

    async def _org(self) -> None:
        if self._clock() - self._loaded_at < self._cache_seconds:
            return
        roles: dict[str, pb.Role] = {}
        token = ""
        while True:
            page = await self._stub.ListRoles(pb.ListRolesRequest(page_size=200, page_token=token))
            roles.update({r.name: r for r in page.roles})
            if not (token := page.next_page_token):
                break
        departments: dict[str, pb.Department] = {}
        while True:
            dpage = await self._stub.ListDepartments(pb.ListDepartmentsRequest(page_size=200, page_token=token))
            departments.update({d.id: d for d in dpage.departments})
            if not (token := dpage.next_page_token):
                break
        self._roles, self._departments, self._loaded_at = roles, departments, self._clock()

    def _grants(self, user_id: str, role_names: list[str], team_ids: list[str], department_path: str) -> Principal:
        roles = [self._roles[name] for name in role_names if name in self._roles]
        return Principal(subject=user_id, roles=tuple(role_names), team_ids=tuple(team_ids),
                         department_path=department_path,
                         data_scope=_widest([_SCOPES.get(r.data_scope, DataScope.OWN) for r in roles]),
                         permissions=tuple(sorted({p for r in roles for p in r.permissions})),
                         sees_sensitive=any(r.sees_sensitive for r in roles))

    async def _person(self, user: pb.User) -> Person:
        await self._org()
        department = self._departments.get(user.department_id)
        access = self._grants(user.id, list(user.roles), list(user.team_ids), department.path if department else "/")
        return Person(id=user.id, display_name=user.display_name, email=user.email, locale=user.locale,
                      access=access)

    async def person(self, user_id: str) -> Person | None:
        try:
            reply = await self._stub.GetUser(pb.GetUserRequest(id=user_id))
        except grpc.aio.AioRpcError as exc:
            # A user id that is no (longer a) user: nobody to notify. Anything else is retried.
            if exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                return None
            raise
        return await self._person(reply.user) if _active(reply.user) else None

    async def managers(self, user_id: str) -> list[Person]:
        """The direct manager (the first of the chain)."""
        try:
            reply = await self._stub.GetManagerChain(pb.GetManagerChainRequest(user_id=user_id, max_levels=1))
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                return []
            raise
        return [await self._person(u) for u in reply.managers if _active(u)]

    async def role_holders(self, role: str) -> list[Person]:
        """Every active holder of the role in the whole organisation (each root's subtree)."""
        await self._org()
        roots = [d.id for d in self._departments.values() if not d.parent_id]
        found: dict[str, Person] = {}
        for root in roots:
            reply = await self._stub.ListRoleHolders(pb.ListRoleHoldersRequest(role=role, department_id=root,
                                                                               include_subtree=True))
            found.update({u.id: await self._person(u) for u in reply.users if _active(u)})
        return list(found.values())

    async def role_access(self, role: str) -> Principal | None:
        await self._org()
        if role not in self._roles:
            self._loaded_at = float("-inf")  # a role made a moment ago: look again once
            await self._org()
        if role not in self._roles:
            return None
        return self._grants(f"role:{role}", [role], [], "/")
