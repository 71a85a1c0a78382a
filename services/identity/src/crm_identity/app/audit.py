"""R-SEC-03: the audit trail. Every event of every service (and every access the gateway denied)
becomes one append-only, hash-chained entry; verification walks the chain batch by batch."""

from __future__ import annotations

import base64
import datetime as dt
import importlib
import logging
import pkgutil
from dataclasses import dataclass
from typing import Any, Protocol

from google.protobuf import descriptor_pool, json_format, message_factory
from google.protobuf.message import Message

import crm
from crm_identity.adapters import repository as repo
from crm_identity.app.org import require
from crm_identity.domain.audit import ChainCheck
from crm_identity.domain.model import AuditEntry
from crmkit.auth import Principal
from crmkit.db import UnitOfWork
from crmkit.events.envelope import Event
from crmkit.pagination import page_size

log = logging.getLogger(__name__)

ACCESS_DENIED_TYPE = "crm.identity.v1.AccessDenied"


def load_event_types() -> None:
    """Imports every generated `crm.*.v1.*_pb2` module so the default pool knows each event type."""
    for module in pkgutil.walk_packages(crm.__path__, "crm."):
        if module.name.endswith("_pb2"):
            importlib.import_module(module.name)


load_event_types()


def _message_class(full_name: str) -> type[Message] | None:
    try:
        return message_factory.GetMessageClass(descriptor_pool.Default().FindMessageTypeByName(full_name))
    except KeyError:
        return None


def _to_dict(message: Message) -> dict[str, Any]:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def decode(event_type: str, payload: bytes) -> tuple[Message | None, dict[str, Any] | None, dict[str, Any] | None]:
    """(message, before, after) of an event's payload, whatever service defined it."""
    cls = _message_class(event_type)
    if cls is None:
        return None, None, {"undecoded_type": event_type, "payload_base64": base64.b64encode(payload).decode()}
    message = cls.FromString(payload)
    fields = message.DESCRIPTOR.fields_by_name
    if "before" in fields and "after" in fields:
        before = _to_dict(message.before) if message.HasField("before") else None  # type: ignore[attr-defined]
        after = _to_dict(message.after) if message.HasField("after") else None  # type: ignore[attr-defined]
        return message, before, after
    return message, None, _to_dict(message)


def _time(value: str) -> dt.datetime:
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        return dt.datetime.now(dt.UTC)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


async def record_event(uow: UnitOfWork, event: Event) -> None:
    """The handler of every audit subscription."""
    parts = event.subject.split(".")
    service = parts[1] if len(parts) > 1 else ""
    entity = parts[2] if len(parts) > 2 else ""
    action = ".".join(parts[3:]) or "event"
    message, before, after = decode(event.type, event.payload)
    entity_id = event.headers.get("ce-subject", "")
    actor = event.actor
    if event.type == ACCESS_DENIED_TYPE and message is not None:
        source = event.headers.get("ce-source", "")
        service = source.rsplit("/", 1)[-1] or "gateway"
        entity, action = "access", "access_denied"
        entity_id = entity_id or message.path or message.method  # type: ignore[attr-defined]
        actor = message.actor or actor  # type: ignore[attr-defined]
    await repo.append_audit_entry(
        uow.session, occurred_at=_time(event.headers.get("ce-time", "")), service=service, entity=entity,
        entity_id=entity_id, action=action, actor=actor, before=before, after=after,
        event_id=event.id or event.headers.get("Nats-Msg-Id", ""))


async def list_entries(uow: UnitOfWork, principal: Principal, *, entity: str, entity_id: str, actor: str,
                       from_time: dt.datetime | None, to_time: dt.datetime | None, limit: int,
                       page_token: str) -> tuple[list[AuditEntry], str]:
    require(principal, "audit.read")
    return await repo.list_audit_entries(uow.session, entity=entity, entity_id=entity_id, actor=actor,
                                         from_time=from_time, to_time=to_time, limit=page_size(limit),
                                         page_token=page_token)


@dataclass(frozen=True)
class Verification:
    intact: bool
    checked: int
    first_broken: int
    problem: str


class Anchors(Protocol):
    """Where the chain's head is recorded outside the database (adapters.anchors)."""

    async def latest(self) -> tuple[int, str] | None: ...

    async def record(self, sequence: int, hash_: str) -> None: ...


async def anchor(uow: UnitOfWork, anchors: Anchors) -> tuple[int, str] | None:
    """Records the chain's current head outside the database, when it moved."""
    head = await repo.chain_head(uow.session)
    if head is not None and head != await anchors.latest():
        await anchors.record(*head)
    return head


async def verify(uow: UnitOfWork, principal: Principal, anchors: Anchors | None = None,
                 batch: int = 1000) -> Verification:
    require(principal, "audit.read")
    check = ChainCheck(anchor=await anchors.latest() if anchors is not None else None)
    async for links in repo.chain_batches(uow.session, batch):
        if not check.feed(links):
            break
    check.finish()
    if not check.intact:
        log.error("audit trail broken", extra={"sequence": check.first_broken, "problem": check.problem})
    return Verification(check.intact, check.checked, check.first_broken, check.problem)
