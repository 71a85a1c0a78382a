"""JSON shapes of the customers API (R-CUS-01, 02, 04, 05). Unknown fields are rejected, so a
typo is an error the client sees, not a value silently dropped."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, Field

from crm_gateway.routes.common_schemas import Money, Strict
from crmkit import limits

Origin = Literal["domestic", "foreign"]
CustomerStatus = Literal["active", "changed", "deregistered"]
LifecycleStage = Literal["lead", "prospect", "customer", "churned"]
AddressKind = Literal["registered", "billing", "shipping", "office"]
FollowUpKind = Literal["call", "visit", "email", "wechat", "meeting", "other"]
CustomerSort = Literal["name", "-name", "create_time", "-create_time", "update_time", "-update_time"]


class Address(Strict):
    kind: AddressKind = "office"
    line: str = Field(max_length=limits.ADDRESS_LINE)
    city: str = Field("", max_length=limits.ADDRESS_CITY)
    province: str = Field("", max_length=limits.ADDRESS_PROVINCE)
    country: str = Field("CN", max_length=2, description="ISO 3166-1 alpha-2")
    postal_code: str = Field("", max_length=limits.ADDRESS_POSTAL_CODE)


Tag = Annotated[str, Field(max_length=limits.CUSTOMER_TAG)]
Phone = Annotated[str, Field(max_length=limits.CONTACT_PHONE)]
KeyFact = Annotated[str, Field(max_length=limits.FOLLOW_UP_KEY_FACT)]


class CustomerFields(Strict):
    name: str = Field(max_length=limits.CUSTOMER_NAME, description="Legal name")
    tax_id: str = Field("", max_length=40, description="Unified social credit code (domestic) or local tax number")
    industry: str = Field("", max_length=50, description="Code from GET /api/v1/industries")
    region: str = Field("", max_length=limits.CUSTOMER_REGION)
    origin: Origin = "domestic"
    status: CustomerStatus = "active"
    lifecycle_stage: LifecycleStage = "prospect"
    owner_id: str = Field("", max_length=100, description="Defaults to the caller")
    team_id: str = Field("", max_length=100, description="Defaults to the caller's team")
    tags: list[Tag] = Field(default_factory=list, max_length=limits.CUSTOMER_TAGS)
    addresses: list[Address] = Field(default_factory=list, max_length=limits.CUSTOMER_ADDRESSES)


class CustomerCreate(CustomerFields):
    pass


class CustomerPatch(Strict):
    """JSON merge patch: only the fields present change."""

    name: str | None = Field(None, max_length=limits.CUSTOMER_NAME)
    tax_id: str | None = Field(None, max_length=40)
    industry: str | None = Field(None, max_length=50)
    region: str | None = Field(None, max_length=limits.CUSTOMER_REGION)
    origin: Origin | None = None
    status: CustomerStatus | None = None
    lifecycle_stage: LifecycleStage | None = None
    owner_id: str | None = Field(None, max_length=100)
    team_id: str | None = Field(None, max_length=100)
    tags: list[Tag] | None = Field(None, max_length=limits.CUSTOMER_TAGS)
    addresses: list[Address] | None = Field(None, max_length=limits.CUSTOMER_ADDRESSES)


class Customer(CustomerFields):
    id: str
    department_path: str
    tier: str = Field("", description="A, B or C by cumulative signed amount (R-CUS-06); empty before any contract")
    signed_amount: Money | None = Field(None, description="Cumulative signed amount that sets the tier")
    version: int
    created_at: dt.datetime
    updated_at: dt.datetime
    created_by: str


class CustomerPage(BaseModel):
    items: list[Customer]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page; absent on the last")


class ContactFields(Strict):
    name: str = Field(max_length=limits.CONTACT_NAME)
    title: str = Field("", max_length=limits.CONTACT_TITLE)
    phones: list[Phone] = Field(default_factory=list, max_length=limits.CONTACT_PHONES)
    email: str = Field("", max_length=limits.CONTACT_EMAIL)
    wechat: str = Field("", max_length=limits.CONTACT_WECHAT)
    is_key: bool = False


class ContactPatch(Strict):
    name: str | None = Field(None, max_length=limits.CONTACT_NAME)
    title: str | None = Field(None, max_length=limits.CONTACT_TITLE)
    phones: list[Phone] | None = Field(None, max_length=limits.CONTACT_PHONES)
    email: str | None = Field(None, max_length=limits.CONTACT_EMAIL)
    wechat: str | None = Field(None, max_length=limits.CONTACT_WECHAT)
    is_key: bool | None = None


class Contact(ContactFields):
    id: str
    customer_id: str
    version: int
    created_at: dt.datetime
    updated_at: dt.datetime


class ContactList(BaseModel):
    items: list[Contact]


class FollowUpCreate(Strict):
    kind: FollowUpKind
    occurred_at: AwareDatetime | None = Field(None, description="With a UTC offset; defaults to now")
    summary: str = Field(max_length=limits.FOLLOW_UP_SUMMARY)
    content: str = Field("", max_length=limits.FOLLOW_UP_CONTENT)
    key_facts: list[KeyFact] = Field(default_factory=list, max_length=limits.FOLLOW_UP_KEY_FACTS)
    contact_id: str = ""


class FollowUp(Strict):
    id: str
    customer_id: str
    kind: FollowUpKind
    occurred_at: dt.datetime
    summary: str
    content: str
    key_facts: list[str]
    contact_id: str | None
    author_id: str
    author_name: str
    created_at: dt.datetime


class FollowUpPage(BaseModel):
    items: list[FollowUp]
    next_cursor: str | None = None


class Industry(Strict):
    code: str = Field(max_length=50)
    name: str = Field(max_length=200)
    name_zh: str = Field("", max_length=200)


class IndustryList(BaseModel):
    items: list[Industry]


class TagUsage(BaseModel):
    name: str
    customer_count: int


class TagList(BaseModel):
    items: list[TagUsage]
