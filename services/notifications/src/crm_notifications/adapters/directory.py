"""People, from the identity service's org chart: who a user is (email, locale), their managers,
and who holds a role. Called with this service's own principal (`runtime.internal_channel`)."""

from __future__ import annotations

from typing import Protocol

import grpc

from crm.identity.v1 import identity_pb2 as pb
from crm.identity.v1 import identity_pb2_grpc as pb_grpc
from crm_notifications.domain.model import Person


class Directory(Protocol):
    async def person(self, user_id: str) -> Person | None: ...

    async def managers(self, user_id: str) -> list[Person]: ...

    async def role_holders(self, role: str) -> list[Person]: ...


def _person(user: pb.User) -> Person:
    return Person(id=user.id, display_name=user.display_name, email=user.email, locale=user.locale)


def _active(user: pb.User) -> bool:
    return user.status != pb.USER_STATUS_DISABLED


class IdentityDirectory:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stub = pb_grpc.IdentityServiceStub(channel)

    async def person(self, user_id: str) -> Person | None:
        try:
            reply = await self._stub.GetUser(pb.GetUserRequest(id=user_id))
        except grpc.aio.AioRpcError as exc:
            # A user id that is no (longer a) user: nobody to notify. Anything else is retried.
            if exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                return None
            raise
        return _person(reply.user) if _active(reply.user) else None

    async def managers(self, user_id: str) -> list[Person]:
        """The direct manager (the first of the chain)."""
        try:
            reply = await self._stub.GetManagerChain(pb.GetManagerChainRequest(user_id=user_id, max_levels=1))
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                return []
            raise
        return [_person(u) for u in reply.managers if _active(u)]

    async def role_holders(self, role: str) -> list[Person]:
        """Every active holder of the role in the whole organisation (each root's subtree)."""
        roots: list[str] = []
        token = ""
        while True:
            page = await self._stub.ListDepartments(pb.ListDepartmentsRequest(page_size=200, page_token=token))
            roots += [d.id for d in page.departments if not d.parent_id]
            token = page.next_page_token
            if not token:
                break
        found: dict[str, Person] = {}
        for root in roots:
            reply = await self._stub.ListRoleHolders(pb.ListRoleHoldersRequest(role=role, department_id=root,
                                                                               include_subtree=True))
            found.update({u.id: _person(u) for u in reply.users if _active(u)})
        return list(found.values())
