"""`crm-sap-simulator --port 50280 [--state-file F]`: the S/4HANA simulator for development and tests."""

from __future__ import annotations

import argparse
import os
from decimal import Decimal
from pathlib import Path

import uvicorn

from crm_sap_simulator.app import Simulator, create_app


def cli() -> None:
    parser = argparse.ArgumentParser(prog="crm-sap-simulator", description=__doc__)
    parser.add_argument("--host", default=os.environ.get("CRM_SAP_SIMULATOR_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("CRM_SAP_SIMULATOR_PORT", "50280")))
    parser.add_argument("--user", default=os.environ.get("CRM_SAP_SIMULATOR_USER", "CRM_INTEGRATION"))
    parser.add_argument("--password", default=os.environ.get("CRM_SAP_SIMULATOR_PASSWORD", "simulator"))
    parser.add_argument("--client", default=os.environ.get("CRM_SAP_SIMULATOR_CLIENT", "100"))
    parser.add_argument("--page-size", type=int, default=100, help="server-side page size (SAP: 100 without $top)")
    parser.add_argument("--tax-rate", default="0.13")
    parser.add_argument("--state-file", type=Path, default=os.environ.get("CRM_SAP_SIMULATOR_STATE_FILE") or None,
                        help="keep documents, number ranges and the change log here across restarts "
                             "(default: in memory only)")
    args = parser.parse_args()
    sim = Simulator(user=args.user, password=args.password, client=args.client, page_size=args.page_size,
                    tax_rate=Decimal(args.tax_rate), state_file=args.state_file)
    uvicorn.run(create_app(sim), host=args.host, port=args.port, log_level="warning",
                timeout_graceful_shutdown=5)


if __name__ == "__main__":
    cli()
