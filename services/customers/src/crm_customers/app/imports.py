"""Bulk import use cases (R-CUS-03): dry run, commit (resumable, in batches), revert, the error
file, and resumable chunked uploads. The file is read and validated once by the dry run; each
row's cells are kept (sealed) in `import_rows`, so the commit never needs the file again.

Memory does not grow with the file: rows are read from a (spooled) file one at a time, matched
and stored `BATCH` at a time, and repeats of a key within the file are found in SQL (a blind
index of each row's key in `import_rows.dedup`), not in a dictionary of every key seen.

- Upload (`create_upload`, `append_chunk`, `get_upload`): the file arrives in chunks at byte
  offsets into the database (any replica takes any chunk); a client that lost its connection asks
  for the received offset and goes on from there. `start_import_from_upload` starts the dry run
  of a complete upload in the background (status `validating`; `refused` with the reason when the
  file cannot be imported at all).
- Dry run (`start_import`, `run_dry_run`): parses the file, matches every valid row against
  existing customers by the chosen key (tax ID through the blind index, as duplicate detection
  does; or name + region, ignoring case) a batch at a time, and records what the commit would do.
  One transaction: a file refused halfway leaves nothing. Writes no customer and no event.
- Commit (`commit_import`): re-validates and re-matches each row against the database as it is
  now, writes in batches of `BATCH` rows, each batch one transaction with its rows' outcomes and
  the outbox events of the single-record paths (customer.created, contact.added,
  customer.updated); new customers, their tags and contacts are inserted a batch per statement.
  Re-running it after a crash continues after the last committed batch.
- Revert (`revert_import`): soft-deletes the customers the import created (customer.deleted) and
  restores the fields it changed on the ones it updated from their before-images
  (customer.updated), removing the contacts it added to them.

Only the principal who started an import sees and acts on it (any other gets NOT_FOUND).
"""

from __future__ import annotations

import datetime as dt
import io
import json
import tempfile
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from itertools import islice
from typing import Any, BinaryIO, Protocol

import grpc
from sqlalchemy import bindparam, delete, func, insert, or_, select, text, tuple_, update
from sqlalchemy.exc import IntegrityError

from crm.customers.v1 import events_pb2 as ev
from crm_customers.adapters import sensitive
from crm_customers.adapters.repository import CustomerRepository, _contact_values, _customer_values, in_scope
from crm_customers.adapters.tables import (
    contacts,
    customer_tags,
    customers,
    import_rows,
    import_upload_chunks,
    import_uploads,
    imports,
)
from crm_customers.app.messages import contact_to_pb, customer_scope, customer_to_pb
from crm_customers.domain.imports import (
    FIELDS,
    MAX_ROWS,
    TEMPLATE_HEADER,
    Cell,
    ColumnMap,
    DedupKey,
    ImportRow,
    IndustryIndex,
    OnMatch,
    dedup_key,
    iter_rows,
    looks_like_formula,
    parse_row,
)
from crm_customers.domain.model import (
    Address,
    AddressKind,
    Customer,
    CustomerStatus,
    Origin,
    changed_fields,
    normalise_customer,
)
from crm_customers.domain.text import clean
from crmkit import limits
from crmkit.auth import Principal
from crmkit.auth.principal import SYSTEM
from crmkit.db import UnitOfWork
from crmkit.errors import Conflict, InvalidArgument, NotFound, PermissionDenied, Unavailable
from crmkit.ids import new_id
from crmkit.scopes import may_assign

BATCH = 500
_DATA = "import_rows.data"
_BEFORE = "import_rows.before"
_IDENTITY = ColumnMap({i: f for i, f in enumerate(FIELDS)}, ())
# The customer fields an import may set, and the Customer attributes they land in.
_IMPORTED_ATTRS = {"name": "name", "tax_id": "tax_id", "origin": "origin", "industry": "industry",
                   "region": "region", "status": "status", "tags": "tags", "address": "addresses"}
ISSUE_OUTCOMES = ("reject", "rejected", "flag", "flagged", "skip", "skipped")
# Below the services' gRPC message limit (8 MiB), with room for the rest of the request.
MAX_FILE_BYTES = 7 * 1024 * 1024
# Resumable uploads: a chunk fits one gRPC message; a file holds MAX_ROWS rows of a few hundred
# bytes with room to spare; an unfinished upload is dropped after a day.
MAX_CHUNK_BYTES = 4 * 1024 * 1024
MAX_UPLOAD_BYTES = limits.IMPORT_UPLOAD_BYTES
UPLOAD_TTL = dt.timedelta(hours=24)
# A file read from the database spills from memory to a temporary file beyond this.
SPOOL_BYTES = 1024 * 1024
# How many issues a dry run answers with; ListImportIssues pages through the rest.
ISSUE_PREVIEW = 1000
_DEDUP_FIELD = "import_rows.dedup"
PAST = {"create": "created", "update": "updated", "skip": "skipped", "flag": "flagged", "reject": "rejected"}


@dataclass(frozen=True)
class ImportJob:
    id: uuid.UUID
    status: str
    dedup_key: str
    on_match: str
    file_name: str
    total: int
    planned: dict[str, int]
    counts: dict[str, int]
    processed: int
    error: str
    created_by: str


