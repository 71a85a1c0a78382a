"""Reads and writes of the identity tables. Lists are keyset-paginated (crmkit.pagination)."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

from sqlalchemy import and_, delete, func, insert, literal_column, null, or_, select, text, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncSession

from crm_identity.adapters.tables import (
    api_keys,
    audit_entries,
    departments,
    partner_clients,
    refresh_tokens,
    revoked_tokens,
    roles,
    teams,
    user_roles,
    user_teams,
    users,
)
from crm_identity.domain.audit import GENESIS, ChainLink, hash_of
from crm_identity.domain.model import ApiKey, AuditEntry, Department, PartnerClient, Role, Team, User, UserStatus
from crm_identity.domain.passwords import LockState
from crmkit.auth import DataScope
from crmkit.pagination import bigint, decode_cursor, encode_cursor, text_key, uuid_text

# Audit entries are appended one at a time, in one order, across every replica.
AUDIT_LOCK_KEY = 0x415544495431  # "AUDIT1"


def _page(rows: Sequence[Any], limit: int, sort: str, key: Any) -> tuple[list[Any], str]:
    rows = list(rows)
    if len(rows) > limit:
        rows = rows[:limit]
        return rows, encode_cursor(sort, key(rows[-1]))
    return rows, ""


# ------------------------------------------------------------------------------ departments

def _department(row: Row[Any]) -> Department:
    return Department(id=row.id, name=row.name, parent_id=row.parent_id, path=row.path,
                      head_user_id=row.head_user_id, version=row.version)


async def get_department(s: AsyncSession, department_id: uuid.UUID, *, for_update: bool = False) -> Department | None:
    query = select(departments).where(departments.c.id == department_id)
    row = (await s.execute(query.with_for_update() if for_update else query)).first()
    return _department(row) if row else None


async def add_department(s: AsyncSession, d: Department) -> None:
    await s.execute(insert(departments).values(id=d.id, name=d.name, parent_id=d.parent_id, path=d.path,
                                               head_user_id=d.head_user_id, version=d.version))


async def save_department(s: AsyncSession, d: Department) -> None:
    await s.execute(update(departments).where(departments.c.id == d.id).values(
        name=d.name, parent_id=d.parent_id, path=d.path, head_user_id=d.head_user_id, version=d.version))


async def subtree_paths(s: AsyncSession, path: str) -> list[tuple[uuid.UUID, str]]:
    """Every strict descendant of the department at `path`, locked."""
    rows = await s.execute(select(departments.c.id, departments.c.path)
                           .where(departments.c.path.startswith(path, autoescape=True), departments.c.path != path)
                           .order_by(departments.c.path).with_for_update())
    return [(r.id, r.path) for r in rows]


async def set_path(s: AsyncSession, department_id: uuid.UUID, path: str) -> None:
    await s.execute(update(departments).where(departments.c.id == department_id).values(path=path))


async def count_roots(s: AsyncSession) -> int:
    return int(await s.scalar(select(func.count()).select_from(departments).where(departments.c.parent_id.is_(None))))


async def list_departments(s: AsyncSession, *, limit: int, page_token: str) -> tuple[list[Department], str]:
    sort = "path"
    query = select(departments).order_by(departments.c.path).limit(limit + 1)
    cursor = decode_cursor(page_token, sort, (text_key,))
    if cursor:
        query = query.where(departments.c.path > cursor.values[0])
    rows, token = _page((await s.execute(query)).all(), limit, sort, lambda r: [r.path])
    return [_department(r) for r in rows], token


async def heads_on_path(s: AsyncSession, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, uuid.UUID]:
    rows = await s.execute(select(departments.c.id, departments.c.head_user_id)
                           .where(departments.c.id.in_(ids), departments.c.head_user_id.is_not(None)))
    return {r.id: r.head_user_id for r in rows}


# ------------------------------------------------------------------------------------ teams

def _team(row: Row[Any]) -> Team:
    return Team(id=row.id, name=row.name, department_id=row.department_id, lead_user_id=row.lead_user_id)


async def add_team(s: AsyncSession, t: Team) -> None:
    await s.execute(insert(teams).values(id=t.id, name=t.name, department_id=t.department_id,
                                         lead_user_id=t.lead_user_id))


async def existing_team_ids(s: AsyncSession, ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
    return set((await s.scalars(select(teams.c.id).where(teams.c.id.in_(ids)))).all())


async def list_teams(s: AsyncSession, *, department_id: uuid.UUID | None, limit: int,
                     page_token: str) -> tuple[list[Team], str]:
    sort = "id"
    query = select(teams).order_by(teams.c.id).limit(limit + 1)
    if department_id:
        query = query.where(teams.c.department_id == department_id)
    cursor = decode_cursor(page_token, sort, (uuid_text,))
    if cursor:
        query = query.where(teams.c.id > uuid.UUID(str(cursor.values[0])))
    rows, token = _page((await s.execute(query)).all(), limit, sort, lambda r: [str(r.id)])
    return [_team(r) for r in rows], token


# ------------------------------------------------------------------------------------ users

_TEAMS = (select(func.coalesce(func.array_agg(user_teams.c.team_id), literal_column("'{}'::uuid[]")))
          .where(user_teams.c.user_id == users.c.id).scalar_subquery())
_ROLES = (select(func.coalesce(func.array_agg(user_roles.c.role), literal_column("'{}'::text[]")))
          .where(user_roles.c.user_id == users.c.id).scalar_subquery())
_USER_COLUMNS = [users.c.id, users.c.login, users.c.display_name, users.c.email, users.c.department_id,
                 users.c.manager_id, users.c.status, users.c.locale, users.c.locked_until, users.c.version,
                 users.c.created_at, _TEAMS.label("team_ids"), _ROLES.label("roles")]


def _user(row: Row[Any], now: dt.datetime | None = None) -> User:
    now = now or dt.datetime.now(dt.UTC)
    return User(id=row.id, login=row.login, display_name=row.display_name, email=row.email,
                department_id=row.department_id, team_ids=tuple(sorted(row.team_ids or ())),
                manager_id=row.manager_id, roles=tuple(sorted(row.roles or ())), status=UserStatus(row.status),
                locale=row.locale, locked=bool(row.locked_until and row.locked_until > now),
                created_at=row.created_at, version=row.version)


async def lock_bootstrap(s: AsyncSession) -> None:
    await s.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": AUDIT_LOCK_KEY + 1})


async def count_users(s: AsyncSession) -> int:
    return int(await s.scalar(select(func.count()).select_from(users)))


async def get_user(s: AsyncSession, user_id: uuid.UUID, *, for_update: bool = False) -> User | None:
    query = select(*_USER_COLUMNS).where(users.c.id == user_id)
    if for_update:
        query = query.with_for_update(of=users)
    row = (await s.execute(query)).first()
    return _user(row) if row else None


async def users_by_ids(s: AsyncSession, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, User]:
    rows = await s.execute(select(*_USER_COLUMNS).where(users.c.id.in_(ids)))
    return {r.id: _user(r) for r in rows}


async def login_record(s: AsyncSession, login: str) -> Row[Any] | None:
    """id, password_hash, status, failed_attempts, locked_until of a login, locked for update."""
    return (await s.execute(select(users.c.id, users.c.login, users.c.password_hash, users.c.status,
                                   users.c.failed_attempts, users.c.locked_until)
                            .where(users.c.login == login).with_for_update())).first()


async def password_hash(s: AsyncSession, user_id: uuid.UUID) -> str | None:
    return await s.scalar(select(users.c.password_hash).where(users.c.id == user_id))


async def set_lock_state(s: AsyncSession, user_id: uuid.UUID, state: LockState) -> None:
    await s.execute(update(users).where(users.c.id == user_id).values(
        failed_attempts=state.failed_attempts, locked_until=state.locked_until))


async def set_password_hash(s: AsyncSession, user_id: uuid.UUID, hashed: str) -> None:
    await s.execute(update(users).where(users.c.id == user_id).values(
        password_hash=hashed, failed_attempts=0, locked_until=None))


async def login_taken(s: AsyncSession, login: str) -> bool:
    return (await s.scalar(select(func.count()).select_from(users).where(users.c.login == login))) > 0


async def add_user(s: AsyncSession, u: User, hashed_password: str) -> None:
    await s.execute(insert(users).values(
        id=u.id, login=u.login, display_name=u.display_name, email=u.email, department_id=u.department_id,
        manager_id=u.manager_id, status=u.status.value, locale=u.locale, password_hash=hashed_password,
        version=u.version))
    await _set_links(s, u)


async def save_user(s: AsyncSession, u: User) -> None:
    await s.execute(update(users).where(users.c.id == u.id).values(
        display_name=u.display_name, email=u.email, department_id=u.department_id, manager_id=u.manager_id,
        status=u.status.value, locale=u.locale, version=u.version))
    await s.execute(delete(user_teams).where(user_teams.c.user_id == u.id))
    await s.execute(delete(user_roles).where(user_roles.c.user_id == u.id))
    await _set_links(s, u)


async def _set_links(s: AsyncSession, u: User) -> None:
    if u.team_ids:
        await s.execute(insert(user_teams), [{"user_id": u.id, "team_id": t} for t in u.team_ids])
    if u.roles:
        await s.execute(insert(user_roles), [{"user_id": u.id, "role": r} for r in u.roles])


async def teams_by_ids(s: AsyncSession, ids: Sequence[uuid.UUID]) -> list[Team]:
    return [_team(r) for r in await s.execute(select(teams).where(teams.c.id.in_(ids)).order_by(teams.c.name))]


async def list_users(s: AsyncSession, *, department_id: uuid.UUID | None, team_id: uuid.UUID | None, role: str,
                     login: str, name: str, limit: int, page_token: str) -> tuple[list[User], str]:
    sort = "login"
    query = select(*_USER_COLUMNS).order_by(users.c.login).limit(limit + 1)
    if login:
        query = query.where(users.c.login == login)
    if name:
        query = query.where(users.c.display_name.icontains(name, autoescape=True)
                            | users.c.login.icontains(name, autoescape=True))
    if department_id:
        query = query.where(users.c.department_id == department_id)
    if team_id:
        query = query.where(users.c.id.in_(select(user_teams.c.user_id).where(user_teams.c.team_id == team_id)))
    if role:
        query = query.where(users.c.id.in_(select(user_roles.c.user_id).where(user_roles.c.role == role)))
    cursor = decode_cursor(page_token, sort, (text_key,))
    if cursor:
        query = query.where(users.c.login > str(cursor.values[0]))
    rows, token = _page((await s.execute(query)).all(), limit, sort, lambda r: [r.login])
    return [_user(r) for r in rows], token


async def manager_chain_ids(s: AsyncSession, user_id: uuid.UUID, max_levels: int) -> list[uuid.UUID]:
    """The user's managers, nearest first (the recursion stops at max_levels, and at 100 anyway
    so that even a corrupted relation cannot loop)."""
    limit = max_levels if max_levels > 0 else 100
    rows = await s.execute(text("""
        WITH RECURSIVE chain(id, depth) AS (
            SELECT manager_id, 1 FROM users WHERE id = :uid AND manager_id IS NOT NULL
            UNION ALL
            SELECT u.manager_id, c.depth + 1 FROM users u JOIN chain c ON u.id = c.id
            WHERE u.manager_id IS NOT NULL AND c.depth < :limit
        ) SELECT id FROM chain ORDER BY depth"""), {"uid": user_id, "limit": min(limit, 100)})
    chain: list[uuid.UUID] = []
    for r in rows:
        if r.id in chain:
            break
        chain.append(r.id)
    return chain


async def role_holders(s: AsyncSession, role: str, department: Department, include_subtree: bool) -> list[User]:
    in_department = users.c.department_id == department.id
    if include_subtree:
        in_department = users.c.department_id.in_(
            select(departments.c.id).where(departments.c.path.startswith(department.path, autoescape=True)))
    query = (select(*_USER_COLUMNS)
             .where(in_department, users.c.status == UserStatus.ACTIVE.value,
                    users.c.id.in_(select(user_roles.c.user_id).where(user_roles.c.role == role)))
             .order_by(users.c.login))
    return [_user(r) for r in await s.execute(query)]


# ------------------------------------------------------------------------------------ roles

def _role(row: Row[Any]) -> Role:
    return Role(name=row.name, description=row.description, permissions=tuple(row.permissions),
                data_scope=DataScope(row.data_scope), sees_sensitive=row.sees_sensitive, built_in=row.built_in)


async def get_role(s: AsyncSession, name: str, *, for_update: bool = False) -> Role | None:
    query = select(roles).where(roles.c.name == name)
    row = (await s.execute(query.with_for_update() if for_update else query)).first()
    return _role(row) if row else None


async def roles_named(s: AsyncSession, names: Sequence[str]) -> list[Role]:
    return [_role(r) for r in await s.execute(select(roles).where(roles.c.name.in_(names)).order_by(roles.c.name))]


async def add_role(s: AsyncSession, r: Role) -> None:
    await s.execute(insert(roles).values(name=r.name, description=r.description, permissions=list(r.permissions),
                                         data_scope=r.data_scope.value, sees_sensitive=r.sees_sensitive,
                                         built_in=r.built_in))


async def save_role(s: AsyncSession, r: Role) -> None:
    await s.execute(update(roles).where(roles.c.name == r.name).values(
        description=r.description, permissions=list(r.permissions), data_scope=r.data_scope.value,
        sees_sensitive=r.sees_sensitive))


async def list_roles(s: AsyncSession, *, limit: int, page_token: str) -> tuple[list[Role], str]:
    sort = "name"
    query = select(roles).order_by(roles.c.name).limit(limit + 1)
    cursor = decode_cursor(page_token, sort, (text_key,))
    if cursor:
        query = query.where(roles.c.name > str(cursor.values[0]))
    rows, token = _page((await s.execute(query)).all(), limit, sort, lambda r: [r.name])
    return [_role(r) for r in rows], token


# ------------------------------------------------------------------------------------ tokens

async def add_refresh_token(s: AsyncSession, *, family_id: uuid.UUID, user_id: uuid.UUID, token_hash: str,
                            access_token_id: str, access_expires_at: dt.datetime, issued_at: dt.datetime,
                            expires_at: dt.datetime) -> None:
    await s.execute(insert(refresh_tokens).values(
        id=uuid.uuid4(), family_id=family_id, user_id=user_id, token_hash=token_hash,
        access_token_id=access_token_id, access_expires_at=access_expires_at, issued_at=issued_at,
        expires_at=expires_at))


async def refresh_token_by_hash(s: AsyncSession, token_hash: str) -> Row[Any] | None:
    return (await s.execute(select(refresh_tokens).where(refresh_tokens.c.token_hash == token_hash)
                            .with_for_update())).first()


async def mark_refresh_used(s: AsyncSession, token_id: uuid.UUID, now: dt.datetime) -> None:
    await s.execute(update(refresh_tokens).where(refresh_tokens.c.id == token_id).values(used_at=now))


async def revoke_family(s: AsyncSession, family_id: uuid.UUID, now: dt.datetime) -> list[tuple[str, dt.datetime]]:
    """Revokes every refresh token of the family; returns the access tokens issued with them that
    have not expired yet (id, expiry)."""
    await s.execute(update(refresh_tokens).where(refresh_tokens.c.family_id == family_id,
                                                 refresh_tokens.c.revoked_at.is_(None)).values(revoked_at=now))
    rows = await s.execute(select(refresh_tokens.c.access_token_id, refresh_tokens.c.access_expires_at)
                           .where(refresh_tokens.c.family_id == family_id,
                                  refresh_tokens.c.access_expires_at > now))
    return [(r.access_token_id, r.access_expires_at) for r in rows]


async def session_families(s: AsyncSession, user_id: uuid.UUID) -> list[uuid.UUID]:
    """The user's sign-in sessions that still hold a usable refresh token."""
    rows = await s.execute(select(refresh_tokens.c.family_id).distinct()
                           .where(refresh_tokens.c.user_id == user_id, refresh_tokens.c.revoked_at.is_(None)))
    return [r.family_id for r in rows]


