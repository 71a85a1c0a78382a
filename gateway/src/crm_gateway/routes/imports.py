"""/api/v1/imports: bulk import of customers with their contacts (R-CUS-03), REST in front of the
customers service's import RPCs.

Upload (multipart/form-data, the only non-JSON body under /api besides OAuth's forms) → dry-run
report → commit (runs in the background; poll GET for progress) → optional revert. The file is
at most `import_max_bytes` (7 MiB: it travels to the service in one gRPC message).

A bigger file, or one over a flaky connection, goes up as a resumable upload: POST
/imports/uploads {file_name, size} → PUT /imports/uploads/{id} with `Content-Range: bytes
first-last/size` and raw bytes (application/octet-stream, each chunk within the gateway's body
limit, 1 MiB) → after a broken connection GET /imports/uploads/{id} tells the received offset
(`Upload-Offset`) to go on from → POST /imports/uploads/{id}/import starts the import, whose dry
run runs in the background (status validating → dry_run, or refused with the reason).
"""

from __future__ import annotations

import csv
import io
import json
import re
import tempfile
from collections.abc import AsyncIterator
from typing import Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, File, Form, Header, Query, Request, Response, UploadFile
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from crm.customers.v1 import customers_pb2 as pb
from crm_gateway import permissions as p
from crm_gateway.api_route import ApiRoute
from crm_gateway.auth import Caller, authenticated, require
from crm_gateway.problems import API_ERRORS
from crmkit import limits
from crmkit.errors import InvalidArgument

router = APIRouter(prefix="/api/v1", route_class=ApiRoute, tags=["imports"],
                   dependencies=[Depends(authenticated)], responses=API_ERRORS)

# The dry run reads and checks the whole file in the call (200,000 rows take minutes).
DRY_RUN_DEADLINE_SECONDS = 300.0
_WRITE = Depends(require(p.CUSTOMERS_WRITE))
_EXPORT = Depends(require(p.CUSTOMERS_EXPORT))
_FIELDS = ("name", "tax_id", "origin", "industry", "region", "status", "tags", "address", "contact_name",
           "contact_title", "contact_phone", "contact_email", "contact_wechat")
# The error file's columns (and what a mapping may name): the template's, with the owner column.
_ROW_FIELDS = (*_FIELDS, "owner")
_DEDUP = {"tax_id": pb.IMPORT_DEDUP_KEY_TAX_ID, "name_region": pb.IMPORT_DEDUP_KEY_NAME_REGION}
_ON_MATCH = {"skip": pb.IMPORT_ON_MATCH_SKIP, "update": pb.IMPORT_ON_MATCH_UPDATE, "flag": pb.IMPORT_ON_MATCH_FLAG}


class ImportCounts(BaseModel):
    created: int
    updated: int
    skipped: int
    flagged: int
    rejected: int


class Import(BaseModel):
    id: str
    status: Literal["validating", "refused", "dry_run", "running", "done", "failed", "reverting", "reverted"] = \
        Field(description="validating (an uploaded file being checked) → dry_run, or refused (see error); "
                          "dry_run → running → done (or failed: commit again to resume); done → reverting → "
                          "reverted")
    dedup_key: Literal["tax_id", "name_region"]
    on_match: Literal["skip", "update", "flag"]
    file_name: str
    total: int = Field(description="Data rows in the file")
    planned: ImportCounts = Field(description="What the dry run found the commit would do")
    done: ImportCounts = Field(description="What the commit has done so far")
    processed: int = Field(description="Rows the commit has handled so far (progress: processed / total)")
    error: str = Field(description="Why an uploaded file was refused, or why the last commit or revert "
                                   "stopped (commit or revert again to resume)")


class ImportIssue(BaseModel):
    line: int = Field(description="The row's line in the file (1 is the header)")
    outcome: str = Field(description="reject, skip or flag (dry run); rejected, skipped or flagged (committed)")
    reasons: list[str]
    customer_id: str | None = Field(None, description="The existing customer the row matched")
    cells: dict[str, str]


class ImportReport(BaseModel):
    import_: Import = Field(alias="import")
    issues: list[ImportIssue] = Field(description="The first 1000 issues; GET …/errors has all of them")
    issues_truncated: bool

    model_config = {"populate_by_name": True}


