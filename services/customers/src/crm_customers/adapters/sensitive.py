"""Sensitive columns at rest (R-SEC-04): tax IDs, contact phones and bank account numbers.

Values are sealed with crmkit's FieldCipher (AES-256-GCM, key ring from `CRM_FIELD_KEYS`); a tax
ID's uniqueness is checked on its blind index (keyed HMAC, `CRM_FIELD_INDEX_KEY`).

Rows written before migration 0002 hold plaintext until `crm-customers reencrypt` has run:
`reveal` hands such a legacy value back unchanged (a ciphertext always starts with `enc:`; no
tax ID, E.164 phone or account number does), so the service works during the rollout.

The cipher is process-wide: `main.wire` configures it from the settings. Code that never
configured one (tests, an embedded servicer) gets a random key ring for the life of the process,
so nothing it writes can be read by any other process: never a well-known key.
"""

from __future__ import annotations

import logging
import os

from crmkit.crypto import FieldCipher

log = logging.getLogger(__name__)

# Field names bound into each ciphertext (associated data) and into the blind index.
TAX_ID = "customers.tax_id"
ACCOUNT_NUMBER = "customers.bank_accounts.account_number"
PHONE = "contacts.phones"

_PREFIX = "enc:"
_cipher: FieldCipher | None = None


def configure(cipher: FieldCipher | None) -> None:
    global _cipher
    _cipher = cipher


def cipher() -> FieldCipher:
    global _cipher
    if _cipher is None:
        log.warning("no field key ring configured; using a random one for this process only")
        _cipher = FieldCipher({"ephemeral": os.urandom(32)}, "ephemeral", os.urandom(32))
    return _cipher


def seal(value: str, field: str) -> str:
    return cipher().encrypt(value, field)


def reveal(value: str, field: str) -> str:
    if not value or not value.startswith(_PREFIX):
        return value  # empty, or a legacy plaintext row not yet re-encrypted
    return cipher().decrypt(value, field)


def needs_rotation(value: str) -> bool:
    """Plaintext (legacy) or sealed under a key that is no longer the active one."""
    return cipher().needs_rotation(value)


def tax_id_index(tax_id: str) -> str | None:
    return cipher().blind_index(tax_id, TAX_ID) if tax_id else None