@dataclass(frozen=True)
class Owner:
    """A user an import row may name as the owner of the customer it creates."""

    user_id: str
    team_id: str
    department_path: str
    login: str = ""


class OwnerDirectory(Protocol):
    async def resolve(self, names: set[str]) -> dict[str, Owner | None]:
        """Each login or user id -> the active user, or None."""
        ...


_owners: OwnerDirectory | None = None


async def known_owner(user_id: str) -> Owner | None:
    """`user_id` in identity's org chart (team, department path), when the directory is wired."""
    if _owners is None:
        return None
    return (await _owners.resolve({user_id})).get(user_id)


def configure_owners(directory: OwnerDirectory | None) -> None:
    """Wiring (main.wire): where the owner column's logins (and a new owner's department on
    reassignment) are looked up."""
    global _owners
    _owners = directory


@dataclass(frozen=True)
class RowReport:
    line: int
    outcome: str
    reasons: tuple[str, ...]
    customer_id: uuid.UUID | None
    raw: dict[str, str]


def _job(row: Any) -> ImportJob:
    return ImportJob(id=row.id, status=row.status, dedup_key=row.dedup_key, on_match=row.on_match,
                     file_name=row.file_name, total=row.total, planned=dict(row.planned), counts=dict(row.counts),
                     processed=row.processed, error=row.error, created_by=row.created_by)


def _seal(value: dict[str, Any], field: str) -> str:
    return sensitive.seal(json.dumps(value, ensure_ascii=False), field)


def _open(value: str, field: str) -> dict[str, Any]:
    return json.loads(sensitive.reveal(value, field))


@dataclass(frozen=True)
class _Holder:
    """An existing live customer a row matches, whoever owns it."""

    id: uuid.UUID
    name: str


async def _holders_by_tax_id(session: Any, tax_ids: set[str]) -> dict[str, _Holder]:
    """tax ID -> the live customer holding it: by the blind index, or by the plaintext of a row
    not yet re-encrypted (migration 0002)."""
    if not tax_ids:
        return {}
    by_index = {sensitive.tax_id_index(t): t for t in tax_ids}
    rows = await session.execute(
        select(customers.c.id, customers.c.name, customers.c.tax_id_index, customers.c.tax_id)
        .where(or_(customers.c.tax_id_index.in_(list(by_index)), customers.c.tax_id.in_(list(tax_ids))),
               customers.c.deleted_at.is_(None)))
    found: dict[str, _Holder] = {}
    for r in rows:
        tax_id = by_index.get(r.tax_id_index) or (r.tax_id if r.tax_id in tax_ids else None)
        if tax_id:
            found.setdefault(tax_id, _Holder(r.id, r.name))
    return found


def _name_region(customer: Customer) -> tuple[str, str]:
    return customer.name.lower(), customer.region.lower()


async def _holders_by_name_region(session: Any, keys: set[tuple[str, str]]) -> dict[tuple[str, str], _Holder]:
    if not keys:
        return {}
    lname, lregion = func.lower(customers.c.name), func.lower(customers.c.region)
    rows = await session.execute(
        select(customers.c.id, customers.c.name, lname.label("lname"), lregion.label("lregion"))
        .where(tuple_(lname, lregion).in_(list(keys)), customers.c.deleted_at.is_(None))
        .order_by(customers.c.created_at))
    found: dict[tuple[str, str], _Holder] = {}
    for r in rows:
        found.setdefault((r.lname, r.lregion), _Holder(r.id, r.name))
    return found


async def _visible(session: Any, principal: Principal, ids: set[uuid.UUID]) -> set[uuid.UUID]:
    if not ids:
        return set()
    rows = await session.execute(select(customers.c.id).where(customers.c.id.in_(list(ids)), in_scope(principal)))
    return {r.id for r in rows}


async def _assign_owners(rows: list[ImportRow]) -> list[ImportRow]:
    """Rows whose owner column names someone: the customer goes to that user, their first team
    and their department (the data-scope check follows in _decide_batch); a name that is no
    active user rejects the row. Applies to customers the import creates: an update never moves
    an existing customer to another owner (that is a reassignment, with its own rules)."""
    named = {row.line: clean(row.raw.get("owner", "")) for row in rows if row.valid and row.raw.get("owner")}
    named = {line: name for line, name in named.items() if name}
    if not named:
        return rows
    if _owners is None:
        found: dict[str, Owner | None] = {}
        missing = "cannot be looked up (the org chart is not reachable from this service)"
    else:
        try:
            found = await _owners.resolve(set(named.values()))
        except grpc.RpcError as exc:
            raise Unavailable("the org chart (identity service) is unavailable to resolve the owner column; "
                              "try again shortly") from exc
        missing = "is not an active user's login or id"
    out = []
    for row in rows:
        name = named.get(row.line)
        if name is None or row.customer is None:
            out.append(row)
            continue
        owner = found.get(name)
        if owner is None:
            out.append(replace(row, customer=None, contact=None, reasons=(f"owner: {name!r} {missing}",)))
            continue
        out.append(replace(row, customer=replace(row.customer, owner_id=owner.user_id, team_id=owner.team_id,
                                                 department_path=owner.department_path)))
    return out


