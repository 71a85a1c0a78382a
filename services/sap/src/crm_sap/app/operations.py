"""Operator use cases (R-SAP-03): list sync records, retry, replay, drift, statistics.

Only principals with integrations.read may read and integrations.manage may act; records are
integration state, not customer data, and carry no more than ids and SAP numbers, so no data
scope narrows them further. Retry and replay emit `SyncRequeued` for the audit trail.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, func, or_, select, update

from crm.sap.v1 import events_pb2
from crm_sap.adapters.odata import BUSINESS_PARTNER, SALES_ORDER, ODataClient, SapError, expanded, key_segment
from crm_sap.adapters.tables import changes, customers, orders, sync_records
from crm_sap.domain.model import ChangeState, CustomerCopy, Difference, Kind, Operation, SyncState, drift
from crmkit.auth import Principal
from crmkit.db import UnitOfWork
from crmkit.errors import Conflict, InvalidArgument, NotFound, PermissionDenied
from crmkit.pagination import aware_datetime, decode_cursor, encode_cursor, page_size, text_key, uuid_key

READ = "integrations.read"
MANAGE = "integrations.manage"


def require(principal: Principal, permission: str) -> None:
    if not principal.may(permission):
        raise PermissionDenied(f"this needs the {permission} permission")


def parse_kind(value: str, *, required: bool = True) -> Kind | None:
    if not value and not required:
        return None
    try:
        return Kind(value)
    except ValueError:
        raise InvalidArgument.of("kind", "must be business_partner or sales_order") from None


def parse_uuid(value: str, field: str) -> uuid.UUID:
    try:
        return uuid.UUID(value)
    except ValueError:
        raise InvalidArgument.of(field, "must be a UUID") from None


@dataclass(frozen=True)
class RecordView:
    kind: str
    crm_id: uuid.UUID
    state: str
    sap_number: str
    attempts: int
    last_attempt_at: dt.datetime | None
    last_error: str
    last_synced_at: dt.datetime | None
    pending_changes: int
    next_attempt_at: dt.datetime | None
    updated_at: dt.datetime
    customer_id: uuid.UUID | None


def _record_query() -> Any:
    pending = (select(func.count()).where(and_(changes.c.kind == sync_records.c.kind,
                                               changes.c.crm_id == sync_records.c.crm_id,
                                               changes.c.state.in_([ChangeState.PENDING, ChangeState.PARKED])))
               .scalar_subquery())
    next_at = (select(func.min(changes.c.next_attempt_at)).where(and_(
        changes.c.kind == sync_records.c.kind, changes.c.crm_id == sync_records.c.crm_id,
        changes.c.state == ChangeState.PENDING)).scalar_subquery())
    return select(sync_records, pending.label("pending_changes"), next_at.label("next_attempt_at"))


def _view(row: Any) -> RecordView:
    return RecordView(row.kind, row.crm_id, row.state, row.sap_number, row.attempts, row.last_attempt_at,
                      row.last_error, row.last_synced_at, row.pending_changes or 0, row.next_attempt_at,
                      row.updated_at, row.customer_id)


async def list_records(uow: UnitOfWork, principal: Principal, *, limit: int = 0, cursor: str = "", kind: str = "",
                       state: str = "", crm_id: str = "", sap_number: str = "",
                       error_contains: str = "") -> tuple[list[RecordView], str]:
    require(principal, READ)
    size = page_size(limit)
    q = _record_query()
    if kind:
        q = q.where(sync_records.c.kind == parse_kind(kind))
    if state:
        q = q.where(sync_records.c.state == state)
    if crm_id:
        q = q.where(sync_records.c.crm_id == parse_uuid(crm_id, "crm_id"))
    if sap_number:
        q = q.where(sync_records.c.sap_number == sap_number)
    if error_contains:
        q = q.where(sync_records.c.last_error.ilike(f"%{error_contains}%"))
    if (c := decode_cursor(cursor, "updated", (aware_datetime, text_key, uuid_key))) is not None:
        at, k, i = c.values
        q = q.where(or_(sync_records.c.updated_at < at, and_(
            sync_records.c.updated_at == at,
            or_(sync_records.c.kind > k, and_(sync_records.c.kind == k, sync_records.c.crm_id > i)))))
    q = q.order_by(sync_records.c.updated_at.desc(), sync_records.c.kind, sync_records.c.crm_id).limit(size + 1)
    rows = [_view(r) for r in (await uow.session.execute(q)).all()]
    next_cursor = ""
    if len(rows) > size:
        rows = rows[:size]
        last = rows[-1]
        next_cursor = encode_cursor("updated", [last.updated_at.isoformat(), last.kind, str(last.crm_id)])
    return rows, next_cursor


async def get_record(uow: UnitOfWork, principal: Principal, kind: str, crm_id: str) -> RecordView:
    require(principal, READ)
    row = (await uow.session.execute(_record_query().where(and_(
        sync_records.c.kind == parse_kind(kind), sync_records.c.crm_id == parse_uuid(crm_id, "crm_id"))))).first()
    if row is None:
        raise NotFound(f"no {kind} sync record for {crm_id}")
    return _view(row)


async def retry(uow: UnitOfWork, principal: Principal, kind: str, crm_id: str) -> RecordView:
    """The record's parked change and everything queued behind it go again, now."""
    require(principal, MANAGE)
    record = await get_record(uow, principal, kind, crm_id)
    if record.pending_changes == 0:
        raise Conflict(f"{kind} {crm_id} has nothing queued; replay it to send it again", reason="NOTHING_TO_RETRY")
    now = dt.datetime.now(dt.UTC)
    await uow.session.execute(update(changes).where(and_(
        changes.c.kind == record.kind, changes.c.crm_id == record.crm_id,
        changes.c.state.in_([ChangeState.PENDING, ChangeState.PARKED]))).values(
        state=ChangeState.PENDING, next_attempt_at=now))
    await uow.session.execute(update(sync_records).where(and_(
        sync_records.c.kind == record.kind, sync_records.c.crm_id == record.crm_id)).values(
        state=SyncState.PENDING, updated_at=now))
    uow.emit(events_pb2.SyncRequeued(record_kind=record.kind, crm_id=crm_id, action="retry"), subject_id=crm_id)
    await uow.commit()
    return await get_record(uow, principal, kind, crm_id)


