"""The outbound worker: applies queued CRM changes to SAP, in order per record.

One pass claims the due head change of each record (the oldest open change; a parked head holds
back the record's later changes, and only those), applies the record's latest state to SAP, and
records the outcome. A claim is a lease (`next_attempt_at` pushed ahead), so several replicas
share the queue and a crashed worker's claim comes back by itself.

Nothing is created twice in SAP: a record with an SAP number is updated, never created; one
without is first looked up in SAP by the reference we write into it (BusinessPartnerIDByExtSystem,
PurchaseOrderByCustomer), so a crash between SAP's 201 and our commit adopts the document instead
of creating a second one.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm.sap.v1 import events_pb2
from crm_sap.adapters import metrics
from crm_sap.adapters.odata import (
    BUSINESS_PARTNER,
    SALES_ORDER,
    BatchOp,
    ODataClient,
    SapError,
    TransientError,
    expanded,
    format_date,
    key_segment,
    string_literal,
)
from crm_sap.adapters.tables import changes, customers, orders, sync_records
from crm_sap.domain.model import (
    ChangeState,
    CustomerCopy,
    Kind,
    Operation,
    OrderCopy,
    OrderLineCopy,
    SapDefaults,
    SyncState,
    backoff,
    business_partner_create,
    business_partner_reference,
    business_partner_update,
    sales_order_create,
    sales_order_reference,
)
from crmkit.db import UnitOfWork

log = logging.getLogger(__name__)
SOURCE = "crm/sap"
WAIT_SECONDS = 5.0  # a sales order waiting for its business partner looks again this soon
REPORT_AFTER_ATTEMPTS = 5  # a record still failing after this many attempts is reported (SyncFailed)


@dataclass
class Claimed:
    id: int
    kind: Kind
    crm_id: uuid.UUID
    operation: Operation
    attempts: int
    covers_up_to: int = 0


@dataclass
class Applied:
    sap_number: str
    sap_data: dict[str, Any]
    events: list[Any] = field(default_factory=list)


class Waiting(Exception):
    """The change cannot be applied yet (a sales order whose customer is not in SAP yet)."""


@dataclass
class PassResult:
    applied: int = 0
    failed: int = 0
    parked: int = 0
    waiting: int = 0
    stopped_early: bool = False


class Outbound:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], sap: ODataClient, defaults: SapDefaults, *,
                 batch_size: int = 50, retry_base: float = 5.0, retry_max: float = 900.0, claim_seconds: float = 120.0,
                 rand: random.Random | None = None, clock: Callable[[], dt.datetime] | None = None) -> None:
        self._sessions = sessions
        self._sap = sap
        self._defaults = defaults
        self._batch = batch_size
        self._retry_base, self._retry_max = retry_base, retry_max
        self._claim = dt.timedelta(seconds=claim_seconds)
        self._rand = rand or random.Random()  # noqa: S311 - jitter, not secrecy
        self._clock = clock or (lambda: dt.datetime.now(dt.UTC))

    # claiming ---------------------------------------------------------------------------------------
    async def _claim_due(self) -> list[Claimed]:
        now = self._clock()
        async with self._sessions() as s, s.begin():
            rows = (await s.execute(text("""
                WITH heads AS (
                    SELECT DISTINCT ON (kind, crm_id) id, state FROM changes
                    WHERE state IN ('pending', 'parked') ORDER BY kind, crm_id, id)
                SELECT c.id, c.kind, c.crm_id, c.operation, c.attempts,
                       (SELECT max(q.id) FROM changes q WHERE q.kind = c.kind AND q.crm_id = c.crm_id
                          AND q.state = 'pending') AS covers_up_to
                FROM changes c JOIN heads h ON h.id = c.id
                WHERE h.state = 'pending' AND c.next_attempt_at <= :now
                ORDER BY c.id LIMIT :limit FOR UPDATE OF c SKIP LOCKED"""), {"now": now, "limit": self._batch})).all()
            if rows:
                await s.execute(update(changes).where(changes.c.id.in_([r.id for r in rows]))
                                .values(next_attempt_at=now + self._claim))
        return [Claimed(r.id, Kind(r.kind), r.crm_id, Operation(r.operation), r.attempts, r.covers_up_to)
                for r in rows]

    async def run_pass(self) -> PassResult:
        """Applies every due change once; returns what happened. Call it directly in tests."""
        result = PassResult()
        claimed = await self._claim_due()
        for n, change in enumerate(claimed):
            try:
                applied = await self._apply(change)
            except Waiting as why:
                await self._wait(change, str(why))
                result.waiting += 1
            except SapError as err:
                if err.permanent:
                    await self._park(change, err)
                    result.parked += 1
                else:
                    await self._retry_later(change, err)
                    result.failed += 1
                    if isinstance(err, TransientError) and (err.status == 0 or err.status >= 500):
                        # SAP is down or overloaded: leave the rest for later instead of hammering it.
                        await self._release([c.id for c in claimed[n + 1:]])
                        result.stopped_early = True
                        break
            else:
                await self._done(change, applied)
                result.applied += 1
        await self.refresh_gauges()
        return result

    async def _release(self, ids: list[int]) -> None:
        if not ids:
            return
        async with self._sessions() as s, s.begin():
            await s.execute(update(changes).where(changes.c.id.in_(ids))
                            .values(next_attempt_at=self._clock() + dt.timedelta(seconds=self._retry_base)))

    # outcomes ---------------------------------------------------------------------------------------
    async def _done(self, change: Claimed, applied: Applied) -> None:
        now = self._clock()
        async with UnitOfWork(self._sessions, SOURCE, actor="service:sap") as uow:
            # The record's latest state is in SAP now, so the same-kind changes queued behind this one
            # when it was claimed are done too (their state was part of what we read); a different
            # operation (a cancellation after the creation) still goes on its own, in order.
            queued = (await uow.session.execute(
                select(changes.c.id, changes.c.operation).where(and_(
                    changes.c.kind == change.kind, changes.c.crm_id == change.crm_id,
                    changes.c.state == ChangeState.PENDING, changes.c.id <= change.covers_up_to))
                .order_by(changes.c.id))).all()
            covered = []
            for row in queued:
                if row.id != change.id and (row.id < change.id or row.operation != change.operation):
                    break
                covered.append(row.id)
            await uow.session.execute(
                update(changes).where(changes.c.id.in_(covered or [change.id]))
                .values(state=ChangeState.DONE, done_at=now, last_attempt_at=now, attempts=changes.c.attempts + 1))
            later = (await uow.session.execute(select(func.count()).where(and_(
                changes.c.kind == change.kind, changes.c.crm_id == change.crm_id,
                changes.c.state == ChangeState.PENDING)))).scalar_one()
            await uow.session.execute(
                update(sync_records).where(and_(sync_records.c.kind == change.kind,
                                                sync_records.c.crm_id == change.crm_id))
                .values(sap_number=applied.sap_number, sap_data=applied.sap_data,
                        state=SyncState.PENDING if later else SyncState.SYNCED, attempts=0, last_error="",
                        last_attempt_at=now, last_synced_at=now, updated_at=now))
            for event in applied.events:
                uow.emit(event, subject_id=str(change.crm_id))
            await uow.commit()
        metrics.APPLIED.labels(change.kind).inc()

    async def _retry_later(self, change: Claimed, err: SapError) -> None:
        now = self._clock()
        attempts = change.attempts + 1
        delay = backoff(attempts, base=self._retry_base, cap=self._retry_max, rand=self._rand)
        async with UnitOfWork(self._sessions, SOURCE, actor="service:sap") as uow:
            await uow.session.execute(update(changes).where(changes.c.id == change.id).values(
                attempts=attempts, last_attempt_at=now, last_error=str(err)[:2000],
                next_attempt_at=now + dt.timedelta(seconds=delay)))
            await uow.session.execute(update(sync_records).where(and_(
                sync_records.c.kind == change.kind, sync_records.c.crm_id == change.crm_id)).values(
                state=SyncState.RETRYING, attempts=attempts, last_attempt_at=now, last_error=str(err)[:2000],
                updated_at=now))
            if attempts == REPORT_AFTER_ATTEMPTS:
                uow.emit(events_pb2.SyncFailed(record_kind=change.kind, crm_id=str(change.crm_id), error=str(err),
                                               parked=False, attempts=attempts), subject_id=str(change.crm_id))
            await uow.commit()
        metrics.FAILURES.labels(change.kind, "transient").inc()
        log.warning("SAP change failed; will retry", extra={"kind": change.kind, "crm_id": str(change.crm_id),
                                                            "attempts": attempts, "error": str(err)})

    async def _park(self, change: Claimed, err: SapError) -> None:
        now = self._clock()
        attempts = change.attempts + 1
        async with UnitOfWork(self._sessions, SOURCE, actor="service:sap") as uow:
            await uow.session.execute(update(changes).where(changes.c.id == change.id).values(
                state=ChangeState.PARKED, attempts=attempts, last_attempt_at=now, last_error=str(err)[:2000]))
            await uow.session.execute(update(sync_records).where(and_(
                sync_records.c.kind == change.kind, sync_records.c.crm_id == change.crm_id)).values(
                state=SyncState.PARKED, attempts=attempts, last_attempt_at=now, last_error=str(err)[:2000],
                updated_at=now))
            uow.emit(events_pb2.SyncFailed(record_kind=change.kind, crm_id=str(change.crm_id), error=str(err),
                                           parked=True, attempts=attempts), subject_id=str(change.crm_id))
            await uow.commit()
        metrics.FAILURES.labels(change.kind, "permanent").inc()
        log.error("SAP refused a change; parked for an operator",
                  extra={"kind": change.kind, "crm_id": str(change.crm_id), "error": str(err)})

    async def _wait(self, change: Claimed, why: str) -> None:
        now = self._clock()
        async with self._sessions() as s, s.begin():
            await s.execute(update(changes).where(changes.c.id == change.id).values(
                last_error=why, next_attempt_at=now + dt.timedelta(seconds=WAIT_SECONDS)))
            await s.execute(update(sync_records).where(and_(
                sync_records.c.kind == change.kind, sync_records.c.crm_id == change.crm_id)).values(
                last_error=why, updated_at=now))

    async def refresh_gauges(self) -> None:
        async with self._sessions() as s:
            row = (await s.execute(select(func.count(), func.min(changes.c.created_at))
                                   .where(changes.c.state == ChangeState.PENDING))).one()
            parked = (await s.execute(select(func.count()).where(changes.c.state == ChangeState.PARKED))).scalar_one()
        metrics.QUEUE_DEPTH.set(row[0])
        metrics.PARKED.set(parked)
        metrics.OLDEST_PENDING.set((self._clock() - row[1]).total_seconds() if row[1] else 0)

    # applying ------------------------------------------------------------------------------------------
    async def _record(self, kind: Kind, crm_id: uuid.UUID) -> Any:
        async with self._sessions() as s:
            return (await s.execute(select(sync_records).where(and_(
                sync_records.c.kind == kind, sync_records.c.crm_id == crm_id)))).first()

    async def _apply(self, change: Claimed) -> Applied:
        if change.kind == Kind.BUSINESS_PARTNER:
            return await self._business_partner(change)
        if change.operation == Operation.CANCEL:
            return await self._cancel_sales_order(change)
        return await self._sales_order(change)

    async def _business_partner(self, change: Claimed) -> Applied:
        async with self._sessions() as s:
            row = (await s.execute(select(customers).where(customers.c.customer_id == change.crm_id))).first()
        if row is None:
            raise Waiting("the customer is not known yet")
        copy = CustomerCopy(customer_id=str(change.crm_id), **row.data)
        record = await self._record(Kind.BUSINESS_PARTNER, change.crm_id)
        number, data = (record.sap_number, dict(record.sap_data)) if record and record.sap_number else ("", {})
        if not number:
            found = await self._find_business_partner(copy)
            if found is None:
                created = await self._sap.create(BUSINESS_PARTNER, "A_BusinessPartner",
                                                 business_partner_create(copy, self._defaults))
                number, data = _bp_data(created)
                return Applied(number, data, [events_pb2.BusinessPartnerSynced(
                    customer_id=str(change.crm_id), business_partner=number, sap_customer=data["customer"])])
            number, data = found
        await self._update_business_partner(number, data, copy)
        return Applied(number, data, [events_pb2.BusinessPartnerSynced(
            customer_id=str(change.crm_id), business_partner=number, sap_customer=data.get("customer", number))])

    async def _find_business_partner(self, copy: CustomerCopy) -> tuple[str, dict[str, Any]] | None:
        ref = business_partner_reference(copy.customer_id)
        async for row in self._sap.query(
                BUSINESS_PARTNER, "A_BusinessPartner", filter=f"BusinessPartnerIDByExtSystem eq {string_literal(ref)}",
                select="BusinessPartner,Customer,to_BusinessPartnerAddress/AddressID",
                expand="to_BusinessPartnerAddress", top=2):
            return _bp_data(row)
        return None

    async def _update_business_partner(self, number: str, data: dict[str, Any], copy: CustomerCopy) -> None:
        header, address = business_partner_update(copy)
        bp_path = f"A_BusinessPartner{key_segment(('BusinessPartner', number))}"
        ops = [BatchOp("PATCH", bp_path, header, {"If-Match": data["etag"]} if data.get("etag") else {})]
        if data.get("address_id"):
            ops.append(BatchOp("PATCH", "A_BusinessPartnerAddress" + key_segment(
                ("BusinessPartner", number), ("AddressID", data["address_id"])), address))
        try:
            await self._sap.batch(BUSINESS_PARTNER, ops)
        except SapError as err:
            if err.status not in (412, 428):
                raise
            # A system that does give business partners an ETag: take the current one, once.
            _, etag = await self._sap.read(BUSINESS_PARTNER, bp_path, {"$select": "BusinessPartner"})
            ops[0] = BatchOp("PATCH", bp_path, header, {"If-Match": etag} if etag else {})
            await self._sap.batch(BUSINESS_PARTNER, ops)

    async def _order_copy(self, order_id: uuid.UUID) -> OrderCopy:
        async with self._sessions() as s:
            row = (await s.execute(select(orders).where(orders.c.order_id == order_id))).first()
        if row is None:
            raise Waiting("the order is not known yet")
        d = row.data
        return OrderCopy(
            order_id=str(order_id), order_number=d["order_number"], customer_id=str(row.customer_id),
            currency=d["currency"], requested_delivery_date=dt.date.fromisoformat(d["requested_delivery_date"])
            if d.get("requested_delivery_date") else None,
            lines=tuple(OrderLineCopy(li["line_id"], li["line_number"], li["product"], li["description"],
                                      Decimal(li["quantity"]), li["unit"], Decimal(li["unit_price"]))
                        for li in d["lines"]))

    async def _sold_to(self, customer_id: str) -> str:
        bp = await self._record(Kind.BUSINESS_PARTNER, uuid.UUID(customer_id))
        if bp is None or not bp.sap_number:
            state = bp.state if bp is not None else "unknown"
            raise Waiting(f"waiting for the customer's business partner (customer {customer_id}: {state})")
        return str(bp.sap_number)

    async def _sales_order(self, change: Claimed) -> Applied:
        record = await self._record(Kind.SALES_ORDER, change.crm_id)
        if record is not None and record.sap_number:
            return Applied(record.sap_number, dict(record.sap_data))  # created already; SAP owns it from here
        order = await self._order_copy(change.crm_id)
        sold_to = await self._sold_to(order.customer_id)
        ref = sales_order_reference(order.order_id)
        items = order.item_numbers()
        existing = None
        async for row in self._sap.query(
                SALES_ORDER, "A_SalesOrder", filter=f"PurchaseOrderByCustomer eq {string_literal(ref)} and "
                f"SoldToParty eq {string_literal(sold_to)}", select="SalesOrder,LastChangeDateTime", top=2):
            existing = row
            break
        created = existing or await self._sap.create(
            SALES_ORDER, "A_SalesOrder", sales_order_create(order, sold_to, self._defaults, format_date=format_date))
        number = str(created["SalesOrder"])
        data = {"items": items, "etag": (created.get("__metadata") or {}).get("etag", ""),
                "sold_to": sold_to}
        return Applied(number, data, [events_pb2.SalesOrderCreated(
            order_id=order.order_id, sales_order=number, item_numbers=items)])

    async def _cancel_sales_order(self, change: Claimed) -> Applied:
        record = await self._record(Kind.SALES_ORDER, change.crm_id)
        if record is None or not record.sap_number:
            return Applied("", {})  # never reached SAP: nothing to cancel
        number, data = record.sap_number, dict(record.sap_data)
        header_path = f"A_SalesOrder{key_segment(('SalesOrder', number))}"

        def ops(etag: str) -> list[BatchOp]:
            out = [BatchOp("PATCH", header_path, {"DeliveryBlockReason": self._defaults.delivery_block},
                           {"If-Match": etag} if etag else {})]
            out += [BatchOp("PATCH", "A_SalesOrderItem" + key_segment(("SalesOrder", number), ("SalesOrderItem", item)),
                            {"SalesDocumentRjcnReason": self._defaults.rejection_reason})
                    for item in sorted(data.get("items", {}).values(), key=int)]
            return out

        try:
            await self._sap.batch(SALES_ORDER, ops(data.get("etag", "")))
        except SapError as err:
            if err.status not in (412, 428):
                raise
            # Our ETag is stale (SAP changed the order since): re-read it and try once more.
            _, etag = await self._sap.read(SALES_ORDER, header_path, {"$select": "SalesOrder,LastChangeDateTime"})
            self._sap.etag_retries += 1
            await self._sap.batch(SALES_ORDER, ops(etag))
        _, fresh = await self._sap.read(SALES_ORDER, header_path, {"$select": "SalesOrder,LastChangeDateTime"})
        return Applied(number, data | {"etag": fresh, "cancelled": True})


def _bp_data(entity: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    number = str(entity["BusinessPartner"])
    addresses = expanded(entity, "to_BusinessPartnerAddress") if "to_BusinessPartnerAddress" in entity else []
    return number, {"customer": str(entity.get("Customer") or number),
                    "address_id": str(addresses[0]["AddressID"]) if addresses else "",
                    "etag": (entity.get("__metadata") or {}).get("etag", "")}