Decision = tuple[str, list[str], _Holder | None]


async def _decide_batch(session: Any, principal: Principal, rows: list[ImportRow], key: DedupKey,
                        on_match: OnMatch) -> list[Decision]:
    """What to do with each parsed row of a batch: (outcome, reasons, matched customer or None).
    Three queries per batch whatever its size: holders by key, holders by tax ID, visibility."""
    valid = [r.customer for r in rows if r.valid and r.customer is not None]
    by_tax = await _holders_by_tax_id(session, {c.tax_id for c in valid if c.tax_id})
    by_name = await _holders_by_name_region(session, {_name_region(c) for c in valid}) \
        if key == DedupKey.NAME_REGION else {}
    holders = by_name if key == DedupKey.NAME_REGION else by_tax
    visible = await _visible(session, principal, {h.id for h in holders.values()})
    decisions: list[Decision] = []
    for row in rows:
        customer = row.customer
        if not row.valid or customer is None:
            decisions.append(("reject", list(row.reasons), None))
            continue
        match = by_tax.get(customer.tax_id) if key == DedupKey.TAX_ID else by_name.get(_name_region(customer))
        if match is None:
            if not may_assign(principal, owner_id=customer.owner_id, team_id=customer.team_id,
                              department_path=customer.department_path):
                whose = "" if customer.owner_id == principal.subject else f" for owner {customer.owner_id}"
                decisions.append(("reject", [f"you may not create customers{whose} (data scope)"], None))
            elif key == DedupKey.NAME_REGION and customer.tax_id and customer.tax_id in by_tax:
                decisions.append(("reject", [f"tax_id: another customer already has tax ID {customer.tax_id}"],
                                  None))
            else:
                decisions.append(("create", [], None))
            continue
        seen = match.id in visible
        described = f"customer {match.name!r} ({match.id})" if seen else \
            "a customer owned by another team (ask your manager to have it shared with you)"
        if on_match == OnMatch.SKIP:
            decisions.append(("skip", [f"matches {described}"], match))
        elif on_match == OnMatch.FLAG:
            decisions.append(("flag", [f"matches {described}; review it by hand"], match))
        elif not seen:
            decisions.append(("reject", [f"matches {described}; it cannot be updated"], None))
        else:
            decisions.append(("update", [f"updates {described}"], match))
    return decisions


async def _owned_job(uow: UnitOfWork, principal: Principal, import_id: uuid.UUID, *,
                     for_update: bool = False) -> ImportJob:
    query = select(imports).where(imports.c.id == import_id, imports.c.created_by == principal.subject)
    if for_update:
        query = query.with_for_update()
    row = (await uow.session.execute(query)).first()
    if row is None:
        raise NotFound(f"import {import_id} not found", metadata={"import_id": str(import_id)})
    return _job(row)


@dataclass(frozen=True)
class ImportOptions:
    key: DedupKey
    on_match: OnMatch
    mapping: dict[str, str]


def import_options(key: str = "tax_id", on_match: str = "skip",
                   mapping: Mapping[str, str] | None = None) -> ImportOptions:
    try:
        return ImportOptions(DedupKey(key), OnMatch(on_match), dict(mapping or {}))
    except ValueError:
        raise InvalidArgument.of("options", "dedup key must be tax_id or name_region; on_match skip, update "
                                            "or flag") from None


def _defaults(principal: Principal) -> tuple[str, str]:
    """The team and department of the customers an import creates; refused if the caller's scope
    does not even allow creating their own."""
    team_id = principal.team_ids[0] if principal.team_ids else ""
    if not may_assign(principal, owner_id=principal.subject, team_id=team_id,
                      department_path=principal.department_path):
        raise PermissionDenied("your data scope may not create customers", reason="ASSIGNMENT_OUT_OF_SCOPE")
    return team_id, principal.department_path


async def _new_job(uow: UnitOfWork, principal: Principal, options: ImportOptions, file_name: str,
                   status: str) -> uuid.UUID:
    team_id, department_path = _defaults(principal)
    import_id = new_id()
    await uow.session.execute(insert(imports).values(
        id=import_id, created_by=principal.subject, owner_id=principal.subject, team_id=team_id,
        department_path=department_path, file_name=file_name[:200], dedup_key=options.key.value,
        on_match=options.on_match.value, status=status, total=0))
    return import_id


async def start_import(uow: UnitOfWork, principal: Principal, data: bytes, *, file_name: str = "",
                       key: str = "tax_id", on_match: str = "skip", mapping: Mapping[str, str] | None = None,
                       max_rows: int = MAX_ROWS) -> tuple[ImportJob, list[RowReport]]:
    """The dry run of a file sent whole (up to MAX_FILE_BYTES): records each row's planned
    outcome in one transaction; returns the import and its first issues (rejected, skipped or
    flagged rows with their reasons)."""
    options = import_options(key, on_match, mapping)
    if len(data) > MAX_FILE_BYTES:
        raise InvalidArgument.of("file", f"is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB; upload it in "
                                         "chunks (POST /api/v1/imports/uploads) or split it")
    import_id = await _new_job(uow, principal, options, file_name, "validating")
    await run_dry_run(uow, principal, import_id, io.BytesIO(data), options, max_rows=max_rows)
    await uow.commit()
    job = await _owned_job(uow, principal, import_id)
    return job, await list_issues(uow, principal, import_id, limit=ISSUE_PREVIEW + 1)


