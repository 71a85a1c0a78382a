"""Publishes outbox rows to JetStream in commit order.

One relay per service database is active at a time (a session advisory lock elects it), so
ordering holds with any number of replicas. A publish that fails is retried, with backoff, before
anything after it is sent; JetStream drops a re-sent event by its Nats-Msg-Id. Published rows are
kept for the replay window, then purged.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging

import asyncpg
from nats.js import JetStreamContext
from tenacity import AsyncRetrying, retry_if_exception_type, wait_exponential

from crmkit import metrics
from crmkit.outbox.schema import OUTBOX_CHANNEL, RELAY_LEADER_KEY

log = logging.getLogger(__name__)

_PURGE_EVERY_SECONDS = 3600.0


def asyncpg_dsn(sqlalchemy_url: str) -> str:
    return sqlalchemy_url.replace("postgresql+asyncpg://", "postgresql://", 1)


class OutboxRelay:
    def __init__(self, database_url: str, js: JetStreamContext, service: str, *,
                 batch_size: int = 500, idle_poll_seconds: float = 1.0, retention_days: int = 7) -> None:
        self._dsn = asyncpg_dsn(database_url)
        self._js = js
        self._service = service
        self._batch = batch_size
        self._idle_poll = idle_poll_seconds
        self._retention = dt.timedelta(days=retention_days)
        self._wake = asyncio.Event()

    async def run(self) -> None:
        while True:
            try:
                await self._run_as_leader()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("outbox relay lost its database connection; reconnecting", extra={"error": str(exc)})
                await asyncio.sleep(1.0)

    async def _run_as_leader(self) -> None:
        conn = await asyncpg.connect(self._dsn)
        try:
            # Another replica may be relaying; poll for its lock.
            while not await conn.fetchval("SELECT pg_try_advisory_lock($1)", RELAY_LEADER_KEY):  # noqa: ASYNC110
                await asyncio.sleep(2.0)
            await conn.add_listener(OUTBOX_CHANNEL, lambda *_: self._wake.set())
            last_purge = -_PURGE_EVERY_SECONDS  # purge once on taking over, whatever the clock
            loop = asyncio.get_running_loop()
            while True:
                self._wake.clear()
                sent = await self._publish_batch(conn)
                if loop.time() - last_purge > _PURGE_EVERY_SECONDS:
                    await conn.execute("DELETE FROM outbox WHERE published_at < now() - $1::interval", self._retention)
                    last_purge = loop.time()
                if sent < self._batch:
                    try:
                        await asyncio.wait_for(self._wake.wait(), self._idle_poll)
                    except TimeoutError:
                        pass
        finally:
            await conn.close()

    async def _publish_batch(self, conn: asyncpg.Connection) -> int:
        rows = await conn.fetch(
            "SELECT id, subject, payload, headers FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT $1",
            self._batch)
        await self._report_backlog(conn)
        for row in rows:
            await self._publish(conn, row["subject"], row["payload"], _headers(row["headers"]))
            await conn.execute("UPDATE outbox SET published_at = now() WHERE id = $1", row["id"])
            metrics.OUTBOX_PUBLISHED.labels(self._service).inc()
        return len(rows)

    async def _publish(self, conn: asyncpg.Connection, subject: str, payload: bytes,
                       headers: dict[str, str]) -> None:
        def count_failure(state: object) -> None:
            metrics.OUTBOX_PUBLISH_FAILURES.labels(self._service).inc()
            log.warning("publish failed; retrying", extra={"subject": subject, "event_id": headers.get("ce-id")})

        async for attempt in AsyncRetrying(
            wait=wait_exponential(multiplier=0.1, max=30), retry=retry_if_exception_type(Exception),
            before_sleep=count_failure, reraise=True,
        ):
            if attempt.retry_state.attempt_number > 1:
                # While NATS is away the backlog grows: keep the gauges alerts watch current.
                await self._report_backlog(conn)
            with attempt:
                await self._js.publish(subject, payload, headers=headers, timeout=5.0)

    async def _report_backlog(self, conn: asyncpg.Connection) -> None:
        backlog, oldest = await conn.fetchrow(
            "SELECT count(*), coalesce(extract(epoch FROM now() - min(created_at)), 0) "
            "FROM outbox WHERE published_at IS NULL")
        metrics.OUTBOX_BACKLOG.labels(self._service).set(backlog)
        metrics.OUTBOX_OLDEST_PENDING.labels(self._service).set(float(oldest))


def _headers(value: object) -> dict[str, str]:
    # asyncpg returns jsonb as text unless a codec is registered
    return json.loads(value) if isinstance(value, str) else dict(value)  # type: ignore[arg-type]
