"""Secrets: argon2 for passwords; random tokens stored as SHA-256 (they carry 256 bits of
entropy, so a slow hash adds nothing and a fast one allows lookup by hash); signing keys."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from crmkit.auth.keys import jwks_of, key_id, public_pem_of

_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(hashed: str, password: str) -> bool:
    try:
        return _hasher.verify(hashed, password)
    except (VerificationError, InvalidHashError):
        return False


@cache
def _dummy_hash() -> str:
    return _hasher.hash(secrets.token_urlsafe(16))


def burn_password_check(password: str) -> None:
    """Spends the time a real check would, so an unknown login is not told apart by timing."""
    verify_password(_dummy_hash(), password)


def new_token(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(32)}"


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_api_key() -> tuple[str, str]:
    """(key, prefix): the prefix is shown in lists to tell keys apart."""
    prefix = secrets.token_hex(4)
    return f"crmk_{prefix}_{secrets.token_urlsafe(32)}", f"crmk_{prefix}"


@dataclass(frozen=True)
class SigningKeys:
    """The first key signs; every key is published, which is how keys rotate without downtime."""

    private_pems: tuple[str, ...]

    @classmethod
    def from_config(cls, value: str) -> SigningKeys:
        marker = "-----END PRIVATE KEY-----"
        pems = tuple(part.strip() + "\n" + marker + "\n" for part in value.split(marker) if part.strip())
        if not pems:
            raise ValueError("CRM_IDENTITY_SIGNING_KEYS holds no private key")
        for pem in pems:
            public_pem_of(pem)  # fails early on a malformed key
        return cls(pems)

    @property
    def current(self) -> str:
        return self.private_pems[0]

    @property
    def current_kid(self) -> str:
        return key_id(public_pem_of(self.current))

    def jwks(self) -> str:
        return jwks_of(*(public_pem_of(pem) for pem in self.private_pems))