async def record_revoked(s: AsyncSession, token_id: str, expires_at: dt.datetime) -> bool:
    """True the first time the token is revoked."""
    from sqlalchemy.dialects.postgresql import insert as pg_insert

    result = await s.execute(pg_insert(revoked_tokens).values(token_id=token_id, expires_at=expires_at)
                             .on_conflict_do_nothing().returning(revoked_tokens.c.token_id))
    return result.first() is not None


async def access_token_expiry(s: AsyncSession, token_id: str) -> dt.datetime | None:
    return await s.scalar(select(refresh_tokens.c.access_expires_at)
                          .where(refresh_tokens.c.access_token_id == token_id))


# ------------------------------------------------------------------------ clients and keys

def _client(row: Row[Any]) -> PartnerClient:
    return PartnerClient(client_id=row.client_id, name=row.name, scopes=tuple(row.scopes),
                         rate_limit_per_minute=row.rate_limit_per_minute, disabled=row.disabled,
                         created_at=row.created_at)


async def add_client(s: AsyncSession, c: PartnerClient, secret_hash: str) -> PartnerClient:
    row = (await s.execute(insert(partner_clients).values(
        client_id=c.client_id, name=c.name, secret_hash=secret_hash, scopes=list(c.scopes),
        rate_limit_per_minute=c.rate_limit_per_minute, disabled=c.disabled).returning(partner_clients))).one()
    return _client(row)


