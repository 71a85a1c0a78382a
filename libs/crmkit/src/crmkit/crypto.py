"""Sensitive fields at rest (R-SEC-04): AES-256-GCM with a key ring, and blind indexes.

A ciphertext names the key that made it (`enc:<kid>:<nonce+ciphertext>`), so a new key can be
made active while old values stay readable, and re-encrypted at leisure. The field's name is
bound in as associated data, so a value copied into another column does not decrypt. Equality
lookups (a tax ID's uniqueness) use a keyed HMAC of the normalised value: the blind index.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_PREFIX = "enc"


class CipherError(ValueError):
    pass


def generate_key() -> str:
    """A new 256-bit key, base64, for CRM_FIELD_KEYS or CRM_FIELD_INDEX_KEY."""
    return base64.b64encode(os.urandom(32)).decode()


class FieldCipher:
    def __init__(self, keys: dict[str, bytes], active: str, index_key: bytes) -> None:
        if active not in keys:
            raise CipherError(f"active key {active!r} is not in the key ring")
        for kid, key in keys.items():
            if len(key) != 32:
                raise CipherError(f"key {kid!r} must be 32 bytes")
            if ":" in kid:
                raise CipherError(f"key id {kid!r} must not contain ':'")
        if len(index_key) < 32:
            raise CipherError("the index key must be at least 32 bytes")
        self._keys = {kid: AESGCM(key) for kid, key in keys.items()}
        self.active = active
        self._index_key = index_key

    @classmethod
    def from_config(cls, keys: str, index_key: str) -> FieldCipher:
        """`keys` is "kid:base64key,kid:base64key"; the first is the one new values use."""
        ring: dict[str, bytes] = {}
        for item in filter(None, (part.strip() for part in keys.split(","))):
            kid, _, encoded = item.partition(":")
            try:
                ring[kid] = base64.b64decode(encoded, validate=True)
            except ValueError as exc:
                raise CipherError(f"key {kid!r} is not base64") from exc
        if not ring:
            raise CipherError("CRM_FIELD_KEYS names no key")
        try:
            index = base64.b64decode(index_key, validate=True)
        except ValueError as exc:
            raise CipherError("CRM_FIELD_INDEX_KEY is not base64") from exc
        return cls(ring, next(iter(ring)), index)

    def encrypt(self, plaintext: str, field: str) -> str:
        if not plaintext:
            return ""
        nonce = os.urandom(12)
        sealed = self._keys[self.active].encrypt(nonce, plaintext.encode(), field.encode())
        return f"{_PREFIX}:{self.active}:{base64.b64encode(nonce + sealed).decode()}"

    def decrypt(self, value: str, field: str) -> str:
        if not value:
            return ""
        prefix, kid, payload = [*value.split(":", 2), "", ""][:3]
        if prefix != _PREFIX or kid not in self._keys:
            raise CipherError(f"{field}: not a value this key ring made (key {kid!r})")
        raw = base64.b64decode(payload)
        try:
            return self._keys[kid].decrypt(raw[:12], raw[12:], field.encode()).decode()
        except InvalidTag as exc:
            raise CipherError(f"{field}: ciphertext was altered or belongs to another field") from exc

    def needs_rotation(self, value: str) -> bool:
        return bool(value) and not value.startswith(f"{_PREFIX}:{self.active}:")

    def blind_index(self, value: str, field: str) -> str:
        return hmac.new(self._index_key, f"{field}\0{value}".encode(), hashlib.sha256).hexdigest()


def mask(value: str, *, keep_start: int = 3, keep_end: int = 4) -> str:
    """`13812345678` → `138****5678`; short values are masked whole."""
    if len(value) <= keep_start + keep_end:
        return "*" * len(value)
    return value[:keep_start] + "*" * (len(value) - keep_start - keep_end) + value[-keep_end:]
