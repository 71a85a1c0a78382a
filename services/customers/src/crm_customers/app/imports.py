"""Bulk import use cases (R-CUS-03): dry run, commit (resumable, in batches), revert, and the
error file. The file is read and validated once by the dry run; each row's cells are kept
(sealed) in `import_rows`, so the commit never needs the file again.

- Dry run (`start_import`): parses the file, matches every valid row against existing customers
  by the chosen key (tax ID through the blind index, as duplicate detection does; or name +
  region, ignoring case) and records what the commit would do. Writes no customer and no event.
- Commit (`commit_import`): re-validates and re-matches each row against the database as it is
  now, writes in batches of `BATCH` rows, each batch one transaction with its rows' outcomes and
  the outbox events of the single-record paths (customer.created, contact.added,
  customer.updated). Re-running it after a crash continues after the last committed batch.
- Revert (`revert_import`): soft-deletes the customers the import created (customer.deleted) and
  restores the fields it changed on the ones it updated from their before-images
  (customer.updated), removing the contacts it added to them.

Only the principal who started an import sees and acts on it (any other gets NOT_FOUND).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from crm.customers.v1 import events_pb2 as ev
from crm_customers.adapters import sensitive
from crm_customers.adapters.repository import CustomerRepository
from crm_customers.adapters.tables import customers, import_rows, imports
from crm_customers.app.messages import contact_to_pb, customer_to_pb
from crm_customers.domain.imports import (
    FIELDS,
    TEMPLATE_HEADER,
    Cell,
    ColumnMap,
    DedupKey,
    ImportRow,
    IndustryIndex,
    OnMatch,
    looks_like_formula,
    parse_file,
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
from crmkit.auth import Principal
from crmkit.auth.principal import SYSTEM
from crmkit.db import UnitOfWork
from crmkit.errors import Conflict, InvalidArgument, NotFound, PermissionDenied
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


async def _find_match(repo: CustomerRepository, customer: Customer, key: DedupKey) -> Any:
    """The live customer the row matches, whoever owns it (id, name, owner, team, department)."""
    if key == DedupKey.TAX_ID:
        return await repo.holder_of_tax_id(customer.tax_id) if customer.tax_id else None
    result = await repo.session.execute(
        select(customers.c.id, customers.c.name, customers.c.owner_id, customers.c.team_id,
               customers.c.department_path)
        .where(func.lower(customers.c.name) == customer.name.lower(),
               func.lower(customers.c.region) == customer.region.lower(), customers.c.deleted_at.is_(None))
        .order_by(customers.c.created_at).limit(1))
    return result.first()


async def _decide(repo: CustomerRepository, principal: Principal, row: ImportRow, key: DedupKey,
                  on_match: OnMatch) -> tuple[str, list[str], Any]:
    """What to do with a parsed row: (outcome, reasons, matched customer row or None)."""
    if not row.valid or row.customer is None:
        return "reject", list(row.reasons), None
    match = await _find_match(repo, row.customer, key)
    if match is None:
        if not may_assign(principal, owner_id=row.customer.owner_id, team_id=row.customer.team_id,
                          department_path=row.customer.department_path):
            return "reject", ["you may not create customers (data scope)"], None
        if key == DedupKey.NAME_REGION and row.customer.tax_id and \
                await repo.holder_of_tax_id(row.customer.tax_id) is not None:
            return "reject", [f"tax_id: another customer already has tax ID {row.customer.tax_id}"], None
        return "create", [], None
    visible = await repo.get(principal, match.id) is not None
    described = f"customer {match.name!r} ({match.id})" if visible else \
        "a customer owned by another team (ask your manager to have it shared with you)"
    if on_match == OnMatch.SKIP:
        return "skip", [f"matches {described}"], match
    if on_match == OnMatch.FLAG:
        return "flag", [f"matches {described}; review it by hand"], match
    if not visible:
        return "reject", [f"matches {described}; it cannot be updated"], None
    return "update", [f"updates {described}"], match


async def _owned_job(uow: UnitOfWork, principal: Principal, import_id: uuid.UUID, *,
                     for_update: bool = False) -> ImportJob:
    query = select(imports).where(imports.c.id == import_id, imports.c.created_by == principal.subject)
    if for_update:
        query = query.with_for_update()
    row = (await uow.session.execute(query)).first()
    if row is None:
        raise NotFound(f"import {import_id} not found", metadata={"import_id": str(import_id)})
    return _job(row)


async def start_import(uow: UnitOfWork, principal: Principal, data: bytes, *, file_name: str = "",
                       key: str = "tax_id", on_match: str = "skip",
                       mapping: Mapping[str, str] | None = None) -> tuple[ImportJob, list[RowReport]]:
    """The dry run: reads the file, records each row's planned outcome; returns the import and
    every rejected, skipped or flagged row with its reasons."""
    try:
        dedup, when_matched = DedupKey(key), OnMatch(on_match)
    except ValueError:
        raise InvalidArgument.of("options", "dedup key must be tax_id or name_region; on_match skip, update "
                                            "or flag") from None
    if len(data) > MAX_FILE_BYTES:
        raise InvalidArgument.of("file", f"is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB; split it")
    team_id = principal.team_ids[0] if principal.team_ids else ""
    if not may_assign(principal, owner_id=principal.subject, team_id=team_id,
                      department_path=principal.department_path):
        raise PermissionDenied("your data scope may not create customers", reason="ASSIGNMENT_OUT_OF_SCOPE")
    repo = CustomerRepository(uow.session)
    parsed = parse_file(data, IndustryIndex(await repo.list_industries()), key=dedup, owner_id=principal.subject,
                        team_id=team_id, department_path=principal.department_path,
                        created_by=principal.subject, mapping=mapping)
    import_id = new_id()
    await uow.session.execute(insert(imports).values(
        id=import_id, created_by=principal.subject, owner_id=principal.subject, team_id=team_id,
        department_path=principal.department_path, file_name=file_name[:200], dedup_key=dedup.value,
        on_match=when_matched.value, status="dry_run", total=len(parsed.rows)))
    planned = {k: 0 for k in PAST}
    reports: list[RowReport] = []
    pending: list[dict[str, Any]] = []
    for row in parsed.rows:
        outcome, reasons, match = await _decide(repo, principal, row, dedup, when_matched)
        planned[outcome] += 1
        if outcome in ISSUE_OUTCOMES:
            reports.append(RowReport(row.line, outcome, tuple(reasons), match.id if match else None, row.raw))
        pending.append({"import_id": import_id, "line": row.line, "data": _seal(row.raw, _DATA),
                        "outcome": outcome, "reasons": reasons})
        if len(pending) >= BATCH:
            await uow.session.execute(insert(import_rows), pending)
            pending = []
    if pending:
        await uow.session.execute(insert(import_rows), pending)
    await uow.session.execute(update(imports).where(imports.c.id == import_id).values(planned=planned))
    await uow.commit()
    return await _owned_job(uow, principal, import_id), reports


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
    await uow.session.execute(update(imports).where(imports.c.id == import_id)
                              .values(status="running", error="", updated_at=func.now()))
    await uow.commit()
    return await _owned_job(uow, principal, import_id)


async def record_failure(uow: UnitOfWork, import_id: uuid.UUID, error: str) -> None:
    """A background commit or revert stopped: the commit is marked failed (it resumes when
    committed again), a revert stays reverting with the error (it resumes when reverted again)."""
    await uow.session.execute(update(imports).where(imports.c.id == import_id, imports.c.status == "running")
                              .values(status="failed"))
    await uow.session.execute(update(imports).where(imports.c.id == import_id)
                              .values(error=error[:500], updated_at=func.now()))
    await uow.commit()


async def run_commit(uow: UnitOfWork, principal: Principal, import_id: uuid.UUID) -> ImportJob:
    repo = CustomerRepository(uow.session)
    while True:
        record = (await uow.session.execute(select(imports).where(imports.c.id == import_id)
                                            .with_for_update())).one()
        if record.status != "running":
            return _job(record)  # a concurrent commit finished it
        rows = (await uow.session.execute(
            select(import_rows).where(import_rows.c.import_id == import_id, import_rows.c.applied.is_(False))
            .order_by(import_rows.c.line).limit(BATCH))).all()
        if not rows:
            await uow.session.execute(update(imports).where(imports.c.id == import_id)
                                      .values(status="done", updated_at=func.now()))
            await uow.commit()
            return await _owned_job(uow, principal, import_id)
        industries = IndustryIndex(await repo.list_industries())
        counts = dict(record.counts)
        outcomes: list[dict[str, Any]] = []
        for stored in rows:
            outcome, reasons, customer_id, contact_id, before = await _apply_row(
                uow, repo, principal, record, stored, industries)
            counts[PAST[outcome]] = counts.get(PAST[outcome], 0) + 1
            outcomes.append({"b_line": stored.line, "b_outcome": PAST[outcome], "b_reasons": reasons,
                             "b_customer_id": customer_id, "b_contact_id": contact_id, "b_before": before})
        await uow.session.execute(
            update(import_rows).where(import_rows.c.import_id == import_id, import_rows.c.line == bindparam("b_line"))
            .values(applied=True, outcome=bindparam("b_outcome"), reasons=bindparam("b_reasons"),
                    customer_id=bindparam("b_customer_id"), contact_id=bindparam("b_contact_id"),
                    before=bindparam("b_before")).execution_options(synchronize_session=False), outcomes)
        await uow.session.execute(update(imports).where(imports.c.id == import_id).values(
            counts=counts, processed=imports.c.processed + len(rows), updated_at=func.now()))
        await uow.commit()


async def _apply_row(uow: UnitOfWork, repo: CustomerRepository, principal: Principal, job: Any, stored: Any,
                     industries: IndustryIndex) -> tuple[str, list[str], uuid.UUID | None, uuid.UUID | None,
                                                          str | None]:
    if stored.outcome == "reject":
        return "reject", list(stored.reasons), None, None, None
    raw = _open(stored.data, _DATA)
    row = parse_row(stored.line, [Cell(raw.get(f, "")) for f in FIELDS], _IDENTITY, industries,
                    owner_id=job.owner_id, team_id=job.team_id, department_path=job.department_path,
                    created_by=job.created_by)
    outcome, reasons, match = await _decide(repo, principal, row, DedupKey(job.dedup_key), OnMatch(job.on_match))
    if outcome == "create":
        assert row.customer is not None
        customer = replace(row.customer, id=new_id())
        try:
            async with uow.session.begin_nested():
                created = await repo.add(customer)
        except IntegrityError:
            return "reject", ["tax_id: another customer took this tax ID during the import"], None, None, None
        uow.emit(ev.CustomerCreated(customer=customer_to_pb(created)), subject_id=str(created.id))
        contact_id = None
        if row.contact is not None:
            contact = await repo.add_contact(replace(row.contact, id=new_id(), customer_id=created.id))
            uow.emit(ev.ContactAdded(contact=contact_to_pb(contact)), subject_id=str(created.id))
            contact_id = contact.id
        return "create", [], created.id, contact_id, None
    if outcome == "update":
        return await _update_from_row(uow, repo, principal, row, match.id, reasons)
    return outcome, reasons, match.id if match else None, None, None


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
            uow.emit(ev.ContactAdded(contact=contact_to_pb(contact)), subject_id=str(customer_id))
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
            uow.emit(ev.ContactRemoved(contact=contact_to_pb(contact)), subject_id=str(current.id))
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
