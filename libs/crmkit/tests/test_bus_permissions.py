"""The bus is not open: a real nats-server with the generated `authorization` block.

Each service's user publishes its own events and consumes the streams it is declared to consume,
through the same crmkit code the services run (connection.connect, ensure_service_stream,
EventConsumer's consumer config); it is refused another service's subjects and streams, and an
anonymous connection is refused.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client as NATS
from nats.errors import Error as NatsError
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, KeyValueConfig
from pydantic import SecretStr

from crmkit.embedded import EmbeddedNats
from crmkit.events import connection
from crmkit.events.consumer import Subscription
from crmkit.events.permissions import DEV_ADMIN, SUITE, UndeclaredSubscription, check_subscriptions, nats_config
from crmkit.events.streams import ensure_service_stream
from crmkit.settings import CommonSettings
from crmkit.testing.servers import free_port

pytestmark = pytest.mark.integration

PASSWORDS = {user: f"pw-{user}" for user in (*SUITE, DEV_ADMIN)}


@pytest.fixture(scope="module")
def secured_nats() -> Iterator[EmbeddedNats]:
    folder = Path(tempfile.mkdtemp(prefix="crm-nats-", dir="/tmp"))
    server = EmbeddedNats(folder / "nats", free_port(), free_port(), extra_config=nats_config(PASSWORDS))
    server.start()
    yield server
    server.stop()
    shutil.rmtree(folder, ignore_errors=True)


class Violations:
    """What the server refused on a connection (it reports them asynchronously, as -ERR)."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    async def __call__(self, error: Exception) -> None:
        self.seen.append(str(error).lower())  # nats-py lower-cases the server's message

    def about(self, subject: str) -> bool:
        return any("permissions violation" in e and subject.lower() in e for e in self.seen)


@pytest.fixture
async def connect(secured_nats: EmbeddedNats) -> AsyncIterator:
    opened: list[NATS] = []

    async def open_as(user: str) -> tuple[NATS, Violations]:
        violations = Violations()
        settings = CommonSettings(nats_url=secured_nats.url, nats_user=user, nats_password=SecretStr(PASSWORDS[user]))
        nc = await connection.connect(settings, f"test-{user}")
        nc._error_cb = violations
        opened.append(nc)
        return nc, violations

    yield open_as
    for nc in opened:
        await nc.close()


def durable(stream: str, name: str) -> ConsumerConfig:
    """The configuration EventConsumer creates its durable with."""
    return ConsumerConfig(durable_name=name, ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.ALL)


async def test_anonymous_and_wrong_password_are_refused(secured_nats: EmbeddedNats) -> None:
    with pytest.raises(NatsError, match="Authorization Violation"):
        await nats.connect(secured_nats.url, allow_reconnect=False, connect_timeout=2)
    with pytest.raises(NatsError, match="Authorization Violation"):
        await nats.connect(secured_nats.url, user="customers", password="guess",
                           allow_reconnect=False, connect_timeout=2)


async def test_service_publishes_own_and_consumes_what_it_consumes(connect, eventually) -> None:
    contracts, _ = await connect("contracts")
    contracts_js = contracts.jetstream()
    await ensure_service_stream(contracts_js, "contracts", 1)
    ack = await contracts_js.publish("crm.contracts.contract.signed", b"signed", timeout=5)
    assert ack.stream == "CRM_CONTRACTS"

    customers, violations = await connect("customers")
    js = customers.jetstream()
    await ensure_service_stream(js, "customers", 1)
    assert (await js.publish("crm.customers.customer.created", b"c", timeout=5)).stream == "CRM_CUSTOMERS"

    await js.add_consumer("CRM_CONTRACTS", durable("CRM_CONTRACTS", "customers-contract-signed"))
    pull = await js.pull_subscribe_bind(durable="customers-contract-signed", stream="CRM_CONTRACTS")
    [msg] = await pull.fetch(1, timeout=5)
    assert msg.subject == "crm.contracts.contract.signed" and msg.data == b"signed"
    await msg.ack_sync(timeout=5)
    assert violations.seen == []


async def test_service_cannot_publish_another_services_subject(connect, eventually) -> None:
    billing, _ = await connect("billing")
    await ensure_service_stream(billing.jetstream(), "billing", 1)
    customers, violations = await connect("customers")
    with pytest.raises(NatsTimeout):
        await customers.jetstream().publish("crm.billing.invoice.issued", b"forged", timeout=1)
    await eventually(lambda: _true(violations.about("crm.billing.invoice.issued")))
    assert (await billing.jetstream().stream_info("CRM_BILLING")).state.messages == 0


