"""Building CRM events and delivering them through real NATS to the SAP service's handlers."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import nats
from google.protobuf.message import Message

from crm.common.v1 import money_pb2
from crm.customers.v1 import customers_pb2
from crm.customers.v1 import events_pb2 as customer_events
from crm.orders.v1 import events_pb2 as order_events
from crm_sap.main import subscriptions
from crmkit.auth import DataScope, Principal
from crmkit.events.consumer import EventConsumer, Subscription
from crmkit.events.envelope import Event, build_headers, subject_of
from crmkit.events.streams import ensure_stream
from crmkit.ids import new_id


def customer(cid: uuid.UUID, name: str, *, version: int = 1, city: str = "Suzhou") -> customers_pb2.Customer:
    return customers_pb2.Customer(id=str(cid), name=name, version=version, addresses=[customers_pb2.Address(
        kind=customers_pb2.ADDRESS_KIND_REGISTERED, line="88 Xinghu Street", city=city, province="Jiangsu",
        country="CN", postal_code="215000")])


def created(c: customers_pb2.Customer) -> customer_events.CustomerCreated:
    return customer_events.CustomerCreated(customer=c)


def updated(before: customers_pb2.Customer, after: customers_pb2.Customer) -> customer_events.CustomerUpdated:
    return customer_events.CustomerUpdated(before=before, after=after, changed_fields=["name"])


def order(oid: uuid.UUID, cid: uuid.UUID, lines: list[tuple[str, str, str]], number: str = "SO-2026-000001"
          ) -> order_events.OrderSnapshot:
    """lines: (product, quantity, unit price)."""
    return order_events.OrderSnapshot(
        order_id=str(oid), order_number=number, customer_id=str(cid), status="submitted",
        amount=money_pb2.Money(amount="0", currency="CNY"), requested_delivery_date="2026-12-15",
        lines=[order_events.OrderLine(line_id=str(uuid.uuid5(oid, str(n))), line_number=n, product=p,
                                      specification=f"{p} spec", quantity=q, unit="EA",
                                      unit_price=money_pb2.Money(amount=price, currency="CNY"))
               for n, (p, q, price) in enumerate(lines, start=1)])


def line_id(oid: uuid.UUID, n: int) -> str:
    return str(uuid.uuid5(oid, str(n)))


class Bus:
    """Publishes events to the producers' streams and runs the SAP service's real consumers on them."""

    def __init__(self, nats_url: str, sessions: Any) -> None:
        self._url = nats_url
        self._sessions = sessions
        self._suffix = uuid.uuid4().hex[:8]

    async def __aenter__(self) -> Bus:
        self.nc = await nats.connect(self._url)
        self.js = self.nc.jetstream()
        for stream, subject in (("CRM_CUSTOMERS", "crm.customers.>"), ("CRM_ORDERS", "crm.orders.>")):
            await ensure_stream(self.js, stream, [subject], 1)
            await self.js.purge_stream(stream)
        self.consumers = []
        for sub in subscriptions():
            consumer = EventConsumer(Subscription(f"{sub.name}-{self._suffix}", sub.stream, sub.subjects, sub.handler),
                                     self.js, self._sessions, source="crm/sap")
            self.consumers.append((consumer, await consumer._subscribe()))
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.nc.close()

    async def publish(self, *events: Message) -> None:
        for event in events:
            event_id = str(new_id())
            headers = build_headers(event_id=event_id, event_type=event.DESCRIPTOR.full_name, source="crm/test",
                                    actor="user:li.wei", subject_id="", time=dt.datetime.now(dt.UTC))
            await self.js.publish(subject_of(event), event.SerializeToString(), headers=headers)

    async def drain(self) -> int:
        """Handles everything published so far; returns how many events were handled."""
        handled = 0
        for consumer, pull in self.consumers:
            while True:
                try:
                    messages = await pull.fetch(50, timeout=0.5)
                except (TimeoutError, nats.errors.TimeoutError):
                    break
                for msg in messages:
                    await consumer._apply(Event(  # as EventConsumer.handle, but errors surface in the test
                        id=msg.headers["ce-id"], subject=msg.subject, type=msg.headers["ce-type"], payload=msg.data,
                        headers=dict(msg.headers)))
                    await msg.ack()
                    handled += 1
        return handled


OPERATOR = Principal(subject="user:ma.lin", name="Ma Lin", roles=("operator",), data_scope=DataScope.ALL,
                     permissions=("integrations.read", "integrations.manage", "org.read"))


async def drain_outbound(outbound: Any, clock: Any, passes: int = 10) -> None:
    """Runs passes (moving the clock past any backoff) until nothing is left to do."""
    for _ in range(passes):
        clock.advance(hours=1)
        result = await outbound.run_pass()
        if result.applied == result.failed == result.waiting == result.parked == 0:
            return
    raise AssertionError("the outbound queue did not drain")
