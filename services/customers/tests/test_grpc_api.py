"""The customers servicer behind a real gRPC server, called with a signed principal: protobuf in and
out, errors as status codes with ErrorInfo and BadRequest details (ARCHITECTURE.md, "Errors")."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask

from crm.common.v1 import lifecycle_pb2
from crm.customers.v1 import customers_pb2 as pb
from crm.customers.v1 import customers_pb2_grpc as pb_grpc
from crm_customers.adapters.grpc_api import CustomersServicer
from crmkit.auth import PRINCIPAL_METADATA_KEY, Principal, PrincipalSigner, PrincipalVerifier
from crmkit.auth.keys import generate_keypair
from crmkit.errors import AlreadyExists, InvalidArgument, NotFound, PermissionDenied, StaleVersion, Unauthenticated
from crmkit.grpc.client import channel
from crmkit.grpc.server import GrpcServer
from crmkit.grpc.status import from_rpc_error
from crmkit.testing.principals import ADMIN, DIRECTOR, EAST_REP, MARKETING, WEST_REP, with_grants

pytestmark = pytest.mark.integration

TAX = "91350100M000100Y43"
KEYS = generate_keypair()
SIGNER = PrincipalSigner(KEYS.private_pem)




@pytest.fixture
async def target(sessions) -> AsyncIterator[str]:
    server = GrpcServer("customers", PrincipalVerifier(KEYS.public_pem))
    server.add(pb_grpc.add_CustomersServiceServicer_to_server, CustomersServicer(sessions),
               pb.DESCRIPTOR.services_by_name["CustomersService"].full_name)
    port = await server.start("127.0.0.1:0")
    yield f"127.0.0.1:{port}"
    await server.stop(0)


@pytest.fixture
async def stub_for(target) -> AsyncIterator[Callable[[Principal], pb_grpc.CustomersServiceStub]]:
    channels: list[grpc.aio.Channel] = []

    def make(principal: Principal) -> pb_grpc.CustomersServiceStub:
        # As identity would issue it: the service checks each RPC's permission (R-SEC-03).
        ch = channel(target, lambda: SIGNER.sign(with_grants(principal)))
        channels.append(ch)
        return pb_grpc.CustomersServiceStub(ch)

    yield make
    for ch in channels:
        await ch.close()


@pytest.fixture
def stub(stub_for) -> pb_grpc.CustomersServiceStub:
    return stub_for(EAST_REP)


async def rpc_error(call) -> tuple[grpc.StatusCode, object]:
    with pytest.raises(grpc.aio.AioRpcError) as exc:
        await call
    return exc.value.code(), from_rpc_error(exc.value)


async def test_create_get_list_update_delete_round_trip(stub, stub_for) -> None:
    created = (await stub.CreateCustomer(pb.CreateCustomerRequest(customer=pb.Customer(
        name=" Fuzhou Medical ", tax_id=TAX.lower(), industry="medical_devices", tags=["vip", "Export"],
        origin=pb.ORIGIN_DOMESTIC,
        addresses=[pb.Address(kind=pb.ADDRESS_KIND_REGISTERED, line="1 Gutian Rd", country="cn")],
    )))).customer
    assert created.name == "Fuzhou Medical" and created.tax_id == TAX
    assert (created.owner_id, created.team_id, created.department_path) == ("rep-east", "east", "/sales/east/")
    assert created.lifecycle_stage == lifecycle_pb2.LIFECYCLE_STAGE_PROSPECT
    assert created.status == pb.CUSTOMER_STATUS_ACTIVE
    assert list(created.tags) == ["Export", "vip"] and created.addresses[0].country == "CN"
    assert created.version == 1 and created.HasField("create_time") and created.created_by == "rep-east"

    got = (await stub.GetCustomer(pb.GetCustomerRequest(id=created.id))).customer
    assert got == created

    second = (await stub.CreateCustomer(pb.CreateCustomerRequest(customer=pb.Customer(name="Xiamen")))).customer
    page1 = await stub.ListCustomers(pb.ListCustomersRequest(page_size=1, order_by="name"))
    assert [c.id for c in page1.customers] == [created.id] and page1.next_page_token
    page2 = await stub.ListCustomers(pb.ListCustomersRequest(page_size=1, order_by="name",
                                                             page_token=page1.next_page_token))
    assert [c.id for c in page2.customers] == [second.id] and page2.next_page_token == ""
    filtered = await stub.ListCustomers(pb.ListCustomersRequest(name_contains="MEDICAL", tag="vip"))
    assert [c.id for c in filtered.customers] == [created.id]

    updated = (await stub.UpdateCustomer(pb.UpdateCustomerRequest(
        customer=pb.Customer(id=created.id, name="Fuzhou Medical Ltd", region="ignored"),
        update_mask=FieldMask(paths=["name"]), expected_version=1))).customer
    assert (updated.name, updated.region, updated.version) == ("Fuzhou Medical Ltd", "", 2)

    # R-SEC-03: a rep holds no customers.delete; the service itself refuses, not only the gateway.
    code, error = await rpc_error(stub.DeleteCustomer(pb.DeleteCustomerRequest(id=created.id, expected_version=2)))
    assert code == grpc.StatusCode.PERMISSION_DENIED and isinstance(error, PermissionDenied)
    assert error.metadata == {"permission": "customers.delete"}
    await stub_for(DIRECTOR).DeleteCustomer(pb.DeleteCustomerRequest(id=created.id, expected_version=2))
    code, error = await rpc_error(stub.GetCustomer(pb.GetCustomerRequest(id=created.id)))
    assert code == grpc.StatusCode.NOT_FOUND and isinstance(error, NotFound)


@pytest.mark.parametrize("request_", [pb.GetCustomerRequest(id="not-a-uuid"), pb.GetCustomerRequest()])
async def test_invalid_id_is_invalid_argument_with_a_field_violation(stub, request_) -> None:
    code, error = await rpc_error(stub.GetCustomer(request_))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert isinstance(error, InvalidArgument)
    assert [v.field for v in error.violations] == ["id"]


async def test_invalid_customer_lists_every_violation(stub) -> None:
    code, error = await rpc_error(stub.CreateCustomer(pb.CreateCustomerRequest(customer=pb.Customer(
        name=" ", tax_id="913501", addresses=[pb.Address(line="", country="China")]))))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in error.violations] == ["name", "tax_id", "addresses[0].line",
                                                  "addresses[0].country"]


async def test_unknown_enum_number_is_invalid_argument(stub) -> None:
    code, error = await rpc_error(stub.CreateCustomer(pb.CreateCustomerRequest(
        customer=pb.Customer(name="x", origin=99))))  # type: ignore[arg-type]
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in error.violations] == ["origin"]


async def test_out_of_range_occur_time_is_invalid_argument(stub) -> None:
    c = (await stub.CreateCustomer(pb.CreateCustomerRequest(customer=pb.Customer(name="x")))).customer
    follow_up = pb.FollowUp(kind=pb.FOLLOW_UP_KIND_CALL, summary="x")
    follow_up.occur_time.seconds = 10**12
    code, error = await rpc_error(stub.RecordFollowUp(pb.RecordFollowUpRequest(customer_id=c.id,
                                                                               follow_up=follow_up)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in error.violations] == ["occurred_at"]


async def test_duplicate_is_already_exists_with_reason(stub, stub_for) -> None:
    first = (await stub.CreateCustomer(pb.CreateCustomerRequest(customer=pb.Customer(name="A", tax_id=TAX))))
    code, error = await rpc_error(stub.CreateCustomer(pb.CreateCustomerRequest(
        customer=pb.Customer(name="B", tax_id=TAX))))
    assert code == grpc.StatusCode.ALREADY_EXISTS and isinstance(error, AlreadyExists)
    assert error.reason == "DUPLICATE_TAX_ID"
    assert error.metadata == {"existing_customer_id": first.customer.id, "existing_customer_name": "A"}
    # Someone who may not see the holder learns only that it exists.
    code, error = await rpc_error(stub_for(WEST_REP).CreateCustomer(pb.CreateCustomerRequest(
        customer=pb.Customer(name="B", tax_id=TAX))))
    assert code == grpc.StatusCode.ALREADY_EXISTS and error.reason == "DUPLICATE_TAX_ID"
    assert error.metadata == {} and first.customer.id not in error.message


async def test_unknown_update_mask_path(stub) -> None:
    c = (await stub.CreateCustomer(pb.CreateCustomerRequest(customer=pb.Customer(name="A")))).customer
    code, error = await rpc_error(stub.UpdateCustomer(pb.UpdateCustomerRequest(
        customer=pb.Customer(id=c.id, name="B"), update_mask=FieldMask(paths=["name", "created_by"]))))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in error.violations] == ["update_mask"]
    assert "created_by" in error.violations[0].description


async def test_stale_version_is_aborted(stub, stub_for) -> None:
    c = (await stub.CreateCustomer(pb.CreateCustomerRequest(customer=pb.Customer(name="A")))).customer
    await stub.UpdateCustomer(pb.UpdateCustomerRequest(customer=pb.Customer(id=c.id, name="B"),
                                                       update_mask=FieldMask(paths=["name"]), expected_version=1))
    code, error = await rpc_error(stub.UpdateCustomer(pb.UpdateCustomerRequest(
        customer=pb.Customer(id=c.id, name="C"), update_mask=FieldMask(paths=["name"]), expected_version=1)))
    assert code == grpc.StatusCode.ABORTED and isinstance(error, StaleVersion)
    assert error.reason == "STALE_VERSION" and error.metadata == {"current_version": "2"}
    code, error = await rpc_error(stub_for(DIRECTOR).DeleteCustomer(pb.DeleteCustomerRequest(id=c.id,
                                                                                             expected_version=1)))
    assert code == grpc.StatusCode.ABORTED and error.reason == "STALE_VERSION"


async def test_other_scope_is_not_found(stub, stub_for) -> None:
    c = (await stub.CreateCustomer(pb.CreateCustomerRequest(customer=pb.Customer(name="A")))).customer
    code, _ = await rpc_error(stub_for(WEST_REP).GetCustomer(pb.GetCustomerRequest(id=c.id)))
    assert code == grpc.StatusCode.NOT_FOUND
    assert (await stub_for(WEST_REP).ListCustomers(pb.ListCustomersRequest())).customers == []
    assert len((await stub_for(ADMIN).ListCustomers(pb.ListCustomersRequest())).customers) == 1


async def test_contacts_follow_ups_tags_industries(stub, stub_for) -> None:
    c = (await stub.CreateCustomer(pb.CreateCustomerRequest(customer=pb.Customer(name="A", tags=["vip"])))).customer
    contact = (await stub.AddContact(pb.AddContactRequest(customer_id=c.id, contact=pb.Contact(
        name="Wang", phones=["138 0013 8000"], is_key=True)))).contact
    assert list(contact.phones) == ["+8613800138000"] and contact.customer_id == c.id
    code, error = await rpc_error(stub.AddContact(pb.AddContactRequest(customer_id=c.id, contact=pb.Contact(
        name="Li", phones=["1"], email="nope"))))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in error.violations] == ["phones[0]", "email"]
    updated = (await stub.UpdateContact(pb.UpdateContactRequest(
        contact=pb.Contact(id=contact.id, customer_id=c.id, title="Buyer"), update_mask=FieldMask(paths=["title"]),
        expected_version=1))).contact
    assert (updated.title, updated.version) == ("Buyer", 2)
    assert [x.id for x in (await stub.ListContacts(pb.ListContactsRequest(customer_id=c.id))).contacts] == [
        contact.id]

    code, error = await rpc_error(stub.RecordFollowUp(pb.RecordFollowUpRequest(
        customer_id=c.id, follow_up=pb.FollowUp(summary="called"))))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and [v.field for v in error.violations] == ["kind"]
    # R-UX-01: without an occur time the follow-up happened now.
    f = (await stub.RecordFollowUp(pb.RecordFollowUpRequest(customer_id=c.id, follow_up=pb.FollowUp(
        kind=pb.FOLLOW_UP_KIND_CALL, summary="called", key_facts=["wants samples"],
        contact_id=contact.id)))).follow_up
    assert f.HasField("occur_time") and f.author_id == "rep-east" and f.contact_id == contact.id
    timeline = await stub.ListFollowUps(pb.ListFollowUpsRequest(customer_id=c.id))
    assert [x.id for x in timeline.follow_ups] == [f.id]
    code, error = await rpc_error(stub.RecordFollowUp(pb.RecordFollowUpRequest(
        customer_id=c.id, follow_up=pb.FollowUp(kind=pb.FOLLOW_UP_KIND_CALL, summary="x", contact_id="bad"))))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and [v.field for v in error.violations] == ["contact_id"]

    await stub.RemoveContact(pb.RemoveContactRequest(customer_id=c.id, contact_id=contact.id))
    assert (await stub.ListContacts(pb.ListContactsRequest(customer_id=c.id))).contacts == []

    tags = (await stub.ListTags(pb.ListTagsRequest())).tags
    assert [(t.name, t.customer_count) for t in tags] == [("vip", 1)]

    industries = (await stub.ListIndustries(pb.ListIndustriesRequest())).industries
    assert len(industries) == 16
    made = (await stub_for(ADMIN).CreateIndustry(pb.CreateIndustryRequest(
        industry=pb.Industry(code=" Optics ", name=" Optics\x07 ", name_zh="光学")))).industry
    assert made == pb.Industry(code="optics", name="Optics", name_zh="光学")
    # NUL is refused by every service before any rule runs (PostgreSQL text cannot hold it)
    code, _ = await rpc_error(stub_for(ADMIN).CreateIndustry(pb.CreateIndustryRequest(
        industry=pb.Industry(code="nul", name="N\x00UL"))))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    code, error = await rpc_error(stub_for(ADMIN).CreateIndustry(pb.CreateIndustryRequest(
        industry=pb.Industry(code="optics", name="Optics"))))
    assert code == grpc.StatusCode.ALREADY_EXISTS and error.reason == "DUPLICATE_INDUSTRY"
    code, _ = await rpc_error(stub.CreateIndustry(pb.CreateIndustryRequest(
        industry=pb.Industry(code="lasers", name="Lasers"))))
    assert code == grpc.StatusCode.PERMISSION_DENIED


async def test_bad_list_requests(stub) -> None:
    for request in (pb.ListCustomersRequest(order_by="tax_id"), pb.ListCustomersRequest(page_token="garbage"),
                    pb.ListCustomersRequest(page_size=-1)):
        code, _ = await rpc_error(stub.ListCustomers(request))
        assert code == grpc.StatusCode.INVALID_ARGUMENT, request


async def test_no_principal_is_unauthenticated(target) -> None:
    async with grpc.aio.insecure_channel(target) as ch:
        code, error = await rpc_error(pb_grpc.CustomersServiceStub(ch).ListCustomers(pb.ListCustomersRequest()))
    assert code == grpc.StatusCode.UNAUTHENTICATED and isinstance(error, Unauthenticated)


async def test_principal_signed_by_another_key_is_unauthenticated(target) -> None:
    forged = PrincipalSigner(generate_keypair().private_pem).sign(ADMIN)
    async with grpc.aio.insecure_channel(target) as ch:
        code, _ = await rpc_error(pb_grpc.CustomersServiceStub(ch).ListCustomers(
            pb.ListCustomersRequest(), metadata=((PRINCIPAL_METADATA_KEY, forged),)))
        assert code == grpc.StatusCode.UNAUTHENTICATED
        code, _ = await rpc_error(pb_grpc.CustomersServiceStub(ch).ListCustomers(
            pb.ListCustomersRequest(), metadata=((PRINCIPAL_METADATA_KEY, "not-a-jwt"),)))
        assert code == grpc.StatusCode.UNAUTHENTICATED


# R-SEC-04: bank accounts through the API; full values only for a principal that sees them ---------

async def test_bank_accounts_round_trip_and_masking(stub, stub_for) -> None:
    marketing = stub_for(with_grants(MARKETING, "customers.write"))
    created = (await stub.CreateCustomer(pb.CreateCustomerRequest(customer=pb.Customer(
        name="Bank Co", tax_id=TAX, bank_accounts=[
            pb.BankAccount(bank_name=" ICBC Fuzhou ", account_name="Bank Co Ltd", account_number="6222-0212 3456 7890"),
            pb.BankAccount(bank_name="Deutsche Bank", account_number="de89370400440532013000"),
        ])))).customer
    assert [(b.bank_name, b.account_name, b.account_number) for b in created.bank_accounts] == [
        ("ICBC Fuzhou", "Bank Co Ltd", "6222021234567890"), ("Deutsche Bank", "", "DE89370400440532013000")]
    assert created.tax_id == TAX and not created.has_signed_contract
    contact = (await stub.AddContact(pb.AddContactRequest(customer_id=created.id, contact=pb.Contact(
        name="Liu", phones=["13800138000", "+49 30 901820"])))).contact
    assert list(contact.phones) == ["+8613800138000", "+4930901820"]

    # a rep sees its customer in full; marketing (all customers, sees_sensitive=False) masked
    assert (await stub.GetCustomer(pb.GetCustomerRequest(id=created.id))).customer == created
    seen = (await marketing.GetCustomer(pb.GetCustomerRequest(id=created.id))).customer
    assert seen.tax_id == TAX[:4] + "*" * 12 + TAX[-2:]
    assert [b.account_number for b in seen.bank_accounts] == ["************7890", "******************3000"]
    assert [b.bank_name for b in seen.bank_accounts] == ["ICBC Fuzhou", "Deutsche Bank"]
    listed = (await marketing.ListCustomers(pb.ListCustomersRequest(name_contains="Bank Co"))).customers
    assert [c.tax_id for c in listed] == [seen.tax_id]
    phones = (await marketing.ListContacts(pb.ListContactsRequest(customer_id=created.id))).contacts[0].phones
    assert list(phones) == ["+86138****8000", "+49309*1820"]
    assert list((await stub.ListContacts(pb.ListContactsRequest(customer_id=created.id))).contacts[0].phones) == [
        "+8613800138000", "+4930901820"]

    # a masked value sent back is refused rather than stored over the real one
    code, error = await rpc_error(marketing.UpdateCustomer(pb.UpdateCustomerRequest(
        customer=pb.Customer(id=created.id, tax_id=seen.tax_id, bank_accounts=seen.bank_accounts),
        update_mask=FieldMask(paths=["tax_id", "bank_accounts"]))))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in error.violations] == ["tax_id", "bank_accounts[0].account_number",
                                                  "bank_accounts[1].account_number"]
    code, error = await rpc_error(marketing.UpdateContact(pb.UpdateContactRequest(
        contact=pb.Contact(id=contact.id, customer_id=created.id, phones=phones),
        update_mask=FieldMask(paths=["phones"]))))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and [v.field for v in error.violations] == ["phones[0]",
                                                                                                "phones[1]"]

    # updating the accounts replaces the list
    updated = (await stub.UpdateCustomer(pb.UpdateCustomerRequest(
        customer=pb.Customer(id=created.id, bank_accounts=[pb.BankAccount(bank_name="BOC", account_number="123456")]),
        update_mask=FieldMask(paths=["bank_accounts"]), expected_version=1))).customer
    assert [(b.bank_name, b.account_number) for b in updated.bank_accounts] == [("BOC", "123456")]
    assert updated.version == 2


async def test_invalid_bank_account_lists_every_violation(stub) -> None:
    code, error = await rpc_error(stub.CreateCustomer(pb.CreateCustomerRequest(customer=pb.Customer(
        name="x", bank_accounts=[pb.BankAccount(bank_name="", account_number="12"),
                                 pb.BankAccount(bank_name="ok", account_number="no spaces? no!")]))))
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in error.violations] == ["bank_accounts[0].bank_name", "bank_accounts[0].account_number",
                                                  "bank_accounts[1].account_number"]


# Bulk import (R-CUS-03) ---------------------------------------------------------------------

async def _wait_for(stub, import_id: str, status: int) -> pb.Import:
    for _ in range(200):
        job = (await stub.GetImport(pb.GetImportRequest(id=import_id))).import_job
        if job.status == status:
            return job
        await asyncio.sleep(0.05)
    raise AssertionError(f"import {import_id} never reached {pb.ImportStatus.Name(status)}: {job}")


async def test_import_dry_run_commit_in_background_issues_and_revert(stub, stub_for):
    content = ("客户名称,统一社会信用代码,行业,联系人,手机\n"
               f"导入甲,{TAX},医疗器械,张三,13800138000\n"
               "导入乙,,造船,,\n"
               "=1+1,,,,\n").encode("gbk")
    started = await stub.StartImport(pb.StartImportRequest(
        content=content, file_name="old.csv", on_match=pb.IMPORT_ON_MATCH_UPDATE))
    job = started.import_job
    assert job.status == pb.IMPORT_STATUS_DRY_RUN and job.total == 3
    assert job.planned == pb.ImportCounts(created=1, rejected=2)
    assert [i.line for i in started.issues] == [3, 4] and not started.issues_truncated
    assert "造船" in started.issues[0].reasons[0] and started.issues[0].cells["industry"] == "造船"

    committed = await stub.CommitImport(pb.CommitImportRequest(id=job.id))
    assert committed.import_job.status in (pb.IMPORT_STATUS_RUNNING, pb.IMPORT_STATUS_DONE)
    done = await _wait_for(stub, job.id, pb.IMPORT_STATUS_DONE)
    assert done.done == pb.ImportCounts(created=1, rejected=2) and done.processed == 3
    page = await stub.ListImportIssues(pb.ListImportIssuesRequest(id=job.id, page_size=1))
    assert [i.line for i in page.issues] == [3] and page.next_page_token
    page2 = await stub.ListImportIssues(pb.ListImportIssuesRequest(id=job.id, page_token=page.next_page_token))
    assert [i.outcome for i in page2.issues] == ["rejected"] and not page2.next_page_token
    listed = await stub.ListCustomers(pb.ListCustomersRequest(name_contains="导入"))
    assert [c.name for c in listed.customers] == ["导入甲"]

    status, _ = await rpc_error(stub_for(WEST_REP).GetImport(pb.GetImportRequest(id=job.id)))
    assert status == grpc.StatusCode.NOT_FOUND

    await stub.RevertImport(pb.RevertImportRequest(id=job.id))
    await _wait_for(stub, job.id, pb.IMPORT_STATUS_REVERTED)
    listed = await stub.ListCustomers(pb.ListCustomersRequest(name_contains="导入"))
    assert list(listed.customers) == []


async def test_import_of_a_file_that_is_not_csv_or_excel_is_invalid(stub):
    status, _ = await rpc_error(stub.StartImport(pb.StartImportRequest(content=b"\x89PNG\r\n\x1a\n\x00\x00")))
    assert status == grpc.StatusCode.INVALID_ARGUMENT


async def test_export_pages_customers_with_contacts_in_scope_and_masked(stub, stub_for):
    created = (await stub.CreateCustomer(pb.CreateCustomerRequest(customer=pb.Customer(
        name="导出甲", tax_id=TAX)))).customer
    await stub.AddContact(pb.AddContactRequest(customer_id=created.id, contact=pb.Contact(
        name="张三", phones=["13800138000"])))
    await stub.CreateCustomer(pb.CreateCustomerRequest(customer=pb.Customer(name="导出乙")))
    await stub_for(WEST_REP).CreateCustomer(pb.CreateCustomerRequest(customer=pb.Customer(name="西部")))
    exporter = stub_for(with_grants(EAST_REP, "customers.export"))
    first = await exporter.ExportCustomers(pb.ExportCustomersRequest(page_size=1))
    assert [e.customer.name for e in first.customers] == ["导出甲"] and first.next_page_token
    assert [c.phones[0] for c in first.customers[0].contacts] == ["+8613800138000"]
    second = await exporter.ExportCustomers(pb.ExportCustomersRequest(page_size=10, page_token=first.next_page_token))
    assert [e.customer.name for e in second.customers] == ["导出乙"] and not second.next_page_token
    masked = await stub_for(with_grants(MARKETING, "customers.export")).ExportCustomers(pb.ExportCustomersRequest())
    by_name = {e.customer.name: e for e in masked.customers}
    assert set(by_name) == {"导出甲", "导出乙", "西部"}
    assert "*" in by_name["导出甲"].customer.tax_id and "*" in by_name["导出甲"].contacts[0].phones[0]
