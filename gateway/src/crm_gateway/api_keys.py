"""`X-API-Key` for partner systems: the key is exchanged with identity (IssueToken, grant_type
api_key) for an access token, which is then treated like any bearer token.

The exchange is cached for `max_age_seconds` (at most 60) under the key's SHA-256, never the key
itself, and never beyond the token's own expiry. A cached exchange is dropped at once when its
access token is revoked (`crm.identity.token.revoked`), and every exchange of a partner client is
dropped when one of its keys is revoked (`crm.identity.apikey.changed` with a revoke time: the
event names the key's id and client, not the key). Should that event be missed (NATS down), a
revoked key keeps working for at most `max_age_seconds` on a replica that exchanged it just
before.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import jwt

Exchange = Callable[[str], Awaitable[str]]

MAX_AGE_LIMIT_SECONDS = 60.0


@dataclass(frozen=True)
class _Entry:
    access_token: str
    token_id: str
    client_id: str
    valid_until: float


class ApiKeyCache:
    def __init__(self, exchange: Exchange, max_age_seconds: float = 30.0, max_entries: int = 10_000,
                 clock: Callable[[], float] = time.time) -> None:
        self._exchange = exchange
        self._max_age = min(max_age_seconds, MAX_AGE_LIMIT_SECONDS)
        self._max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()

    async def access_token(self, api_key: str) -> str:
        slot = hashlib.sha256(api_key.encode()).hexdigest()
        now = self._clock()
        entry = self._entries.get(slot)
        if entry is not None and entry.valid_until > now:
            return entry.access_token
        token = await self._exchange(api_key)
        claims = jwt.decode(token, options={"verify_signature": False})
        valid_until = min(now + self._max_age, float(claims.get("exp", now)) - 5.0)
        if self._max_age > 0 and valid_until > now:
            self._entries[slot] = _Entry(token, str(claims.get("jti", "")), str(claims.get("sub", "")), valid_until)
            self._entries.move_to_end(slot)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)
        return token

    def forget_token(self, token_id: str) -> None:
        """Drops the exchange whose access token was revoked."""
        for slot in [s for s, e in self._entries.items() if e.token_id == token_id]:
            del self._entries[slot]

    def forget_client(self, client_id: str) -> None:
        """Drops every exchange of a partner client (one of its keys was revoked)."""
        for slot in [s for s, e in self._entries.items() if e.client_id == client_id]:
            del self._entries[slot]

    def __len__(self) -> int:
        return len(self._entries)
