"""Database access shared by every service: the async engine, sessions, and the unit of work
that commits a change together with the events it produces (the transactional outbox)."""

from __future__ import annotations

import datetime as dt
from types import TracebackType
from typing import Self

from google.protobuf.message import Message
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from crmkit import idempotency, metrics
from crmkit.events.envelope import build_headers, subject_of
from crmkit.ids import new_id
from crmkit.outbox.schema import OUTBOX_CHANNEL, OUTBOX_LOCK_KEY, outbox


# Pool sizing is per process; a service's replicas multiply it, so keep it modest.
def create_engine(url: str, *, pool_size: int = 10, service: str = "") -> AsyncEngine:
    """`service` labels crm_db_pool_connections_in_use, the pool's saturation."""
    engine = create_async_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True,
                                 pool_recycle=1800)
    in_use = metrics.DB_POOL_IN_USE.labels(service or "unnamed")
    event.listen(engine.sync_engine.pool, "checkout", lambda *_: in_use.inc())
    event.listen(engine.sync_engine.pool, "checkin", lambda *_: in_use.dec())
    return engine


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


class UnitOfWork:
    """One business transaction. Events emitted inside it are written to the outbox in the same
    database transaction, so a change and its events are committed together or not at all; under
    a forwarded Idempotency-Key so is the key (crmkit.idempotency), and a retry of a recorded key
    stops as the unit of work begins."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], source: str, actor: str = "") -> None:
        self._sessions = sessions
        self.source = source
        self.actor = actor
        self._pending: list[dict[str, object]] = []

    async def __aenter__(self) -> Self:
        self.session = self._sessions()
        await self.session.begin()
        try:
            await idempotency.check(self.session)
        except BaseException:
            await self.session.close()
            raise
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self.session.in_transaction():
            await self.session.rollback()
        await self.session.close()

    def emit(self, event: Message, *, subject_id: str = "") -> None:
        event_id = new_id()
        self._pending.append({
            "event_id": event_id,
            "subject": subject_of(event),
            "type": event.DESCRIPTOR.full_name,
            "payload": event.SerializeToString(),
            "headers": build_headers(event_id=str(event_id), event_type=event.DESCRIPTOR.full_name,
                                     source=self.source, actor=self.actor, subject_id=subject_id,
                                     time=dt.datetime.now(dt.UTC)),
        })

    async def commit(self) -> None:
        if self._pending:
            # The lock is taken just before commit and released by it, so outbox ids are assigned
            # in commit order and the relay, publishing by id, publishes in commit order.
            await self.session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": OUTBOX_LOCK_KEY})
            await self.session.execute(outbox.insert(), self._pending)
            await self.session.execute(text(f"NOTIFY {OUTBOX_CHANNEL}"))
            self._pending = []
        await idempotency.record(self.session, self._sessions)
        await self.session.commit()
