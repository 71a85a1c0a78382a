"""The org chart (R-CON-02), asked of the identity service over gRPC on this service's own
behalf (its principal may read the org chart, nothing else)."""

from __future__ import annotations

import grpc

from crm.identity.v1 import identity_pb2 as ipb
from crm.identity.v1 import identity_pb2_grpc as ipb_grpc
from crmkit.errors import Unavailable


def _active(user: ipb.User) -> bool:
    """A disabled user approves nothing (a temporarily locked sign-in still may, later)."""
    return user.status != ipb.USER_STATUS_DISABLED


class IdentityOrg:
    """`crm_contracts.domain.approvals.OrgLookup` over IdentityService."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stub = ipb_grpc.IdentityServiceStub(channel)

    async def _call(self, method: str, request: object) -> object | None:
        try:
            return await getattr(self._stub, method)(request)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                return None  # nobody there: the step falls back
            raise Unavailable(f"the identity service could not resolve approvers: {exc.details()}",
                              reason="ORG_CHART_UNAVAILABLE") from exc

    async def manager_chain(self, user_id: str, levels: int) -> list[str]:
        reply = await self._call("GetManagerChain", ipb.GetManagerChainRequest(user_id=user_id, max_levels=levels))
        return [u.id for u in reply.managers if _active(u)] if reply is not None else []  # type: ignore[attr-defined]

    async def department_head(self, department_id: str) -> str | None:
        reply = await self._call("GetDepartmentHead", ipb.GetDepartmentHeadRequest(department_id=department_id))
        if reply is None or not reply.head.id or not _active(reply.head):  # type: ignore[attr-defined]
            return None
        return str(reply.head.id)  # type: ignore[attr-defined]

    async def role_holders(self, role: str, department_id: str) -> list[str]:
        reply = await self._call("ListRoleHolders", ipb.ListRoleHoldersRequest(
            role=role, department_id=department_id, include_subtree=True))
        return [u.id for u in reply.users if _active(u)] if reply is not None else []  # type: ignore[attr-defined]

    async def user_exists(self, user_id: str) -> bool:
        reply = await self._call("GetUser", ipb.GetUserRequest(id=user_id))
        return reply is not None and _active(reply.user)  # type: ignore[attr-defined]


class NoOrg:
    """When no identity target is configured: submission says so instead of guessing."""

    async def _none(self) -> None:
        raise Unavailable("approvers cannot be resolved: CRM_IDENTITY_TARGET is not configured",
                          reason="ORG_CHART_UNAVAILABLE")

    async def manager_chain(self, user_id: str, levels: int) -> list[str]:
        await self._none()
        return []

    async def department_head(self, department_id: str) -> str | None:
        await self._none()
        return None

    async def role_holders(self, role: str, department_id: str) -> list[str]:
        await self._none()
        return []

    async def user_exists(self, user_id: str) -> bool:
        await self._none()
        return False