async def client_record(s: AsyncSession, client_id: str) -> Row[Any] | None:
    return (await s.execute(select(partner_clients).where(partner_clients.c.client_id == client_id))).first()


async def get_client(s: AsyncSession, client_id: str) -> PartnerClient | None:
    row = await client_record(s, client_id)
    return _client(row) if row else None


async def list_clients(s: AsyncSession, *, limit: int, page_token: str) -> tuple[list[PartnerClient], str]:
    sort = "client_id"
    query = select(partner_clients).order_by(partner_clients.c.client_id).limit(limit + 1)
    cursor = decode_cursor(page_token, sort, (text_key,))
    if cursor:
        query = query.where(partner_clients.c.client_id > str(cursor.values[0]))
    rows, token = _page((await s.execute(query)).all(), limit, sort, lambda r: [r.client_id])
    return [_client(r) for r in rows], token


def _key(row: Row[Any]) -> ApiKey:
    return ApiKey(id=row.id, client_id=row.client_id, prefix=row.prefix, name=row.name, created_at=row.created_at,
                  last_used_at=row.last_used_at, revoked_at=row.revoked_at)


_KEY_COLUMNS = [api_keys.c.id, api_keys.c.client_id, api_keys.c.prefix, api_keys.c.name, api_keys.c.created_at,
                api_keys.c.last_used_at, api_keys.c.revoked_at]


