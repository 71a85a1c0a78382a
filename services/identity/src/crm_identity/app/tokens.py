"""Signing in (R-SEC-05 for partner systems): the four grants of IssueToken, and revocation.

Every refusal of a person's sign-in carries the same text, whether the login is unknown, the
password wrong, the account locked or disabled: the answer never tells which logins exist."""

from __future__ import annotations

import datetime as dt
import hmac
import uuid
from dataclasses import dataclass, field
from typing import NoReturn

from crm.identity.v1 import events_pb2 as ev
from crm_identity.adapters import repository as repo
from crm_identity.app.credentials import SigningKeys, burn_password_check, digest, new_token, verify_password
from crm_identity.domain.access import grants_of
from crm_identity.domain.model import PartnerClient, UserStatus
from crm_identity.domain.passwords import (
    SIGN_IN_REFUSED,
    LockoutPolicy,
    LockState,
    after_failure,
    after_success,
    normalise_login,
)
from crmkit.auth import DataScope, Principal
from crmkit.auth.tokens import issue_access_token
from crmkit.db import UnitOfWork
from crmkit.errors import InvalidArgument, PermissionDenied, Unauthenticated

GRANTS = ("password", "client_credentials", "refresh_token", "api_key")


@dataclass(frozen=True)
class TokenConfig:
    keys: SigningKeys
    issuer: str
    audience: str
    access_ttl: int = 600
    refresh_ttl: int = 14 * 24 * 3600
    lockout: LockoutPolicy = field(default_factory=LockoutPolicy)


@dataclass(frozen=True)
class Tokens:
    access_token: str
    expires_in: int
    refresh_token: str = ""
    scope: str = ""


def _refused() -> Unauthenticated:
    return Unauthenticated(SIGN_IN_REFUSED)


async def password_grant(uow: UnitOfWork, cfg: TokenConfig, login: str, password: str,
                         now: dt.datetime) -> Tokens:
    login = normalise_login(login)
    if not login or not password:
        raise InvalidArgument.of("username" if not login else "password", "is required")
    record = await repo.login_record(uow.session, login)
    if record is None:
        burn_password_check(password)
        await _failed(uow, login, "unknown_login", locked=False)
    state = LockState(record.failed_attempts, record.locked_until)
    if state.is_locked(now):
        burn_password_check(password)
        await _failed(uow, login, "locked", locked=True)
    if not verify_password(record.password_hash, password):
        state = after_failure(state, now, cfg.lockout)
        await repo.set_lock_state(uow.session, record.id, state)
        await _failed(uow, login, "wrong_password", locked=state.is_locked(now))
    if record.status != UserStatus.ACTIVE.value:
        await _failed(uow, login, "disabled", locked=False)
    if state.failed_attempts:
        await repo.set_lock_state(uow.session, record.id, after_success())
    tokens = await _user_tokens(uow, cfg, record.id, uuid.uuid4(), now)
    await uow.commit()
    return tokens


async def _failed(uow: UnitOfWork, login: str, reason: str, *, locked: bool) -> NoReturn:
    """Records the failure (and any lock) even though the call fails, then refuses."""
    uow.emit(ev.SignInFailed(login=login[:128], reason=reason, locked=locked), subject_id=login[:128])
    await uow.commit()
    raise _refused()


def _whole_seconds(moment: dt.datetime) -> dt.datetime:
    # JWT times are whole seconds; the stored expiry must match the token's `exp` exactly.
    return moment.replace(microsecond=0)


async def _user_tokens(uow: UnitOfWork, cfg: TokenConfig, user_id: uuid.UUID, family_id: uuid.UUID,
                       now: dt.datetime) -> Tokens:
    user = await repo.get_user(uow.session, user_id)
    if user is None:
        raise _refused()
    grants = grants_of(await repo.roles_named(uow.session, user.roles))
    department = await repo.get_department(uow.session, user.department_id) if user.department_id else None
    token_id = str(uuid.uuid4())
    access = issue_access_token(
        cfg.keys.current, issuer=cfg.issuer, audience=cfg.audience, subject=str(user.id), name=user.display_name,
        kind="user", roles=user.roles, team_ids=tuple(str(t) for t in user.team_ids),
        department_path=department.path if department else "/", data_scope=grants.data_scope,
        permissions=grants.permissions, sees_sensitive=grants.sees_sensitive, rate_limit=0, scopes=(),
        ttl_seconds=cfg.access_ttl, token_id=token_id, issued_at=now.timestamp())
    refresh = new_token("crmr")
    await repo.add_refresh_token(
        uow.session, family_id=family_id, user_id=user.id, token_hash=digest(refresh), access_token_id=token_id,
        access_expires_at=_whole_seconds(now) + dt.timedelta(seconds=cfg.access_ttl), issued_at=now,
        expires_at=now + dt.timedelta(seconds=cfg.refresh_ttl))
    return Tokens(access_token=access, expires_in=cfg.access_ttl, refresh_token=refresh)