async def run_dry_run(uow: UnitOfWork, principal: Principal, import_id: uuid.UUID, file: BinaryIO,
                      options: ImportOptions, *, max_rows: int = MAX_ROWS) -> None:
    """Reads, validates and matches every row of `file`, `BATCH` at a time, and records the
    planned outcomes; leaves the import in `dry_run`. Does not commit: the caller's transaction
    holds the whole dry run, so a file refused halfway (InvalidArgument) leaves nothing."""
    record = (await uow.session.execute(select(imports).where(imports.c.id == import_id))).one()
    industries = IndustryIndex(await CustomerRepository(uow.session).list_industries())
    rows = iter_rows(file, industries, owner_id=record.owner_id, team_id=record.team_id,
                     department_path=record.department_path, created_by=record.created_by,
                     mapping=options.mapping, max_rows=max_rows)
    total = 0
    while batch := list(islice(rows, BATCH)):
        batch = await _assign_owners(batch)
        decisions = await _decide_batch(uow.session, principal, batch, options.key, options.on_match)
        await uow.session.execute(insert(import_rows), [
            {"import_id": import_id, "line": row.line, "data": _seal(row.raw, _DATA), "outcome": outcome,
             "reasons": reasons, "dedup": _dedup_of(row, options.key)}
            for row, (outcome, reasons, _) in zip(batch, decisions, strict=True)])
        total += len(batch)
    await _reject_repeats(uow.session, import_id)
    planned = {k: 0 for k in PAST}
    for outcome, n in await uow.session.execute(
            select(import_rows.c.outcome, func.count()).where(import_rows.c.import_id == import_id)
            .group_by(import_rows.c.outcome)):
        planned[outcome] = n
    await uow.session.execute(update(imports).where(imports.c.id == import_id).values(
        status="dry_run", total=total, planned=planned, updated_at=func.now()))


async def _reject_repeats(session: Any, import_id: uuid.UUID) -> None:
    """A key that repeats within the file: the first row stands, the others are rejected naming
    it. One scan and sort finds the repeats (streamed from a server-side cursor); each is then
    updated by primary key. (Not one UPDATE … FROM: the rows were inserted by this very
    transaction, so the planner has no statistics for them and may pick a nested loop.)"""
    repeats = await session.stream(text(
        "SELECT line, first FROM (SELECT line, min(line) OVER (PARTITION BY dedup) AS first FROM import_rows "
        "WHERE import_id = :id AND dedup IS NOT NULL) f WHERE line > first"), {"id": import_id})
    async for part in repeats.partitions(BATCH):
        await session.execute(
            update(import_rows).where(import_rows.c.import_id == import_id, import_rows.c.line == bindparam("b_line"))
            .values(outcome="reject", reasons=bindparam("b_reasons")).execution_options(synchronize_session=False),
            [{"b_line": line, "b_reasons": [f"the same customer as line {first} of this file"]}
             for line, first in part])


def _dedup_of(row: ImportRow, key: DedupKey) -> str | None:
    if not row.valid or row.customer is None:
        return None
    value = dedup_key(row.customer, key)
    return sensitive.cipher().blind_index(value, _DEDUP_FIELD) if value else None


async def get_import(uow: UnitOfWork, principal: Principal, import_id: uuid.UUID) -> ImportJob:
    return await _owned_job(uow, principal, import_id)


async def commit_import(uow: UnitOfWork, principal: Principal, import_id: uuid.UUID) -> ImportJob:
    """Applies the import in batches. Idempotent: a finished import is returned as it is; an
    interrupted or failed one continues after its last committed batch."""
    job = await begin_commit(uow, principal, import_id)
    if job.status != "running":
        return job
    return await run_commit(uow, principal, import_id)


async def begin_commit(uow: UnitOfWork, principal: Principal, import_id: uuid.UUID) -> ImportJob:
    """Checks the import may be committed and marks it running (what the API answers before the
    batches run in the background)."""
    job = await _owned_job(uow, principal, import_id, for_update=True)
    if job.status == "done":
        return job
    if job.status in ("reverting", "reverted"):
        raise Conflict(f"import {import_id} was reverted; start a new import", reason="IMPORT_REVERTED")
    if job.status in ("validating", "refused"):
        raise Conflict(f"import {import_id} is {job.status}; only a checked file can be committed",
                       reason="IMPORT_NOT_CHECKED")
    await uow.session.execute(update(imports).where(imports.c.id == import_id)
                              .values(status="running", error="", updated_at=func.now()))
    await uow.commit()
    return await _owned_job(uow, principal, import_id)


async def record_failure(uow: UnitOfWork, import_id: uuid.UUID, error: str) -> None:
    """A background commit or revert stopped: the commit is marked failed (it resumes when
    committed again), a revert stays reverting with the error (it resumes when reverted again)."""
    await uow.session.execute(update(imports).where(imports.c.id == import_id, imports.c.status == "running")
                              .values(status="failed"))
    await uow.session.execute(update(imports).where(imports.c.id == import_id, imports.c.status == "validating")
                              .values(status="refused"))
    await uow.session.execute(update(imports).where(imports.c.id == import_id)
                              .values(error=error[:500], updated_at=func.now()))
    await uow.commit()


