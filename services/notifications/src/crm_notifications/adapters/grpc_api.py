"""The gRPC face of the service: protobuf in, use case, protobuf out. No rules live here."""

from __future__ import annotations

from typing import Any

import grpc
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from crm.notifications.v1 import notifications_pb2 as pb
from crm.notifications.v1 import notifications_pb2_grpc as pb_grpc
from crm_notifications.adapters.directory import Directory
from crm_notifications.app import use_cases
from crm_notifications.app.messages import (
    delivery_to_pb,
    item_to_pb,
    preferences_to_pb,
    rule_to_pb,
    webhook_to_pb,
)
from crmkit.auth import current_principal
from crmkit.db import UnitOfWork
from crmkit.ids import parse_id

SOURCE = "crm/notifications"
SERVICE_NAME = pb.DESCRIPTOR.services_by_name["NotificationsService"].full_name


def _robots(rule: pb.Rule) -> list[tuple[str, str, str, str]]:
    return [(b.kind, b.url, b.secret, b.locale) for b in rule.robots]


class NotificationsServicer(pb_grpc.NotificationsServiceServicer):
    def __init__(self, sessions: async_sessionmaker[AsyncSession], directory: Directory | None = None) -> None:
        self._sessions = sessions
        # Who holds which role, for rules that name roles (None in tests of the API alone).
        self._directory = directory

    def _uow(self) -> UnitOfWork:
        return UnitOfWork(self._sessions, SOURCE, actor=current_principal().subject)

    # ---------------------------------------------------------------------------- inbox

    async def ListInbox(self, request: pb.ListInboxRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            items, token = await use_cases.list_inbox(
                uow, current_principal(), limit=request.page_size, page_token=request.page_token,
                unread_only=request.unread_only, after_sequence=request.after_sequence)
        return pb.ListInboxResponse(items=[item_to_pb(i) for i in items], next_page_token=token)

    async def MarkRead(self, request: pb.MarkReadRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            item = await use_cases.mark_read(uow, current_principal(), parse_id(request.id))
        return pb.MarkReadResponse(item=item_to_pb(item))

    async def MarkAllRead(self, request: pb.MarkAllReadRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            marked = await use_cases.mark_all_read(uow, current_principal())
        return pb.MarkAllReadResponse(marked=marked)

    async def GetUnreadCount(self, request: pb.GetUnreadCountRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            unread = await use_cases.unread_count(uow, current_principal())
        return pb.GetUnreadCountResponse(unread=unread)

    # ---------------------------------------------------------------------- preferences

    async def GetPreferences(self, request: pb.GetPreferencesRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            prefs = await use_cases.get_preferences(uow, current_principal())
        return pb.GetPreferencesResponse(preferences=preferences_to_pb(prefs))

    async def UpdatePreferences(self, request: pb.UpdatePreferencesRequest,
                                context: grpc.aio.ServicerContext) -> Any:
        p = request.preferences
        async with self._uow() as uow:
            saved = await use_cases.update_preferences(
                uow, current_principal(), channels={c.kind: list(c.channels) for c in p.channels},
                quiet_start=p.quiet_start, quiet_end=p.quiet_end, time_zone=p.time_zone,
                daily_digest=p.daily_digest, digest_hour=p.digest_hour if p.digest_hour else 8,
                expected_version=request.expected_version)
        return pb.UpdatePreferencesResponse(preferences=preferences_to_pb(saved))

    # ---------------------------------------------------------------------------- rules

    async def ListRules(self, request: pb.ListRulesRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            rules = await use_cases.list_rules(uow, current_principal())
        return pb.ListRulesResponse(rules=[rule_to_pb(r) for r in rules])

    async def CreateRule(self, request: pb.CreateRuleRequest, context: grpc.aio.ServicerContext) -> Any:
        r = request.rule
        async with self._uow() as uow:
            rule = await use_cases.create_rule(uow, current_principal(), directory=self._directory, name=r.name,
                                               event_subject=r.event_subject, kind=r.kind,
                                               recipients=list(r.recipients), robots=_robots(r), enabled=r.enabled)
        return pb.CreateRuleResponse(rule=rule_to_pb(rule))

    async def UpdateRule(self, request: pb.UpdateRuleRequest, context: grpc.aio.ServicerContext) -> Any:
        r = request.rule
        async with self._uow() as uow:
            rule = await use_cases.update_rule(
                uow, current_principal(), parse_id(r.id, "rule.id"), directory=self._directory, name=r.name,
                event_subject=r.event_subject, kind=r.kind, recipients=list(r.recipients), robots=_robots(r),
                enabled=r.enabled, expected_version=request.expected_version)
        return pb.UpdateRuleResponse(rule=rule_to_pb(rule))

    async def DeleteRule(self, request: pb.DeleteRuleRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            await use_cases.delete_rule(uow, current_principal(), parse_id(request.id))
        return pb.DeleteRuleResponse()

    # ------------------------------------------------------------------------- webhooks

    async def ListWebhooks(self, request: pb.ListWebhooksRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            hooks = await use_cases.list_webhooks(uow, current_principal())
        return pb.ListWebhooksResponse(webhooks=[webhook_to_pb(h) for h in hooks])

    async def CreateWebhook(self, request: pb.CreateWebhookRequest, context: grpc.aio.ServicerContext) -> Any:
        w = request.webhook
        async with self._uow() as uow:
            hook = await use_cases.create_webhook(uow, current_principal(), url=w.url, event_types=list(w.event_types),
                                                  description=w.description)
        return pb.CreateWebhookResponse(webhook=webhook_to_pb(hook), secret=hook.secret)

    async def DeleteWebhook(self, request: pb.DeleteWebhookRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            await use_cases.delete_webhook(uow, current_principal(), parse_id(request.id))
        return pb.DeleteWebhookResponse()

    # ----------------------------------------------------------------------- deliveries

    async def ListDeliveries(self, request: pb.ListDeliveriesRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            items, token = await use_cases.list_deliveries(
                uow, current_principal(), limit=request.page_size, page_token=request.page_token,
                channel=request.channel, status=request.status, recipient=request.recipient,
                event_id=request.event_id)
        return pb.ListDeliveriesResponse(deliveries=[delivery_to_pb(d) for d in items], next_page_token=token)

    async def ReplayDelivery(self, request: pb.ReplayDeliveryRequest, context: grpc.aio.ServicerContext) -> Any:
        async with self._uow() as uow:
            replayed = await use_cases.replay_delivery(uow, current_principal(), parse_id(request.id),
                                                       request.channel)
        return pb.ReplayDeliveryResponse(delivery=delivery_to_pb(replayed))
