"""Entry point: `crm-customers serve` runs the service, `crm-customers migrate` its migrations."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from crm.customers.v1 import customers_pb2, customers_pb2_grpc
from crm_customers.adapters.grpc_api import CustomersServicer
from crmkit import migrations, service
from crmkit.settings import ServiceSettings

NAME = "customers"
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
if not MIGRATIONS.exists():  # running from a source checkout rather than an installed wheel
    MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"


def wire(runtime: service.Runtime) -> None:
    runtime.grpc.add(customers_pb2_grpc.add_CustomersServiceServicer_to_server,
                     CustomersServicer(runtime.sessions),
                     customers_pb2.DESCRIPTOR.services_by_name["CustomersService"].full_name)


def migrate(database_url: str) -> None:
    migrations.upgrade(MIGRATIONS, database_url)


def cli() -> None:
    parser = argparse.ArgumentParser(prog="crm-customers", description=__doc__)
    parser.add_argument("command", choices=["serve", "migrate"])
    args = parser.parse_args()
    settings = ServiceSettings()  # type: ignore[call-arg]
    if args.command == "migrate":
        migrate(settings.database_url.get_secret_value())
    else:
        asyncio.run(service.serve(NAME, settings, wire))


if __name__ == "__main__":
    cli()
