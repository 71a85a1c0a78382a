"""Finance visibility from contract.signed (R-SEC-02, R-CUS-11) and sensitive fields encrypted at
rest and masked (R-SEC-04): against a real PostgreSQL and, for the consumer, a real NATS stream."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from types import SimpleNamespace
from typing import Any

import nats
import pytest
from nats.js.errors import NotFoundError
from sqlalchemy import insert, text

from crm.common.v1 import money_pb2
from crm.contracts.v1 import events_pb2 as contracts_ev
from crm.customers.v1 import events_pb2 as ev
from crm_customers import main
from crm_customers.adapters import sensitive
from crm_customers.adapters.reencrypt import reencrypt
from crm_customers.adapters.tables import contacts as contacts_table
from crm_customers.adapters.tables import customers as customers_table
from crm_customers.app import use_cases as uc
from crm_customers.domain.model import BankAccount, Customer, LifecycleStage
from crm_customers.settings import CustomersSettings
from crmkit.crypto import FieldCipher
from crmkit.errors import AlreadyExists, NotFound, PermissionDenied
from crmkit.events.consumer import EventConsumer, Subscription
from crmkit.events.envelope import Event, build_headers
from crmkit.events.streams import ensure_dead_letter_stream, ensure_stream
from crmkit.testing.principals import ADMIN, EAST_REP, FINANCE, WEST_REP

pytestmark = pytest.mark.integration

ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def uscc(n: int) -> str:
    prefix = f"913502{n:011d}"
    total = sum(ALPHABET.index(c) * w for c, w in zip(prefix, WEIGHTS, strict=True))
    return prefix + ALPHABET[(31 - total % 31) % 31]


TAX = uscc(7)
PHONE = "+8613800138000"
ACCOUNT = "6222021234567890123"


def _key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


K1, K2, INDEX_KEY = _key(), _key(), _key()


@pytest.fixture
def key_ring() -> Iterator[Callable[[str], FieldCipher]]:
    """`key_ring("k2:...,k1:...")` makes that ring the service's; the index key stays the same."""
    previous = sensitive.cipher()

    def use(keys: str) -> FieldCipher:
        ring = FieldCipher.from_config(keys, INDEX_KEY)
        sensitive.configure(ring)
        return ring

    use(f"k1:{K1}")
    yield use
    sensitive.configure(previous)


async def _raw(sessions: Any, query: str, **params: Any) -> list[Any]:
    async with sessions() as s:
        return list((await s.execute(text(query), params)).all())


async def new_customer(call: Any, principal: Any = EAST_REP, **fields: Any) -> Customer:
    return await call(principal, uc.create_customer, {"name": "Acme", **fields})


def signed_event(customer_id: uuid.UUID | str, *, event_id: str | None = None) -> Event:
    message = contracts_ev.ContractSigned(
        contract_id=str(uuid.uuid4()), contract_number="CON-2026-000123", customer_id=str(customer_id),
        amount=money_pb2.Money(amount="120000.00", currency="CNY"), owner_id="rep-east")
    message.sign_time.FromDatetime(dt.datetime.now(dt.UTC))
    event_id = event_id or str(uuid.uuid4())
    headers = build_headers(event_id=event_id, event_type=message.DESCRIPTOR.full_name, source="crm/contracts",
                            actor="rep-east", subject_id=message.contract_id, time=dt.datetime.now(dt.UTC))
    return Event(id=event_id, subject=uc.CONTRACT_SIGNED_SUBJECT, type=message.DESCRIPTOR.full_name,
                 payload=message.SerializeToString(), headers=headers)


async def sign(uow: Any, customer_id: uuid.UUID | str) -> None:
    """The handler called directly, in its own unit of work, as the consumer does (minus the log)."""
    async with uow("rep-east") as u:
        await uc.on_contract_signed(u, signed_event(customer_id))
        await u.commit()


# Finance visibility (R-SEC-02) ----------------------------------------------------------------

