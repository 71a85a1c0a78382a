"""/api/v1/integrations/sap/...: the SAP integration's operations face (R-SAP-03), in front of
crm.sap.v1.SapIntegrationService: sync records with state, SAP number and last error; retry and
replay; the drift report; queue statistics."""

from __future__ import annotations

import datetime as dt
from datetime import UTC
from functools import partial
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request, Response
from google.protobuf.timestamp_pb2 import Timestamp

from crm.sap.v1 import sap_pb2 as pb
from crm_gateway import permissions as p
from crm_gateway.api_route import ApiRoute
from crm_gateway.auth import Caller, authenticated, require
from crm_gateway.backends import backend
from crm_gateway.problems import API_ERRORS
from crm_gateway.routes import integrations_schemas as s
from crm_gateway.routes.common import json_response as _json
from crmkit.errors import InvalidArgument

_stub = partial(backend, name="sap")
router = APIRouter(prefix="/api/v1/integrations/sap", route_class=ApiRoute, tags=["integrations"],
                   dependencies=[Depends(authenticated)], responses=API_ERRORS)

_READ = Depends(require(p.INTEGRATIONS_READ))
_MANAGE = Depends(require(p.INTEGRATIONS_MANAGE))
_STATES = {"pending": pb.SYNC_STATE_PENDING, "synced": pb.SYNC_STATE_SYNCED, "retrying": pb.SYNC_STATE_RETRYING,
           "parked": pb.SYNC_STATE_PARKED}
_STATE_NAMES = {v: k for k, v in _STATES.items()}
_CONFLICT = {409: {"description": "NOTHING_TO_RETRY: the record has no queued change (replay it instead)"}}



def _time(t: Timestamp, present: bool) -> dt.datetime | None:
    return t.ToDatetime(UTC) if present else None



def _record(r: pb.SyncRecord) -> s.SyncRecord:
    return s.SyncRecord(
        kind=r.kind, crm_id=r.crm_id, state=_STATE_NAMES.get(r.state, "pending"),  # type: ignore[arg-type]
        sap_number=r.sap_number or None, attempts=r.attempts,
        last_attempt_at=_time(r.last_attempt_time, r.HasField("last_attempt_time")), last_error=r.last_error,
        last_synced_at=_time(r.last_synced_time, r.HasField("last_synced_time")), pending_changes=r.pending_changes,
        next_attempt_at=_time(r.next_attempt_time, r.HasField("next_attempt_time")),
        updated_at=_time(r.update_time, r.HasField("update_time")), customer_id=r.customer_id or None)


@router.get("/records", response_model=s.SyncRecordPage,
            summary="Synchronised records with sync state, SAP number, attempts and last error")
async def list_records(request: Request, caller: Caller = _READ, kind: s.RecordKind | None = None,
                       state: s.SyncState | None = None, crm_id: UUID | None = None,
                       sap_number: str = Query("", max_length=10), error: str = Query("", max_length=200),
                       limit: int = Query(50, ge=1, le=200), cursor: str = Query("", max_length=2000)) -> Response:
    reply = await _stub(request).ListSyncRecords(pb.ListSyncRecordsRequest(
        page_size=limit, page_token=cursor, kind=kind or "", state=_STATES.get(state or "", 0),
        crm_id=str(crm_id or ""), sap_number=sap_number, error_contains=error), metadata=caller.metadata)
    return _json(s.SyncRecordPage(items=[_record(r) for r in reply.records], next_cursor=reply.next_page_token or None))


@router.get("/records/{kind}/{crm_id}", response_model=s.SyncRecord, summary="One synchronised record")
async def get_record(kind: s.RecordKind, crm_id: UUID, request: Request, caller: Caller = _READ) -> Response:
    reply = await _stub(request).GetSyncRecord(pb.GetSyncRecordRequest(kind=kind, crm_id=str(crm_id)),
                                               metadata=caller.metadata)
    return _json(_record(reply.record))


@router.post("/records/{kind}/{crm_id}/retry", response_model=s.SyncRecord, responses=_CONFLICT,
             summary="Retry a parked or backing-off record now (its queued changes, in order)")
async def retry(kind: s.RecordKind, crm_id: UUID, request: Request, caller: Caller = _MANAGE) -> Response:
    reply = await _stub(request).RetrySyncRecord(pb.RetrySyncRecordRequest(kind=kind, crm_id=str(crm_id)),
                                                 metadata=caller.metadata)
    return _json(_record(reply.record))


@router.post("/records/{kind}/{crm_id}/replay", response_model=s.SyncRecord,
             summary="Send the record's current CRM state to SAP again (supersedes a parked change)")
async def replay(kind: s.RecordKind, crm_id: UUID, request: Request, caller: Caller = _MANAGE) -> Response:
    reply = await _stub(request).ReplaySyncRecord(pb.ReplaySyncRecordRequest(kind=kind, crm_id=str(crm_id)),
                                                  metadata=caller.metadata)
    return _json(_record(reply.record))


@router.get("/drift", response_model=s.DriftReport,
            summary="Compare the CRM's copy with SAP field by field: one customer or order, or a time range")
async def drift(request: Request, caller: Caller = _READ, customer_id: UUID | None = None,
                order_id: UUID | None = None, since: dt.datetime | None = Query(None, alias="from"),
                until: dt.datetime | None = Query(None, alias="to"), kind: s.RecordKind | None = None,
                limit: int = Query(50, ge=1, le=200)) -> Response:
    if customer_id and order_id:
        raise InvalidArgument.of("customer_id", "give customer_id or order_id, not both")
    if customer_id:
        kind, crm_id = "business_partner", str(customer_id)
    elif order_id:
        kind, crm_id = "sales_order", str(order_id)
    else:
        crm_id = ""
    request_pb = pb.GetDriftRequest(kind=kind or "", crm_id=crm_id, limit=limit)
    for field, value in (("from_time", since), ("to_time", until)):
        if value is not None:
            if value.tzinfo is None:
                raise InvalidArgument.of("from" if field == "from_time" else "to", "needs a time zone")
            getattr(request_pb, field).FromDatetime(value.astimezone(UTC))
    reply = await _stub(request).GetDrift(request_pb, metadata=caller.metadata)
    return _json(s.DriftReport(records=[s.RecordDrift(
        kind=r.kind, crm_id=r.crm_id, sap_number=r.sap_number, drifted=r.drifted,  # type: ignore[arg-type]
        fields=[s.FieldDrift(field=f.field, crm_value=f.crm_value, sap_value=f.sap_value) for f in r.fields],
        error=r.error or None) for r in reply.records], compared=reply.compared, drifted=reply.drifted))


@router.get("/stats", response_model=s.SyncStats, summary="Queue depth, oldest pending change, parked records")
async def stats(request: Request, caller: Caller = _READ) -> Response:
    reply = await _stub(request).GetSyncStats(pb.GetSyncStatsRequest(), metadata=caller.metadata)
    return _json(s.SyncStats(pending_changes=reply.pending_changes, parked_changes=reply.parked_changes,
                             retrying_records=reply.retrying_records,
                             oldest_pending_seconds=reply.oldest_pending_seconds, synced_records=reply.synced_records))