async def run_commit(uow: UnitOfWork, principal: Principal, import_id: uuid.UUID) -> ImportJob:
    repo = CustomerRepository(uow.session)
    industries = IndustryIndex(await repo.list_industries())
    after_line = 0  # batches go forward: no rescan of the applied rows before them
    while True:
        record = (await uow.session.execute(select(imports).where(imports.c.id == import_id)
                                            .with_for_update())).one()
        if record.status != "running":
            return _job(record)  # a concurrent commit finished it
        rows = (await uow.session.execute(
            select(import_rows).where(import_rows.c.import_id == import_id, import_rows.c.line > after_line,
                                      import_rows.c.applied.is_(False))
            .order_by(import_rows.c.line).limit(BATCH))).all()
        if not rows:
            await uow.session.execute(update(imports).where(imports.c.id == import_id)
                                      .values(status="done", updated_at=func.now()))
            await uow.commit()
            return await _owned_job(uow, principal, import_id)
        counts = dict(record.counts)
        outcomes: list[dict[str, Any]] = []
        for line, (outcome, reasons, customer_id, contact_id, before) in \
                (await _apply_batch(uow, repo, principal, record, rows, industries)).items():
            counts[PAST[outcome]] = counts.get(PAST[outcome], 0) + 1
            outcomes.append({"b_line": line, "b_outcome": PAST[outcome], "b_reasons": reasons,
                             "b_customer_id": customer_id, "b_contact_id": contact_id, "b_before": before})
        await uow.session.execute(
            update(import_rows).where(import_rows.c.import_id == import_id, import_rows.c.line == bindparam("b_line"))
            .values(applied=True, outcome=bindparam("b_outcome"), reasons=bindparam("b_reasons"),
                    customer_id=bindparam("b_customer_id"), contact_id=bindparam("b_contact_id"),
                    before=bindparam("b_before")).execution_options(synchronize_session=False), outcomes)
        await uow.session.execute(update(imports).where(imports.c.id == import_id).values(
            counts=counts, processed=imports.c.processed + len(rows), updated_at=func.now()))
        await uow.commit()
        after_line = rows[-1].line


Applied = tuple[str, list[str], uuid.UUID | None, uuid.UUID | None, str | None]


async def _apply_batch(uow: UnitOfWork, repo: CustomerRepository, principal: Principal, job: Any,
                       stored_rows: list[Any], industries: IndustryIndex) -> dict[int, Applied]:
    """Re-validates and re-matches a batch of stored rows, then applies it: the creates in a few
    multi-row statements (one at a time if one of them collides with a concurrent write), the
    updates one by one. Returns each line's outcome."""
    results: dict[int, Applied] = {}
    parsed: list[ImportRow] = []
    for stored in stored_rows:
        if stored.outcome == "reject":
            results[stored.line] = ("reject", list(stored.reasons), None, None, None)
            continue
        raw = _open(stored.data, _DATA)
        parsed.append(parse_row(stored.line, [Cell(raw.get(f, "")) for f in FIELDS], _IDENTITY, industries,
                                owner_id=job.owner_id, team_id=job.team_id, department_path=job.department_path,
                                created_by=job.created_by))
    parsed = await _assign_owners(parsed)
    decisions = await _decide_batch(uow.session, principal, parsed, DedupKey(job.dedup_key), OnMatch(job.on_match))
    creates = [row for row, d in zip(parsed, decisions, strict=True) if d[0] == "create"]
    try:
        async with uow.session.begin_nested():
            created = await _create_many(uow.session, creates)
    except IntegrityError:
        created = {}
        for row in creates:
            created.update(await _create_one(uow.session, row))
    for row, (outcome, reasons, match) in zip(parsed, decisions, strict=True):
        if outcome == "create":
            if row.line not in created:
                results[row.line] = ("reject", ["tax_id: another customer took this tax ID during the import"],
                                     None, None, None)
                continue
            customer, contact = created[row.line]
            uow.emit(ev.CustomerCreated(customer=customer_to_pb(customer)), subject_id=str(customer.id))
            if contact is not None:
                uow.emit(ev.ContactAdded(contact=contact_to_pb(contact), customer_scope=customer_scope(customer)),
                         subject_id=str(customer.id))
            results[row.line] = ("create", [], customer.id, contact.id if contact else None, None)
        elif outcome == "update":
            assert match is not None
            results[row.line] = await _update_from_row(uow, repo, principal, row, match.id, reasons)
        else:
            results[row.line] = (outcome, reasons, match.id if match else None, None, None)
    return results


Created = dict[int, tuple[Customer, Any]]


def _new_records(row: ImportRow, now: dt.datetime) -> tuple[Customer, Any]:
    assert row.customer is not None
    customer = replace(row.customer, id=new_id(), created_at=now, updated_at=now)
    contact = replace(row.contact, id=new_id(), customer_id=customer.id, created_at=now, updated_at=now) \
        if row.contact is not None else None
    return customer, contact


