"""The route class of every /api route: documents the route's permission in OpenAPI and applies
Idempotency-Key to POSTs before the handler."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

from crm_gateway.auth import authenticate
from crmkit.errors import CrmError


def _permission(dependant: Dependant) -> str | None:
    for sub in dependant.dependencies:
        found = getattr(sub.call, "permission", None) or _permission(sub)
        if found:
            return found
    return None


class ApiRoute(APIRoute):
    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        self.permission = _permission(self.dependant)
        if self.permission is not None:
            self.openapi_extra = {**(self.openapi_extra or {}), "x-permission": self.permission}
            note = f"Requires the permission `{self.permission}`."
            self.description = f"{self.description}\n\n{note}" if self.description else note

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            key = request.headers.get("idempotency-key")
            if request.method != "POST" or key is None:
                return await handler(request)
            subject = await _subject(request)
            if subject is None:
                return await handler(request)  # the handler answers 401
            return await request.app.state.idempotency.run(request, subject, key, handler)

        return route


async def _subject(request: Request) -> str | None:
    try:
        principal = await authenticate(request)
    except CrmError:
        return None
    return f"{principal.kind}:{principal.subject}"