async def test_finance_sees_exactly_the_signed_customers(call, uow) -> None:
    signed = await new_customer(call, name="Signed Co", tags=("vip",))
    unsigned = await new_customer(call, WEST_REP, name="Unsigned Co", tags=("vip", "export"))
    await call(EAST_REP, uc.add_contact, signed.id, {"name": "Liu", "phones": (PHONE,)})
    await call(WEST_REP, uc.add_contact, unsigned.id, {"name": "Wu"})
    await sign(uow, signed.id)

    got = await call(FINANCE, uc.get_customer, signed.id)
    assert got.has_signed_contract and got.lifecycle_stage == LifecycleStage.CUSTOMER
    with pytest.raises(NotFound):
        await call(FINANCE, uc.get_customer, unsigned.id)
    listed, _ = await call(FINANCE, uc.list_customers, page_token="", limit=50, order_by="")
    assert [c.id for c in listed] == [signed.id]
    assert await call(FINANCE, uc.list_tags) == [("vip", 1)]
    assert [c.name for c in await call(FINANCE, uc.list_contacts, signed.id)] == ["Liu"]
    with pytest.raises(NotFound):
        await call(FINANCE, uc.list_contacts, unsigned.id)
    # everyone else's view is unchanged by the flag
    assert {c.id for c in (await call(ADMIN, uc.list_customers, page_token="", limit=50, order_by=""))[0]} == {
        signed.id, unsigned.id}


async def test_finance_cannot_create_or_reassign(call) -> None:
    with pytest.raises(PermissionDenied):
        await new_customer(call, FINANCE)


# contract.signed ---------------------------------------------------------------------------------

async def test_signed_contract_makes_a_prospect_a_customer_and_emits_one_update(call, uow, outbox) -> None:
    c = await new_customer(call, tax_id=TAX)
    await sign(uow, c.id)
    after = await call(ADMIN, uc.get_customer, c.id)
    assert (after.has_signed_contract, after.lifecycle_stage, after.version) == (True, LifecycleStage.CUSTOMER, 2)
    rows = await outbox()
    assert [r.type for r in rows] == ["crm.customers.v1.CustomerCreated", "crm.customers.v1.CustomerUpdated"]
    update = rows[1].message()
    assert isinstance(update, ev.CustomerUpdated)
    # R-CUS-06: the first signed contract also gives the customer a tier.
    assert list(update.changed_fields) == ["has_signed_contract", "lifecycle_stage", "tier"]
    assert (update.before.has_signed_contract, update.after.has_signed_contract) == (False, True)
    assert update.after.version == 2 and rows[1].headers["ce-subject"] == str(c.id)

    # a second contract of the same customer changes nothing and says nothing
    await sign(uow, c.id)
    assert (await call(ADMIN, uc.get_customer, c.id)).version == 2
    assert len(await outbox()) == 2


@pytest.mark.parametrize(("stage", "expected"), [
    (LifecycleStage.LEAD, LifecycleStage.CUSTOMER),
    (LifecycleStage.PROSPECT, LifecycleStage.CUSTOMER),
    (LifecycleStage.CUSTOMER, LifecycleStage.CUSTOMER),
    (LifecycleStage.CHURNED, LifecycleStage.CHURNED),
])
async def test_lifecycle_after_signing(call, uow, outbox, stage, expected) -> None:
    c = await new_customer(call, lifecycle_stage=stage)
    await sign(uow, c.id)
    after = await call(ADMIN, uc.get_customer, c.id)
    assert after.lifecycle_stage == expected and after.has_signed_contract
    assert list((await outbox())[-1].message().changed_fields) == (
        ["has_signed_contract", "lifecycle_stage", "tier"] if expected != stage else ["has_signed_contract", "tier"])


@pytest.mark.parametrize("customer_id", [uuid.uuid4(), "not-a-uuid", ""])
async def test_signed_for_an_unknown_customer_is_ignored(uow, outbox, counts, customer_id) -> None:
    before = await counts()
    await sign(uow, customer_id)
    assert await counts() == before and await outbox() == []


async def test_signed_for_a_deleted_customer_is_ignored(call, uow, outbox) -> None:
    c = await new_customer(call)
    await call(EAST_REP, uc.delete_customer, c.id, 0)
    await sign(uow, c.id)
    assert len(await outbox()) == 2  # created, deleted


