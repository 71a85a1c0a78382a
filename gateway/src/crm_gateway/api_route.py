"""The route class of every /api route: applies Idempotency-Key to POSTs before the handler."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from crmkit.errors import Unauthenticated


class ApiRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            key = request.headers.get("idempotency-key")
            if request.method != "POST" or key is None:
                return await handler(request)
            subject = _subject(request)
            if subject is None:
                return await handler(request)  # the handler answers 401
            return await request.app.state.idempotency.run(request, subject, key, handler)

        return route


def _subject(request: Request) -> str | None:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    try:
        return request.app.state.token_verifier.verify(token.strip()).subject
    except Unauthenticated:
        return None
