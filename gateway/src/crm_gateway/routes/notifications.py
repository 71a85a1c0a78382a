"""/api/v1/notifications (the caller's inbox, its live event stream, preferences, the delivery
log), /api/v1/notification-rules and /api/v1/webhooks: REST in front of
crm.notifications.v1.NotificationsService (R-NOT-01..03)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator
from datetime import UTC
from functools import partial
from typing import Any
from uuid import UUID

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from google.protobuf.timestamp_pb2 import Timestamp
from sse_starlette.sse import EventSourceResponse, ServerSentEvent

from crm.notifications.v1 import events_pb2
from crm.notifications.v1 import notifications_pb2 as pb
from crm_gateway import permissions as p
from crm_gateway.api_route import ApiRoute
from crm_gateway.auth import Caller, authenticated, require
from crm_gateway.backends import backend
from crm_gateway.etags import etag_of, expected_version
from crm_gateway.problems import API_ERRORS
from crm_gateway.push import OVERFLOW, push_of
from crm_gateway.routes import notifications_schemas as s
from crm_gateway.routes.common import IDEMPOTENCY, IF_MATCH
from crm_gateway.routes.common import json_response as _json
from crmkit.auth import PRINCIPAL_METADATA_KEY
from crmkit.errors import InvalidArgument

_stub = partial(backend, name="notifications")
router = APIRouter(prefix="/api/v1", route_class=ApiRoute, tags=["notifications"],
                   dependencies=[Depends(authenticated)], responses=API_ERRORS)

_ME = Depends(authenticated)
_MANAGE = Depends(require(p.NOTIFICATIONS_MANAGE))
_WEBHOOKS = Depends(require(p.WEBHOOKS_MANAGE))
# Replay pages while a stream catches up; the SSE keep-alive comment interval.
_REPLAY_PAGE = 200
_PING_SECONDS = 15



def _time(t: Timestamp, present: bool = True) -> dt.datetime | None:
    return t.ToDatetime(UTC) if present else None



def _item_json(m: pb.InboxItem) -> s.InboxItem:
    return s.InboxItem(id=m.id, kind=m.kind, title=m.title, body=m.body, link=m.link, sequence=m.sequence,
                       created_at=m.create_time.ToDatetime(UTC), read_at=_time(m.read_time, m.HasField("read_time")))


def _preferences_json(m: pb.Preferences) -> s.PreferencesRead:
    return s.PreferencesRead(channels={c.kind: list(c.channels) for c in m.channels},  # type: ignore[misc]
                             quiet_start=m.quiet_start or None, quiet_end=m.quiet_end or None,
                             time_zone=m.time_zone, daily_digest=m.daily_digest, digest_hour=m.digest_hour,
                             version=m.version)


def _rule_json(m: pb.Rule) -> s.Rule:
    return s.Rule(id=m.id, name=m.name, event_subject=m.event_subject, kind=m.kind, recipients=list(m.recipients),
                  robots=[s.RobotRead(kind=b.kind, url=b.url, locale=b.locale) for b in m.robots],  # type: ignore[arg-type]
                  enabled=m.enabled, version=m.version, updated_at=_time(m.update_time, m.HasField("update_time")),
                  updated_by=m.updated_by)


def _rule_pb(body: s.RuleFields, rule_id: str = "") -> pb.Rule:
    return pb.Rule(id=rule_id, name=body.name, event_subject=body.event_subject, kind=body.kind,
                   recipients=body.recipients, enabled=body.enabled,
                   robots=[pb.Robot(kind=b.kind, url=b.url, secret=b.secret, locale=b.locale) for b in body.robots])


def _webhook_fields(m: pb.Webhook) -> dict[str, Any]:
    return {"id": m.id, "url": m.url, "event_types": list(m.event_types), "description": m.description,
            "enabled": m.enabled, "created_at": m.create_time.ToDatetime(UTC), "created_by": m.created_by}


def _delivery_json(m: pb.Delivery) -> s.Delivery:
    return s.Delivery(
        id=m.id, event_id=m.event_id, channel=m.channel, recipient=m.recipient, kind=m.kind,  # type: ignore[arg-type]
        target=m.target, status=m.status, attempts=m.attempts,  # type: ignore[arg-type]
        next_attempt_at=_time(m.next_attempt_time, m.HasField("next_attempt_time")), last_error=m.last_error,
        created_at=m.create_time.ToDatetime(UTC), delivered_at=_time(m.deliver_time, m.HasField("deliver_time")),
        history=[s.DeliveryAttempt(attempt=a.attempt, attempted_at=a.attempt_time.ToDatetime(UTC),
                                   outcome=a.outcome, error=a.error, duration_ms=a.duration_ms)  # type: ignore[arg-type]
                 for a in m.history])


# The inbox ------------------------------------------------------------------------------------

@router.get("/notifications", response_model=s.InboxPage, summary="Your in-app notifications, newest first")
async def list_notifications(request: Request, caller: Caller = _ME, limit: int = Query(50, ge=1, le=200),
                             cursor: str = Query("", max_length=2000), unread_only: bool = False) -> Response:
    reply = await _stub(request).ListInbox(pb.ListInboxRequest(page_size=limit, page_token=cursor,
                                                               unread_only=unread_only), metadata=caller.metadata)
    return _json(s.InboxPage(items=[_item_json(i) for i in reply.items], next_cursor=reply.next_page_token or None))


@router.get("/notifications/unread-count", response_model=s.UnreadCount, summary="How many are unread")
async def unread_count(request: Request, caller: Caller = _ME) -> Response:
    reply = await _stub(request).GetUnreadCount(pb.GetUnreadCountRequest(), metadata=caller.metadata)
    return _json(s.UnreadCount(unread=reply.unread))


@router.post("/notifications/read-all", response_model=s.MarkedRead, summary="Mark every unread notification read")
async def read_all(request: Request, caller: Caller = _ME) -> Response:
    reply = await _stub(request).MarkAllRead(pb.MarkAllReadRequest(), metadata=caller.metadata)
    return _json(s.MarkedRead(marked=reply.marked))


@router.post("/notifications/{item_id}/read", response_model=s.InboxItem, summary="Mark one notification read")
async def read_one(item_id: UUID, request: Request, caller: Caller = _ME) -> Response:
    reply = await _stub(request).MarkRead(pb.MarkReadRequest(id=str(item_id)), metadata=caller.metadata)
    return _json(_item_json(reply.item))


_STREAM_DOC = {200: {"description": (
    "Server-Sent Events. Each notification is an event `notification` whose `id` is its sequence and whose "
    "`data` is the item as JSON; the stream opens with an event `ready`. Reconnect with `Last-Event-ID` "
    "(EventSource does it by itself) to get what was missed first, then live items, each once."),
    "content": {"text/event-stream": {"schema": {"type": "string"}}}}}


@router.get("/notifications/stream", response_class=EventSourceResponse, responses=_STREAM_DOC,
            summary="Your notifications as they arrive (Server-Sent Events)")
async def stream(request: Request, caller: Caller = _ME,
                 last_event_id: str | None = Header(None, alias="Last-Event-ID",
                                                    description="The id of the last event received")) -> Any:
    after: int | None = None
    if last_event_id is not None and last_event_id.strip():
        if not last_event_id.strip().isdigit():
            raise InvalidArgument.of("Last-Event-ID", "must be the id of an event of this stream (a sequence)")
        after = int(last_event_id.strip())
    stub = _stub(request)
    push = push_of(request.app.state, request.app.state.nats)
    return EventSourceResponse(_events(request, stub, push, caller, after), ping=_PING_SECONDS,
                               headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


def _sse(item: pb.InboxItem | events_pb2.InboxItemCreated) -> ServerSentEvent:
    if isinstance(item, pb.InboxItem):
        model = _item_json(item)
    else:
        model = s.InboxItem(id=item.item_id, kind=item.kind, title=item.title, body=item.body, link=item.link,
                            sequence=item.sequence, created_at=item.created_at.ToDatetime(UTC), read_at=None)
    return ServerSentEvent(data=model.model_dump_json(), event="notification", id=str(model.sequence))


async def _events(request: Request, stub: Any, push: Any, caller: Caller, after: int | None) -> AsyncIterator[Any]:
    principal = caller.principal
    signer = request.app.state.principal_signer

    def metadata() -> tuple[tuple[str, str], ...]:
        # The forwarded principal lives two minutes; a stream lives longer: sign it per call.
        return ((PRINCIPAL_METADATA_KEY, signer.sign(principal)),)

    async def since(sequence: int, until: int | None = None) -> AsyncIterator[pb.InboxItem]:
        while True:
            reply = await stub.ListInbox(pb.ListInboxRequest(after_sequence=sequence, page_size=_REPLAY_PAGE),
                                         metadata=metadata())
            for item in reply.items:
                if until is not None and item.sequence > until:
                    return
                yield item
                sequence = item.sequence
            if not reply.next_page_token:
                return

    async with push.listen(principal.subject) as queue:
        if after is None:
            # A fresh stream starts at the newest item: only what arrives from now on is sent.
            newest = await stub.ListInbox(pb.ListInboxRequest(page_size=1), metadata=metadata())
            last = newest.items[0].sequence if newest.items else 0
        else:
            last = after
        yield ServerSentEvent(data=json.dumps({"last_sequence": last}), event="ready")
        if after is not None:
            async for item in since(last):
                yield _sse(item)
                last = item.sequence
        while True:
            live = await queue.get()
            if principal.token_id and principal.token_id in request.app.state.revoked:
                return  # signed out elsewhere: the client must authenticate again
            if live is OVERFLOW:
                async for item in since(last):
                    yield _sse(item)
                    last = item.sequence
                continue
            assert isinstance(live, events_pb2.InboxItemCreated)
            if live.sequence <= last:
                continue  # already sent by a replay
            if live.sequence > last + 1:
                # Missed on the wire (or published before a replay finished): fill from the service.
                async for item in since(last, until=live.sequence - 1):
                    yield _sse(item)
                    last = item.sequence
            yield _sse(live)
            last = live.sequence


# Preferences ----------------------------------------------------------------------------------

@router.get("/notifications/preferences", response_model=s.PreferencesRead,
            summary="Your notification preferences: channels per kind, quiet hours, daily digest")
async def get_preferences(request: Request, caller: Caller = _ME) -> Response:
    reply = await _stub(request).GetPreferences(pb.GetPreferencesRequest(), metadata=caller.metadata)
    prefs = _preferences_json(reply.preferences)
    return _json(prefs, headers={"ETag": etag_of(prefs.version)})


@router.put("/notifications/preferences", response_model=s.PreferencesRead, summary="Replace your preferences")
async def put_preferences(body: s.Preferences, request: Request, caller: Caller = _ME,
                          if_match: str | None = IF_MATCH) -> Response:
    message = pb.Preferences(channels=[pb.KindChannels(kind=k, channels=v) for k, v in body.channels.items()],
                             quiet_start=body.quiet_start or "", quiet_end=body.quiet_end or "",
                             time_zone=body.time_zone, daily_digest=body.daily_digest, digest_hour=body.digest_hour)
    reply = await _stub(request).UpdatePreferences(
        pb.UpdatePreferencesRequest(preferences=message, expected_version=expected_version(if_match)),
        metadata=caller.metadata)
    prefs = _preferences_json(reply.preferences)
    return _json(prefs, headers={"ETag": etag_of(prefs.version)})


# The delivery log -----------------------------------------------------------------------------

async def _deliveries(request: Request, caller: Caller, channel: str, limit: int, cursor: str, status: str | None,
                      recipient: str, event_id: str) -> Response:
    reply = await _stub(request).ListDeliveries(pb.ListDeliveriesRequest(
        page_size=limit, page_token=cursor, channel=channel, status=status or "", recipient=recipient,
        event_id=event_id), metadata=caller.metadata)
    return _json(s.DeliveryPage(items=[_delivery_json(d) for d in reply.deliveries],
                                next_cursor=reply.next_page_token or None))


@router.get("/notifications/deliveries", response_model=s.DeliveryPage,
            summary="The delivery log: email, webhook and robot deliveries with every attempt, newest first")
async def list_deliveries(request: Request, caller: Caller = _MANAGE, limit: int = Query(50, ge=1, le=200),
                          cursor: str = Query("", max_length=2000), channel: s.DeliveryChannel | None = None,
                          status: s.DeliveryStatus | None = None, recipient: str = Query("", max_length=200),
                          event_id: str = Query("", max_length=64)) -> Response:
    return await _deliveries(request, caller, channel or "", limit, cursor, status, recipient, event_id)


@router.post("/notifications/deliveries/{delivery_id}/replay", response_model=s.Delivery,
             responses={409: {"description": "DELIVERY_PENDING: it is still queued"}},
             summary="Queue a parked (or delivered) delivery again")
async def replay_delivery(delivery_id: UUID, request: Request, caller: Caller = _MANAGE) -> Response:
    reply = await _stub(request).ReplayDelivery(pb.ReplayDeliveryRequest(id=str(delivery_id)),
                                                metadata=caller.metadata)
    return _json(_delivery_json(reply.delivery))


# Rules ----------------------------------------------------------------------------------------

@router.get("/notification-rules", response_model=s.RuleList, summary="Which events notify whom")
async def list_rules(request: Request, caller: Caller = _MANAGE) -> Response:
    reply = await _stub(request).ListRules(pb.ListRulesRequest(), metadata=caller.metadata)
    return _json(s.RuleList(items=[_rule_json(r) for r in reply.rules]))


@router.post("/notification-rules", status_code=201, response_model=s.Rule, summary="Create a rule")
async def create_rule(body: s.RuleFields, request: Request, caller: Caller = _MANAGE,
                      idempotency_key: str | None = IDEMPOTENCY) -> Response:
    reply = await _stub(request).CreateRule(pb.CreateRuleRequest(rule=_rule_pb(body)), metadata=caller.metadata)
    rule = _rule_json(reply.rule)
    return _json(rule, 201, {"ETag": etag_of(rule.version), "Location": f"/api/v1/notification-rules/{rule.id}"})


@router.put("/notification-rules/{rule_id}", response_model=s.Rule, summary="Replace a rule")
async def update_rule(rule_id: UUID, body: s.RuleFields, request: Request, caller: Caller = _MANAGE,
                      if_match: str | None = IF_MATCH) -> Response:
    reply = await _stub(request).UpdateRule(pb.UpdateRuleRequest(rule=_rule_pb(body, str(rule_id)),
                                                                 expected_version=expected_version(if_match)),
                                            metadata=caller.metadata)
    rule = _rule_json(reply.rule)
    return _json(rule, headers={"ETag": etag_of(rule.version)})


@router.delete("/notification-rules/{rule_id}", status_code=204, summary="Delete a rule")
async def delete_rule(rule_id: UUID, request: Request, caller: Caller = _MANAGE) -> Response:
    await _stub(request).DeleteRule(pb.DeleteRuleRequest(id=str(rule_id)), metadata=caller.metadata)
    return Response(status_code=204)


# Webhooks -------------------------------------------------------------------------------------

@router.get("/webhooks", response_model=s.WebhookList, summary="Outbound webhook subscriptions")
async def list_webhooks(request: Request, caller: Caller = _WEBHOOKS) -> Response:
    reply = await _stub(request).ListWebhooks(pb.ListWebhooksRequest(), metadata=caller.metadata)
    return _json(s.WebhookList(items=[s.Webhook(**_webhook_fields(w)) for w in reply.webhooks]))


@router.post("/webhooks", status_code=201, response_model=s.WebhookCreated,
             summary="Subscribe a partner URL to events; the answer shows the signing secret once")
async def create_webhook(body: s.WebhookCreate, request: Request, caller: Caller = _WEBHOOKS,
                         idempotency_key: str | None = IDEMPOTENCY) -> Response:
    reply = await _stub(request).CreateWebhook(pb.CreateWebhookRequest(webhook=pb.Webhook(
        url=body.url, event_types=body.event_types, description=body.description)), metadata=caller.metadata)
    created = s.WebhookCreated(**_webhook_fields(reply.webhook), secret=reply.secret)
    return _json(created, 201, {"Location": f"/api/v1/webhooks/{created.id}", "Cache-Control": "no-store"})


@router.delete("/webhooks/{webhook_id}", status_code=204,
               summary="Delete a subscription (its queued deliveries are parked)")
async def delete_webhook(webhook_id: UUID, request: Request, caller: Caller = _WEBHOOKS) -> Response:
    await _stub(request).DeleteWebhook(pb.DeleteWebhookRequest(id=str(webhook_id)), metadata=caller.metadata)
    return Response(status_code=204)


@router.get("/webhooks/deliveries", response_model=s.DeliveryPage,
            summary="Webhook deliveries with every attempt, newest first")
async def list_webhook_deliveries(request: Request, caller: Caller = _WEBHOOKS, limit: int = Query(50, ge=1, le=200),
                                  cursor: str = Query("", max_length=2000), status: s.DeliveryStatus | None = None,
                                  recipient: str = Query("", max_length=200, description="A webhook id"),
                                  event_id: str = Query("", max_length=64)) -> Response:
    return await _deliveries(request, caller, "webhook", limit, cursor, status, recipient, event_id)


@router.post("/webhooks/deliveries/{delivery_id}/replay", response_model=s.Delivery,
             responses={409: {"description": "DELIVERY_PENDING: it is still queued"}},
             summary="Send a parked (or delivered) webhook delivery again")
async def replay_webhook_delivery(delivery_id: UUID, request: Request, caller: Caller = _WEBHOOKS) -> Response:
    reply = await _stub(request).ReplayDelivery(pb.ReplayDeliveryRequest(id=str(delivery_id), channel="webhook"),
                                                metadata=caller.metadata)
    return _json(_delivery_json(reply.delivery))
