"""How sensitive values look to whoever may not see them (R-SEC-04).

Used for API responses to principals without `sees_sensitive` and, always, for the values in
integration events (they reach other services, NATS retention and the audit trail).
"""

from __future__ import annotations

from dataclasses import replace

import phonenumbers

from crm_customers.domain.model import Contact, Customer
from crmkit.crypto import mask


def mask_phone(phone: str) -> str:
    """`+8613812345678` → `+86138****5678`: country code, first 3 and last 4 digits of the rest."""
    try:
        parsed = phonenumbers.parse(phone, None)
        country, national = f"+{parsed.country_code}", phonenumbers.national_significant_number(parsed)
    except phonenumbers.NumberParseException:
        country, national = "", phone
    return country + mask(national, keep_start=3, keep_end=4)


def mask_tax_id(tax_id: str) -> str:
    """`91350100M000100Y43` → `9135************43`."""
    return mask(tax_id, keep_start=4, keep_end=2) if tax_id else ""


def mask_account_number(number: str) -> str:
    """`6222021234567890123` → `***************0123`."""
    return mask(number, keep_start=0, keep_end=4) if number else ""


def masked_customer(customer: Customer) -> Customer:
    return replace(customer, tax_id=mask_tax_id(customer.tax_id), bank_accounts=tuple(
        replace(b, account_number=mask_account_number(b.account_number)) for b in customer.bank_accounts))


def masked_contact(contact: Contact) -> Contact:
    return replace(contact, phones=tuple(mask_phone(p) for p in contact.phones))
