"""Entry point: `crm-notifications serve` runs the service, `crm-notifications migrate` its migrations."""

from __future__ import annotations

import datetime as dt

from crm.notifications.v1 import notifications_pb2_grpc
from crm_notifications.adapters.channels import Channels
from crm_notifications.adapters.directory import IdentityDirectory
from crm_notifications.adapters.grpc_api import SERVICE_NAME, NotificationsServicer
from crm_notifications.app.delivery import RetryPolicy, Worker
from crm_notifications.app.handling import STREAMS, Notifier
from crm_notifications.settings import NotificationsSettings
from crmkit import migrations, service
from crmkit.events.consumer import Subscription

NAME = "notifications"
MIGRATIONS = migrations.locate(__file__)


def subscriptions(notifier: Notifier) -> list[Subscription]:
    """One durable consumer per producer's stream, over all of its subjects."""
    return [Subscription(name=f"notifications-{stream.removeprefix('CRM_').lower()}", stream=stream,
                         subjects=[f"crm.{stream.removeprefix('CRM_').lower()}.>"], handler=notifier.handle)
            for stream in STREAMS]


def wire(runtime: service.Runtime) -> None:
    settings = runtime.settings
    assert isinstance(settings, NotificationsSettings)
    directory = IdentityDirectory(runtime.internal_channel(settings.identity_target))
    runtime.grpc.add(notifications_pb2_grpc.add_NotificationsServiceServicer_to_server,
                     NotificationsServicer(runtime.sessions, directory), SERVICE_NAME)
    channels = Channels(settings)
    notifier = Notifier(directory, email_enabled=channels.email_enabled, base_url=settings.public_base_url,
                        max_age=dt.timedelta(hours=settings.max_event_age_hours))
    runtime.subscriptions.extend(subscriptions(notifier))
    worker = Worker(runtime.sessions, channels,
                    RetryPolicy(settings.retry_base_seconds, settings.retry_cap_seconds, settings.retry_jitter,
                                settings.max_attempts),
                    batch=settings.worker_batch, idle_seconds=settings.worker_idle_seconds,
                    base_url=settings.public_base_url)
    runtime.add_background("delivery-worker", worker.run)


def migrate(database_url: str) -> None:
    migrations.upgrade(MIGRATIONS, database_url)


def cli() -> None:
    service.command_line(NAME, NotificationsSettings, wire, MIGRATIONS, description=__doc__)


if __name__ == "__main__":
    cli()
