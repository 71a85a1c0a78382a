"""The calling principal, and how it travels signed from the gateway to services.

Services never trust an unsigned header: the gateway signs the principal with its private key
(EdDSA, short-lived) and each service verifies it with the public key from configuration.

A service calling another one with no user behind the call (an event handler, a background job)
signs its own principal with the suite's service key. Verifiers accept such a principal only as
kind `service`, and only with the narrow `SERVICE_PERMISSIONS`, so a service key cannot stand in
for a user.
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum

import jwt

from crmkit.auth.keys import key_id, public_pem_of
from crmkit.errors import Unauthenticated

PRINCIPAL_METADATA_KEY = "x-crm-principal"
_AUDIENCE = "crm-services"
_LIFETIME_SECONDS = 120
# All a service-signed principal may do, whatever it claims: read the org chart (approvers,
# reviewers, owners) and read a customer to copy its name and type onto a document drafted from an
# event (a contract from an accepted quote).
SERVICE_PERMISSIONS: tuple[str, ...] = ("org.read", "customers.read")


class DataScope(StrEnum):
    """R-SEC-02: how far a principal's view of records reaches."""

    OWN = "own"
    TEAM = "team"
    DEPARTMENT = "department"
    ALL = "all"
    # Finance: every customer with a signed contract, and nothing else (seed 004).
    SIGNED = "signed"


@dataclass(frozen=True)
class Principal:
    subject: str
    name: str = ""
    kind: str = "user"  # user | client | service
    roles: tuple[str, ...] = ()
    team_ids: tuple[str, ...] = ()
    department_path: str = "/"
    data_scope: DataScope = DataScope.OWN
    # OAuth scopes of a partner client.
    scopes: tuple[str, ...] = field(default=())
    # What the principal may do, e.g. "customers.write"; from its roles, resolved by identity.
    permissions: tuple[str, ...] = ()
    # Whether phones, tax IDs and bank accounts are shown in full (R-SEC-04).
    sees_sensitive: bool = False
    # Requests per minute the gateway allows this principal; 0 means the gateway's default.
    rate_limit: int = 0
    # The access token's id, so a revoked token can be refused.
    token_id: str = ""

    def has_role(self, role: str) -> bool:
        return role in self.roles

    def may(self, permission: str) -> bool:
        """`customers.read` is granted by itself, by `customers.*` or by `*`."""
        area = permission.split(".", 1)[0]
        return bool({permission, f"{area}.*", "*"} & set(self.permissions))

    def to_claims(self) -> dict[str, object]:
        return {
            "sub": self.subject,
            "name": self.name,
            "kind": self.kind,
            "roles": list(self.roles),
            "teams": list(self.team_ids),
            "dept": self.department_path,
            "data_scope": self.data_scope.value,
            "scope": " ".join(self.scopes),
            "perms": list(self.permissions),
            "sens": self.sees_sensitive,
            "rl": self.rate_limit,
        }

    @classmethod
    def from_claims(cls, claims: dict[str, object]) -> Principal:
        try:
            return cls(
                subject=str(claims["sub"]),
                name=str(claims.get("name", "")),
                kind=str(claims.get("kind", "user")),
                roles=tuple(str(r) for r in claims.get("roles", []) or []),  # type: ignore[union-attr]
                team_ids=tuple(str(t) for t in claims.get("teams", []) or []),  # type: ignore[union-attr]
                department_path=str(claims.get("dept", "/")),
                data_scope=DataScope(str(claims.get("data_scope", DataScope.OWN.value))),
                scopes=tuple(str(claims.get("scope", "")).split()),
                permissions=tuple(str(p) for p in claims.get("perms", []) or []),  # type: ignore[union-attr]
                sees_sensitive=bool(claims.get("sens", False)),
                rate_limit=int(claims.get("rl", 0) or 0),  # type: ignore[call-overload]
                token_id=str(claims.get("jti", "")),
            )
        except (KeyError, ValueError, TypeError) as exc:
            raise Unauthenticated(f"malformed principal claims: {exc}") from exc


SYSTEM = Principal(subject="system", name="system", kind="service", data_scope=DataScope.ALL,
                   permissions=("*",), sees_sensitive=True)


class PrincipalSigner:
    def __init__(self, private_pem: str) -> None:
        self._key = private_pem
        self._kid = key_id(public_pem_of(private_pem))

    def sign(self, principal: Principal) -> str:
        now = int(time.time())
        claims = principal.to_claims() | {"aud": _AUDIENCE, "iat": now, "exp": now + _LIFETIME_SECONDS,
                                          "jti": principal.token_id}
        return jwt.encode(claims, self._key, algorithm="EdDSA", headers={"kid": self._kid})


class PrincipalVerifier:
    """Accepts principals signed by any of the gateway's keys (several while one rotates) and,
    when given, service principals signed by any of the service keys."""

    def __init__(self, *public_pems: str, service_pems: tuple[str, ...] = ()) -> None:
        if not public_pems:
            raise ValueError("at least one principal public key is required")
        self._keys = {key_id(pem): pem for pem in public_pems}
        self._service_keys = {key_id(pem): pem for pem in service_pems}

    def verify(self, token: str) -> Principal:
        try:
            kid = jwt.get_unverified_header(token).get("kid") or ""
            key = self._keys.get(kid) or self._service_keys.get(kid)
            if key is None:
                raise Unauthenticated("principal signed by an unknown key")
            claims = jwt.decode(token, key, algorithms=["EdDSA"], audience=_AUDIENCE)
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"invalid principal: {exc}") from exc
        principal = Principal.from_claims(claims)
        by_service_key = kid in self._service_keys and kid not in self._keys
        if by_service_key != (principal.kind == "service"):
            raise Unauthenticated("a service principal must be signed by a service key, and only it")
        if by_service_key:
            return service_principal(principal.name or principal.subject.removeprefix("service:"))
        return principal


def service_principal(service: str) -> Principal:
    """Who a service is when it calls another service on its own behalf."""
    return Principal(subject=f"service:{service}", name=service, kind="service", data_scope=DataScope.ALL,
                     permissions=SERVICE_PERMISSIONS)


class ServiceToken:
    """This service's own signed principal for internal calls, re-signed well before it expires."""

    def __init__(self, service: str, private_pem: str) -> None:
        self._principal = service_principal(service)
        self._signer = PrincipalSigner(private_pem)
        self._token = ""
        self._signed_at = 0.0

    def __call__(self) -> str:
        now = time.monotonic()
        if not self._token or now - self._signed_at > _LIFETIME_SECONDS / 2:
            self._token, self._signed_at = self._signer.sign(self._principal), now
        return self._token


_current: contextvars.ContextVar[Principal | None] = contextvars.ContextVar("crm_principal", default=None)
# The signed form of the current call's principal, as it arrived: forwarded unchanged when this
# service asks another one about a record on the caller's behalf (the owner applies its own scope).
_current_token: contextvars.ContextVar[str | None] = contextvars.ContextVar("crm_principal_token", default=None)


def current_principal() -> Principal:
    principal = _current.get()
    if principal is None:
        raise Unauthenticated("no authenticated principal for this call")
    return principal


def current_principal_token() -> str:
    """The current call's principal exactly as the caller signed it, to act on its behalf."""
    token = _current_token.get()
    if token is None:
        raise Unauthenticated("no signed principal to forward for this call")
    return token


@contextmanager
def use_principal(principal: Principal, signed: str | None = None) -> Iterator[Principal]:
    token = _current.set(principal)
    signed_token = _current_token.set(signed)
    try:
        yield principal
    finally:
        _current_token.reset(signed_token)
        _current.reset(token)
