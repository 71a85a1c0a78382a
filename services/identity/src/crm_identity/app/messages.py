"""Protobuf ↔ domain for the identity API and events."""

from __future__ import annotations

import datetime as dt
import json
import uuid

from google.protobuf.timestamp_pb2 import Timestamp

from crm.identity.v1 import identity_pb2 as pb
from crm_identity.domain.model import ApiKey, AuditEntry, Department, PartnerClient, Role, Team, User, UserStatus
from crmkit.auth import DataScope
from crmkit.errors import InvalidArgument
from crmkit.ids import parse_id

SCOPE_TO_PB = {DataScope.OWN: pb.DATA_SCOPE_OWN, DataScope.TEAM: pb.DATA_SCOPE_TEAM,
               DataScope.DEPARTMENT: pb.DATA_SCOPE_DEPARTMENT, DataScope.ALL: pb.DATA_SCOPE_ALL,
               DataScope.SIGNED: pb.DATA_SCOPE_SIGNED}
SCOPE_FROM_PB = {v: k for k, v in SCOPE_TO_PB.items()}
STATUS_TO_PB = {UserStatus.ACTIVE: pb.USER_STATUS_ACTIVE, UserStatus.DISABLED: pb.USER_STATUS_DISABLED}
STATUS_FROM_PB = {v: k for k, v in STATUS_TO_PB.items()}


def ts(value: dt.datetime | None) -> Timestamp | None:
    if value is None:
        return None
    t = Timestamp()
    t.FromDatetime(value.astimezone(dt.UTC))
    return t


def from_ts(value: Timestamp, present: bool) -> dt.datetime | None:
    return value.ToDatetime(tzinfo=dt.UTC) if present else None


def opt_id(value: str, field: str) -> uuid.UUID | None:
    return parse_id(value, field) if value else None


def ids(values: list[str], field: str) -> tuple[uuid.UUID, ...]:
    return tuple(parse_id(v, f"{field}[{i}]") for i, v in enumerate(values))


def _s(value: uuid.UUID | None) -> str:
    return str(value) if value else ""


def department_to_pb(d: Department) -> pb.Department:
    return pb.Department(id=str(d.id), name=d.name, parent_id=_s(d.parent_id), path=d.path,
                         head_user_id=_s(d.head_user_id))


def team_to_pb(t: Team) -> pb.Team:
    return pb.Team(id=str(t.id), name=t.name, department_id=str(t.department_id), lead_user_id=_s(t.lead_user_id))


def user_to_pb(u: User) -> pb.User:
    return pb.User(id=str(u.id), login=u.login, display_name=u.display_name, email=u.email,
                   department_id=_s(u.department_id), team_ids=[str(t) for t in u.team_ids],
                   manager_id=_s(u.manager_id), roles=list(u.roles), status=STATUS_TO_PB[u.status],
                   locale=u.locale, locked=u.locked, create_time=ts(u.created_at), version=u.version)


def user_fields_from_pb(u: pb.User) -> dict[str, object]:
    fields: dict[str, object] = {
        "login": u.login, "display_name": u.display_name, "email": u.email,
        "department_id": opt_id(u.department_id, "user.department_id"),
        "team_ids": ids(list(u.team_ids), "user.team_ids"), "manager_id": opt_id(u.manager_id, "user.manager_id"),
        "roles": tuple(u.roles), "locale": u.locale,
    }
    if u.status != pb.USER_STATUS_UNSPECIFIED:
        if u.status not in STATUS_FROM_PB:
            raise InvalidArgument.of("user.status", "unknown status")
        fields["status"] = STATUS_FROM_PB[u.status]
    return fields


def role_to_pb(r: Role) -> pb.Role:
    return pb.Role(name=r.name, description=r.description, permissions=list(r.permissions),
                   data_scope=SCOPE_TO_PB[r.data_scope], sees_sensitive=r.sees_sensitive, built_in=r.built_in)


def scope_from_pb(value: int, field: str = "role.data_scope") -> DataScope:
    if value not in SCOPE_FROM_PB:
        raise InvalidArgument.of(field, "must be own, team, department, all or signed")
    return SCOPE_FROM_PB[value]  # type: ignore[index]


def client_to_pb(c: PartnerClient) -> pb.PartnerClient:
    return pb.PartnerClient(client_id=c.client_id, name=c.name, scopes=list(c.scopes),
                            rate_limit_per_minute=c.rate_limit_per_minute, disabled=c.disabled,
                            create_time=ts(c.created_at))


def api_key_to_pb(k: ApiKey) -> pb.ApiKey:
    return pb.ApiKey(id=str(k.id), client_id=k.client_id, prefix=k.prefix, name=k.name,
                     create_time=ts(k.created_at), last_use_time=ts(k.last_used_at), revoke_time=ts(k.revoked_at))


def audit_entry_to_pb(e: AuditEntry) -> pb.AuditEntry:
    return pb.AuditEntry(
        sequence=e.sequence, occur_time=ts(e.occurred_at), service=e.service, entity=e.entity,
        entity_id=e.entity_id, action=e.action, actor=e.actor,
        before_json="" if e.before is None else json.dumps(e.before, ensure_ascii=False, sort_keys=True),
        after_json="" if e.after is None else json.dumps(e.after, ensure_ascii=False, sort_keys=True),
        event_id=e.event_id, hash=e.hash)
