"""The event envelope: CloudEvents attributes in NATS headers, a protobuf payload.

The subject comes from the message's `(crm.common.v1.event_subject)` option, so it is written in
proto/ once and nowhere else.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TypeVar

from google.protobuf.message import Message

from crm.common.v1 import options_pb2
from crmkit.telemetry import inject_context

M = TypeVar("M", bound=Message)


def subject_of(event: Message | type[Message]) -> str:
    subject = event.DESCRIPTOR.GetOptions().Extensions[options_pb2.event_subject]
    if not subject:
        raise TypeError(f"{event.DESCRIPTOR.full_name} has no (crm.common.v1.event_subject) option")
    return subject


def stream_of_service(service: str) -> str:
    """One stream per producing service: crm.<service>.> is stored in CRM_<SERVICE>."""
    return f"CRM_{service.upper()}"


def build_headers(*, event_id: str, event_type: str, source: str, actor: str, subject_id: str,
                  time: dt.datetime) -> dict[str, str]:
    headers = {
        "ce-specversion": "1.0",
        "ce-id": event_id,
        "ce-type": event_type,
        "ce-source": source,
        "ce-time": time.isoformat().replace("+00:00", "Z"),
        "content-type": "application/protobuf",
        "Nats-Msg-Id": event_id,
    }
    if actor:
        headers["ce-actor"] = actor
    if subject_id:
        headers["ce-subject"] = subject_id
    headers.update(inject_context())
    return headers


@dataclass(frozen=True)
class Event:
    """An event as a consumer receives it."""

    id: str
    subject: str
    type: str
    payload: bytes
    headers: dict[str, str]
    delivery: int = 1

    def message(self, cls: type[M]) -> M:
        if cls.DESCRIPTOR.full_name != self.type:
            raise TypeError(f"event {self.id} is a {self.type}, not a {cls.DESCRIPTOR.full_name}")
        msg = cls()
        msg.ParseFromString(self.payload)
        return msg

    @property
    def actor(self) -> str:
        return self.headers.get("ce-actor", "")