async def replay(uow: UnitOfWork, principal: Principal, kind: str, crm_id: str) -> RecordView:
    """Queues the record's current CRM state again; parked changes are superseded by it."""
    require(principal, MANAGE)
    record = await get_record(uow, principal, kind, crm_id)
    now = dt.datetime.now(dt.UTC)
    await uow.session.execute(update(changes).where(and_(
        changes.c.kind == record.kind, changes.c.crm_id == record.crm_id,
        changes.c.state == ChangeState.PARKED)).values(state=ChangeState.SUPERSEDED, done_at=now))
    await uow.session.execute(changes.insert().values(
        kind=record.kind, crm_id=record.crm_id, operation=Operation.UPSERT, event_id=f"replay:{principal.subject}"))
    await uow.session.execute(update(sync_records).where(and_(
        sync_records.c.kind == record.kind, sync_records.c.crm_id == record.crm_id)).values(
        state=SyncState.PENDING, updated_at=now))
    uow.emit(events_pb2.SyncRequeued(record_kind=record.kind, crm_id=crm_id, action="replay"), subject_id=crm_id)
    await uow.commit()
    return await get_record(uow, principal, kind, crm_id)


@dataclass(frozen=True)
class RecordDrift:
    kind: str
    crm_id: str
    sap_number: str
    fields: list[Difference]
    error: str = ""


