"""Revoked access tokens: an in-memory deny set fed by identity's `crm.identity.token.revoked`.

Access tokens are verified offline (signature, expiry), so a token revoked before it expires
must be refused by id. Each gateway replica follows the events with an *ordered consumer* on the
stream CRM_IDENTITY: ephemeral (nothing to clean up when a replica goes), replayed from "now
minus the longest access-token lifetime" at start (a token revoked earlier has expired anyway),
and recreated by the client from the last sequence if it sees a gap. The deny set forgets a
token id at its `expires_at`, so it holds at most the tokens revoked in one token lifetime.

Why not a KV bucket: identity would have to write a second copy of each revocation, and the
per-key expiry it needs is recent in NATS; the event is already published through identity's
outbox, in order, and replaying it is what a new replica needs.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from crm.identity.v1 import events_pb2
from crmkit.events.envelope import stream_of_service, subject_of

log = logging.getLogger(__name__)

SUBJECT = subject_of(events_pb2.TokenRevoked)
API_KEY_SUBJECT = subject_of(events_pb2.ApiKeyChanged)
STREAM = stream_of_service("identity")


class DenySet:
    """Token ids refused until they expire. Not thread-safe; used on one event loop."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._until: dict[str, float] = {}
        self._expiries: list[tuple[float, str]] = []
        self._clock = clock

    def add(self, token_id: str, expires_at: float) -> None:
        if not token_id or expires_at <= self._clock():
            return
        if self._until.get(token_id, 0.0) >= expires_at:
            return
        self._until[token_id] = expires_at
        heapq.heappush(self._expiries, (expires_at, token_id))

    def __contains__(self, token_id: object) -> bool:
        self.prune()
        return isinstance(token_id, str) and token_id in self._until

    def __len__(self) -> int:
        self.prune()
        return len(self._until)

    def prune(self) -> None:
        now = self._clock()
        while self._expiries and self._expiries[0][0] <= now:
            expires_at, token_id = heapq.heappop(self._expiries)
            if self._until.get(token_id) == expires_at:
                del self._until[token_id]


class RevocationFollower:
    """Keeps a DenySet current from the event stream; `ready` once subscribed."""

    def __init__(self, js: JetStreamContext, deny: DenySet, replay_seconds: int,
                 on_revoked: Callable[[str], None] | None = None,
                 on_api_key_revoked: Callable[[str], None] | None = None, retry_seconds: float = 2.0) -> None:
        self._js = js
        self._deny = deny
        self._replay = replay_seconds
        self._on_revoked = on_revoked
        self._on_api_key_revoked = on_api_key_revoked
        self._retry = retry_seconds
        self.ready = False
        self._subs: list[object] = []

    async def _handle_api_key(self, msg: object) -> None:
        try:
            event = events_pb2.ApiKeyChanged.FromString(msg.data)  # type: ignore[attr-defined]
        except Exception:
            log.warning("unreadable apikey.changed event ignored")
            return
        if event.after.HasField("revoke_time") and self._on_api_key_revoked is not None:
            self._on_api_key_revoked(event.after.client_id)

    async def _handle(self, msg: object) -> None:
        try:
            event = events_pb2.TokenRevoked.FromString(msg.data)  # type: ignore[attr-defined]
        except Exception:  # a malformed event must not stop the others
            log.warning("unreadable token.revoked event ignored")
            return
        self._deny.add(event.token_id, float(event.expires_at))
        if self._on_revoked is not None:
            self._on_revoked(event.token_id)

    async def run(self) -> None:
        """Subscribes, waiting for the stream while identity is not up yet."""
        while True:
            start = datetime.now(UTC) - timedelta(seconds=self._replay)
            try:
                if not self._subs:
                    self._subs.append(await self._js.subscribe(
                        SUBJECT, stream=STREAM, cb=self._handle, ordered_consumer=True,
                        config=ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_TIME, opt_start_time=start)))
                # Exchanges are cached for a minute at most: only revocations from now on matter.
                self._subs.append(await self._js.subscribe(
                    API_KEY_SUBJECT, stream=STREAM, cb=self._handle_api_key, ordered_consumer=True,
                    config=ConsumerConfig(deliver_policy=DeliverPolicy.NEW)))
                self.ready = True
                return
            except NotFoundError:
                log.info("stream %s not found yet; revocations follow once identity is up", STREAM)
            except Exception as exc:  # NATS not reachable right now: keep trying
                log.warning("cannot follow token revocations yet: %s", exc)
            await asyncio.sleep(self._retry)

    async def stop(self) -> None:
        for sub in self._subs:
            try:
                await sub.unsubscribe()  # type: ignore[attr-defined]
            except Exception:  # noqa: S110 - closing anyway
                pass
