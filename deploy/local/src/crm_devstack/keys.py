"""The local signing keys in `<data-dir>/keys/` and bearer tokens made with them.

Two Ed25519 key pairs, made once on the first `up` (or `token`) and kept with the data:
`access` signs user access tokens (the gateway gets its JWKS) and `principal` signs the
gateway-to-service principal (the gateway gets the private half, services the public half).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from crmkit.auth.keys import generate_keypair, jwks_of, public_pem_of
from crmkit.auth.principal import DataScope
from crmkit.auth.tokens import issue_access_token

ISSUER = "crm-dev"
AUDIENCE = "crm-api"
DEFAULT_TTL_SECONDS = 8 * 3600


@dataclass(frozen=True)
class DevKeys:
    access_private_pem: str
    access_public_pem: str
    principal_private_pem: str
    principal_public_pem: str

    @property
    def jwks(self) -> str:
        return jwks_of(self.access_public_pem)


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
    return DevKeys(access[0], access[1], principal[0], principal[1])


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
    return issue_access_token(
        keys.access_private_pem, issuer=ISSUER, audience=AUDIENCE, subject=user,
        name=name if name is not None else user.replace(".", " ").title(),
        roles=tuple(roles), team_ids=tuple(team_ids), department_path=department_path,
        data_scope=DataScope(data_scope), ttl_seconds=ttl_seconds,
    )