async def add_api_key(s: AsyncSession, key: ApiKey, key_hash: str) -> ApiKey:
    row = (await s.execute(insert(api_keys).values(id=key.id, client_id=key.client_id, prefix=key.prefix,
                                                   key_hash=key_hash, name=key.name)
                           .returning(*_KEY_COLUMNS))).one()
    return _key(row)


async def api_key_by_hash(s: AsyncSession, key_hash: str) -> ApiKey | None:
    row = (await s.execute(select(*_KEY_COLUMNS).where(api_keys.c.key_hash == key_hash))).first()
    return _key(row) if row else None


async def get_api_key(s: AsyncSession, key_id: uuid.UUID) -> ApiKey | None:
    row = (await s.execute(select(*_KEY_COLUMNS).where(api_keys.c.id == key_id).with_for_update())).first()
    return _key(row) if row else None


async def touch_api_key(s: AsyncSession, key_id: uuid.UUID, now: dt.datetime) -> None:
    await s.execute(update(api_keys).where(api_keys.c.id == key_id).values(last_used_at=now))


async def revoke_api_key(s: AsyncSession, key_id: uuid.UUID, now: dt.datetime) -> None:
    await s.execute(update(api_keys).where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
                    .values(revoked_at=now))


async def list_api_keys(s: AsyncSession, *, client_id: str, limit: int, page_token: str) -> tuple[list[ApiKey], str]:
    sort = "id"
    query = select(*_KEY_COLUMNS).order_by(api_keys.c.id).limit(limit + 1)
    if client_id:
        query = query.where(api_keys.c.client_id == client_id)
    cursor = decode_cursor(page_token, sort, (uuid_text,))
    if cursor:
        query = query.where(api_keys.c.id > uuid.UUID(str(cursor.values[0])))
    rows, token = _page((await s.execute(query)).all(), limit, sort, lambda r: [str(r.id)])
    return [_key(r) for r in rows], token


