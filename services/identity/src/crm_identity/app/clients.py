"""R-SEC-05: partner clients with scopes and rate limits, and their API keys (shown once)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import secrets
import uuid

from crm.identity.v1 import events_pb2 as ev
from crm_identity.adapters import repository as repo
from crm_identity.app.credentials import digest, new_api_key, new_token
from crm_identity.app.messages import api_key_to_pb, client_to_pb
from crm_identity.app.org import require
from crm_identity.domain.model import ALL, ApiKey, PartnerClient, is_known_permission
from crm_identity.domain.org import clean_name
from crmkit.auth import Principal
from crmkit.db import UnitOfWork
from crmkit.errors import InvalidArgument, NotFound
from crmkit.ids import new_id
from crmkit.pagination import page_size

DEFAULT_RATE_LIMIT = 60
MAX_RATE_LIMIT = 100_000


async def create_client(uow: UnitOfWork, principal: Principal, *, name: str, scopes: list[str],
                        rate_limit_per_minute: int) -> tuple[PartnerClient, str]:
    require(principal, "clients.manage")
    name = clean_name(name, "client.name")
    scopes = sorted(set(scopes))
    bad = [s for s in scopes if s == ALL or not is_known_permission(s)]
    if bad:
        raise InvalidArgument.of("client.scopes", f"not grantable to a partner: {', '.join(bad)}")
    if not scopes:
        raise InvalidArgument.of("client.scopes", "name at least one scope")
    limit = rate_limit_per_minute or DEFAULT_RATE_LIMIT
    if not 1 <= limit <= MAX_RATE_LIMIT:
        raise InvalidArgument.of("client.rate_limit_per_minute", f"must be between 1 and {MAX_RATE_LIMIT}")
    secret = new_token("crms")
    client = await repo.add_client(uow.session, PartnerClient(
        client_id=f"pc_{secrets.token_hex(8)}", name=name, scopes=tuple(scopes), rate_limit_per_minute=limit),
        digest(secret))
    uow.emit(ev.PartnerClientChanged(after=client_to_pb(client)), subject_id=client.client_id)
    await uow.commit()
    return client, secret


async def list_clients(uow: UnitOfWork, principal: Principal, *, limit: int,
                       page_token: str) -> tuple[list[PartnerClient], str]:
    require(principal, "clients.manage")
    return await repo.list_clients(uow.session, limit=page_size(limit), page_token=page_token)


async def create_api_key(uow: UnitOfWork, principal: Principal, *, client_id: str, name: str) -> tuple[ApiKey, str]:
    require(principal, "clients.manage")
    if not client_id:
        raise InvalidArgument.of("client_id", "is required")
    if await repo.get_client(uow.session, client_id) is None:
        raise NotFound(f"partner client {client_id} not found")
    key, prefix = new_api_key()
    created = await repo.add_api_key(uow.session, ApiKey(id=new_id(), client_id=client_id, prefix=prefix,
                                                         name=" ".join(name.split())[:200]), digest(key))
    uow.emit(ev.ApiKeyChanged(after=api_key_to_pb(created)), subject_id=str(created.id))
    await uow.commit()
    return created, key


async def list_api_keys(uow: UnitOfWork, principal: Principal, *, client_id: str, limit: int,
                        page_token: str) -> tuple[list[ApiKey], str]:
    require(principal, "clients.manage")
    return await repo.list_api_keys(uow.session, client_id=client_id, limit=page_size(limit), page_token=page_token)


async def revoke_api_key(uow: UnitOfWork, principal: Principal, key_id: uuid.UUID, now: dt.datetime) -> None:
    require(principal, "clients.manage")
    before = await repo.get_api_key(uow.session, key_id)
    if before is None:
        raise NotFound(f"API key {key_id} not found")
    if before.revoked_at is not None:
        return
    await repo.revoke_api_key(uow.session, key_id, now)
    after = dataclasses.replace(before, revoked_at=now)
    uow.emit(ev.ApiKeyChanged(before=api_key_to_pb(before), after=api_key_to_pb(after)), subject_id=str(key_id))
    await uow.commit()