async def _create_many(session: Any, rows: list[ImportRow]) -> Created:
    if not rows:
        return {}
    now = dt.datetime.now(dt.UTC)
    made = {row.line: _new_records(row, now) for row in rows}
    await session.execute(insert(customers), [
        {"id": c.id, "created_by": c.created_by, "created_at": now, "updated_at": now, **_customer_values(c)}
        for c, _ in made.values()])
    tags = [{"customer_id": c.id, "tag": t} for c, _ in made.values() for t in c.tags]
    if tags:
        await session.execute(insert(customer_tags), tags)
    people = [{"id": k.id, "created_at": now, "updated_at": now, **_contact_values(k)}
              for _, k in made.values() if k is not None]
    if people:
        await session.execute(insert(contacts), people)
    return made


async def _create_one(session: Any, row: ImportRow) -> Created:
    try:
        async with session.begin_nested():
            return await _create_many(session, [row])
    except IntegrityError:
        return {}


async def _update_from_row(uow: UnitOfWork, repo: CustomerRepository, principal: Principal, row: ImportRow,
                           customer_id: uuid.UUID, reasons: list[str]) -> tuple[str, list[str], uuid.UUID,
                                                                               uuid.UUID | None, str | None]:
    assert row.customer is not None
    before = await repo.get(principal, customer_id, for_update=True)
    if before is None:
        return "reject", ["the matching customer is no longer visible to you"], customer_id, None, None
    attrs = {_IMPORTED_ATTRS[f]: getattr(row.customer, _IMPORTED_ATTRS[f]) for f in row.present}
    after = normalise_customer(replace(before, **attrs))
    changed = changed_fields(before, after)
    image = _seal(_image(before), _BEFORE)
    if changed:
        try:
            async with uow.session.begin_nested():
                saved = await repo.save(replace(after, version=before.version + 1))
        except IntegrityError:
            return "reject", ["tax_id: another customer already has this tax ID"], customer_id, None, None
        uow.emit(ev.CustomerUpdated(before=customer_to_pb(before), after=customer_to_pb(saved),
                                    changed_fields=changed), subject_id=str(customer_id))
    contact_id = None
    if row.contact is not None:
        existing = {c.name.casefold() for c in await repo.list_contacts(customer_id)}
        if row.contact.name.casefold() not in existing:
            contact = await repo.add_contact(replace(row.contact, id=new_id(), customer_id=customer_id,
                                                     is_key=False))
            uow.emit(ev.ContactAdded(contact=contact_to_pb(contact), customer_scope=customer_scope(before)),
                     subject_id=str(customer_id))
            contact_id = contact.id
    return "update", reasons, customer_id, contact_id, image


def _image(c: Customer) -> dict[str, Any]:
    return {"name": c.name, "tax_id": c.tax_id, "origin": c.origin.value, "industry": c.industry,
            "region": c.region, "status": c.status.value, "tags": list(c.tags),
            "addresses": [{"kind": a.kind.value, "line": a.line, "city": a.city, "province": a.province,
                           "country": a.country, "postal_code": a.postal_code} for a in c.addresses]}


def _from_image(image: dict[str, Any]) -> dict[str, Any]:
    return {"name": image["name"], "tax_id": image["tax_id"], "origin": Origin(image["origin"]),
            "industry": image["industry"], "region": image["region"], "status": CustomerStatus(image["status"]),
            "tags": tuple(image["tags"]),
            "addresses": tuple(Address(**{**a, "kind": AddressKind(a["kind"])}) for a in image["addresses"])}


async def revert_import(uow: UnitOfWork, principal: Principal, import_id: uuid.UUID) -> ImportJob:
    """Undoes a finished import: its created customers are deleted, its updated ones restored.
    Resumable like the commit; a reverted import stays reverted."""
    job = await begin_revert(uow, principal, import_id)
    if job.status != "reverting":
        return job
    return await run_revert(uow, principal, import_id)


async def begin_revert(uow: UnitOfWork, principal: Principal, import_id: uuid.UUID) -> ImportJob:
    job = await _owned_job(uow, principal, import_id, for_update=True)
    if job.status == "reverted":
        return job
    if job.status not in ("done", "reverting"):
        raise Conflict(f"import {import_id} is {job.status}; only a finished import can be reverted",
                       reason="IMPORT_NOT_FINISHED")
    await uow.session.execute(update(imports).where(imports.c.id == import_id)
                              .values(status="reverting", error="", updated_at=func.now()))
    await uow.commit()
    return await _owned_job(uow, principal, import_id)


async def run_revert(uow: UnitOfWork, principal: Principal, import_id: uuid.UUID) -> ImportJob:
    repo = CustomerRepository(uow.session)
    while True:
        await uow.session.execute(select(imports.c.id).where(imports.c.id == import_id).with_for_update())
        rows = (await uow.session.execute(
            select(import_rows).where(import_rows.c.import_id == import_id, import_rows.c.reverted.is_(False),
                                      import_rows.c.outcome.in_(("created", "updated")))
            .order_by(import_rows.c.line).limit(BATCH))).all()
        if not rows:
            await uow.session.execute(update(imports).where(imports.c.id == import_id)
                                      .values(status="reverted", updated_at=func.now()))
            await uow.commit()
            return await _owned_job(uow, principal, import_id)
        for stored in rows:
            await _revert_row(uow, repo, stored)
            await uow.session.execute(
                update(import_rows).where(import_rows.c.import_id == import_id, import_rows.c.line == stored.line)
                .values(reverted=True))
        await uow.commit()