@pytest.fixture
async def contracts_js(nats_server: Any) -> AsyncIterator[Any]:
    nc = await nats.connect(nats_server.url, name="customers-tests")
    js = nc.jetstream()
    try:
        await js.delete_stream("CRM_CONTRACTS")
    except NotFoundError:
        pass
    await ensure_stream(js, "CRM_CONTRACTS", ["crm.contracts.>"], 1)
    await ensure_dead_letter_stream(js, 1)
    yield js
    await js.delete_stream("CRM_CONTRACTS")
    await nc.close()


def _wired_subscription() -> Subscription:
    settings = CustomersSettings(database_url="postgresql+asyncpg://unused/db", principal_public_key="unused",
                                 field_keys=f"k1:{K1}", field_index_key=INDEX_KEY)
    runtime = SimpleNamespace(settings=settings, sessions=None, subscriptions=[],
                              grpc=SimpleNamespace(add=lambda *args: None))
    main.wire(runtime)  # type: ignore[arg-type]
    assert sensitive.cipher().active == "k1"  # the service's key ring comes from its settings
    [subscription] = [s for s in runtime.subscriptions if s.name == "customers-contract-signed"]
    return subscription


async def _eventually(check: Callable[[], Awaitable[bool]], timeout: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


async def test_consumer_from_nats_is_idempotent_on_redelivery(call, sessions, outbox, contracts_js,
                                                               key_ring) -> None:
    subscription = _wired_subscription()
    assert (subscription.stream, subscription.subjects) == ("CRM_CONTRACTS", ["crm.contracts.contract.signed"])
    c = await new_customer(call)
    event = signed_event(c.id)
    unknown = signed_event(uuid.uuid4())
    # the same event twice (a producer's retry after the duplicate window), and one for nobody
    for headers, payload in ((event.headers | {"Nats-Msg-Id": "copy-1"}, event.payload),
                             (event.headers | {"Nats-Msg-Id": "copy-2"}, event.payload),
                             (unknown.headers, unknown.payload)):
        await contracts_js.publish(uc.CONTRACT_SIGNED_SUBJECT, payload, headers=headers)

    name = f"customers-contract-signed-{uuid.uuid4().hex[:6]}"
    consumer = EventConsumer(Subscription(name, subscription.stream, subscription.subjects, subscription.handler),
                             contracts_js, sessions, source="crm/customers", max_deliver=2)
    task = asyncio.create_task(consumer.run())
    try:
        async def settled() -> bool:
            try:
                info = await contracts_js.consumer_info("CRM_CONTRACTS", name)
            except NotFoundError:  # the consumer task has not created it yet
                return False
            return info.num_pending == 0 and info.num_ack_pending == 0 and info.delivered.stream_seq == 3
        await _eventually(settled)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    after = await call(ADMIN, uc.get_customer, c.id)
    assert (after.version, after.lifecycle_stage, after.has_signed_contract) == (2, LifecycleStage.CUSTOMER, True)
    assert [r.type for r in await outbox()] == ["crm.customers.v1.CustomerCreated", "crm.customers.v1.CustomerUpdated"]
    # both events recorded (the unknown customer's too: it is not retried), the duplicate once
    processed = await _raw(sessions, "SELECT event_id FROM processed_events WHERE consumer = :c", c=name)
    assert sorted(str(r.event_id) for r in processed) == sorted([event.id, unknown.id])


# Encryption at rest (R-SEC-04) -----------------------------------------------------------------

async def _create_sensitive(call: Any) -> tuple[Customer, Any]:
    c = await new_customer(call, tax_id=TAX, bank_accounts=(
        BankAccount(bank_name="ICBC Fuzhou", account_name="Acme Ltd", account_number="6222 0212 3456 7890 123"),))
    contact = await call(EAST_REP, uc.add_contact, c.id, {"name": "Liu", "phones": ("138 0013 8000",)})
    return c, contact


async def test_sensitive_values_are_sealed_in_the_database(call, sessions, key_ring) -> None:
    ring = key_ring(f"k1:{K1}")
    c, contact = await _create_sensitive(call)
    assert c.tax_id == TAX and c.bank_accounts[0].account_number == ACCOUNT and contact.phones == (PHONE,)

    [row] = await _raw(sessions, "SELECT tax_id, tax_id_index, bank_accounts FROM customers WHERE id = :i", i=c.id)
    assert row.tax_id.startswith("enc:k1:") and TAX not in row.tax_id
    assert ring.decrypt(row.tax_id, sensitive.TAX_ID) == TAX
    assert row.tax_id_index == ring.blind_index(TAX, sensitive.TAX_ID)
    [account] = row.bank_accounts
    assert account["bank_name"] == "ICBC Fuzhou" and account["account_number"].startswith("enc:k1:")
    assert ring.decrypt(account["account_number"], sensitive.ACCOUNT_NUMBER) == ACCOUNT
    [phones] = await _raw(sessions, "SELECT phones FROM contacts WHERE id = :i", i=contact.id)
    assert phones.phones[0].startswith("enc:k1:") and ring.decrypt(phones.phones[0], sensitive.PHONE) == PHONE
    # a value moved into another column does not open (the field is bound into the ciphertext)
    with pytest.raises(ValueError):
        ring.decrypt(row.tax_id, sensitive.PHONE)
    dump = " ".join(str(r) for r in await _raw(sessions, "SELECT * FROM customers")) + " ".join(
        str(r) for r in await _raw(sessions, "SELECT * FROM contacts"))
    assert TAX not in dump and ACCOUNT not in dump and "13800138000" not in dump


async def test_rotation_old_key_readable_and_reencrypt_moves_everything_to_the_active_key(
        call, sessions, key_ring) -> None:
    key_ring(f"k1:{K1}")
    c, contact = await _create_sensitive(call)
    ring = key_ring(f"k2:{K2},k1:{K1}")  # k2 active, k1 still opens old values
    assert (await call(EAST_REP, uc.get_customer, c.id)) == c
    assert (await call(EAST_REP, uc.list_contacts, c.id)) == [contact]

    dry = await reencrypt(sessions, dry_run=True)
    assert (dry.customers_rewritten, dry.contacts_rewritten) == (1, 1)
    report = await reencrypt(sessions, batch_size=1)
    assert (report.customers_scanned, report.customers_rewritten, report.contacts_rewritten) == (1, 1, 1)
    [row] = await _raw(sessions, "SELECT tax_id, bank_accounts, version, updated_at FROM customers")
    [prow] = await _raw(sessions, "SELECT phones FROM contacts")
    assert row.tax_id.startswith("enc:k2:") and row.bank_accounts[0]["account_number"].startswith("enc:k2:")
    assert prow.phones[0].startswith("enc:k2:")
    assert row.version == c.version and row.updated_at == c.updated_at  # not a business change
    assert not any(ring.needs_rotation(v) for v in (row.tax_id, prow.phones[0]))

    again = await reencrypt(sessions)  # idempotent: nothing left to do
    assert (again.customers_rewritten, again.contacts_rewritten) == (0, 0)
    key_ring(f"k2:{K2}")  # the old key can go now
    assert (await call(EAST_REP, uc.get_customer, c.id)) == c
    assert (await call(EAST_REP, uc.list_contacts, c.id)) == [contact]


async def test_legacy_plaintext_rows_work_until_reencrypt_seals_them(call, sessions, key_ring) -> None:
    key_ring(f"k1:{K1}")
    legacy_id, contact_id = uuid.uuid4(), uuid.uuid4()
    async with sessions() as s, s.begin():  # a row as the 0001-era service wrote it
        await s.execute(insert(customers_table).values(
            id=legacy_id, name="Legacy Co", tax_id=TAX, origin="domestic", status="active",
            lifecycle_stage="prospect", owner_id="rep-east", team_id="east", department_path="/sales/east/",
            version=1))
        await s.execute(insert(contacts_table).values(id=contact_id, customer_id=legacy_id, name="Old",
                                                      phones=[PHONE], version=1))
    legacy = await call(EAST_REP, uc.get_customer, legacy_id)
    assert legacy.tax_id == TAX
    assert (await call(EAST_REP, uc.list_contacts, legacy_id))[0].phones == (PHONE,)
    with pytest.raises(AlreadyExists) as exc:  # duplicate detection sees the plaintext row
        await new_customer(call, name="Copy", tax_id=TAX)
    assert exc.value.metadata["existing_customer_id"] == str(legacy_id)

    report = await reencrypt(sessions)
    assert (report.customers_rewritten, report.contacts_rewritten, report.duplicate_tax_ids) == (1, 1, [])
    [row] = await _raw(sessions, "SELECT tax_id, tax_id_index FROM customers")
    assert row.tax_id.startswith("enc:k1:") and row.tax_id_index
    assert await call(EAST_REP, uc.get_customer, legacy_id) == legacy
    with pytest.raises(AlreadyExists) as exc:  # and now through the blind index
        await new_customer(call, WEST_REP, name="Copy", tax_id=TAX)
    assert exc.value.metadata == {}


async def test_reencrypt_reports_a_legacy_duplicate_instead_of_failing(call, sessions, key_ring) -> None:
    key_ring(f"k1:{K1}")
    async with sessions() as s, s.begin():
        await s.execute(insert(customers_table).values(
            id=uuid.uuid4(), name="Legacy Co", tax_id=TAX, origin="domestic", status="active",
            lifecycle_stage="prospect", owner_id="rep-east", version=1))
        # written by a new pod during the rollout window, before the legacy row had an index
        await s.execute(insert(customers_table).values(
            id=uuid.uuid4(), name="New Co", tax_id=sensitive.seal(TAX, sensitive.TAX_ID),
            tax_id_index=sensitive.tax_id_index(TAX), origin="domestic", status="active",
            lifecycle_stage="prospect", owner_id="rep-west", version=1))
    report = await reencrypt(sessions)
    assert len(report.duplicate_tax_ids) == 1
    rows = await _raw(sessions, "SELECT tax_id FROM customers")
    assert all(r.tax_id.startswith("enc:") for r in rows)  # sealed all the same


async def test_duplicate_detection_through_the_blind_index_after_rotation(call, key_ring) -> None:
    key_ring(f"k1:{K1}")
    first = await new_customer(call, name="First", tax_id=TAX)
    key_ring(f"k2:{K2},k1:{K1}")
    with pytest.raises(AlreadyExists) as exc:
        await new_customer(call, name="Second", tax_id=TAX.lower())
    assert exc.value.reason == "DUPLICATE_TAX_ID"
    assert exc.value.metadata["existing_customer_id"] == str(first.id)


async def test_concurrent_creates_collide_on_the_blind_index(call, key_ring, counts) -> None:
    key_ring(f"k1:{K1}")
    results = await asyncio.gather(*(new_customer(call, p, name=f"N{i}", tax_id=TAX)
                                     for i, p in enumerate((EAST_REP, WEST_REP, ADMIN, EAST_REP))),
                                   return_exceptions=True)
    assert sorted(type(r).__name__ for r in results) == ["AlreadyExists"] * 3 + ["Customer"], results
    assert (await counts())["live_customers"] == 1


# Masking (R-SEC-04) ------------------------------------------------------------------------------

async def test_events_carry_masked_values_only(call, outbox, uow) -> None:
    c, contact = await _create_sensitive(call)
    await call(EAST_REP, uc.update_customer, c.id, {"tax_id": uscc(8)}, ["tax_id"], 1)
    await call(EAST_REP, uc.update_contact, c.id, contact.id, {"phones": ("13900139000",)}, ["phones"], 1)
    await sign(uow, c.id)
    await call(EAST_REP, uc.remove_contact, c.id, contact.id)
    await call(EAST_REP, uc.delete_customer, c.id, 0)
    rows = await outbox()
    assert len(rows) == 7
    for row in rows:
        for secret in (TAX, uscc(8), ACCOUNT, "13800138000", "13900139000"):
            assert secret.encode() not in row.payload, (row.type, secret)
    created = rows[0].message()
    assert created.customer.tax_id == "9135************" + TAX[-2:]
    assert created.customer.bank_accounts[0].account_number == "*" * 15 + "0123"
    assert created.customer.bank_accounts[0].bank_name == "ICBC Fuzhou"
    assert list(rows[1].message().contact.phones) == ["+86138****8000"]


async def test_reencrypt_command_runs_with_the_service_settings(database_factory, key_ring) -> None:
    url = database_factory("customers", main.migrate)
    settings = CustomersSettings(database_url=url, principal_public_key="unused",
                                 field_keys=f"k2:{K2},k1:{K1}", field_index_key=INDEX_KEY)
    report = await main.run_reencrypt(settings, batch_size=10, dry_run=True)
    assert report["active_key"] == "k2" and report["dry_run"] is True
    assert (report["customers_scanned"], report["duplicate_tax_ids"]) == (0, [])
