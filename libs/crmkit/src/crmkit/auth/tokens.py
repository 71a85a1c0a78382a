"""User and partner access tokens (bearer JWTs) as the gateway verifies them.

The identity service issues them in production; `issue_access_token` serves `make token` and tests
until it exists. Verification accepts every key of a JWKS, which is how issuers rotate keys.
"""

from __future__ import annotations

import time
import uuid

import jwt

from crmkit.auth.keys import key_id, public_pem_of
from crmkit.auth.principal import DataScope, Principal
from crmkit.errors import Unauthenticated


def issue_access_token(
    private_pem: str,
    *,
    issuer: str,
    audience: str,
    subject: str,
    name: str = "",
    roles: tuple[str, ...] = (),
    team_ids: tuple[str, ...] = (),
    department_path: str = "/",
    data_scope: DataScope = DataScope.OWN,
    ttl_seconds: int = 900,
    kind: str = "user",
    permissions: tuple[str, ...] = (),
    sees_sensitive: bool = False,
    rate_limit: int = 0,
    scopes: tuple[str, ...] = (),
    token_id: str = "",
    issued_at: float | None = None,
) -> str:
    # The caller passes its own clock when it also stores the expiry, so both agree to the second.
    now = int(time.time() if issued_at is None else issued_at)
    principal = Principal(subject=subject, name=name, kind=kind, roles=roles, team_ids=team_ids,
                          department_path=department_path, data_scope=data_scope, permissions=permissions,
                          sees_sensitive=sees_sensitive, rate_limit=rate_limit, scopes=scopes)
    claims = principal.to_claims() | {
        "iss": issuer, "aud": audience, "iat": now, "nbf": now, "exp": now + ttl_seconds,
        "jti": token_id or str(uuid.uuid4()),
    }
    return jwt.encode(claims, private_pem, algorithm="EdDSA",
                      headers={"kid": key_id(public_pem_of(private_pem))})


class AccessTokenVerifier:
    def __init__(self, jwks_json: str, *, issuer: str, audience: str, leeway_seconds: int = 30,
                 max_lifetime_seconds: int | None = None) -> None:
        self._keys = {jwk.key_id: jwk for jwk in jwt.PyJWKSet.from_json(jwks_json).keys}
        self._issuer = issuer
        self._audience = audience
        self._leeway = leeway_seconds
        # A token living longer than the issuer ever grants was not minted by its policy.
        self._max_lifetime = max_lifetime_seconds

    def verify(self, token: str) -> Principal:
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            jwk = self._keys.get(kid or "")
            if jwk is None:
                raise Unauthenticated("token signed by an unknown key")
            claims = jwt.decode(
                token, jwk.key, algorithms=["EdDSA"], audience=self._audience, issuer=self._issuer,
                leeway=self._leeway, options={"require": ["exp", "iat", "sub", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthenticated("token expired") from exc
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"invalid token: {exc}") from exc
        lifetime = claims["exp"] - claims["iat"]
        if self._max_lifetime is not None and lifetime > self._max_lifetime:
            raise Unauthenticated(f"token lifetime of {lifetime} s exceeds the maximum of {self._max_lifetime} s")
        return Principal.from_claims(claims)
