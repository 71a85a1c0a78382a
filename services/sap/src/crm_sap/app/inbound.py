"""Delta pulls from SAP: sales-order status, outbound deliveries and billing documents changed
since the last pull, published as events with CRM ids.

Each entity set has a watermark. A pull reads from the watermark minus an overlap (SAP stamps a
change when it is made, not when it commits, so a late commit can carry an earlier stamp),
ordered by the change stamp, with `$top`/`$skip` pages and SAP's own `__next` pages. What was
already published is remembered per document (its ETag and statuses), so the overlap never
publishes a document twice, and a document is published again exactly when it changed.

Sales orders and billing documents carry `LastChangeDateTime` (Edm.DateTimeOffset, their ETag).
Outbound deliveries do not (API_OUTBOUND_DELIVERY_SRV has only the date `LastChangeDate`, null
until the first change, and `CreationDate`), so deliveries are pulled by date and told apart by
`DeliveryVersion`, their ETag.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp
from sqlalchemy import and_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm.common.v1 import money_pb2
from crm.sap.v1 import events_pb2
from crm_sap.adapters import metrics
from crm_sap.adapters.contract import USED
from crm_sap.adapters.odata import (
    BILLING_DOCUMENT,
    OUTBOUND_DELIVERY,
    SALES_ORDER,
    ODataClient,
    SapError,
    alpha_out,
    datetime_literal,
    datetimeoffset_literal,
    expanded,
    missing_properties,
    parse_date,
    parse_datetime,
    parse_decimal,
)
from crm_sap.adapters.tables import inbound_seen, sync_records, watermarks
from crm_sap.domain.model import Kind
from crmkit.db import UnitOfWork

log = logging.getLogger(__name__)
SOURCE = "crm/sap"
OVERLAP = dt.timedelta(minutes=10)
INITIAL_LOOKBACK = dt.timedelta(days=1)
CREDIT_CATEGORIES = {"O", "N"}  # SD document category: credit memo, invoice cancellation

ORDER_SELECT = ("SalesOrder,SoldToParty,PurchaseOrderByCustomer,LastChangeDateTime,OverallSDProcessStatus,"
                "OverallTotalDeliveryStatus,OverallOrdReltdBillgStatus")
DELIVERY_SELECT = ("DeliveryDocument,SoldToParty,OverallGoodsMovementStatus,ActualGoodsMovementDate,DeliveryVersion,"
                   "BillOfLading,MeansOfTransport,CreationDate,LastChangeDate,to_DeliveryDocumentItem/DeliveryDocumentItem,"
                   "to_DeliveryDocumentItem/Material,to_DeliveryDocumentItem/ActualDeliveryQuantity,"
                   "to_DeliveryDocumentItem/DeliveryQuantityUnit,to_DeliveryDocumentItem/ReferenceSDDocument,"
                   "to_DeliveryDocumentItem/ReferenceSDDocumentItem")
BILLING_SELECT = ("BillingDocument,BillingDocumentType,SDDocumentCategory,BillingDocumentDate,LastChangeDateTime,"
                  "SoldToParty,TotalNetAmount,TaxAmount,TotalGrossAmount,TransactionCurrency,"
                  "BillingDocumentIsCancelled,to_Item/SalesDocument,to_Item/ReferenceSDDocument")


def _ts(value: dt.datetime | None) -> Timestamp:
    t = Timestamp()
    if value is not None:
        t.FromDatetime(value)
    return t


def _plain(value: Decimal | None) -> str:
    """A decimal string without exponent or trailing zeros: 2, 2.5, 100."""
    return format((value or Decimal("0")).normalize(), "f")


def _money(amount: Decimal | None, currency: str) -> money_pb2.Money:
    return money_pb2.Money(amount=str((amount or Decimal("0")).quantize(Decimal("0.01"))), currency=currency)


class Inbound:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], sap: ODataClient, *, page_size: int = 200,
                 clock: Callable[[], dt.datetime] | None = None) -> None:
        self._sessions = sessions
        self._sap = sap
        self._top = page_size
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))
        self.missing: dict[str, list[str]] = {}  # service -> what its live $metadata lacks

    async def check_contract(self) -> None:
        """Once per service, holds the live system's `$metadata` against what this client uses
        (parsed with pyodata); a lack is logged and exported, so a changed SAP release shows up
        before a document fails."""
        for service, used in USED.items():
            if service in self.missing:
                continue
            try:
                schema = await self._sap.metadata(service)
            except (SapError, ValueError) as err:
                log.warning("SAP $metadata not readable yet", extra={"service": service, "error": str(err)})
                continue
            self.missing[service] = missing_properties(schema, used)
            metrics.CONTRACT_MISSING.labels(service).set(len(self.missing[service]))
            if self.missing[service]:
                log.error("SAP lacks what the integration uses",
                          extra={"service": service, "missing": self.missing[service]})

    async def run_pass(self) -> dict[str, int]:
        """One delta pull of every entity set; returns how many documents each published. An
        error in one set is logged and counted; the others still run."""
        if len(self.missing) < len(USED):
            await self.check_contract()
        published = {}
        for name, pull in (("A_SalesOrder", self.pull_sales_orders), ("A_OutbDeliveryHeader", self.pull_deliveries),
                           ("A_BillingDocument", self.pull_billing_documents)):
            try:
                published[name] = await pull()
            except SapError as err:
                metrics.INBOUND_ERRORS.labels(name).inc()
                log.warning("delta pull failed; next pass retries", extra={"entity_set": name, "error": str(err)})
                published[name] = 0
        return published

    # state --------------------------------------------------------------------------------------------
    async def _watermark(self, entity_set: str) -> dt.datetime:
        async with self._sessions() as s:
            value = (await s.execute(select(watermarks.c.value).where(watermarks.c.entity_set == entity_set)))\
                .scalar_one_or_none()
        return value if value is not None else self._clock() - INITIAL_LOOKBACK

    async def _seen(self, entity_set: str, number: str) -> str | None:
        async with self._sessions() as s:
            return (await s.execute(select(inbound_seen.c.fingerprint).where(and_(
                inbound_seen.c.entity_set == entity_set, inbound_seen.c.sap_number == number)))).scalar_one_or_none()

    async def _order_of(self, sales_order: str) -> Any:
        async with self._sessions() as s:
            return (await s.execute(select(sync_records).where(and_(
                sync_records.c.kind == Kind.SALES_ORDER, sync_records.c.sap_number == alpha_out(sales_order))))).first()

    async def _customer_of(self, business_partner: str) -> str:
        async with self._sessions() as s:
            value = (await s.execute(select(sync_records.c.crm_id).where(and_(
                sync_records.c.kind == Kind.BUSINESS_PARTNER,
                sync_records.c.sap_number == alpha_out(business_partner))))).scalar_one_or_none()
        return str(value) if value else ""

    async def _publish(self, entity_set: str, number: str, fingerprint: str, event: Any, subject_id: str) -> None:
        async with UnitOfWork(self._sessions, SOURCE, actor="service:sap") as uow:
            uow.emit(event, subject_id=subject_id)
            await uow.session.execute(
                insert(inbound_seen).values(entity_set=entity_set, sap_number=number, fingerprint=fingerprint)
                .on_conflict_do_update(index_elements=["entity_set", "sap_number"],
                                       set_={"fingerprint": fingerprint, "seen_at": self._clock()}))
            await uow.commit()
        metrics.INBOUND.labels(entity_set).inc()

    async def _advance(self, entity_set: str, value: dt.datetime) -> None:
        async with self._sessions() as s, s.begin():
            await s.execute(insert(watermarks).values(entity_set=entity_set, value=value)
                            .on_conflict_do_update(index_elements=["entity_set"],
                                                   set_={"value": value, "updated_at": self._clock()}))

    # sales orders -------------------------------------------------------------------------------------------
    async def pull_sales_orders(self) -> int:
        since = await self._watermark("A_SalesOrder")
        newest, count = since, 0
        async for row in self._sap.query(
                SALES_ORDER, "A_SalesOrder", filter=f"LastChangeDateTime ge {datetimeoffset_literal(since - OVERLAP)}",
                select=ORDER_SELECT, orderby="LastChangeDateTime,SalesOrder", top=self._top):
            changed = parse_datetime(row["LastChangeDateTime"])
            if changed and changed > newest:
                newest = changed
            number = alpha_out(row["SalesOrder"])
            record = await self._order_of(number)
            if record is None:
                continue  # not one of the CRM's orders
            fingerprint = "|".join((row["LastChangeDateTime"] or "", row["OverallSDProcessStatus"],
                                    row["OverallTotalDeliveryStatus"], row["OverallOrdReltdBillgStatus"]))
            status = (row["OverallSDProcessStatus"], row["OverallTotalDeliveryStatus"],
                      row["OverallOrdReltdBillgStatus"])
            seen = await self._seen("A_SalesOrder", number)
            if seen is None:
                # First sight: a freshly created order in status A/A/A is not news (SalesOrderCreated said it).
                if status == ("A", "A", "A") or status == ("", "", ""):
                    await self._remember("A_SalesOrder", number, fingerprint)
                    continue
            elif seen.split("|")[1:] == list(status):
                if seen != fingerprint:
                    await self._remember("A_SalesOrder", number, fingerprint)
                continue
            await self._publish("A_SalesOrder", number, fingerprint, events_pb2.SalesOrderStatusChanged(
                order_id=str(record.crm_id), sales_order=number, overall_status=status[0], delivery_status=status[1],
                billing_status=status[2], changed_at=_ts(changed)), str(record.crm_id))
            count += 1
        await self._advance("A_SalesOrder", newest)
        return count

    async def _remember(self, entity_set: str, number: str, fingerprint: str) -> None:
        async with self._sessions() as s, s.begin():
            await s.execute(insert(inbound_seen)
                            .values(entity_set=entity_set, sap_number=number, fingerprint=fingerprint)
                            .on_conflict_do_update(index_elements=["entity_set", "sap_number"],
                                                   set_={"fingerprint": fingerprint}))

    # deliveries -----------------------------------------------------------------------------------------------
    async def pull_deliveries(self) -> int:
        started = self._clock()
        since = (await self._watermark("A_OutbDeliveryHeader")) - OVERLAP
        day = datetime_literal(since.date())
        count = 0
        async for row in self._sap.query(
                OUTBOUND_DELIVERY, "A_OutbDeliveryHeader",
                filter=f"CreationDate ge {day} or LastChangeDate ge {day}", select=DELIVERY_SELECT,
                expand="to_DeliveryDocumentItem", orderby="DeliveryDocument", top=self._top):
            number = alpha_out(row["DeliveryDocument"])
            items = expanded(row, "to_DeliveryDocumentItem")
            orders = {alpha_out(i["ReferenceSDDocument"]) for i in items if i.get("ReferenceSDDocument")}
            record = None
            for so in sorted(orders):
                record = await self._order_of(so)
                if record is not None:
                    break
            if record is None:
                continue
            fingerprint = f"{row['DeliveryVersion']}|{row['OverallGoodsMovementStatus']}"
            if await self._seen("A_OutbDeliveryHeader", number) == fingerprint:
                continue
            lines = {alpha_out(v): k for k, v in (record.sap_data or {}).get("items", {}).items()}
            moved = parse_date(row.get("ActualGoodsMovementDate"))
            event = events_pb2.OutboundDeliveryChanged(
                delivery_document=number, order_id=str(record.crm_id), sales_order=record.sap_number,
                goods_movement_status=row["OverallGoodsMovementStatus"],
                goods_movement_date=moved.isoformat() if moved else "",
                items=[events_pb2.OutboundDeliveryItem(
                    delivery_item=alpha_out(i["DeliveryDocumentItem"]),
                    sales_order_item=alpha_out(i["ReferenceSDDocumentItem"]),
                    order_line_id=lines.get(alpha_out(i["ReferenceSDDocumentItem"]), ""),
                    material=i["Material"], quantity=_plain(parse_decimal(i["ActualDeliveryQuantity"])),
                    unit=i["DeliveryQuantityUnit"]) for i in items],
                changed_at=_ts(parse_datetime(row.get("LastChangeDate")) or parse_datetime(row.get("CreationDate"))),
                carrier=row.get("MeansOfTransport") or "", tracking_number=row.get("BillOfLading") or "")
            await self._publish("A_OutbDeliveryHeader", number, fingerprint, event, str(record.crm_id))
            count += 1
        await self._advance("A_OutbDeliveryHeader", started)
        return count

    # billing documents ------------------------------------------------------------------------------------------
    async def pull_billing_documents(self) -> int:
        since = await self._watermark("A_BillingDocument")
        newest, count = since, 0
        async for row in self._sap.query(
                BILLING_DOCUMENT, "A_BillingDocument",
                filter=f"LastChangeDateTime ge {datetimeoffset_literal(since - OVERLAP)}", select=BILLING_SELECT,
                expand="to_Item", orderby="LastChangeDateTime,BillingDocument", top=self._top):
            changed = parse_datetime(row["LastChangeDateTime"])
            if changed and changed > newest:
                newest = changed
            number = alpha_out(row["BillingDocument"])
            items = expanded(row, "to_Item")
            record = None
            for so in sorted({alpha_out(i["SalesDocument"]) for i in items if i.get("SalesDocument")}):
                record = await self._order_of(so)
                if record is not None:
                    break
            if record is None:
                continue
            fingerprint = f"{row['LastChangeDateTime']}|{row['BillingDocumentIsCancelled']}"
            if await self._seen("A_BillingDocument", number) == fingerprint:
                continue
            currency = row["TransactionCurrency"]
            billed = parse_date(row.get("BillingDocumentDate"))
            customer = str(record.customer_id) if record.customer_id else await self._customer_of(row["SoldToParty"])
            event = events_pb2.BillingDocumentChanged(
                billing_document=number, document_type=row["BillingDocumentType"], order_id=str(record.crm_id),
                sales_order=record.sap_number, customer_id=customer, billing_date=billed.isoformat() if billed else "",
                net_amount=_money(parse_decimal(row["TotalNetAmount"]), currency),
                tax_amount=_money(parse_decimal(row["TaxAmount"]), currency),
                total=_money(parse_decimal(row["TotalGrossAmount"]), currency),
                cancelled=bool(row["BillingDocumentIsCancelled"]), changed_at=_ts(changed),
                credit=row.get("SDDocumentCategory") in CREDIT_CATEGORIES)
            await self._publish("A_BillingDocument", number, fingerprint, event, str(record.crm_id))
            count += 1
        await self._advance("A_BillingDocument", newest)
        return count


def parse_uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None
