"""The one server interceptor every service runs: it verifies the caller's signed principal,
maps CrmError to a gRPC status, and records RED metrics and an access log line per call."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import sqlalchemy.exc
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from crmkit import idempotency, metrics
from crmkit.auth import PRINCIPAL_METADATA_KEY, PrincipalVerifier, use_principal
from crmkit.auth.permissions import require
from crmkit.errors import MAX_MESSAGE_CHARS, CrmError, InvalidArgument, Unauthenticated, Unavailable, clip
from crmkit.grpc.status import STATUS_DETAILS_KEY, to_status_details

log = logging.getLogger("crmkit.grpc.access")

# Probes and tooling call these without a principal.
_PUBLIC_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


class ServerInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, service: str, verifier: PrincipalVerifier, public_methods: frozenset[str] = frozenset(),
                 permissions: dict[str, str] | None = None) -> None:
        self._service = service
        self._verifier = verifier
        # Methods callable before anyone is authenticated (signing in, publishing keys).
        self._public = public_methods
        # "/pkg.Service/Method" -> permission; filled by GrpcServer.add from the servicers' tables.
        self._permissions = permissions if permissions is not None else {}

    async def intercept_service(self,
                                continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
                                details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        method = details.method
        if handler is None or method.startswith(_PUBLIC_PREFIXES):
            return handler
        if handler.unary_unary is None:
            # Streaming calls would bypass the principal check below: refuse them until the
            # interceptor wraps them too.
            return grpc.unary_stream_rpc_method_handler(_refuse_streaming) if handler.unary_stream \
                else grpc.stream_unary_rpc_method_handler(_refuse_streaming) if handler.stream_unary \
                else grpc.stream_stream_rpc_method_handler(_refuse_streaming)
        inner = handler.unary_unary

        async def wrapped(request: Any, context: grpc.aio.ServicerContext) -> Any:
            started = time.perf_counter()
            code = grpc.StatusCode.OK
            principal_subject = ""
            try:
                refuse_nul_text(request)
                if method in self._public:
                    return await inner(request, context)
                signed = self._signed_principal(context)
                principal = self._verifier.verify(signed)
                principal_subject = principal.subject
                if method in self._permissions:
                    require(principal, self._permissions[method])
                with use_principal(principal, signed):
                    return await idempotency.run_once(method, context.invocation_metadata(),
                                                      lambda: inner(request, context))
            except CrmError as error:
                code, details = to_status_details(error)
                await context.abort(code, clip(error.message, MAX_MESSAGE_CHARS),
                                    trailing_metadata=((STATUS_DETAILS_KEY, details),))
            except grpc.aio.AbortError:
                code = context.code() or grpc.StatusCode.UNKNOWN  # type: ignore[assignment]
                raise
            except NotImplementedError:
                # the generated base servicer's answer for a method the service does not serve yet
                code = grpc.StatusCode.UNIMPLEMENTED
                await context.abort(code, f"{method} is not implemented")
            except Exception as exc:
                if database_unavailable(exc):
                    # Out of connections, or the database restarting: the caller may retry (503);
                    # it is not a bug (500). Logged: someone has to size the pools or the server.
                    log.warning("database unavailable", extra={"method": method, "error": type(exc).__name__})
                    unavailable = Unavailable("the database is busy or restarting; retry shortly",
                                              reason="DATABASE_UNAVAILABLE")
                    code, details = to_status_details(unavailable)
                    await context.abort(code, unavailable.message,
                                        trailing_metadata=((STATUS_DETAILS_KEY, details),))
                code = grpc.StatusCode.INTERNAL
                log.exception("unhandled error", extra={"method": method})
                await context.abort(code, "internal error")
            finally:
                elapsed = time.perf_counter() - started
                metrics.GRPC_HANDLED.labels(self._service, method, code.name).inc()
                metrics.GRPC_LATENCY.labels(self._service, method).observe(elapsed)
                log.info("rpc", extra={"method": method, "code": code.name, "principal": principal_subject,
                                       "duration_ms": round(elapsed * 1000, 2)})

        return grpc.unary_unary_rpc_method_handler(
            wrapped, request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer)

    @staticmethod
    def _signed_principal(context: grpc.aio.ServicerContext) -> str:
        for key, value in context.invocation_metadata() or ():
            if key == PRINCIPAL_METADATA_KEY:
                return str(value)
        raise Unauthenticated("the call carries no signed principal")


def refuse_nul_text(message: Message) -> None:
    """PostgreSQL text cannot hold NUL: a request carrying one is the caller's error, not a 500
    at the INSERT. (Protobuf already refuses strings that are not UTF-8, lone surrogates included.)"""
    field = _nul_field(message, "")
    if field is not None:
        raise InvalidArgument.of(field, "contains a NUL character, which text may not hold")


def _nul_field(message: Message, prefix: str) -> str | None:
    for descriptor, value in message.ListFields():
        name = f"{prefix}{descriptor.name}"
        repeated = descriptor.is_repeated
        if descriptor.type == FieldDescriptor.TYPE_STRING:
            if any("\x00" in text for text in (value if repeated else [value])):
                return name
        elif descriptor.type == FieldDescriptor.TYPE_MESSAGE:
            if descriptor.message_type.GetOptions().map_entry:
                entries = [(f"{name}.{key}", item) for key, item in value.items()]
            else:
                entries = [(f"{name}.{i}", item) for i, item in enumerate(value)] if repeated else [(name, value)]
            for at, item in entries:
                if "\x00" in at or (isinstance(item, str) and "\x00" in item):
                    return name
                if isinstance(item, Message):
                    found = _nul_field(item, f"{at}.")
                    if found is not None:
                        return found
    return None


async def _refuse_streaming(request: Any, context: grpc.aio.ServicerContext) -> None:
    await context.abort(grpc.StatusCode.UNIMPLEMENTED, "streaming methods are not served yet")


# SQLSTATE classes that mean "not now" rather than "wrong": connection exceptions, insufficient
# resources (too many connections, out of memory or disk), operator intervention (shutting down).
_RETRYABLE_SQLSTATE_PREFIXES = ("08", "53", "57P")


def database_unavailable(exc: BaseException) -> bool:
    """Whether an unexpected error is the database being out of reach, not a bug."""
    if isinstance(exc, sqlalchemy.exc.TimeoutError):  # no pooled connection free in time
        return True
    if isinstance(exc, sqlalchemy.exc.DBAPIError):
        if exc.connection_invalidated:
            return True
        sqlstate = getattr(exc.orig, "sqlstate", None) or ""
        return sqlstate.startswith(_RETRYABLE_SQLSTATE_PREFIXES) or isinstance(exc.orig, ConnectionError)
    return isinstance(exc, ConnectionError)