async def test_service_cannot_read_a_stream_it_does_not_consume(connect, eventually) -> None:
    billing, _ = await connect("billing")
    billing_js = billing.jetstream()
    await ensure_service_stream(billing_js, "billing", 1)
    await billing_js.publish("crm.billing.payment.received", b"paid", timeout=5)

    sap, violations = await connect("sap")  # sap consumes customers and orders, not billing
    with pytest.raises(NatsTimeout):
        await sap.jetstream().add_consumer("CRM_BILLING", durable("CRM_BILLING", "sap-customers"), timeout=1)
    with pytest.raises(NatsTimeout):
        await sap.jetstream().get_last_msg("CRM_BILLING", "crm.billing.>")
    await sap.subscribe("crm.billing.>")  # a plain subscription to the subjects: refused as well
    await eventually(lambda: _true(violations.about("$JS.API.CONSUMER") and violations.about("crm.billing.>")))
    # nor may it take over another consumer's durable on a stream it does consume
    with pytest.raises(NatsTimeout):
        await sap.jetstream().consumer_info("CRM_CUSTOMERS", "notifications-customers", timeout=1)


async def test_replies_of_one_user_cannot_be_read_by_another(connect, eventually) -> None:
    orders, violations = await connect("orders")
    await orders.subscribe("_INBOX_billing.>")
    await orders.subscribe("_INBOX.>")
    await eventually(lambda: _true(violations.about("_INBOX_billing.>") and violations.about("_INBOX.>")))


async def test_gateway_keeps_its_keys_and_reports_denials_only(connect, eventually) -> None:
    identity, _ = await connect("identity")
    await ensure_service_stream(identity.jetstream(), "identity", 1)
    gateway, violations = await connect("gateway")
    js = gateway.jetstream()
    kv = await js.create_key_value(KeyValueConfig(bucket="crm_gateway_idempotency", history=1))
    await kv.create("k", b"v")
    assert (await kv.get("k")).value == b"v"
    await js.publish("crm.identity.access.denied", b"denied", timeout=5)
    with pytest.raises(NatsTimeout):
        await js.publish("crm.identity.user.created", b"forged", timeout=1)
    await eventually(lambda: _true(violations.about("crm.identity.user.created")))


def test_a_subscription_missing_from_the_declaration_stops_the_service() -> None:
    async def handler(uow, event) -> None:
        return None

    declared = Subscription(name="sap-orders", stream="CRM_ORDERS", subjects=["crm.orders.>"], handler=handler)
    check_subscriptions("sap", [declared])
    undeclared = Subscription(name="sap-billing", stream="CRM_BILLING", subjects=["crm.billing.>"], handler=handler)
    with pytest.raises(UndeclaredSubscription, match="CRM_BILLING/sap-billing"):
        check_subscriptions("sap", [declared, undeclared])


async def _true(value: bool) -> bool:
    return value


def _certificates(folder: Path) -> tuple[str, Path, Path]:
    """A CA (its PEM) and a server certificate for 127.0.0.1 signed by it (files)."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def name(common: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])

    now = dt.datetime.now(dt.UTC)
    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("crm test CA")).issuer_name(name("crm test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(minutes=1)).not_valid_after(now + dt.timedelta(hours=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    server = (x509.CertificateBuilder().subject_name(name("nats")).issuer_name(ca.subject)
              .public_key(server_key.public_key()).serial_number(x509.random_serial_number())
              .not_valid_before(now - dt.timedelta(minutes=1)).not_valid_after(now + dt.timedelta(hours=1))
              .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                             critical=False)
              .sign(ca_key, hashes.SHA256()))
    cert_file, key_file = folder / "server.pem", folder / "server.key"
    cert_file.write_bytes(server.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(server_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
    return ca.public_bytes(serialization.Encoding.PEM).decode(), cert_file, key_file


async def test_tls_with_the_configured_ca_only() -> None:
    """As on Kubernetes: `tls://` and the CA's PEM (CRM_NATS_CA_PEM) from the settings."""
    folder = Path(tempfile.mkdtemp(prefix="crm-nats-tls-", dir="/tmp"))
    ca_pem, cert_file, key_file = _certificates(folder)
    tls = f'tls {{\n  cert_file: "{cert_file}"\n  key_file: "{key_file}"\n}}\n'
    server = EmbeddedNats(folder / "nats", free_port(), free_port(), extra_config=tls + nats_config(PASSWORDS))
    server.start()
    try:
        url = server.url.replace("nats://", "tls://")
        settings = CommonSettings(nats_url=url, nats_user="orders", nats_password=SecretStr(PASSWORDS["orders"]),
                                  nats_ca_pem=SecretStr(ca_pem))
        nc = await connection.connect(settings, "test-tls")
        try:
            await ensure_service_stream(nc.jetstream(), "orders", 1)
            assert (await nc.jetstream().publish("crm.orders.order.submitted", b"o", timeout=5)).stream == "CRM_ORDERS"
        finally:
            await nc.close()
        # without the CA, the system's trust store does not know the server's certificate
        with pytest.raises(Exception, match=r"CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
            await nats.connect(url, user="orders", password=PASSWORDS["orders"], allow_reconnect=False,
                               connect_timeout=2, max_reconnect_attempts=0)
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)
