"""The org chart asked of the identity service on this service's own behalf (its principal may
read the org chart and nothing else)."""

from __future__ import annotations

import grpc

from crm.identity.v1 import identity_pb2 as ipb
from crm.identity.v1 import identity_pb2_grpc as ipb_grpc
from crm_insights.domain.targets import Place
from crmkit.errors import Unavailable

_PAGE = 200  # identity pages at most 200


class IdentityOrgChart:
    """`crm_insights.app.org.OrgChart` over IdentityService."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stub = ipb_grpc.IdentityServiceStub(channel)

    async def _department_path(self, department_id: str) -> str:
        token = ""
        while True:
            page = await self._call(self._stub.ListDepartments,
                                    ipb.ListDepartmentsRequest(page_size=_PAGE, page_token=token))
            for department in page.departments:
                if department.id == department_id:
                    return str(department.path)
            token = page.next_page_token
            if not token:
                return "/"

    async def person(self, user_id: str) -> Place | None:
        try:
            reply = await self._stub.GetUser(ipb.GetUserRequest(id=user_id))
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                return None
            raise _unavailable(exc) from exc
        user = reply.user
        return Place(owner_id=user.id, team_id=user.team_ids[0] if user.team_ids else "",
                     department_path=await self._department_path(user.department_id))

    async def team(self, team_id: str) -> Place | None:
        token = ""
        while True:
            page = await self._call(self._stub.ListTeams, ipb.ListTeamsRequest(page_size=_PAGE, page_token=token))
            for team in page.teams:
                if team.id == team_id:
                    return Place(team_id=team.id, department_path=await self._department_path(team.department_id))
            token = page.next_page_token
            if not token:
                return None

    @staticmethod
    async def _call(method: object, request: object) -> object:
        try:
            return await method(request)  # type: ignore[operator]
        except grpc.aio.AioRpcError as exc:
            raise _unavailable(exc) from exc


def _unavailable(exc: grpc.aio.AioRpcError) -> Unavailable:
    return Unavailable(f"the identity service could not place the target's subject: {exc.details()}",
                       reason="ORG_CHART_UNAVAILABLE")
