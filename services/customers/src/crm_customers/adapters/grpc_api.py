"""The gRPC face of the service: protobuf in, use case, protobuf out. No rules live here."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Any

import grpc
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm.customers.v1 import customers_pb2 as pb
from crm.customers.v1 import customers_pb2_grpc as pb_grpc
from crm_customers.adapters.grpc_migration import MigrationRpcs
from crm_customers.adapters.leads_grpc import LeadsRpcs
from crm_customers.app import imports, use_cases
from crm_customers.app.messages import (
    contact_fields_from_pb,
    contact_to_pb,
    customer_fields_from_pb,
    customer_to_pb,
    follow_up_fields_from_pb,
    follow_up_to_pb,
)
from crm_customers.domain.imports import template_csv, template_xlsx
from crm_customers.domain.model import Contact, Customer
from crmkit.auth import current_principal
from crmkit.db import UnitOfWork
from crmkit.errors import InvalidArgument
from crmkit.ids import parse_id
from crmkit.pagination import page_size

SOURCE = "crm/customers"
log = logging.getLogger(__name__)
# R-CUS-03: the first issues returned with a dry run; ListImportIssues pages through the rest.
REPORT_ISSUES = 1000
_DEDUP = {pb.IMPORT_DEDUP_KEY_UNSPECIFIED: "tax_id", pb.IMPORT_DEDUP_KEY_TAX_ID: "tax_id",
          pb.IMPORT_DEDUP_KEY_NAME_REGION: "name_region"}
_ON_MATCH = {pb.IMPORT_ON_MATCH_UNSPECIFIED: "skip", pb.IMPORT_ON_MATCH_SKIP: "skip",
             pb.IMPORT_ON_MATCH_UPDATE: "update", pb.IMPORT_ON_MATCH_FLAG: "flag"}
_STATUS = {"dry_run": pb.IMPORT_STATUS_DRY_RUN, "running": pb.IMPORT_STATUS_RUNNING, "done": pb.IMPORT_STATUS_DONE,
           "failed": pb.IMPORT_STATUS_FAILED, "reverting": pb.IMPORT_STATUS_REVERTING,
           "reverted": pb.IMPORT_STATUS_REVERTED, "validating": pb.IMPORT_STATUS_VALIDATING,
           "refused": pb.IMPORT_STATUS_REFUSED}


def _counts(values: dict[str, int]) -> pb.ImportCounts:
    return pb.ImportCounts(**{f: int(values.get(f, 0) or values.get(k, 0)) for k, f in imports.PAST.items()})


def import_to_pb(job: imports.ImportJob) -> pb.Import:
    return pb.Import(id=str(job.id), status=_STATUS[job.status],
                     dedup_key={v: k for k, v in _DEDUP.items() if k}[job.dedup_key],
                     on_match={v: k for k, v in _ON_MATCH.items() if k}[job.on_match], file_name=job.file_name,
                     total=job.total, planned=_counts(job.planned), done=_counts(job.counts),
                     processed=job.processed, error=job.error, created_by=job.created_by)


def issue_to_pb(issue: imports.RowReport) -> pb.ImportIssue:
    return pb.ImportIssue(line=issue.line, outcome=issue.outcome, reasons=list(issue.reasons),
                          customer_id=str(issue.customer_id) if issue.customer_id else "",
                          cells={k: v for k, v in issue.raw.items() if v})


# R-SEC-04: phones, tax IDs and account numbers in full only for a principal that sees them.
def _customer_out(customer: Customer) -> pb.Customer:
    return customer_to_pb(customer, reveal=current_principal().sees_sensitive)


def _contact_out(contact: Contact) -> pb.Contact:
    return contact_to_pb(contact, reveal=current_principal().sees_sensitive)


# Defence in depth (R-SEC-03): what each RPC needs, checked by the shared interceptor; the
# gateway checks the same, and the data scope is checked per record in the use cases.
_READ, _WRITE, _DELETE, _EXPORT = "customers.read", "customers.write", "customers.delete", "customers.export"
_LEADS_READ, _LEADS_WRITE, _LEADS_ASSIGN = "leads.read", "leads.write", "leads.assign"
PERMISSIONS = {
    "CreateCustomer": _WRITE, "GetCustomer": _READ, "UpdateCustomer": _WRITE, "DeleteCustomer": _DELETE,
    "ListCustomers": _READ, "AddContact": _WRITE, "UpdateContact": _WRITE, "RemoveContact": _WRITE,
    "ListContacts": _READ, "RecordFollowUp": _WRITE, "ListFollowUps": _READ, "ListIndustries": _READ,
    "CreateIndustry": "industries.manage", "ListTags": _READ,
    "StartImport": _WRITE, "GetImport": _WRITE, "CommitImport": _WRITE, "RevertImport": _WRITE,
    "ListImportIssues": _WRITE, "GetImportTemplate": _WRITE, "ExportCustomers": _EXPORT,
    "CreateImportUpload": _WRITE, "AppendImportUploadChunk": _WRITE, "GetImportUpload": _WRITE,
    "ListDuplicateCustomers": _READ, "MergeCustomers": _WRITE, "DismissDuplicate": _WRITE,
    "CreateLead": _LEADS_WRITE, "BatchCreateLeads": _LEADS_WRITE, "GetLead": _LEADS_READ, "ListLeads": _LEADS_READ,
    "UpdateLeadStatus": _LEADS_WRITE, "AssignLead": _LEADS_WRITE, "ConvertLead": _LEADS_WRITE,
    "LinkLeadOpportunity": _LEADS_WRITE, "ListAssignmentRules": _LEADS_ASSIGN, "CreateAssignmentRule": _LEADS_ASSIGN,
    "UpdateAssignmentRule": _LEADS_ASSIGN, "GetLeadAttribution": _LEADS_READ, "ReassignCustomer": _WRITE,
}

class CustomersServicer(LeadsRpcs, MigrationRpcs, pb_grpc.CustomersServiceServicer):
    permissions = PERMISSIONS

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions
        self._background: set[asyncio.Task[None]] = set()

    def _uow(self) -> UnitOfWork:
        return UnitOfWork(self._sessions, SOURCE, actor=current_principal().subject)

    async def CreateCustomer(self, request: pb.CreateCustomerRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            customer = await use_cases.create_customer(uow, current_principal(),
                                                       customer_fields_from_pb(request.customer))
        return pb.CreateCustomerResponse(customer=_customer_out(customer))

    async def GetCustomer(self, request: pb.GetCustomerRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            customer = await use_cases.get_customer(uow, current_principal(), parse_id(request.id))
        return pb.GetCustomerResponse(customer=_customer_out(customer))

    async def UpdateCustomer(self, request: pb.UpdateCustomerRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            customer = await use_cases.update_customer(
                uow, current_principal(), parse_id(request.customer.id, "customer.id"),
                customer_fields_from_pb(request.customer), list(request.update_mask.paths),
                request.expected_version)
        return pb.UpdateCustomerResponse(customer=_customer_out(customer))

    async def DeleteCustomer(self, request: pb.DeleteCustomerRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            await use_cases.delete_customer(uow, current_principal(), parse_id(request.id), request.expected_version)
        return pb.DeleteCustomerResponse()

    async def ListCustomers(self, request: pb.ListCustomersRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            items, token = await use_cases.list_customers(
                uow, current_principal(), page_token=request.page_token, limit=request.page_size,
                order_by=request.order_by, name_contains=request.name_contains, industry=request.industry,
                owner_id=request.owner_id, tag=request.tag, team_id=request.team_id)
        return pb.ListCustomersResponse(customers=[_customer_out(c) for c in items], next_page_token=token)

    async def AddContact(self, request: pb.AddContactRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            contact = await use_cases.add_contact(uow, current_principal(),
                                                  parse_id(request.customer_id, "customer_id"),
                                                  contact_fields_from_pb(request.contact))
        return pb.AddContactResponse(contact=_contact_out(contact))

    async def UpdateContact(self, request: pb.UpdateContactRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            contact = await use_cases.update_contact(
                uow, current_principal(), parse_id(request.contact.customer_id, "customer_id"),
                parse_id(request.contact.id, "contact_id"), contact_fields_from_pb(request.contact),
                list(request.update_mask.paths), request.expected_version)
        return pb.UpdateContactResponse(contact=_contact_out(contact))

    async def RemoveContact(self, request: pb.RemoveContactRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            await use_cases.remove_contact(uow, current_principal(), parse_id(request.customer_id, "customer_id"),
                                           parse_id(request.contact_id, "contact_id"))
        return pb.RemoveContactResponse()

    async def ListContacts(self, request: pb.ListContactsRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            contacts = await use_cases.list_contacts(uow, current_principal(),
                                                     parse_id(request.customer_id, "customer_id"))
        return pb.ListContactsResponse(contacts=[_contact_out(c) for c in contacts])

    async def RecordFollowUp(self, request: pb.RecordFollowUpRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            follow_up = await use_cases.record_follow_up(
                uow, current_principal(), parse_id(request.customer_id, "customer_id"),
                follow_up_fields_from_pb(request.follow_up, dt.datetime.now(dt.UTC)))
        return pb.RecordFollowUpResponse(follow_up=follow_up_to_pb(follow_up))

    async def ListFollowUps(self, request: pb.ListFollowUpsRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            items, token = await use_cases.list_follow_ups(
                uow, current_principal(), parse_id(request.customer_id, "customer_id"),
                page_token=request.page_token, limit=request.page_size)
        return pb.ListFollowUpsResponse(follow_ups=[follow_up_to_pb(f) for f in items], next_page_token=token)

    async def ListIndustries(self, request: pb.ListIndustriesRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            rows = await use_cases.list_industries(uow)
        return pb.ListIndustriesResponse(industries=[pb.Industry(code=c, name=n, name_zh=z) for c, n, z in rows])

    async def CreateIndustry(self, request: pb.CreateIndustryRequest, context: grpc.aio.ServicerContext) -> Any:
        i = request.industry
        async with self._uow() as uow:
            code, name, name_zh = await use_cases.create_industry(uow, current_principal(), i.code, i.name,
                                                                  i.name_zh)
        return pb.CreateIndustryResponse(industry=pb.Industry(code=code, name=name, name_zh=name_zh))

    async def ListTags(self, request: pb.ListTagsRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            rows = await use_cases.list_tags(uow, current_principal())
        return pb.ListTagsResponse(tags=[pb.TagUsage(name=t, customer_count=n) for t, n in rows])



    # Bulk import (R-CUS-03) ----------------------------------------------------------------

    async def StartImport(self, request: pb.StartImportRequest, context: grpc.aio.ServicerContext) -> Any:
        if request.upload_id:
            # A file uploaded in chunks: checked in the background (GetImport shows when it is).
            async with self._uow() as uow:
                job = await imports.start_import_from_upload(
                    uow, current_principal(), parse_id(request.upload_id, "upload_id"),
                    key=_DEDUP.get(request.dedup_key, "?"), on_match=_ON_MATCH.get(request.on_match, "?"),
                    mapping=dict(request.column_mapping))
            self._spawn(imports.run_upload_dry_run, job.id)
            return pb.StartImportResponse(import_job=import_to_pb(job))
        async with self._uow() as uow:
            job, issues = await imports.start_import(
                uow, current_principal(), request.content, file_name=request.file_name,
                key=_DEDUP.get(request.dedup_key, "?"), on_match=_ON_MATCH.get(request.on_match, "?"),
                mapping=dict(request.column_mapping))
        return pb.StartImportResponse(import_job=import_to_pb(job),
                                      issues=[issue_to_pb(i) for i in issues[:REPORT_ISSUES]],
                                      issues_truncated=len(issues) > REPORT_ISSUES)

    async def GetImport(self, request: pb.GetImportRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            job = await imports.get_import(uow, current_principal(), parse_id(request.id))
        return pb.GetImportResponse(import_job=import_to_pb(job))

    async def CommitImport(self, request: pb.CommitImportRequest, context: grpc.aio.ServicerContext) -> Any:
        import_id = parse_id(request.id)
        async with self._uow() as uow:
            job = await imports.begin_commit(uow, current_principal(), import_id)
        if job.status == "running":
            self._spawn(imports.run_commit, import_id)
        return pb.CommitImportResponse(import_job=import_to_pb(job))

    async def RevertImport(self, request: pb.RevertImportRequest, context: grpc.aio.ServicerContext) -> Any:
        import_id = parse_id(request.id)
        async with self._uow() as uow:
            job = await imports.begin_revert(uow, current_principal(), import_id)
        if job.status == "reverting":
            self._spawn(imports.run_revert, import_id)
        return pb.RevertImportResponse(import_job=import_to_pb(job))

    async def ListImportIssues(self, request: pb.ListImportIssuesRequest,
                               context: grpc.aio.ServicerContext) -> Any:
        size = page_size(request.page_size)
        try:
            after = int(request.page_token or "0")
        except ValueError:
            raise InvalidArgument.of("page_token", "is not a token this API issued") from None
        async with self._uow() as uow:
            issues = await imports.list_issues(uow, current_principal(), parse_id(request.id), after_line=after,
                                               limit=size + 1)
        token = str(issues[size - 1].line) if len(issues) > size else ""
        return pb.ListImportIssuesResponse(issues=[issue_to_pb(i) for i in issues[:size]], next_page_token=token)

    async def GetImportTemplate(self, request: pb.GetImportTemplateRequest,
                                context: grpc.aio.ServicerContext) -> Any:
        if request.format == pb.FILE_FORMAT_XLSX:
            return pb.GetImportTemplateResponse(
                content=template_xlsx(), file_name="customers-import-template.xlsx",
                content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
        return pb.GetImportTemplateResponse(content=template_csv(), file_name="customers-import-template.csv",
                                            content_type="text/csv; charset=utf-8")

    async def ExportCustomers(self, request: pb.ExportCustomersRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            items, token = await use_cases.export_customers(uow, current_principal(), page_token=request.page_token,
                                                            limit=request.page_size)
        return pb.ExportCustomersResponse(
            customers=[pb.ExportedCustomer(customer=_customer_out(c), contacts=[_contact_out(k) for k in contacts])
                       for c, contacts in items], next_page_token=token)

    def _spawn(self, run: Any, import_id: Any) -> None:
        """Runs a commit or revert after the call has answered; progress is read with GetImport.
        If the process dies midway the import stays running/reverting and the next
        CommitImport/RevertImport resumes it after its last committed batch."""
        principal = current_principal()

        async def work() -> None:
            try:
                async with UnitOfWork(self._sessions, SOURCE, actor=principal.subject) as uow:
                    await run(uow, principal, import_id)
            except Exception as exc:
                log.exception("import stopped", extra={"import_id": str(import_id)})
                async with UnitOfWork(self._sessions, SOURCE, actor=principal.subject) as uow:
                    await imports.record_failure(uow, import_id, f"{type(exc).__name__}: {exc}")

        task = asyncio.get_running_loop().create_task(work())
        self._background.add(task)
        task.add_done_callback(self._background.discard)
