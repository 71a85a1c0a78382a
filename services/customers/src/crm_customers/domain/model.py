"""Customers, contacts and follow-ups, and the rules that keep them valid (R-CUS-01/02/04/05).

Validation collects every problem at once, so a client learns all it must fix in one answer.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, replace
from enum import StrEnum

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from crm_customers.domain.tax_id import foreign_tax_id_problem, uscc_problem
from crm_customers.domain.text import clean, strip_controls
from crmkit import limits
from crmkit.errors import FieldViolation, InvalidArgument


class Origin(StrEnum):
    DOMESTIC = "domestic"
    FOREIGN = "foreign"


class CustomerStatus(StrEnum):
    ACTIVE = "active"
    CHANGED = "changed"
    DEREGISTERED = "deregistered"


class LifecycleStage(StrEnum):
    """R-CUS-11: the one vocabulary. A record created here starts as a prospect; it becomes a
    customer when a contract is signed, churned when the relationship ends."""

    LEAD = "lead"
    PROSPECT = "prospect"
    CUSTOMER = "customer"
    CHURNED = "churned"


class AddressKind(StrEnum):
    REGISTERED = "registered"
    BILLING = "billing"
    SHIPPING = "shipping"
    OFFICE = "office"


class FollowUpKind(StrEnum):
    CALL = "call"
    VISIT = "visit"
    EMAIL = "email"
    WECHAT = "wechat"
    MEETING = "meeting"
    OTHER = "other"


# One source with the gateway's schemas (crmkit.limits).
MAX_NAME = limits.CUSTOMER_NAME
MAX_TAGS = limits.CUSTOMER_TAGS
MAX_TAG = limits.CUSTOMER_TAG
MAX_ADDRESSES = limits.CUSTOMER_ADDRESSES
MAX_KEY_FACTS = limits.FOLLOW_UP_KEY_FACTS
MAX_BANK_ACCOUNTS = limits.CUSTOMER_BANK_ACCOUNTS
_ACCOUNT_NUMBER = re.compile(r"^[A-Z0-9]{4,34}$")
# What a masked value looks like: sent back unchanged it must not overwrite the real one.
MASK_CHAR = "*"
# Clients' clocks drift; a follow-up stamped a few minutes ahead of ours still happened.
MAX_CLOCK_SKEW = dt.timedelta(minutes=5)
_COUNTRY = re.compile(r"^[A-Z]{2}$")


@dataclass(frozen=True)
class Address:
    kind: AddressKind
    line: str
    city: str = ""
    province: str = ""
    country: str = "CN"
    postal_code: str = ""


@dataclass(frozen=True)
class BankAccount:
    bank_name: str
    account_number: str
    account_name: str = ""


@dataclass(frozen=True)
class Customer:
    id: uuid.UUID
    name: str
    owner_id: str
    team_id: str
    department_path: str
    tax_id: str = ""
    industry: str = ""
    region: str = ""
    origin: Origin = Origin.DOMESTIC
    status: CustomerStatus = CustomerStatus.ACTIVE
    lifecycle_stage: LifecycleStage = LifecycleStage.PROSPECT
    tags: tuple[str, ...] = ()
    addresses: tuple[Address, ...] = ()
    bank_accounts: tuple[BankAccount, ...] = ()
    # Set when a contract with the customer is signed (contracts service event); never by a client.
    has_signed_contract: bool = False
    # R-CUS-06, output only: the tier and cumulative signed amount (app/tiers.py), set by events.
    tier: str = ""
    signed_amount: str = ""
    signed_currency: str = ""
    version: int = 1
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    created_by: str = ""


# Fields a client may change through an update mask, and the ones whose change is an ownership
# change (checked against the caller's data scope).
UPDATABLE_FIELDS = frozenset({"name", "tax_id", "industry", "region", "origin", "status",
                              "lifecycle_stage", "owner_id", "team_id", "tags", "addresses",
                              "bank_accounts"})
OWNERSHIP_FIELDS = frozenset({"owner_id", "team_id"})


class _Problems:
    def __init__(self) -> None:
        self.items: list[FieldViolation] = []

    def add(self, field_name: str, description: str) -> None:
        self.items.append(FieldViolation(field_name, description))

    def raise_if_any(self, what: str) -> None:
        if self.items:
            summary = "; ".join(f"{v.field}: {v.description}" for v in self.items)
            raise InvalidArgument(f"{what} is not valid: {summary}", violations=self.items)


def normalise_customer(customer: Customer) -> Customer:
    """Cleans every field and raises InvalidArgument listing all that is wrong."""
    problems = _Problems()
    name = clean(customer.name)
    if not name:
        problems.add("name", "is required")
    elif len(name) > MAX_NAME:
        problems.add("name", f"must be at most {MAX_NAME} characters")
    tax_id = clean(customer.tax_id).upper().replace(" ", "") if customer.origin == Origin.DOMESTIC \
        else clean(customer.tax_id).upper()
    if MASK_CHAR in tax_id:
        problems.add("tax_id", "is a masked value; send the full tax ID or leave the field out")
    elif tax_id:
        problem = uscc_problem(tax_id) if customer.origin == Origin.DOMESTIC else foreign_tax_id_problem(tax_id)
        if problem:
            problems.add("tax_id", problem)
    region = clean(customer.region)
    if len(region) > limits.CUSTOMER_REGION:
        problems.add("region", f"must be at most {limits.CUSTOMER_REGION} characters")
    tags = normalise_tags(customer.tags, problems)
    if len(customer.addresses) > MAX_ADDRESSES:
        problems.add("addresses", f"at most {MAX_ADDRESSES} addresses")
    addresses = tuple(_normalise_address(a, i, problems) for i, a in enumerate(customer.addresses))
    if len(customer.bank_accounts) > MAX_BANK_ACCOUNTS:
        problems.add("bank_accounts", f"at most {MAX_BANK_ACCOUNTS} bank accounts")
    bank_accounts = tuple(_normalise_bank_account(b, i, problems) for i, b in enumerate(customer.bank_accounts))
    owner_id = clean(customer.owner_id)
    if not owner_id:
        problems.add("owner_id", "is required")
    problems.raise_if_any("the customer")
    return replace(customer, name=name, tax_id=tax_id, region=region, industry=clean(customer.industry),
                   tags=tags, addresses=addresses, bank_accounts=bank_accounts, owner_id=owner_id,
                   team_id=clean(customer.team_id))


def normalise_tags(tags: tuple[str, ...], problems: _Problems) -> tuple[str, ...]:
    seen: dict[str, str] = {}
    for tag in tags:
        cleaned = clean(tag)
        if not cleaned:
            problems.add("tags", "a tag cannot be empty")
        elif len(cleaned) > MAX_TAG:
            problems.add("tags", f"tag {cleaned[:20]!r}… is longer than {MAX_TAG} characters")
        else:
            seen.setdefault(cleaned.casefold(), cleaned)
    if len(seen) > MAX_TAGS:
        problems.add("tags", f"at most {MAX_TAGS} tags")
    return canonical_tags(seen.values())


def canonical_tags(tags: Iterable[str]) -> tuple[str, ...]:
    """Tags are a set (R-CUS-04); one fixed order everywhere keeps re-sending them a no-op."""
    return tuple(sorted(tags, key=lambda t: (t.casefold(), t)))


def _normalise_address(address: Address, index: int, problems: _Problems) -> Address:
    line = clean(address.line)
    if not line:
        problems.add(f"addresses[{index}].line", "is required")
    for name, limit in (("line", limits.ADDRESS_LINE), ("city", limits.ADDRESS_CITY),
                        ("province", limits.ADDRESS_PROVINCE), ("postal_code", limits.ADDRESS_POSTAL_CODE)):
        if len(clean(getattr(address, name))) > limit:
            problems.add(f"addresses[{index}].{name}", f"must be at most {limit} characters")
    country = clean(address.country).upper() or "CN"
    if not _COUNTRY.match(country):
        problems.add(f"addresses[{index}].country", "must be an ISO 3166-1 alpha-2 code such as CN or DE")
    return replace(address, line=line, city=clean(address.city), province=clean(address.province),
                   country=country, postal_code=clean(address.postal_code))


def _normalise_bank_account(account: BankAccount, index: int, problems: _Problems) -> BankAccount:
    bank_name = clean(account.bank_name)
    if not bank_name:
        problems.add(f"bank_accounts[{index}].bank_name", "is required")
    elif len(bank_name) > 100:
        problems.add(f"bank_accounts[{index}].bank_name", "must be at most 100 characters")
    account_name = clean(account.account_name)
    if len(account_name) > 200:
        problems.add(f"bank_accounts[{index}].account_name", "must be at most 200 characters")
    number = re.sub(r"[\s-]", "", clean(account.account_number)).upper()
    if MASK_CHAR in number:
        problems.add(f"bank_accounts[{index}].account_number",
                     "is a masked value; send the full account number")
    elif not _ACCOUNT_NUMBER.match(number):
        # Chinese bank card and account numbers are digits; IBANs add letters (up to 34).
        problems.add(f"bank_accounts[{index}].account_number", "must be 4 to 34 letters or digits")
    return replace(account, bank_name=bank_name, account_name=account_name, account_number=number)


def changed_fields(before: Customer, after: Customer) -> list[str]:
    return sorted(f for f in UPDATABLE_FIELDS if getattr(before, f) != getattr(after, f))


@dataclass(frozen=True)
class Contact:
    id: uuid.UUID
    customer_id: uuid.UUID
    name: str
    title: str = ""
    phones: tuple[str, ...] = ()
    email: str = ""
    wechat: str = ""
    is_key: bool = False
    version: int = 1
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None


CONTACT_UPDATABLE_FIELDS = frozenset({"name", "title", "phones", "email", "wechat", "is_key"})


def normalise_contact(contact: Contact, default_region: str = "CN") -> Contact:
    problems = _Problems()
    name = clean(contact.name)
    if not name:
        problems.add("name", "is required")
    elif len(name) > limits.CONTACT_NAME:
        problems.add("name", f"must be at most {limits.CONTACT_NAME} characters")
    title = clean(contact.title)
    if len(title) > limits.CONTACT_TITLE:
        problems.add("title", f"must be at most {limits.CONTACT_TITLE} characters")
    phones = []
    for i, phone in enumerate(contact.phones[:limits.CONTACT_PHONES]):
        if len(phone) > limits.CONTACT_PHONE:
            problems.add(f"phones[{i}]", f"must be at most {limits.CONTACT_PHONE} characters")
            continue
        if MASK_CHAR in phone:
            problems.add(f"phones[{i}]", "is a masked value; send the full phone number")
            continue
        try:
            parsed = phonenumbers.parse(clean(phone), default_region)
            if not phonenumbers.is_valid_number(parsed):
                raise phonenumbers.NumberParseException(0, "invalid")
            phones.append(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))
        except phonenumbers.NumberParseException:
            problems.add(f"phones[{i}]", f"{phone!r} is not a valid phone number")
    if len(contact.phones) > limits.CONTACT_PHONES:
        problems.add("phones", f"at most {limits.CONTACT_PHONES} phone numbers")
    email = clean(contact.email)
    if email:
        try:
            email = validate_email(email, check_deliverability=False).normalized
        except EmailNotValidError as exc:
            problems.add("email", str(exc))
    wechat = clean(contact.wechat)
    if len(wechat) > limits.CONTACT_WECHAT:
        problems.add("wechat", f"must be at most {limits.CONTACT_WECHAT} characters")
    problems.raise_if_any("the contact")
    return replace(contact, name=name, title=title, phones=tuple(dict.fromkeys(phones)), email=email,
                   wechat=wechat)


@dataclass(frozen=True)
class FollowUp:
    id: uuid.UUID
    customer_id: uuid.UUID
    kind: FollowUpKind
    occurred_at: dt.datetime
    summary: str
    author_id: str
    author_name: str = ""
    content: str = ""
    key_facts: tuple[str, ...] = ()
    contact_id: uuid.UUID | None = None
    created_at: dt.datetime | None = None


def normalise_follow_up(follow_up: FollowUp, now: dt.datetime) -> FollowUp:
    problems = _Problems()
    summary = clean(follow_up.summary)
    if not summary:
        problems.add("summary", "is required")
    elif len(summary) > limits.FOLLOW_UP_SUMMARY:
        problems.add("summary", f"must be at most {limits.FOLLOW_UP_SUMMARY} characters")
    content = strip_controls(follow_up.content).strip()
    if len(content) > limits.FOLLOW_UP_CONTENT:
        problems.add("content", f"must be at most {limits.FOLLOW_UP_CONTENT} characters")
    if follow_up.occurred_at > now + MAX_CLOCK_SKEW:
        problems.add("occurred_at", "cannot be in the future; record follow-ups that happened")
    facts = tuple(f for f in (clean(f) for f in follow_up.key_facts) if f)
    if len(facts) > MAX_KEY_FACTS or any(len(f) > limits.FOLLOW_UP_KEY_FACT for f in facts):
        problems.add("key_facts",
                     f"at most {MAX_KEY_FACTS} facts of at most {limits.FOLLOW_UP_KEY_FACT} characters each")
    problems.raise_if_any("the follow-up")
    return replace(follow_up, summary=summary, content=content, key_facts=facts)


