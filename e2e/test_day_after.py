"""The day after (issue 21): the suite is started on a data dir, lead to cash is walked, the suite
is stopped and started again on the same data, and lead to cash is walked again. Every step works
the second time, SAP included: the simulator continues its number ranges, so the delivery and the
billing document of the second walk reach the CRM instead of colliding with the first walk's.

This suite is its own: the session's `suite` stays untouched."""

from __future__ import annotations

import asyncio
import functools
import os

import pytest

from crm_devstack import Suite, demo
from e2e.chain import lead_to_cash, signed_in

# 500 above the session suite's ports (CRM_E2E_PORT_OFFSET, e2e/conftest.py), so both can run
PORT_OFFSET = int(os.environ.get("CRM_E2E_PORT_OFFSET", "1000")) + 500


@pytest.mark.timeout(600)  # two suite starts and two walks: twice what one e2e scenario may take
async def test_lead_to_cash_again_after_a_restart_on_the_same_data(
        tmp_path_factory: pytest.TempPathFactory, eventually) -> None:
    data_dir = tmp_path_factory.mktemp("day-after")
    log_path = data_dir.parent / "e2e-day-after.log"
    walks = []
    with log_path.open("w") as log:
        for day in ("first", "second"):
            print(f"--- {day} day", file=log, flush=True)
            async with Suite(data_dir, port_offset=PORT_OFFSET, output=log) as suite:
                await asyncio.to_thread(demo.seed, suite.gateway_url, log=lambda _: None)
                walks.append(await lead_to_cash(suite, functools.partial(signed_in, suite.gateway_url),
                                                eventually))
    first, second = walks
    # S/4HANA never hands out a number twice; neither does the simulator across a restart
    assert int(second.sales_order) > int(first.sales_order)
    assert int(second.delivery) > int(first.delivery)
    assert int(second.billing_document) > int(first.billing_document)
    assert (data_dir / "sap-simulator" / "state.json").is_file()
