"""The customers service's settings: crmkit's, plus the field key ring (R-SEC-04)."""

from __future__ import annotations

from pydantic import SecretStr

from crmkit.crypto import FieldCipher
from crmkit.settings import ServiceSettings


class CustomersSettings(ServiceSettings):
    # "kid:base64key,kid:base64key": the first key seals new values, all of them open old ones.
    # Rotation: put a new key first, keep the old ones, run `crm-customers reencrypt`, then drop them.
    field_keys: SecretStr
    # Base64, at least 32 bytes: the blind index of tax IDs. Never rotated without re-indexing
    # (`reencrypt` recomputes every index), since uniqueness is checked on it.
    field_index_key: SecretStr

    def cipher(self) -> FieldCipher:
        return FieldCipher.from_config(self.field_keys.get_secret_value(), self.field_index_key.get_secret_value())