async def refresh_grant(uow: UnitOfWork, cfg: TokenConfig, refresh_token: str, now: dt.datetime) -> Tokens:
    if not refresh_token:
        raise InvalidArgument.of("refresh_token", "is required")
    row = await repo.refresh_token_by_hash(uow.session, digest(refresh_token))
    if row is None:
        raise Unauthenticated("invalid refresh token")
    if row.used_at is not None or row.revoked_at is not None:
        # A rotated token came back: someone holds a copy. End the whole session.
        await _revoke_family(uow, row.family_id, now)
        await uow.commit()
        raise Unauthenticated("invalid refresh token", reason="REFRESH_TOKEN_REUSED")
    if row.expires_at <= now:
        raise Unauthenticated("invalid refresh token")
    user = await repo.get_user(uow.session, row.user_id)
    if user is None or user.status != UserStatus.ACTIVE:
        await _revoke_family(uow, row.family_id, now)
        await uow.commit()
        raise Unauthenticated("invalid refresh token")
    await repo.mark_refresh_used(uow.session, row.id, now)
    tokens = await _user_tokens(uow, cfg, row.user_id, row.family_id, now)
    await uow.commit()
    return tokens


async def end_sessions(uow: UnitOfWork, user_id: uuid.UUID, now: dt.datetime) -> None:
    """Every session of the user ends now: refresh tokens stop working and the access tokens
    still alive are revoked (the gateway refuses them within a moment)."""
    for family_id in await repo.session_families(uow.session, user_id):
        await _revoke_family(uow, family_id, now)


async def _revoke_family(uow: UnitOfWork, family_id: uuid.UUID, now: dt.datetime) -> None:
    for token_id, expires_at in await repo.revoke_family(uow.session, family_id, now):
        await _revoke_access_token(uow, token_id, expires_at)


async def _revoke_access_token(uow: UnitOfWork, token_id: str, expires_at: dt.datetime) -> None:
    if await repo.record_revoked(uow.session, token_id, expires_at):
        uow.emit(ev.TokenRevoked(token_id=token_id, expires_at=int(expires_at.timestamp())), subject_id=token_id)


def _client_tokens(cfg: TokenConfig, client: PartnerClient) -> Tokens:
    # A partner system sees what its scopes allow, company-wide: its scopes are its permissions.
    access = issue_access_token(
        cfg.keys.current, issuer=cfg.issuer, audience=cfg.audience, subject=client.client_id, name=client.name,
        kind="client", roles=(), team_ids=(), department_path="/", data_scope=DataScope.ALL,
        permissions=client.scopes, sees_sensitive=False, rate_limit=client.rate_limit_per_minute,
        scopes=client.scopes, ttl_seconds=cfg.access_ttl, token_id=str(uuid.uuid4()))
    return Tokens(access_token=access, expires_in=cfg.access_ttl, scope=" ".join(client.scopes))


async def client_credentials_grant(uow: UnitOfWork, cfg: TokenConfig, client_id: str, secret: str) -> Tokens:
    if not client_id or not secret:
        raise InvalidArgument.of("client_id" if not client_id else "client_secret", "is required")
    row = await repo.client_record(uow.session, client_id)
    if row is None or row.disabled or not hmac.compare_digest(row.secret_hash, digest(secret)):
        uow.emit(ev.SignInFailed(login=client_id[:128], reason="bad_client_credentials", locked=False),
                 subject_id=client_id[:128])
        await uow.commit()
        raise Unauthenticated("invalid client credentials")
    client = await repo.get_client(uow.session, client_id)
    assert client is not None
    return _client_tokens(cfg, client)


async def api_key_grant(uow: UnitOfWork, cfg: TokenConfig, api_key: str, now: dt.datetime) -> Tokens:
    if not api_key:
        raise InvalidArgument.of("api_key", "is required")
    key = await repo.api_key_by_hash(uow.session, digest(api_key))
    client = await repo.get_client(uow.session, key.client_id) if key else None
    if key is None or key.revoked_at is not None or client is None or client.disabled:
        raise Unauthenticated("invalid API key")
    await repo.touch_api_key(uow.session, key.id, now)
    await uow.commit()
    return _client_tokens(cfg, client)


async def revoke(uow: UnitOfWork, principal: Principal, cfg: TokenConfig, *, refresh_token: str,
                 access_token_id: str, now: dt.datetime) -> None:
    if not refresh_token and not access_token_id:
        raise InvalidArgument.of("refresh_token", "a refresh token or an access token id is required")
    if refresh_token:
        # Holding the token is the right to end its session; an unknown token is no error (RFC 7009).
        row = await repo.refresh_token_by_hash(uow.session, digest(refresh_token))
        if row is not None:
            await _revoke_family(uow, row.family_id, now)
    if access_token_id:
        if access_token_id != principal.token_id and not principal.may("org.manage"):
            raise PermissionDenied("only the token's holder or an administrator may revoke it")
        expires_at = await repo.access_token_expiry(uow.session, access_token_id)
        await _revoke_access_token(uow, access_token_id,
                                   expires_at or now + dt.timedelta(seconds=cfg.access_ttl))
    await uow.commit()
