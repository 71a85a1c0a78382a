"""Entry point: `crm-opportunities serve` runs the service, `crm-opportunities migrate` its migrations."""

from __future__ import annotations

import argparse
import asyncio

from crm.opportunities.v1 import opportunities_pb2, opportunities_pb2_grpc
from crm_opportunities.adapters.grpc_api import OpportunitiesServicer
from crm_opportunities.settings import OpportunitiesSettings
from crmkit import migrations, service

NAME = "opportunities"
SERVICE_NAME = opportunities_pb2.DESCRIPTOR.services_by_name["OpportunitiesService"].full_name
MIGRATIONS = migrations.locate(__file__)


def wire(runtime: service.Runtime) -> None:
    runtime.grpc.add(opportunities_pb2_grpc.add_OpportunitiesServiceServicer_to_server,
                     OpportunitiesServicer(runtime.sessions), SERVICE_NAME)


def migrate(database_url: str) -> None:
    migrations.upgrade(MIGRATIONS, database_url)


def cli() -> None:
    parser = argparse.ArgumentParser(prog="crm-opportunities", description=__doc__)
    parser.add_argument("command", choices=["serve", "migrate"])
    args = parser.parse_args()
    settings = OpportunitiesSettings()  # type: ignore[call-arg]
    if args.command == "migrate":
        migrate(settings.database_url.get_secret_value())
        return
    asyncio.run(service.serve(NAME, settings, wire))


if __name__ == "__main__":
    cli()
