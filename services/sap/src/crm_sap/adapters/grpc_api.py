"""The gRPC face of the SAP integration: protobuf in, use case, protobuf out."""

from __future__ import annotations

import datetime as dt
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm.sap.v1 import sap_pb2 as pb
from crm.sap.v1 import sap_pb2_grpc as pb_grpc
from crm_sap.adapters.odata import ODataClient
from crm_sap.app import operations
from crmkit.auth import current_principal
from crmkit.db import UnitOfWork

SOURCE = "crm/sap"
STATES = {"pending": pb.SYNC_STATE_PENDING, "synced": pb.SYNC_STATE_SYNCED, "retrying": pb.SYNC_STATE_RETRYING,
          "parked": pb.SYNC_STATE_PARKED}
STATE_NAMES = {v: k for k, v in STATES.items()}


def _ts(value: dt.datetime | None) -> Timestamp | None:
    if value is None:
        return None
    t = Timestamp()
    t.FromDatetime(value)
    return t


def record_to_pb(r: operations.RecordView) -> pb.SyncRecord:
    return pb.SyncRecord(
        kind=r.kind, crm_id=str(r.crm_id), state=STATES.get(r.state, pb.SYNC_STATE_UNSPECIFIED),
        sap_number=r.sap_number, attempts=r.attempts, last_attempt_time=_ts(r.last_attempt_at),
        last_error=r.last_error, last_synced_time=_ts(r.last_synced_at), pending_changes=r.pending_changes,
        next_attempt_time=_ts(r.next_attempt_at), update_time=_ts(r.updated_at),
        customer_id=str(r.customer_id) if r.customer_id else "")


class SapIntegrationServicer(pb_grpc.SapIntegrationServiceServicer):
    def __init__(self, sessions: async_sessionmaker[AsyncSession], sap: ODataClient) -> None:
        self._sessions = sessions
        self._sap = sap

    def _uow(self) -> UnitOfWork:
        return UnitOfWork(self._sessions, SOURCE, actor=current_principal().subject)

    async def ListSyncRecords(self, request: pb.ListSyncRecordsRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            rows, cursor = await operations.list_records(
                uow, current_principal(), limit=request.page_size, cursor=request.page_token, kind=request.kind,
                state=STATE_NAMES.get(request.state, ""), crm_id=request.crm_id, sap_number=request.sap_number,
                error_contains=request.error_contains)
        return pb.ListSyncRecordsResponse(records=[record_to_pb(r) for r in rows], next_page_token=cursor)

    async def GetSyncRecord(self, request: pb.GetSyncRecordRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            record = await operations.get_record(uow, current_principal(), request.kind, request.crm_id)
        return pb.GetSyncRecordResponse(record=record_to_pb(record))

    async def RetrySyncRecord(self, request: pb.RetrySyncRecordRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            record = await operations.retry(uow, current_principal(), request.kind, request.crm_id)
        return pb.RetrySyncRecordResponse(record=record_to_pb(record))

    async def ReplaySyncRecord(self, request: pb.ReplaySyncRecordRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            record = await operations.replay(uow, current_principal(), request.kind, request.crm_id)
        return pb.ReplaySyncRecordResponse(record=record_to_pb(record))

    async def GetDrift(self, request: pb.GetDriftRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            report = await operations.drift_report(
                uow, current_principal(), self._sap, kind=request.kind, crm_id=request.crm_id,
                since=request.from_time.ToDatetime(dt.UTC) if request.HasField("from_time") else None,
                until=request.to_time.ToDatetime(dt.UTC) if request.HasField("to_time") else None,
                limit=request.limit)
        records = [pb.RecordDrift(kind=r.kind, crm_id=r.crm_id, sap_number=r.sap_number, drifted=bool(r.fields),
                                  fields=[pb.FieldDrift(field=f.field, crm_value=f.crm, sap_value=f.sap)
                                          for f in r.fields], error=r.error) for r in report]
        return pb.GetDriftResponse(records=records, compared=len(records),
                                   drifted=sum(1 for r in records if r.drifted))

    async def GetSyncStats(self, request: pb.GetSyncStatsRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            s = await operations.stats(uow, current_principal())
        return pb.GetSyncStatsResponse(pending_changes=s.pending_changes, parked_changes=s.parked_changes,
                                       retrying_records=s.retrying_records,
                                       oldest_pending_seconds=s.oldest_pending_seconds,
                                       synced_records=s.synced_records)
