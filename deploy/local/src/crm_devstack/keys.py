"""The local signing keys in `<data-dir>/keys/`, offline tokens made with them, and signing in
through the running suite's gateway.

Three Ed25519 key pairs, made once on the first `up` (or `token --offline`) and kept with the data:
`access` signs offline access tokens (the gateway trusts its JWKS as a static key beside
identity's), `principal` signs the gateway-to-service principal (the gateway gets the private
half, services the public half) and `service` signs a service's own principal on its internal
calls (every service gets both halves).

`login` is how people get tokens: the password grant of `POST /api/v1/auth/token`, answered by
the identity service. `issue_token` (offline, no identity needed) remains for the launcher's own
tests and e2e; it puts the permissions of the named roles in the token, as identity would.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import httpx

from crmkit.auth.keys import generate_keypair, jwks_of, public_pem_of
from crmkit.auth.principal import DataScope
from crmkit.auth.tokens import issue_access_token
from crmkit.crypto import generate_key
from crmkit.events.permissions import DEV_ADMIN, SUITE

ISSUER = "crm-identity"  # identity signs with the same development key, so both kinds of token verify
AUDIENCE = "crm-api"
# The gateway refuses a token that lives longer than its maximum (CRM_ACCESS_TOKEN_MAX_TTL_SECONDS,
# 1 h by default), development tokens included.
DEFAULT_TTL_SECONDS = 3600


@dataclass(frozen=True)
class DevKeys:
    access_private_pem: str
    access_public_pem: str
    principal_private_pem: str
    principal_public_pem: str
    # Services sign their own principal with it on calls with no user behind them.
    service_private_pem: str
    service_public_pem: str
    # Customers' sensitive-field key ring ("kid:base64") and blind-index key.
    field_keys: str
    field_index_key: str

    @property
    def jwks(self) -> str:
        return jwks_of(self.access_public_pem)

    def placeholders(self) -> dict[str, str]:
        """What `{name}` in a suite.toml `env` value stands for."""
        from crm_devstack.demo import admin_password

        return {"access_private_pem": self.access_private_pem, "principal_public_pem": self.principal_public_pem,
                "field_keys": self.field_keys, "field_index_key": self.field_index_key,
                "admin_password": admin_password(), "issuer": ISSUER, "audience": AUDIENCE}


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def _pair(folder: Path, name: str) -> tuple[str, str]:
    private, public = folder / f"{name}.key.pem", folder / f"{name}.pub.pem"
    if not private.exists():
        pair = generate_keypair()
        _write_private(private, pair.private_pem)
        public.write_text(pair.public_pem)
    private_pem = private.read_text()
    if not public.exists():
        public.write_text(public_pem_of(private_pem))
    return private_pem, public.read_text()


def ensure_keys(data_dir: str | os.PathLike[str]) -> DevKeys:
    folder = Path(data_dir) / "keys"
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    access = _pair(folder, "access")
    principal = _pair(folder, "principal")
    service = _pair(folder, "service")
    return DevKeys(access[0], access[1], principal[0], principal[1], service[0], service[1],
                   field_keys=f"dev1:{_secret(folder, 'field.key')}",
                   field_index_key=_secret(folder, "field-index.key"))


def nats_passwords(data_dir: str | os.PathLike[str]) -> dict[str, str]:
    """A NATS password per bus user (crmkit.events.permissions.SUITE) and one for the
    development admin, made once in `<data-dir>/keys/nats/`."""
    folder = Path(data_dir) / "keys" / "nats"
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    passwords = {}
    for user in (*SUITE, DEV_ADMIN):
        path = folder / f"{user}.password"
        if not path.exists():
            _write_private(path, secrets.token_urlsafe(24))
        passwords[user] = path.read_text().strip()
    return passwords


def _secret(folder: Path, name: str) -> str:
    path = folder / name
    if not path.exists():
        _write_private(path, generate_key())
    return path.read_text().strip()


class LoginError(RuntimeError):
    pass


def login(gateway_url: str, user: str, password: str, *, timeout: float = 10.0) -> str:
    """An access token for `user`, signed in through the gateway (identity checks the password)."""
    try:
        response = httpx.post(f"{gateway_url.rstrip('/')}/api/v1/auth/token", timeout=timeout,
                              data={"grant_type": "password", "username": user, "password": password})
    except httpx.HTTPError as exc:
        raise LoginError(f"cannot reach the gateway at {gateway_url}: {exc}") from exc
    if response.status_code != 200:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        raise LoginError(f"sign-in as {user} failed ({response.status_code}): {detail}")
    return str(response.json()["access_token"])


def role_permissions(roles: Iterable[str]) -> tuple[str, ...]:
    """What identity's built-in roles grant (empty when the identity package is not installed)."""
    try:
        from crm_identity.domain.model import BUILT_IN_ROLES
    except ImportError:
        return ()
    wanted = set(roles)
    return tuple(sorted({p for role in BUILT_IN_ROLES if role.name in wanted for p in role.permissions}))


def issue_token(
    keys: DevKeys,
    *,
    user: str = "alice",
    name: str | None = None,
    roles: Iterable[str] = ("sales_rep",),
    team_ids: Iterable[str] = (),
    department_path: str = "/",
    data_scope: str | DataScope = DataScope.OWN,
    ttl_seconds: int = DEFAULT_TTL_SECONDS,
) -> str:
    roles = tuple(roles)
    return issue_access_token(
        keys.access_private_pem, issuer=ISSUER, audience=AUDIENCE, subject=user,
        name=name if name is not None else user.replace(".", " ").title(),
        roles=tuple(roles), team_ids=tuple(team_ids), department_path=department_path,
        data_scope=DataScope(data_scope), ttl_seconds=ttl_seconds, permissions=role_permissions(roles),
    )
