"""grpc.aio server bootstrap: health, reflection, tracing and the CRM interceptor."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from opentelemetry.instrumentation.grpc import aio_server_interceptor

from crmkit.auth import PrincipalVerifier
from crmkit.auth.permissions import method_table
from crmkit.grpc.interceptors import ServerInterceptor

MAX_MESSAGE_BYTES = 8 * 1024 * 1024
# The health service name the kubelet's liveness (and startup) probe asks for: SERVING for as long
# as the process runs, whatever its dependencies do, so a database blip restarts nothing. Every
# other name, "" included (the readiness probe), follows `set_ready`.
LIVENESS = "liveness"


class GrpcServer:
    def __init__(self, service: str, verifier: PrincipalVerifier, public_methods: frozenset[str] = frozenset()) -> None:
        """`public_methods` ("/crm.identity.v1.IdentityService/IssueToken", …) run without a principal."""
        # "/pkg.Service/Method" -> the permission its caller needs (see crmkit.auth.permissions)
        self._permissions: dict[str, str] = {}
        self.server = grpc.aio.server(
            interceptors=[aio_server_interceptor(),
                          ServerInterceptor(service, verifier, public_methods, self._permissions)],
            options=[("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                     ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                     # Clients reconnect now and then, so replicas the autoscaler adds get traffic.
                     ("grpc.max_connection_age_ms", 300_000),
                     ("grpc.max_connection_age_grace_ms", 30_000),
                     # With SO_REUSEPORT (gRPC's default) a bind to port 0 may be handed a port
                     # another server of ours already listens on, and they silently share it.
                     ("grpc.so_reuseport", 0)])
        self.health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        self._service_names: list[str] = [health.SERVICE_NAME, reflection.SERVICE_NAME]

    def add(self, register: object, servicer: object, service_name: str) -> None:
        """Serves `servicer`; if it declares `permissions` (RPC name -> permission), every RPC of
        the service must have one, and the interceptor refuses callers without it."""
        declared = getattr(servicer, "permissions", None)
        if declared is not None:
            self._permissions.update(method_table(service_name, declared))
        register(servicer, self.server)  # type: ignore[operator]
        self._service_names.append(service_name)

    async def start(self, address: str) -> int:
        reflection.enable_server_reflection(self._service_names, self.server)
        port = self.server.add_insecure_port(address)
        await self.server.start()
        await self.health.set(LIVENESS, health_pb2.HealthCheckResponse.SERVING)
        await self.set_ready(True)
        return port

    async def set_ready(self, ready: bool) -> None:
        """Readiness: NOT_SERVING takes the pod out of its Service's endpoints (crmkit.service.Readiness)."""
        status = health_pb2.HealthCheckResponse.SERVING if ready else health_pb2.HealthCheckResponse.NOT_SERVING
        for name in ["", *self._service_names]:
            await self.health.set(name, status)

    async def stop(self, grace: float) -> None:
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)
