"""JSON shapes of the organisation, access and audit API (R-SEC-01, 03, 05). Unknown fields are
rejected."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, Field

from crm_gateway.routes.common_schemas import Strict

DataScope = Literal["own", "team", "department", "all", "signed"]
UserStatus = Literal["active", "disabled"]


# Users ---------------------------------------------------------------------------------------

class UserFields(Strict):
    display_name: str = Field(max_length=200)
    email: str = Field("", max_length=320)
    department_id: str = Field("", max_length=100)
    team_ids: list[str] = Field(default_factory=list, max_length=50)
    manager_id: str = Field("", max_length=100)
    roles: list[str] = Field(default_factory=list, max_length=50, description="Role names from GET /api/v1/roles")
    locale: str = Field("zh-CN", max_length=35, description="BCP 47")


class UserCreate(UserFields):
    login: str = Field(min_length=1, max_length=100)
    password: str = Field(min_length=1, max_length=200, description="The initial password")


class UserPatch(Strict):
    """JSON merge patch: only the fields present change."""

    display_name: str | None = Field(None, max_length=200)
    email: str | None = Field(None, max_length=320)
    department_id: str | None = Field(None, max_length=100)
    team_ids: list[str] | None = Field(None, max_length=50)
    manager_id: str | None = Field(None, max_length=100)
    roles: list[str] | None = Field(None, max_length=50)
    status: UserStatus | None = None
    locale: str | None = Field(None, max_length=35)


class User(UserFields):
    id: str
    login: str
    status: UserStatus
    locked: bool
    version: int
    created_at: dt.datetime | None


class UserPage(BaseModel):
    items: list[User]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page; absent on the last")


class PasswordChange(Strict):
    current_password: str = Field("", max_length=200, description="Required when changing your own password")
    new_password: str = Field(min_length=1, max_length=200)


# Org chart -----------------------------------------------------------------------------------

class DepartmentCreate(Strict):
    name: str = Field(min_length=1, max_length=200)
    parent_id: str = Field("", max_length=100, description="Empty for the root")
    head_user_id: str = Field("", max_length=100)


class DepartmentPatch(Strict):
    name: str | None = Field(None, min_length=1, max_length=200)
    parent_id: str | None = Field(None, max_length=100)
    head_user_id: str | None = Field(None, max_length=100)


class Department(BaseModel):
    id: str
    name: str
    parent_id: str
    path: str = Field(description="Materialised path of ids, /<root>/<child>/")
    head_user_id: str


class DepartmentList(BaseModel):
    items: list[Department]


class TeamCreate(Strict):
    name: str = Field(min_length=1, max_length=200)
    department_id: str = Field(max_length=100)
    lead_user_id: str = Field("", max_length=100)


class Team(BaseModel):
    id: str
    name: str
    department_id: str
    lead_user_id: str


class TeamList(BaseModel):
    items: list[Team]


# Roles ---------------------------------------------------------------------------------------

class RoleCreate(Strict):
    name: str = Field(min_length=1, max_length=100)
    description: str = Field("", max_length=500)
    permissions: list[str] = Field(default_factory=list, max_length=200)
    data_scope: DataScope = "own"
    sees_sensitive: bool = False


class RolePatch(Strict):
    description: str | None = Field(None, max_length=500)
    permissions: list[str] | None = Field(None, max_length=200)
    data_scope: DataScope | None = None
    sees_sensitive: bool | None = None


class Role(BaseModel):
    name: str
    description: str
    permissions: list[str]
    data_scope: DataScope
    sees_sensitive: bool
    built_in: bool


class RoleList(BaseModel):
    items: list[Role]


# Partner systems -----------------------------------------------------------------------------

class PartnerClientCreate(Strict):
    name: str = Field(min_length=1, max_length=200)
    scopes: list[str] = Field(default_factory=list, max_length=50,
                              description="Permissions the client may use, e.g. customers.read "
                                          "(customers:read is the same)")
    rate_limit_per_minute: int = Field(0, ge=0, le=1_000_000, description="0: the gateway's default")


class PartnerClient(BaseModel):
    client_id: str
    name: str
    scopes: list[str]
    rate_limit_per_minute: int
    disabled: bool
    created_at: dt.datetime | None


class PartnerClientCreated(PartnerClient):
    client_secret: str = Field(description="Shown once; store it now")


class PartnerClientList(BaseModel):
    items: list[PartnerClient]


class ApiKeyCreate(Strict):
    client_id: str = Field(min_length=1, max_length=100)
    name: str = Field("", max_length=200)


class ApiKey(BaseModel):
    id: str
    client_id: str
    prefix: str = Field(description="The key's first characters, to tell keys apart")
    name: str
    created_at: dt.datetime | None
    last_used_at: dt.datetime | None
    revoked_at: dt.datetime | None


class ApiKeyCreated(ApiKey):
    key: str = Field(description="Shown once; send it as X-API-Key")


class ApiKeyList(BaseModel):
    items: list[ApiKey]


# Audit ---------------------------------------------------------------------------------------

class AuditEntry(BaseModel):
    sequence: int
    occurred_at: dt.datetime | None
    service: str
    entity: str
    entity_id: str
    action: str
    actor: str
    before: str = Field(description="JSON of the record before the change")
    after: str = Field(description="JSON of the record after the change")
    event_id: str
    hash: str


class AuditPage(BaseModel):
    items: list[AuditEntry]
    next_cursor: str | None = None


class AuditVerification(BaseModel):
    intact: bool
    entries_checked: int
    first_broken_sequence: int | None = Field(description="The first entry that does not match; absent when intact")
    problem: str | None


# Who am I -------------------------------------------------------------------------------------

class UserSummary(BaseModel):
    id: str
    login: str
    display_name: str


class Me(BaseModel):
    """Who the access token (or API key) belongs to and what it may do."""

    kind: Literal["user", "client"] = Field(description="A person, or a partner system (X-API-Key, client "
                                                        "credentials)")
    subject: str = Field(description="The user id, or the partner client id")
    user: User | None = Field(None, description="People only")
    roles: list[str]
    permissions: list[str] = Field(description="What each operation's `x-permission` is checked against")
    scopes: list[str] = Field(description="Partner clients: the OAuth scopes granted")
    data_scope: DataScope = Field(description="Which records lists and reads include: own (yours), team, "
                                              "department (and below), all, signed (customers with a signed "
                                              "contract)")
    sees_sensitive: bool = Field(description="Phones, tax ids and bank accounts shown unmasked")
    department: Department | None = None
    teams: list[Team] = Field(default_factory=list)
    manager: UserSummary | None = Field(None, description="The direct manager, who approves what needs a manager")