async def _revert_row(uow: UnitOfWork, repo: CustomerRepository, stored: Any) -> None:
    # SYSTEM: the import's own records are reverted even if they have since left the caller's scope.
    current = await repo.get(SYSTEM, stored.customer_id, for_update=True)
    if current is None:
        return  # deleted since: nothing to undo
    if stored.outcome == "created":
        await repo.mark_deleted(current.id)
        uow.emit(ev.CustomerDeleted(customer=customer_to_pb(current)), subject_id=str(current.id))
        return
    if stored.contact_id is not None:
        contact = await repo.get_contact(current.id, stored.contact_id, for_update=True)
        if contact is not None:
            await repo.remove_contact(contact.id)
            uow.emit(ev.ContactRemoved(contact=contact_to_pb(contact), customer_scope=customer_scope(current)),
                     subject_id=str(current.id))
    restored = replace(current, **_from_image(_open(stored.before, _BEFORE)))
    changed = changed_fields(current, restored)
    if changed:
        try:
            async with uow.session.begin_nested():
                saved = await repo.save(replace(restored, version=current.version + 1))
        except IntegrityError:
            # The old tax ID now belongs to another live customer: restore everything else.
            restored = replace(restored, tax_id=current.tax_id)
            changed = changed_fields(current, restored)
            if not changed:
                return
            saved = await repo.save(replace(restored, version=current.version + 1))
        uow.emit(ev.CustomerUpdated(before=customer_to_pb(current), after=customer_to_pb(saved),
                                    changed_fields=changed), subject_id=str(current.id))


async def list_issues(uow: UnitOfWork, principal: Principal, import_id: uuid.UUID, *, after_line: int = 0,
                      limit: int = 1000) -> list[RowReport]:
    """The rows that were (or would be) rejected, skipped or flagged, with their reasons, in line
    order after `after_line`: the report and the downloadable error file."""
    await _owned_job(uow, principal, import_id)
    rows = await uow.session.execute(
        select(import_rows).where(import_rows.c.import_id == import_id, import_rows.c.line > after_line,
                                  import_rows.c.outcome.in_(ISSUE_OUTCOMES))
        .order_by(import_rows.c.line).limit(limit))
    return [RowReport(r.line, r.outcome, tuple(r.reasons), r.customer_id, _open(r.data, _DATA)) for r in rows]


def error_file_rows(reports: Iterable[RowReport]) -> Iterator[list[str]]:
    """CSV rows of the error file: the template's columns, then the outcome and the reason."""
    yield [*TEMPLATE_HEADER, "行号/line", "结果/outcome", "原因/reason"]
    for r in reports:
        yield [*(defuse(r.raw.get(f, "")) for f in FIELDS), str(r.line), r.outcome, defuse("; ".join(r.reasons))]


def defuse(value: str) -> str:
    """A cell a spreadsheet would run as a formula is written with a leading apostrophe (the
    rejected formulas themselves are in the error file, and must stay inert there)."""
    return "'" + value if looks_like_formula(value) or value[:1] in ("\t", "\r") else value


# Resumable chunked uploads ----------------------------------------------------------------------

MAX_OPEN_UPLOADS = 5


@dataclass(frozen=True)
class Upload:
    id: uuid.UUID
    file_name: str
    size: int
    received: int

    @property
    def complete(self) -> bool:
        return self.received == self.size


def _upload(row: Any) -> Upload:
    return Upload(id=row.id, file_name=row.file_name, size=row.size, received=row.received)


async def _owned_upload(uow: UnitOfWork, principal: Principal, upload_id: uuid.UUID, *,
                        for_update: bool = False) -> Upload:
    query = select(import_uploads).where(import_uploads.c.id == upload_id,
                                         import_uploads.c.created_by == principal.subject)
    if for_update:
        query = query.with_for_update()
    row = (await uow.session.execute(query)).first()
    if row is None:
        raise NotFound(f"upload {upload_id} not found", metadata={"upload_id": str(upload_id)})
    return _upload(row)


async def create_upload(uow: UnitOfWork, principal: Principal, *, file_name: str, size: int) -> Upload:
    """Opens an upload of `size` bytes. The caller's uploads untouched for UPLOAD_TTL are dropped;
    at most MAX_OPEN_UPLOADS may be open at once."""
    if size <= 0 or size > MAX_UPLOAD_BYTES:
        raise InvalidArgument.of("size", f"must be between 1 byte and {MAX_UPLOAD_BYTES // (1024 * 1024)} MiB")
    _defaults(principal)
    await uow.session.execute(delete(import_uploads).where(
        import_uploads.c.created_by == principal.subject,
        import_uploads.c.updated_at < func.now() - UPLOAD_TTL))
    open_uploads = await uow.session.scalar(select(func.count()).where(
        import_uploads.c.created_by == principal.subject))
    if open_uploads >= MAX_OPEN_UPLOADS:
        raise Conflict(f"you have {open_uploads} unfinished uploads; start an import from one or wait for "
                       "them to expire", reason="TOO_MANY_UPLOADS")
    upload_id = new_id()
    await uow.session.execute(insert(import_uploads).values(
        id=upload_id, created_by=principal.subject, file_name=file_name[:200], size=size, received=0))
    await uow.commit()
    return Upload(upload_id, file_name[:200], size, 0)


