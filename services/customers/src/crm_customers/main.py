"""Entry point: `crm-customers serve` runs the service, `crm-customers migrate` its migrations,
`crm-customers reencrypt` seals plaintext sensitive values and re-seals old-key ones."""

from __future__ import annotations

import argparse
import asyncio
import json
from dataclasses import asdict

from crm.customers.v1 import customers_pb2, customers_pb2_grpc
from crm_customers.adapters import sensitive
from crm_customers.adapters.grpc_api import CustomersServicer
from crm_customers.adapters.owners import IdentityOwnerDirectory
from crm_customers.adapters.reencrypt import reencrypt
from crm_customers.app import imports, leads, tiers
from crm_customers.app.use_cases import CONTRACT_SIGNED_SUBJECT, on_contract_signed
from crm_customers.settings import CustomersSettings
from crmkit import migrations, service
from crmkit.db import create_engine, session_factory
from crmkit.events.consumer import Subscription
from crmkit.settings import ServiceSettings

NAME = "customers"
MIGRATIONS = migrations.locate(__file__)


def wire(runtime: service.Runtime) -> None:
    if not isinstance(runtime.settings, CustomersSettings):
        raise TypeError("the customers service needs CustomersSettings (its field keys)")
    sensitive.configure(runtime.settings.cipher())
    # R-CUS-03: an import row's owner column is resolved against identity's org chart.
    if runtime.settings.identity_target and runtime.settings.service_private_key is not None:
        imports.configure_owners(IdentityOwnerDirectory(runtime.internal_channel(runtime.settings.identity_target)))
    runtime.grpc.add(customers_pb2_grpc.add_CustomersServiceServicer_to_server,
                     CustomersServicer(runtime.sessions),
                     customers_pb2.DESCRIPTOR.services_by_name["CustomersService"].full_name)
    # R-SEC-02 / R-CUS-11: a signed contract makes the customer visible to finance and a customer.
    runtime.subscriptions.append(Subscription(
        name="customers-contract-signed", stream="CRM_CONTRACTS", subjects=[CONTRACT_SIGNED_SUBJECT],
        handler=on_contract_signed))
    # R-LEAD-01 attribution: the won amount of an opportunity converted from a lead.
    runtime.subscriptions.append(Subscription(
        name="customers-opportunity-won", stream="CRM_OPPORTUNITIES", subjects=[leads.OPPORTUNITY_WON_SUBJECT],
        handler=leads.on_opportunity_won))
    # R-CUS-06: the tier thresholds the contract.signed handler applies.
    tiers.configure_tiers(runtime.settings.tier_currency, a_from=runtime.settings.tier_a_from,
                             b_from=runtime.settings.tier_b_from)


def migrate(database_url: str) -> None:
    migrations.upgrade(MIGRATIONS, database_url)


async def run_reencrypt(settings: CustomersSettings, *, batch_size: int, dry_run: bool) -> dict[str, object]:
    sensitive.configure(settings.cipher())
    engine = create_engine(settings.database_url.get_secret_value(), pool_size=2)
    try:
        report = await reencrypt(session_factory(engine), batch_size=batch_size, dry_run=dry_run)
    finally:
        await engine.dispose()
    return asdict(report)


def cli() -> None:
    parser = argparse.ArgumentParser(prog="crm-customers", description=__doc__)
    parser.add_argument("command", choices=["serve", "migrate", "reencrypt"])
    parser.add_argument("--batch-size", type=int, default=500, help="reencrypt: rows per transaction")
    parser.add_argument("--dry-run", action="store_true", help="reencrypt: only count what would change")
    args = parser.parse_args()
    if args.command == "migrate":
        # The migration needs no keys (the Helm hook Job does not get them).
        migrate(ServiceSettings().database_url.get_secret_value())  # type: ignore[call-arg]
        return
    settings = CustomersSettings()  # type: ignore[call-arg]
    if args.command == "reencrypt":
        report = asyncio.run(run_reencrypt(settings, batch_size=args.batch_size, dry_run=args.dry_run))
        print(json.dumps(report))
        raise SystemExit(1 if report["duplicate_tax_ids"] else 0)
    asyncio.run(service.serve(NAME, settings, wire))


if __name__ == "__main__":
    cli()
