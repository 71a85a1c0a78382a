"""Who an import row's owner column names (R-CUS-03, R-UX-01): a login or a user id, looked up in
the identity service's org chart (ListUsers, ListDepartments) over the service's own channel
(`runtime.internal_channel`: the import may run in the background, after the caller's call).

The whole directory is read at once and kept for `TTL` seconds: an import names the same few
dozen owners on every row, and a company has hundreds of users, not millions."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import grpc

from crm.identity.v1 import identity_pb2 as id_pb
from crm.identity.v1 import identity_pb2_grpc as id_grpc
from crm_customers.app.imports import Owner

TTL = 60.0
PAGE = 200


class IdentityOwnerDirectory:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stub: Any = id_grpc.IdentityServiceStub(channel)
        self._owners: dict[str, Owner] = {}
        self._loaded = 0.0
        self._lock = asyncio.Lock()

    async def resolve(self, names: set[str]) -> dict[str, Owner | None]:
        async with self._lock:
            if time.monotonic() - self._loaded > TTL or any(n not in self._owners for n in names):
                if time.monotonic() - self._loaded > 5:  # an unknown name reloads, at most every 5 s
                    await self._load()
        return {n: self._owners.get(n) or self._owners.get(n.casefold()) for n in names}

    async def _load(self) -> None:
        paths: dict[str, str] = {}
        token = ""
        while True:
            page = await self._stub.ListDepartments(id_pb.ListDepartmentsRequest(page_size=PAGE, page_token=token))
            paths.update({d.id: d.path for d in page.departments})
            token = page.next_page_token
            if not token:
                break
        owners: dict[str, Owner] = {}
        token = ""
        while True:
            page = await self._stub.ListUsers(id_pb.ListUsersRequest(page_size=PAGE, page_token=token))
            for user in page.users:
                if user.status == id_pb.USER_STATUS_DISABLED:
                    continue
                owner = Owner(user_id=user.id, team_id=user.team_ids[0] if user.team_ids else "",
                              department_path=paths.get(user.department_id, "/"), login=user.login)
                owners[user.id] = owner
                owners[user.login.casefold()] = owner
            token = page.next_page_token
            if not token:
                break
        self._owners = owners
        self._loaded = time.monotonic()
