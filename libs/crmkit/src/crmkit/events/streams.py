"""Stream definitions. Each producing service owns one stream; every NATS the suite runs has
`sync_interval: always`, and production streams have 3 replicas (ARCHITECTURE: durability)."""

from __future__ import annotations

from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig
from nats.js.errors import NotFoundError

from crmkit.events.envelope import stream_of_service

DEAD_LETTER_STREAM = "CRM_DEADLETTER"
DEAD_LETTER_PREFIX = "crm.deadletter"
# Window in which JetStream drops a second publish with the same Nats-Msg-Id.
DUPLICATE_WINDOW_SECONDS = 120.0
RETENTION_SECONDS = 30 * 24 * 3600


async def ensure_stream(js: JetStreamContext, name: str, subjects: list[str], replicas: int) -> None:
    config = StreamConfig(
        name=name, subjects=subjects, storage=StorageType.FILE, retention=RetentionPolicy.LIMITS,
        discard=DiscardPolicy.OLD, num_replicas=replicas, duplicate_window=DUPLICATE_WINDOW_SECONDS,
        max_age=RETENTION_SECONDS,
    )
    try:
        await js.stream_info(name)
    except NotFoundError:
        await js.add_stream(config)
    else:
        await js.update_stream(config)


async def ensure_service_stream(js: JetStreamContext, service: str, replicas: int) -> str:
    name = stream_of_service(service)
    await ensure_stream(js, name, [f"crm.{service}.>"], replicas)
    return name


async def ensure_dead_letter_stream(js: JetStreamContext, replicas: int) -> None:
    await ensure_stream(js, DEAD_LETTER_STREAM, [f"{DEAD_LETTER_PREFIX}.>"], replicas)
