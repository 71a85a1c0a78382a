"""How long and how many: the one source of each field limit that both the gateway's schemas (what
the OpenAPI advertises) and the owning service's rules (what it accepts) read, so the two cannot
drift apart. Lengths count characters after surrounding whitespace is trimmed."""

from __future__ import annotations

# Customers (R-CUS-01, 02, 04, 05)
CUSTOMER_NAME = 200
CUSTOMER_REGION = 100
CUSTOMER_TAGS = 20
CUSTOMER_TAG = 50
CUSTOMER_ADDRESSES = 10
CUSTOMER_BANK_ACCOUNTS = 10
ADDRESS_LINE = 500
ADDRESS_CITY = 100
ADDRESS_PROVINCE = 100
ADDRESS_POSTAL_CODE = 20

# Contacts
CONTACT_NAME = 100
CONTACT_TITLE = 100
CONTACT_PHONES = 10
# E.164 has at most 15 digits; room for spaces, dashes, brackets and an extension.
CONTACT_PHONE = 40
# The longest address SMTP carries (RFC 5321); the e-mail validator refuses longer ones.
CONTACT_EMAIL = 254
CONTACT_WECHAT = 64

# Imports (R-CUS-03): a resumable upload's file.
IMPORT_UPLOAD_BYTES = 256 * 1024 * 1024

# Follow-ups
FOLLOW_UP_SUMMARY = 500
FOLLOW_UP_CONTENT = 20_000
FOLLOW_UP_KEY_FACTS = 20
FOLLOW_UP_KEY_FACT = 200
