"""The customers service's settings: crmkit's, plus the field key ring (R-SEC-04)."""

from __future__ import annotations

from decimal import Decimal

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
    # R-CUS-06: customer tier by cumulative signed contract amount in tier_currency:
    # A from tier_a_from, B from tier_b_from, C below (CRM_TIER_A_FROM, CRM_TIER_B_FROM, CRM_TIER_CURRENCY).
    tier_currency: str = "CNY"
    tier_a_from: Decimal = Decimal("5000000")
    tier_b_from: Decimal = Decimal("1000000")

    def cipher(self) -> FieldCipher:
        return FieldCipher.from_config(self.field_keys.get_secret_value(), self.field_index_key.get_secret_value())
