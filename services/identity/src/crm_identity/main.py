"""Entry point: `crm-identity serve` runs the service, `crm-identity migrate` its migrations."""

from __future__ import annotations

import argparse
import asyncio
import logging

from crm.identity.v1 import identity_pb2_grpc
from crm_identity.adapters.anchors import JetStreamAnchors
from crm_identity.adapters.grpc_api import PUBLIC_METHODS, SERVICE_NAME, SOURCE, IdentityServicer
from crm_identity.app import audit, org
from crm_identity.app.credentials import SigningKeys
from crm_identity.app.tokens import TokenConfig
from crm_identity.domain.passwords import LockoutPolicy
from crm_identity.settings import IdentitySettings
from crmkit import migrations, service
from crmkit.db import UnitOfWork, create_engine, session_factory
from crmkit.events.consumer import Subscription

NAME = "identity"
MIGRATIONS = migrations.locate(__file__)

log = logging.getLogger(__name__)


def token_config(settings: IdentitySettings) -> TokenConfig:
    import datetime as dt

    return TokenConfig(keys=SigningKeys.from_config(settings.identity_signing_keys.get_secret_value()),
                       issuer=settings.token_issuer, audience=settings.token_audience,
                       access_ttl=settings.access_token_ttl, refresh_ttl=settings.refresh_token_ttl,
                       lockout=LockoutPolicy(settings.lockout_max_failures,
                                             dt.timedelta(minutes=settings.lockout_minutes)))


def audit_subscriptions(streams: list[str]) -> list[Subscription]:
    """One durable consumer per producing service's stream, taking every event in it."""
    return [Subscription(name=f"identity-audit-{stream.lower().replace('_', '-')}", stream=stream,
                         subjects=["crm.>"], handler=audit.record_event) for stream in streams]


def wirer(settings: IdentitySettings):
    config = token_config(settings)

    def wire(runtime: service.Runtime) -> None:
        anchors = JetStreamAnchors(runtime.js, settings.stream_replicas)
        runtime.grpc.add(identity_pb2_grpc.add_IdentityServiceServicer_to_server,
                         IdentityServicer(runtime.sessions, config, anchors=anchors), SERVICE_NAME)
        runtime.subscriptions.extend(audit_subscriptions(settings.audit_stream_names()))

        async def anchor_once() -> None:
            async with UnitOfWork(runtime.sessions, SOURCE, actor="system") as uow:
                await audit.anchor(uow, anchors)

        runtime.add_periodic("audit-anchor", anchor_once, settings.audit_anchor_seconds)

    return wire


async def bootstrap(settings: IdentitySettings) -> None:
    password = settings.identity_bootstrap_admin_password
    if password is None or not password.get_secret_value():
        return
    engine = create_engine(settings.database_url.get_secret_value(), pool_size=1)
    try:
        async with UnitOfWork(session_factory(engine), SOURCE, actor="system") as uow:
            if await org.bootstrap_admin(uow, password.get_secret_value()):
                log.warning("bootstrap: created the root department and the user `admin`; change its password")
    finally:
        await engine.dispose()


async def run(settings: IdentitySettings) -> None:
    await bootstrap(settings)
    await service.serve(NAME, settings, wirer(settings), public_methods=PUBLIC_METHODS)


def migrate(database_url: str) -> None:
    migrations.upgrade(MIGRATIONS, database_url)


def cli() -> None:
    parser = argparse.ArgumentParser(prog="crm-identity", description=__doc__)
    parser.add_argument("command", choices=["serve", "migrate"])
    args = parser.parse_args()
    settings = IdentitySettings()  # type: ignore[call-arg]
    if args.command == "migrate":
        migrate(settings.database_url.get_secret_value())
    else:
        asyncio.run(run(settings))


if __name__ == "__main__":
    cli()
