"""The event envelope: subject from the proto option, CloudEvents headers and trace context."""

from __future__ import annotations

import datetime as dt

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from crm.customers.v1 import customers_pb2, events_pb2
from crmkit.events.envelope import Event, build_headers, stream_of_service, subject_of
from crmkit.ids import new_id

WHEN = dt.datetime(2026, 3, 4, 5, 6, 7, 123456, tzinfo=dt.UTC)


def test_subject_of_message_and_class() -> None:
    assert subject_of(events_pb2.CustomerCreated) == "crm.customers.customer.created"
    assert subject_of(events_pb2.CustomerCreated()) == "crm.customers.customer.created"
    assert subject_of(events_pb2.ContactAdded) == "crm.customers.contact.added"


def test_subject_of_a_message_without_the_option() -> None:
    with pytest.raises(TypeError, match="event_subject"):
        subject_of(customers_pb2.GetCustomerRequest)


def test_stream_of_service() -> None:
    assert stream_of_service("customers") == "CRM_CUSTOMERS"


def _headers(**overrides: object) -> dict[str, str]:
    args: dict[str, object] = {"event_id": "0190c0de-0000-7000-8000-000000000001",
                               "event_type": "crm.customers.v1.CustomerCreated",
                               "source": "crm/customers", "actor": "u-alice", "subject_id": "c-1",
                               "time": WHEN}
    args.update(overrides)
    return build_headers(**args)  # type: ignore[arg-type]


def test_build_headers_carries_cloudevents_attributes() -> None:
    headers = _headers()
    assert headers["ce-specversion"] == "1.0"
    assert headers["ce-id"] == headers["Nats-Msg-Id"] == "0190c0de-0000-7000-8000-000000000001"
    assert headers["ce-type"] == "crm.customers.v1.CustomerCreated"
    assert headers["ce-source"] == "crm/customers"
    assert headers["ce-actor"] == "u-alice"
    assert headers["ce-subject"] == "c-1"
    assert headers["ce-time"] == "2026-03-04T05:06:07.123456Z"
    assert headers["content-type"] == "application/protobuf"
    assert all(isinstance(v, str) for v in headers.values())


def test_build_headers_omits_empty_optional_attributes() -> None:
    headers = _headers(actor="", subject_id="")
    assert "ce-actor" not in headers and "ce-subject" not in headers


def test_build_headers_without_a_span_has_no_traceparent(span_exporter: InMemorySpanExporter) -> None:
    assert "traceparent" not in _headers()


def test_build_headers_carries_traceparent_of_current_span(span_exporter: InMemorySpanExporter) -> None:
    with trace.get_tracer("test").start_as_current_span("produce") as span:
        headers = _headers()
        ctx = span.get_span_context()
    version, trace_id, span_id, flags = headers["traceparent"].split("-")
    assert (version, trace_id, span_id) == ("00", f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}")
    assert int(flags, 16) & 1  # sampled


def test_event_message_parses_its_own_type() -> None:
    created = events_pb2.CustomerCreated()
    event = Event(id=str(new_id()), subject="crm.customers.customer.created",
                  type=created.DESCRIPTOR.full_name, payload=created.SerializeToString(),
                  headers={"ce-actor": "u-alice"})
    assert event.message(events_pb2.CustomerCreated) == created
    assert event.actor == "u-alice"
    with pytest.raises(TypeError):
        event.message(events_pb2.CustomerUpdated)
    assert Event(id="x", subject="s", type="t", payload=b"", headers={}).actor == ""