# ------------------------------------------------------------------------------- audit trail

async def append_audit_entry(s: AsyncSession, *, occurred_at: dt.datetime, service: str, entity: str,
                             entity_id: str, action: str, actor: str, before: Any, after: Any,
                             event_id: str) -> int | None:
    """Appends one entry at the end of the chain; None if the event is already recorded."""
    if await s.scalar(select(audit_entries.c.sequence).where(audit_entries.c.event_id == event_id)):
        return None
    # Serialises appends so the chain is linear; released at commit.
    await s.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": AUDIT_LOCK_KEY})
    last = (await s.execute(select(audit_entries.c.hash).order_by(audit_entries.c.sequence.desc()).limit(1))).first()
    sequence = int(await s.scalar(text("SELECT nextval(pg_get_serial_sequence('audit_entries', 'sequence'))")))
    # Hash over the JSON exactly as PostgreSQL will render it back, so verification is stable.
    canon = (await s.execute(text("SELECT CAST(:b AS jsonb)::text AS b, CAST(:a AS jsonb)::text AS a"),
                             {"b": None if before is None else json.dumps(before),
                              "a": None if after is None else json.dumps(after)})).one()
    link = ChainLink(sequence=sequence, occurred_at=occurred_at, service=service, entity=entity,
                     entity_id=entity_id, action=action, actor=actor, before=canon.b, after=canon.a,
                     event_id=event_id, prev_hash=last.hash if last else GENESIS)
    await s.execute(insert(audit_entries).values(
        sequence=sequence, occurred_at=occurred_at, service=service, entity=entity, entity_id=entity_id,
        action=action, actor=actor, before=null() if before is None else before,
        after=null() if after is None else after, event_id=event_id, prev_hash=link.prev_hash,
        hash=hash_of(link)))
    return sequence


