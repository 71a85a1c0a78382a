"""JSON shapes of the SAP integration's operations API (R-SAP-03)."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field

from crm_gateway.routes.common_schemas import Strict

RecordKind = Literal["business_partner", "sales_order"]
SyncState = Literal["pending", "synced", "retrying", "parked"]


class SyncRecord(Strict):
    kind: RecordKind = Field(description="business_partner (a CRM customer) or sales_order (a CRM order)")
    crm_id: str = Field(description="The CRM customer id or order id")
    state: SyncState = Field(description="pending: queued; synced: SAP has the latest state; retrying: SAP "
                             "unavailable, backing off; parked: SAP refused the change, waits for an operator")
    sap_number: str | None = Field(None, description="The SAP business partner / sales order number")
    attempts: int
    last_attempt_at: dt.datetime | None = None
    last_error: str = Field("", description="SAP's message as it returned it")
    last_synced_at: dt.datetime | None = None
    pending_changes: int = Field(description="CRM changes of this record not yet in SAP")
    next_attempt_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    customer_id: str | None = Field(None, description="For sales orders: the customer")


class SyncRecordPage(Strict):
    items: list[SyncRecord]
    next_cursor: str | None = None


class FieldDrift(Strict):
    field: str
    crm_value: str
    sap_value: str


class RecordDrift(Strict):
    kind: RecordKind
    crm_id: str
    sap_number: str
    drifted: bool
    fields: list[FieldDrift]
    error: str | None = Field(None, description="Set when SAP could not be asked or does not have the record")


class DriftReport(Strict):
    records: list[RecordDrift]
    compared: int
    drifted: int


class SyncStats(Strict):
    pending_changes: int
    parked_changes: int
    retrying_records: int
    oldest_pending_seconds: float
    synced_records: int
