"""The keys access tokens are verified with: identity's JWKS, plus an optional static one.

Identity publishes its current and next signing keys through `GetJwks`. The gateway fetches them
at start (without failing when identity is not up yet: /readyz says so), again every
`refresh_seconds`, and at once when a token names a `kid` it does not know, at most once per
`min_refresh_seconds` so forged kids cannot hammer identity. Key rotation therefore needs no
gateway restart. `CRM_JWT_JWKS`, when set, adds keys that are always trusted (tests,
air-gapped setups, a development key); without an identity target they are the only keys.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import jwt

from crmkit.auth import Principal
from crmkit.auth.tokens import AccessTokenVerifier
from crmkit.errors import Unauthenticated, Unavailable

log = logging.getLogger(__name__)

Fetch = Callable[[], Awaitable[str]]


def _keys_of(jwks_json: str) -> list[dict[str, Any]]:
    keys = json.loads(jwks_json).get("keys", [])
    return [k for k in keys if isinstance(k, dict) and k.get("kid")]


class KeyRing:
    def __init__(self, static_jwks: str | None, *, issuer: str, audience: str, fetch: Fetch | None = None,
                 refresh_seconds: float = 300.0, min_refresh_seconds: float = 10.0,
                 max_lifetime_seconds: int | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self._static = _keys_of(static_jwks) if static_jwks else []
        self._fetched: list[dict[str, Any]] = []
        self._issuer, self._audience = issuer, audience
        self._max_lifetime = max_lifetime_seconds
        self._fetch = fetch
        self._refresh_seconds = refresh_seconds
        self._min_refresh = min_refresh_seconds
        self._clock = clock
        self._last_attempt = float("-inf")
        self._lock = asyncio.Lock()
        self.loaded = fetch is None  # whether identity's keys were fetched at least once
        self._verifier: AccessTokenVerifier | None = None
        self._kids: set[str] = set()
        self._rebuild()

    @property
    def jwks_json(self) -> str:
        return json.dumps({"keys": self._merged()})

    def _merged(self) -> list[dict[str, Any]]:
        seen: dict[str, dict[str, Any]] = {}
        for key in [*self._fetched, *self._static]:
            seen.setdefault(key["kid"], key)
        return list(seen.values())

    def _rebuild(self) -> None:
        keys = self._merged()
        self._kids = {k["kid"] for k in keys}
        self._verifier = (AccessTokenVerifier(json.dumps({"keys": keys}), issuer=self._issuer,
                                              audience=self._audience, max_lifetime_seconds=self._max_lifetime)
                          if keys else None)

    async def refresh(self) -> bool:
        """Fetches identity's JWKS now; False (and the old keys kept) when identity cannot answer."""
        if self._fetch is None:
            return True
        async with self._lock:
            self._last_attempt = self._clock()
            try:
                fetched = _keys_of(await self._fetch())
            except Exception as exc:
                log.warning("cannot fetch the JWKS from identity: %s", exc)
                return False
            if fetched:
                self._fetched = fetched
                self._rebuild()
                self.loaded = True
            return True

    async def run(self) -> None:
        """Refreshes periodically; every few seconds until the first success."""
        while True:
            ok = await self.refresh()
            await asyncio.sleep(self._refresh_seconds if ok and self.loaded else min(5.0, self._refresh_seconds))

    async def verify(self, token: str) -> Principal:
        try:
            kid = jwt.get_unverified_header(token).get("kid") or ""
        except jwt.PyJWTError as exc:
            raise Unauthenticated(f"invalid token: {exc}") from exc
        if kid not in self._kids and self._fetch is not None \
                and self._clock() - self._last_attempt >= self._min_refresh:
            await self.refresh()
        if self._verifier is None:
            raise Unavailable("the token signing keys are not known yet: the identity service is unreachable",
                              reason="UNAVAILABLE")
        return self._verifier.verify(token)
