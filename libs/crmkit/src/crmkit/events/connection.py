"""Connecting to NATS as this process's own user (crmkit.events.permissions), the one way every
service and the gateway do it. The password travels as a connect option, never in the URL, so it
appears in no log line or error message."""

from __future__ import annotations

import ssl

import nats
from nats.aio.client import Client as NATS

from crmkit.events.permissions import inbox_prefix
from crmkit.settings import CommonSettings


async def connect(settings: CommonSettings, client_name: str) -> NATS:
    options: dict[str, object] = {}
    if settings.nats_user:
        options.update(user=settings.nats_user, inbox_prefix=inbox_prefix(settings.nats_user),
                       password=settings.nats_password.get_secret_value() if settings.nats_password else "")
    if settings.nats_ca_pem is not None:
        options["tls"] = ssl.create_default_context(cadata=settings.nats_ca_pem.get_secret_value())
    return await nats.connect(settings.nats_url, name=client_name, max_reconnect_attempts=-1, **options)
