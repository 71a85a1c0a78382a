"""Channels from one CRM process to another service: trace context, the signed principal of the
current call, and a default deadline on every call."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
from opentelemetry.instrumentation.grpc import aio_client_interceptors

from crmkit import idempotency
from crmkit.auth import PRINCIPAL_METADATA_KEY

DEFAULT_DEADLINE_SECONDS = 5.0


class _PrincipalAndDeadline(grpc.aio.UnaryUnaryClientInterceptor):
    def __init__(self, principal_token: Callable[[], str] | None, deadline: float) -> None:
        self._token = principal_token
        self._deadline = deadline

    async def intercept_unary_unary(self, continuation: Any, details: grpc.aio.ClientCallDetails, request: Any) -> Any:
        metadata = grpc.aio.Metadata(*(details.metadata or ()))
        if self._token is not None and PRINCIPAL_METADATA_KEY not in metadata:
            metadata.add(PRINCIPAL_METADATA_KEY, self._token())
        for key, value in idempotency.forwarded_metadata():
            metadata.add(key, value)
        details = grpc.aio.ClientCallDetails(
            method=details.method, timeout=details.timeout or self._deadline, metadata=metadata,
            credentials=details.credentials, wait_for_ready=details.wait_for_ready)
        return await continuation(details, request)


def channel(target: str, principal_token: Callable[[], str] | None = None, *,
            deadline: float = DEFAULT_DEADLINE_SECONDS) -> grpc.aio.Channel:
    """`principal_token` signs the principal for every call; without it, each call passes its
    own principal in metadata (the gateway, which acts for a different caller per request)."""
    return grpc.aio.insecure_channel(
        target, interceptors=[*aio_client_interceptors(), _PrincipalAndDeadline(principal_token, deadline)],
        options=[("grpc.keepalive_time_ms", 30_000), ("grpc.lb_policy_name", "round_robin")])
