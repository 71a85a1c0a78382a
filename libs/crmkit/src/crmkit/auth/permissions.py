"""Which permission each RPC of a service needs, checked by the shared server interceptor
(R-SEC-03, defence in depth): a valid principal that lacks the permission is refused by the
service itself, even when it reaches the service without passing the gateway.

A servicer declares its table as a class attribute, one entry per RPC of its service:

    class ContractsServicer(pb_grpc.ContractsServiceServicer):
        permissions = {"CreateContract": "contracts.write", "GetContract": "contracts.read", ...}

`GrpcServer.add` checks the table against the service's descriptor when the servicer is
registered (a missing or unknown RPC stops the service from starting, and every test that runs
the servicer), and the interceptor refuses a call whose principal `allows` nothing of the kind.
Rules that depend on the record (the data scope, "your own approval step") stay in the use cases.
"""

from __future__ import annotations

from collections.abc import Mapping

from google.protobuf import descriptor_pool

from crmkit.auth.principal import Principal
from crmkit.errors import PermissionDenied

MethodPermissions = Mapping[str, str]


def allows(principal: Principal, permission: str) -> bool:
    """Whether `principal` may do `permission`. A partner client is limited twice: by its
    permissions and by its OAuth scopes (`customers:read` spells the same as `customers.read`);
    a client whose token carries no permissions is limited by its scopes alone."""
    if principal.kind == "client":
        if not _covers(principal.scopes, permission):
            return False
        return not principal.permissions or _covers(principal.permissions, permission)
    return principal.may(permission)


def require(principal: Principal, permission: str) -> None:
    """Refuses (403 PERMISSION_DENIED) unless `principal` may do `permission`."""
    if not allows(principal, permission):
        raise PermissionDenied(f"this needs the permission {permission}", metadata={"permission": permission})


def method_table(service_name: str, permissions: MethodPermissions) -> dict[str, str]:
    """`{"/pkg.Service/Method": permission}` for the interceptor, after checking that
    `permissions` names every RPC of `service_name` and nothing else."""
    service = descriptor_pool.Default().FindServiceByName(service_name)
    rpcs = {method.name for method in service.methods}
    missing, unknown = sorted(rpcs - set(permissions)), sorted(set(permissions) - rpcs)
    empty = sorted(name for name, permission in permissions.items() if not permission)
    if missing or unknown or empty:
        raise ValueError(f"the permission table of {service_name} is wrong: missing {missing}, "
                         f"not RPCs of the service {unknown}, without a permission {empty}")
    return {f"/{service_name}/{name}": permission for name, permission in permissions.items()}


def _covers(granted: tuple[str, ...], permission: str) -> bool:
    area = permission.split(".", 1)[0]
    return bool({permission, f"{area}.*", "*"} & {_normalise(g) for g in granted})


def _normalise(scope: str) -> str:
    return scope.strip().replace(":", ".", 1)
