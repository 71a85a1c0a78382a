"""Ed25519 signing keys as PEM text, and the JWKS document that publishes their public halves."""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey


@dataclass(frozen=True)
class KeyPair:
    kid: str
    private_pem: str
    public_pem: str


def generate_keypair() -> KeyPair:
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public_pem = public_pem_of(private_pem)
    return KeyPair(kid=key_id(public_pem), private_pem=private_pem, public_pem=public_pem)


def public_pem_of(private_pem: str) -> str:
    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def key_id(public_pem: str) -> str:
    """A stable id derived from the key itself, so rotation needs no bookkeeping."""
    return hashlib.sha256(public_pem.strip().encode()).hexdigest()[:16]


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def jwk_of(public_pem: str) -> dict[str, str]:
    key = serialization.load_pem_public_key(public_pem.encode())
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("only Ed25519 keys are supported")
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {"kty": "OKP", "crv": "Ed25519", "x": _b64url(raw), "kid": key_id(public_pem),
            "alg": "EdDSA", "use": "sig"}


def jwks_of(*public_pems: str) -> str:
    """A JWKS JSON document; publishing old and new keys together is how keys rotate."""
    return json.dumps({"keys": [jwk_of(pem) for pem in public_pems]})