def _stub(request: Request) -> Any:
    return request.app.state.customers


def _counts(m: pb.ImportCounts) -> ImportCounts:
    return ImportCounts(created=m.created, updated=m.updated, skipped=m.skipped, flagged=m.flagged,
                        rejected=m.rejected)


def _import_json(m: pb.Import) -> Import:
    return Import(id=m.id, status=pb.ImportStatus.Name(m.status).removeprefix("IMPORT_STATUS_").lower(),  # type: ignore[arg-type]
                  dedup_key=pb.ImportDedupKey.Name(m.dedup_key).removeprefix("IMPORT_DEDUP_KEY_").lower(),  # type: ignore[arg-type]
                  on_match=pb.ImportOnMatch.Name(m.on_match).removeprefix("IMPORT_ON_MATCH_").lower(),  # type: ignore[arg-type]
                  file_name=m.file_name, total=m.total, planned=_counts(m.planned), done=_counts(m.done),
                  processed=m.processed, error=m.error)


def _issue_json(m: pb.ImportIssue) -> ImportIssue:
    return ImportIssue(line=m.line, outcome=m.outcome, reasons=list(m.reasons), customer_id=m.customer_id or None,
                       cells=dict(m.cells))


def _json(model: BaseModel, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(model.model_dump_json(by_alias=True), status_code=status_code, media_type="application/json",
                    headers=headers)


def _mapping(column_mapping: str | dict[str, str]) -> dict[str, str]:
    if not column_mapping:
        return {}
    mapping: Any = column_mapping
    if isinstance(column_mapping, str):
        try:
            mapping = json.loads(column_mapping)
        except ValueError:
            raise InvalidArgument.of("column_mapping", "is not JSON") from None
    if not isinstance(mapping, dict) or not all(isinstance(k, str) and isinstance(v, str)
                                                for k, v in mapping.items()):
        raise InvalidArgument.of("column_mapping", "must be a JSON object of strings")
    return mapping


@router.get("/imports/template", summary="Download the customer import template",
            response_class=Response, responses={200: {"content": {"text/csv": {}, "application/vnd.openxmlformats-"
                                                                  "officedocument.spreadsheetml.sheet": {}}}})
async def import_template(request: Request, caller: Caller = _WRITE,
                          format: Literal["csv", "xlsx"] = Query("csv")) -> Response:
    reply = await _stub(request).GetImportTemplate(pb.GetImportTemplateRequest(
        format=pb.FILE_FORMAT_XLSX if format == "xlsx" else pb.FILE_FORMAT_CSV), metadata=caller.metadata)
    return Response(reply.content, media_type=reply.content_type,
                    headers={"Content-Disposition": f'attachment; filename="{reply.file_name}"'})


@router.post("/imports", status_code=201, response_model=ImportReport,
             summary="Upload a CSV or .xlsx file of customers: the dry run",
             description="Reads and validates every row and reports what a commit would create, update, skip, "
                         "flag or reject, with every problem row's reasons. Writes no customer. CSV may be UTF-8 "
                         "(with or without BOM) or GBK; at most 200,000 rows and 7 MiB.")
async def start_import(
    request: Request, caller: Caller = _WRITE,
    file: UploadFile = File(..., description="CSV or .xlsx (the first sheet)"),
    dedup_key: Literal["tax_id", "name_region"] = Form("tax_id", description="How a row finds an existing "
                                                       "customer: tax ID, or name + region"),
    on_match: Literal["skip", "update", "flag"] = Form("skip", description="What a row that matches does"),
    column_mapping: str = Form("", max_length=20_000, description='JSON object: header text -> field, overriding '
                               f'the default aliases ("" ignores the column). Fields: {", ".join(_ROW_FIELDS)}'),
) -> Response:
    mapping = _mapping(column_mapping)
    content = await file.read()
    reply = await _stub(request).StartImport(pb.StartImportRequest(
        content=content, file_name=file.filename or "", dedup_key=_DEDUP[dedup_key], on_match=_ON_MATCH[on_match],
        column_mapping=mapping), metadata=caller.metadata, timeout=DRY_RUN_DEADLINE_SECONDS)
    report = ImportReport(import_=_import_json(reply.import_job), issues=[_issue_json(i) for i in reply.issues],
                          issues_truncated=reply.issues_truncated)
    return _json(report, 201)


# Resumable uploads ------------------------------------------------------------------------------

class UploadCreate(BaseModel):
    file_name: str = Field("", max_length=200)
    size: int = Field(gt=0, le=limits.IMPORT_UPLOAD_BYTES, description="The file's size in bytes (at most 256 MiB)")


class Upload(BaseModel):
    id: str
    file_name: str
    size: int
    received: int = Field(description="Bytes received so far: the offset of the next chunk")
    complete: bool


class UploadImport(BaseModel):
    dedup_key: Literal["tax_id", "name_region"] = "tax_id"
    on_match: Literal["skip", "update", "flag"] = "skip"
    column_mapping: dict[str, str] = Field(default_factory=dict, description="Header text -> field ("" ignores "
                                           f"the column). Fields: {', '.join(_ROW_FIELDS)}")


_CONTENT_RANGE = re.compile(r"^bytes (\d{1,12})-(\d{1,12})/(\d{1,12}|\*)$")


def _upload_json(m: pb.ImportUpload) -> Upload:
    return Upload(id=m.id, file_name=m.file_name, size=m.size, received=m.received, complete=m.complete)


def _upload_response(m: pb.ImportUpload, status_code: int = 200) -> Response:
    headers = {"Upload-Offset": str(m.received), "Location": f"/api/v1/imports/uploads/{m.id}"}
    return _json(_upload_json(m), status_code, headers)


@router.post("/imports/uploads", status_code=201, response_model=Upload,
             summary="Open a resumable upload of an import file",
             description="For files over 7 MiB (up to 256 MiB and 200,000 rows) or flaky connections: send the "
                         "bytes with PUT in chunks, then start the import from the upload.")
async def create_upload(body: UploadCreate, request: Request, caller: Caller = _WRITE) -> Response:
    reply = await _stub(request).CreateImportUpload(pb.CreateImportUploadRequest(
        file_name=body.file_name, size=body.size), metadata=caller.metadata)
    return _upload_response(reply.upload, 201)


@router.put("/imports/uploads/{upload_id}", response_model=Upload, summary="Send a chunk of an upload",
            description="Body: the raw bytes (application/octet-stream, at most 1 MiB); header `Content-Range: "
                        "bytes first-last/size`. `first` must be the upload's received offset; sending a chunk "
                        "already received again changes nothing. 409 UPLOAD_OFFSET_MISMATCH names the offset "
                        "(`received`) to go on from.",
            openapi_extra={"requestBody": {"required": True, "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}})
async def put_chunk(upload_id: UUID, request: Request, caller: Caller = _WRITE,
                    content_range: str = Header(..., alias="Content-Range", max_length=100)) -> Response:
    match = _CONTENT_RANGE.match(content_range.strip())
    if match is None:
        raise InvalidArgument.of("Content-Range", "must be `bytes first-last/size`")
    first, last = int(match[1]), int(match[2])
    data = await request.body()
    if last < first or last - first + 1 != len(data):
        raise InvalidArgument.of("Content-Range", f"bytes {first}-{last} do not match a body of {len(data)} bytes")
    reply = await _stub(request).AppendImportUploadChunk(pb.AppendImportUploadChunkRequest(
        id=str(upload_id), offset=first, data=data, total=0 if match[3] == "*" else int(match[3])),
        metadata=caller.metadata)
    return _upload_response(reply.upload)


@router.get("/imports/uploads/{upload_id}", response_model=Upload, summary="Where an upload stands",
            description="`received` (and the `Upload-Offset` header) is where to resume.")
async def get_upload(upload_id: UUID, request: Request, caller: Caller = _WRITE) -> Response:
    reply = await _stub(request).GetImportUpload(pb.GetImportUploadRequest(id=str(upload_id)),
                                                 metadata=caller.metadata)
    return _upload_response(reply.upload)


@router.post("/imports/uploads/{upload_id}/import", status_code=202, response_model=Import,
             summary="Start the import of a complete upload (dry run in the background)",
             description="Answers at once in status validating; poll GET /api/v1/imports/{id}: dry_run (then GET "
                         "…/errors for the report and POST …/commit) or refused with the reason.")
async def import_upload(upload_id: UUID, request: Request, caller: Caller = _WRITE,
                        body: UploadImport | None = None) -> Response:
    body = body or UploadImport()
    reply = await _stub(request).StartImport(pb.StartImportRequest(
        upload_id=str(upload_id), dedup_key=_DEDUP[body.dedup_key], on_match=_ON_MATCH[body.on_match],
        column_mapping=_mapping(body.column_mapping)), metadata=caller.metadata)
    return _json(_import_json(reply.import_job), 202, {"Location": f"/api/v1/imports/{reply.import_job.id}"})


@router.get("/imports/{import_id}", response_model=Import, summary="An import's status and progress")
async def get_import(import_id: UUID, request: Request, caller: Caller = _WRITE) -> Response:
    reply = await _stub(request).GetImport(pb.GetImportRequest(id=str(import_id)), metadata=caller.metadata)
    return _json(_import_json(reply.import_job))


@router.post("/imports/{import_id}/commit", status_code=202, response_model=Import,
             summary="Apply a dry-run import (in the background)",
             description="Valid rows are written even when others are rejected. Poll GET /api/v1/imports/{id} "
                         "for progress. Committing again resumes an interrupted import and leaves a finished one "
                         "as it is.")
async def commit_import(import_id: UUID, request: Request, caller: Caller = _WRITE) -> Response:
    reply = await _stub(request).CommitImport(pb.CommitImportRequest(id=str(import_id)), metadata=caller.metadata)
    return _json(_import_json(reply.import_job), 202)


@router.post("/imports/{import_id}/revert", status_code=202, response_model=Import,
             summary="Undo a finished import (in the background)",
             description="Deletes the customers it created and restores the fields it changed on the ones it "
                         "updated, removing the contacts it added to them.")
async def revert_import(import_id: UUID, request: Request, caller: Caller = _WRITE) -> Response:
    reply = await _stub(request).RevertImport(pb.RevertImportRequest(id=str(import_id)), metadata=caller.metadata)
    return _json(_import_json(reply.import_job), 202)


# `+86 138 0013 8000`, `-12.5`: a sign followed by a number or phone number is data, not a formula.
_SIGNED_NUMBER = re.compile(r"^[+-][\d\s().\-]*\d[\d\s().\-]*$")


def defuse(value: str) -> str:
    """A cell a spreadsheet would run as a formula gets a leading apostrophe (the error file holds
    the rejected formulas themselves; an export holds whatever was typed). Phone numbers and
    signed numbers stay as they are, so an export imports again."""
    first = value[:1]
    if first in ("=", "@", "\t", "\r") or (first in ("+", "-") and not _SIGNED_NUMBER.match(value)):
        return "'" + value
    return value


@router.get("/imports/{import_id}/errors", summary="The error file: rejected, skipped and flagged rows (CSV)",
            response_class=StreamingResponse, responses={200: {"content": {"text/csv": {}}}})
async def import_errors(import_id: UUID, request: Request, caller: Caller = _WRITE) -> Response:
    stub = _stub(request)
    # The first page is fetched before answering, so an unknown import is a 404, not a broken download.
    first = await stub.ListImportIssues(pb.ListImportIssuesRequest(id=str(import_id), page_size=200),
                                        metadata=caller.metadata)

    async def rows() -> AsyncIterator[bytes]:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow([*_ROW_FIELDS, "line", "outcome", "reason"])
        yield ("\ufeff" + out.getvalue()).encode()
        page = first
        while True:
            out.seek(0)
            out.truncate()
            for issue in page.issues:
                writer.writerow([*(defuse(issue.cells.get(f, "")) for f in _ROW_FIELDS), issue.line, issue.outcome,
                                 defuse("; ".join(issue.reasons))])
            yield out.getvalue().encode()
            if not page.next_page_token:
                return
            page = await stub.ListImportIssues(pb.ListImportIssuesRequest(
                id=str(import_id), page_size=200, page_token=page.next_page_token), metadata=caller.metadata)

    return StreamingResponse(rows(), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="import-{import_id}-errors.csv"'})


# Export (R-CUS-03: "export customers and contacts") ---------------------------------------------

EXPORT_COLUMNS = ("id", *_FIELDS, "owner_id", "team_id", "lifecycle_stage", "created_at")
_XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _export_rows(exported: pb.ExportedCustomer) -> list[list[str]]:
    """One row per contact (a customer without contacts: one row), in the import template's
    columns, so an export can be imported again."""
    c = exported.customer
    customer = [c.id, c.name, c.tax_id, pb.Origin.Name(c.origin).removeprefix("ORIGIN_").lower(), c.industry,
                c.region, pb.CustomerStatus.Name(c.status).removeprefix("CUSTOMER_STATUS_").lower(),
                ";".join(c.tags), c.addresses[0].line if c.addresses else ""]
    tail = [c.owner_id, c.team_id, c.lifecycle_stage and _stage(c.lifecycle_stage),
            c.create_time.ToDatetime().isoformat() + "Z"]
    contacts = [[k.name, k.title, ";".join(k.phones), k.email, k.wechat] for k in exported.contacts] or \
        [["", "", "", "", ""]]
    return [[defuse(v) for v in [*customer, *contact, *tail]] for contact in contacts]


def _stage(value: int) -> str:
    from crm.common.v1 import lifecycle_pb2

    return lifecycle_pb2.LifecycleStage.Name(value).removeprefix("LIFECYCLE_STAGE_").lower()


async def _pages(stub: Any, caller: Caller) -> AsyncIterator[pb.ExportCustomersResponse]:
    token = ""
    while True:
        page = await stub.ExportCustomers(pb.ExportCustomersRequest(page_size=200, page_token=token),
                                          metadata=caller.metadata)
        yield page
        token = page.next_page_token
        if not token:
            return


@router.get("/customers/export", tags=["customers"], summary="Export customers and contacts (CSV or Excel)",
            description="Every customer in your data scope with its contacts, one row per contact, in the import "
                        "template's columns. Phones and tax IDs are masked unless you may see them. Streamed.",
            response_class=StreamingResponse, responses={200: {"content": {"text/csv": {}, _XLSX: {}}}})
async def export_customers(request: Request, caller: Caller = _EXPORT,
                           format: Literal["csv", "xlsx"] = Query("csv")) -> Response:
    stub = _stub(request)
    pages = _pages(stub, caller)
    # The first page is read before answering, so a refused call is a problem, not a broken download.
    first = await anext(pages)
    if format == "xlsx":
        return await _export_xlsx(first, pages)

    async def rows() -> AsyncIterator[bytes]:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(EXPORT_COLUMNS)
        yield ("\ufeff" + out.getvalue()).encode()
        page: pb.ExportCustomersResponse | None = first
        while page is not None:
            out.seek(0)
            out.truncate()
            for exported in page.customers:
                writer.writerows(_export_rows(exported))
            yield out.getvalue().encode()
            page = await anext(pages, None)

    return StreamingResponse(rows(), media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": 'attachment; filename="customers.csv"'})


async def _export_xlsx(first: pb.ExportCustomersResponse,
                       pages: AsyncIterator[pb.ExportCustomersResponse]) -> Response:
    """A workbook cannot be sent before it is complete (it is a zip): openpyxl's write-only mode
    keeps the rows in a temporary file, not in memory, and the finished file is streamed."""
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("customers")
    sheet.append(list(EXPORT_COLUMNS))
    page: pb.ExportCustomersResponse | None = first
    while page is not None:
        for exported in page.customers:
            for row in _export_rows(exported):
                sheet.append(row)
        page = await anext(pages, None)
    spool = tempfile.TemporaryFile()
    workbook.save(spool)
    spool.seek(0)

    def chunks() -> Any:
        with spool:
            while chunk := spool.read(65_536):
                yield chunk

    return StreamingResponse(chunks(), media_type=_XLSX,
                             headers={"Content-Disposition": 'attachment; filename="customers.xlsx"'})
