"""A command runs once per `Idempotency-Key`, even when its caller dies between the service's
commit and keeping the answer.

The gateway forwards the key as gRPC metadata (`forwarding`): `crm-idempotency-key`, a hash of
the caller, method, path and key, and `crm-idempotency-fingerprint`, a hash of the body. The
service's interceptor runs the call under it (`run_once`). The first unit of work of the call
that commits records the key in the service's `idempotency_keys` table in the same transaction
as the command's effects; the interceptor then keeps the serialized response on that row. A
retry of a recorded key never reaches the handler's effects: the unit of work it opens finds the
key and the interceptor answers

- the kept response, identically (the gateway then replays it as the first answer);
- 422 `IDEMPOTENCY_KEY_REUSED` when the body differs;
- 409 `IDEMPOTENT_REQUEST_APPLIED` in the one window left: the service itself died between its
  commit and keeping the response (the effect happened once; the record is there to look up).

Two concurrent attempts with one key cannot both commit: the second waits on the first's row
and answers 409 `IDEMPOTENCY_KEY_IN_USE`. Keys are kept `RETENTION` (the gateway's are 24 h).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass

from google.protobuf import descriptor_pool, message_factory
from google.protobuf.message import Message
from sqlalchemy import Column, DateTime, LargeBinary, MetaData, Table, Text, delete, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crmkit.errors import Conflict, InvalidArgument

log = logging.getLogger(__name__)

KEY_METADATA = "crm-idempotency-key"
FINGERPRINT_METADATA = "crm-idempotency-fingerprint"
RETENTION = dt.timedelta(days=2)

metadata = MetaData()

idempotency_keys = Table(
    "idempotency_keys", metadata,
    Column("key", Text, primary_key=True),
    Column("method", Text, nullable=False),
    Column("fingerprint", Text, nullable=False),
    # The serialized gRPC response, kept right after the commit; NULL only if the service died
    # in between.
    Column("response", LargeBinary),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now(), index=True),
)


def create_table() -> None:
    """For each service's migration that adds the table."""
    from alembic import op

    metadata.create_all(op.get_bind())


def drop_table() -> None:
    from alembic import op

    metadata.drop_all(op.get_bind())


# ------------------------------------------------------------------------------ the caller's side

@dataclass
class _Forwarded:
    key: str
    fingerprint: str
    calls: int = 0


_forwarded: ContextVar[_Forwarded | None] = ContextVar("crm_idempotency_forwarded", default=None)


@contextlib.contextmanager
def forwarding(key: str, fingerprint: str) -> Iterator[None]:
    """Every gRPC call made inside carries the key (crmkit.grpc.client adds the metadata),
    numbered in call order: a request that makes several calls makes them again, in the same
    order, when it is retried, and each call is deduplicated on its own."""
    token = _forwarded.set(_Forwarded(key, fingerprint))
    try:
        yield
    finally:
        _forwarded.reset(token)


def forwarded_metadata() -> tuple[tuple[str, str], ...]:
    """The metadata of the next call inside `forwarding`; none outside."""
    forwarded = _forwarded.get()
    if forwarded is None:
        return ()
    forwarded.calls += 1
    return ((KEY_METADATA, f"{forwarded.key}.{forwarded.calls}"), (FINGERPRINT_METADATA, forwarded.fingerprint))


# ------------------------------------------------------------------------------ the service's side


@dataclass
class Attempt:
    key: str
    method: str
    fingerprint: str
    # Where the key was recorded, once a unit of work of this call committed it.
    recorded_in: async_sessionmaker[AsyncSession] | None = None


class AlreadyApplied(Exception):
    """Not an error: tells run_once that the key is recorded (raised where a unit of work begins)."""

    def __init__(self, method: str, fingerprint: str, response: bytes | None) -> None:
        super().__init__("idempotency key already recorded")
        self.method = method
        self.fingerprint = fingerprint
        self.response = response


_attempt: ContextVar[Attempt | None] = ContextVar("crm_idempotency_attempt", default=None)


async def run_once(method: str, invocation_metadata: object, call: Callable[[], Awaitable[Message]]) -> Message:
    """Runs `call` (the handler) at most once per forwarded key; see the module's docstring."""
    sent = dict(invocation_metadata or ())  # type: ignore[call-overload]
    key, fingerprint = sent.get(KEY_METADATA), sent.get(FINGERPRINT_METADATA)
    if not key or fingerprint is None:
        return await call()
    attempt = Attempt(key=str(key), method=method, fingerprint=str(fingerprint))
    token = _attempt.set(attempt)
    try:
        response = await call()
    except AlreadyApplied as applied:
        return _replay(attempt, applied)
    finally:
        _attempt.reset(token)
    if attempt.recorded_in is not None:
        # Shielded: the caller going away now must not leave a committed key without its answer.
        await asyncio.shield(_keep_response(attempt.recorded_in, attempt.key, response.SerializeToString()))
    return response


async def check(session: AsyncSession) -> None:
    """Called as a unit of work begins: a retry of a recorded key stops here, before any effect."""
    attempt = _attempt.get()
    if attempt is None or attempt.recorded_in is not None:
        return
    row = (await session.execute(select(idempotency_keys.c.method, idempotency_keys.c.fingerprint,
                                        idempotency_keys.c.response)
                                 .where(idempotency_keys.c.key == attempt.key))).first()
    if row is not None:
        raise AlreadyApplied(row.method, row.fingerprint, row.response)


async def record(session: AsyncSession, sessions: async_sessionmaker[AsyncSession]) -> None:
    """Called in a unit of work's commit: the key is committed with the effects, or not at all."""
    attempt = _attempt.get()
    if attempt is None or attempt.recorded_in is not None:
        return
    inserted = await session.execute(
        insert(idempotency_keys).values(key=attempt.key, method=attempt.method, fingerprint=attempt.fingerprint)
        .on_conflict_do_nothing().returning(idempotency_keys.c.key))
    if inserted.first() is None:  # a concurrent attempt with the key committed first
        raise Conflict("a request with this Idempotency-Key is being processed; retry shortly",
                       reason="IDEMPOTENCY_KEY_IN_USE")
    attempt.recorded_in = sessions


async def _keep_response(sessions: async_sessionmaker[AsyncSession], key: str, response: bytes) -> None:
    async with sessions() as session, session.begin():
        await session.execute(update(idempotency_keys).where(idempotency_keys.c.key == key)
                              .values(response=response))


def _replay(attempt: Attempt, applied: AlreadyApplied) -> Message:
    if (applied.method, applied.fingerprint) != (attempt.method, attempt.fingerprint):
        raise InvalidArgument("this Idempotency-Key was used with a different request body; "
                              "use a new key for a different request", reason="IDEMPOTENCY_KEY_REUSED")
    if applied.response is None:
        raise Conflict("this request was already applied, but its answer was not kept; look the record up "
                       "instead of retrying", reason="IDEMPOTENT_REQUEST_APPLIED")
    return response_type(attempt.method).FromString(applied.response)


def response_type(method: str) -> type[Message]:
    """The response message class of "/pkg.Service/Method"."""
    descriptor = descriptor_pool.Default().FindMethodByName(method.strip("/").replace("/", "."))
    return message_factory.GetMessageClass(descriptor.output_type)


async def forget_expired(sessions: async_sessionmaker[AsyncSession]) -> int:
    """Drops keys older than RETENTION; returns how many."""
    async with sessions() as session, session.begin():
        result = await session.execute(delete(idempotency_keys)
                                       .where(idempotency_keys.c.created_at < func.now() - RETENTION))
    return result.rowcount or 0