def _entry(row: Row[Any]) -> AuditEntry:
    return AuditEntry(sequence=row.sequence, occurred_at=row.occurred_at, service=row.service, entity=row.entity,
                      entity_id=row.entity_id, action=row.action, actor=row.actor, before=row.before,
                      after=row.after, event_id=row.event_id, prev_hash=row.prev_hash, hash=row.hash)


async def list_audit_entries(s: AsyncSession, *, entity: str, entity_id: str, actor: str,
                             from_time: dt.datetime | None, to_time: dt.datetime | None, limit: int,
                             page_token: str) -> tuple[list[AuditEntry], str]:
    sort = "-sequence"
    conditions = []
    if entity:
        conditions.append(audit_entries.c.entity == entity)
    if entity_id:
        conditions.append(audit_entries.c.entity_id == entity_id)
    if actor:
        conditions.append(audit_entries.c.actor == actor)
    if from_time:
        conditions.append(audit_entries.c.occurred_at >= from_time)
    if to_time:
        conditions.append(audit_entries.c.occurred_at < to_time)
    cursor = decode_cursor(page_token, sort, (bigint,))
    if cursor:
        conditions.append(audit_entries.c.sequence < int(cursor.values[0]))
    query = (select(audit_entries).where(and_(*conditions) if conditions else or_(True))
             .order_by(audit_entries.c.sequence.desc()).limit(limit + 1))
    rows, token = _page((await s.execute(query)).all(), limit, sort, lambda r: [r.sequence])
    return [_entry(r) for r in rows], token


async def chain_head(s: AsyncSession) -> tuple[int, str] | None:
    row = (await s.execute(text("SELECT sequence, hash FROM audit_entries ORDER BY sequence DESC LIMIT 1"))).first()
    return (row.sequence, row.hash) if row is not None else None


async def chain_batches(s: AsyncSession, batch: int = 1000) -> AsyncIterator[list[ChainLink]]:
    """The whole chain in sequence order, a batch at a time (keyset), never all in memory."""
    after = 0
    while True:
        rows = (await s.execute(text(
            "SELECT sequence, occurred_at, service, entity, entity_id, action, actor, before::text AS before, "
            "after::text AS after, event_id, prev_hash, hash FROM audit_entries WHERE sequence > :after "
            "ORDER BY sequence LIMIT :batch"), {"after": after, "batch": batch})).all()
        if not rows:
            return
        yield [ChainLink(sequence=r.sequence, occurred_at=r.occurred_at, service=r.service, entity=r.entity,
                         entity_id=r.entity_id, action=r.action, actor=r.actor, before=r.before, after=r.after,
                         event_id=r.event_id, prev_hash=r.prev_hash, hash=r.hash) for r in rows]
        after = rows[-1].sequence