async def get_upload(uow: UnitOfWork, principal: Principal, upload_id: uuid.UUID) -> Upload:
    return await _owned_upload(uow, principal, upload_id)


async def append_chunk(uow: UnitOfWork, principal: Principal, upload_id: uuid.UUID, offset: int,
                       data: bytes, *, total: int = 0) -> Upload:
    """Stores the bytes at `offset`, which must be where the upload stands (`received`). Sending
    a chunk that is already stored again (a retry after a lost answer) changes nothing; any other
    offset is refused naming the received offset to resume from."""
    if not data:
        raise InvalidArgument.of("chunk", "is empty")
    if len(data) > MAX_CHUNK_BYTES:
        raise InvalidArgument.of("chunk", f"is larger than {MAX_CHUNK_BYTES // (1024 * 1024)} MiB")
    upload = await _owned_upload(uow, principal, upload_id, for_update=True)
    end = offset + len(data)
    if total and total != upload.size:
        raise InvalidArgument.of("range", f"the upload is {upload.size} bytes, not {total}")
    if offset < 0 or end > upload.size:
        raise InvalidArgument.of("range", f"bytes {offset}-{end - 1} are outside the upload's {upload.size} bytes")
    if end <= upload.received:
        stored = await uow.session.scalar(select(import_upload_chunks.c.offset).where(
            import_upload_chunks.c.upload_id == upload_id, import_upload_chunks.c.offset == offset))
        if stored is not None:
            return upload
    if offset != upload.received:
        raise Conflict(f"the upload has {upload.received} bytes; send the chunk starting at that offset",
                       reason="UPLOAD_OFFSET_MISMATCH", metadata={"received": str(upload.received)})
    await uow.session.execute(insert(import_upload_chunks).values(upload_id=upload_id, offset=offset, data=data))
    await uow.session.execute(update(import_uploads).where(import_uploads.c.id == upload_id)
                              .values(received=end, updated_at=func.now()))
    await uow.commit()
    return replace(upload, received=end)


async def start_import_from_upload(uow: UnitOfWork, principal: Principal, upload_id: uuid.UUID, *,
                                   key: str = "tax_id", on_match: str = "skip",
                                   mapping: Mapping[str, str] | None = None) -> ImportJob:
    """Creates the import of a complete upload in `validating`; `run_upload_dry_run` (in the
    background) checks it and leaves it in `dry_run`, or `refused` with the reason."""
    options = import_options(key, on_match, mapping)
    upload = await _owned_upload(uow, principal, upload_id, for_update=True)
    if not upload.complete:
        raise Conflict(f"the upload has {upload.received} of {upload.size} bytes; send the rest first",
                       reason="UPLOAD_INCOMPLETE", metadata={"received": str(upload.received)})
    import_id = await _new_job(uow, principal, options, upload.file_name, "validating")
    await uow.session.execute(update(imports).where(imports.c.id == import_id)
                              .values(upload_id=upload_id, mapping=options.mapping))
    await uow.commit()
    return await _owned_job(uow, principal, import_id)


async def _spool(session: Any, upload_id: uuid.UUID, file: BinaryIO) -> None:
    """Copies an upload into `file` one chunk at a time (never the whole upload in memory)."""
    offset = 0
    while True:
        chunk = (await session.execute(
            select(import_upload_chunks.c.offset, import_upload_chunks.c.data)
            .where(import_upload_chunks.c.upload_id == upload_id, import_upload_chunks.c.offset >= offset)
            .order_by(import_upload_chunks.c.offset).limit(1))).first()
        if chunk is None:
            break
        file.write(chunk.data)
        offset = chunk.offset + len(chunk.data)
    file.seek(0)


async def run_upload_dry_run(uow: UnitOfWork, principal: Principal, import_id: uuid.UUID, *,
                             max_rows: int = MAX_ROWS) -> ImportJob:
    """The dry run of an import started from an upload. A file that cannot be imported leaves the
    import `refused` with the reason and nothing else; the upload is dropped once read."""
    record = (await uow.session.execute(select(imports).where(imports.c.id == import_id))).one()
    if record.status != "validating" or record.upload_id is None:
        return _job(record)
    options = import_options(record.dedup_key, record.on_match, record.mapping)
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as file:
        await _spool(uow.session, record.upload_id, file)
        try:
            await run_dry_run(uow, principal, import_id, file, options, max_rows=max_rows)  # type: ignore[arg-type]
        except InvalidArgument as exc:
            await uow.session.rollback()
            reason = "; ".join(f"{v.field} {v.description}" for v in exc.violations) or exc.message
            await uow.session.execute(update(imports).where(imports.c.id == import_id).values(
                status="refused", error=reason[:500], updated_at=func.now()))
    await uow.session.execute(delete(import_uploads).where(import_uploads.c.id == record.upload_id))
    await uow.commit()
    return await _owned_job(uow, principal, import_id)