async def drift_report(uow: UnitOfWork, principal: Principal, sap: ODataClient, *, kind: str = "", crm_id: str = "",
                       since: dt.datetime | None = None, until: dt.datetime | None = None,
                       limit: int = 50) -> list[RecordDrift]:
    require(principal, READ)
    if limit < 0 or limit > 200:
        raise InvalidArgument.of("limit", "must be between 1 and 200")
    q = select(sync_records).where(sync_records.c.sap_number != "")
    if crm_id:
        q = q.where(sync_records.c.crm_id == parse_uuid(crm_id, "crm_id"))
    if kind:
        q = q.where(sync_records.c.kind == parse_kind(kind))
    if since is not None:
        q = q.where(sync_records.c.last_synced_at >= since)
    if until is not None:
        q = q.where(sync_records.c.last_synced_at < until)
    if not crm_id and since is None and until is None:
        raise InvalidArgument.of("crm_id", "give a record (customer_id / order_id) or a time range")
    rows = (await uow.session.execute(q.order_by(sync_records.c.last_synced_at.desc()).limit(limit or 50))).all()
    out = []
    for row in rows:
        try:
            if row.kind == Kind.BUSINESS_PARTNER:
                fields = await _business_partner_drift(uow, sap, row)
            else:
                fields = await _sales_order_drift(uow, sap, row)
            out.append(RecordDrift(row.kind, str(row.crm_id), row.sap_number, fields))
        except SapError as err:
            out.append(RecordDrift(row.kind, str(row.crm_id), row.sap_number, [], str(err)))
    return out


async def _business_partner_drift(uow: UnitOfWork, sap: ODataClient, row: Any) -> list[Difference]:
    data = (await uow.session.execute(select(customers.c.data).where(customers.c.customer_id == row.crm_id)))\
        .scalar_one_or_none()
    if data is None:
        return []
    crm = CustomerCopy(customer_id=str(row.crm_id), **data).sap_fields()
    entity, _ = await sap.read(BUSINESS_PARTNER, "A_BusinessPartner" + key_segment(("BusinessPartner", row.sap_number)),
                               {"$expand": "to_BusinessPartnerAddress", "$format": "json"})
    addresses = expanded(entity, "to_BusinessPartnerAddress")
    address = next((a for a in addresses if a["AddressID"] == (row.sap_data or {}).get("address_id")),
                   addresses[0] if addresses else {})
    theirs = {"OrganizationBPName1": entity.get("OrganizationBPName1", ""),
              "OrganizationBPName2": entity.get("OrganizationBPName2", "")}
    theirs |= {k: address.get(k, "") for k in ("Country", "CityName", "PostalCode", "StreetName")}
    return drift(crm, theirs)


async def _sales_order_drift(uow: UnitOfWork, sap: ODataClient, row: Any) -> list[Difference]:
    order = (await uow.session.execute(select(orders).where(orders.c.order_id == row.crm_id))).first()
    if order is None:
        return []
    entity, _ = await sap.read(SALES_ORDER, "A_SalesOrder" + key_segment(("SalesOrder", row.sap_number)),
                               {"$expand": "to_Item", "$format": "json"})
    crm = {"TransactionCurrency": order.data["currency"]}
    theirs = {"TransactionCurrency": entity.get("TransactionCurrency", "")}
    sap_items = {str(int(i["SalesOrderItem"])): i for i in expanded(entity, "to_Item")}
    for line in order.data["lines"]:
        item = str(line["line_number"] * 10)
        sap_item = sap_items.get(item, {})
        crm[f"item {item} Material"] = line["product"][:40]
        theirs[f"item {item} Material"] = sap_item.get("Material", "")
        crm[f"item {item} RequestedQuantity"] = str(Decimal(line["quantity"]).normalize())
        theirs[f"item {item} RequestedQuantity"] = str(Decimal(sap_item["RequestedQuantity"]).normalize()) \
            if sap_item.get("RequestedQuantity") else ""
    return drift(crm, theirs)


@dataclass(frozen=True)
class Stats:
    pending_changes: int
    parked_changes: int
    retrying_records: int
    oldest_pending_seconds: float
    synced_records: int


async def stats(uow: UnitOfWork, principal: Principal) -> Stats:
    require(principal, READ)
    s = uow.session
    pending, oldest = (await s.execute(select(func.count(), func.min(changes.c.created_at))
                                       .where(changes.c.state == ChangeState.PENDING))).one()
    parked = (await s.execute(select(func.count()).where(changes.c.state == ChangeState.PARKED))).scalar_one()
    by_state = dict((await s.execute(select(sync_records.c.state, func.count()).group_by(sync_records.c.state))).all())
    age = (dt.datetime.now(dt.UTC) - oldest).total_seconds() if oldest else 0.0
    return Stats(pending, parked, by_state.get(SyncState.RETRYING, 0), age, by_state.get(SyncState.SYNCED, 0))
