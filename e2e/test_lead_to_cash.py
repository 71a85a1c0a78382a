"""The lead-to-cash flow of ARCHITECTURE.md, end to end through the REST gateway of the started
suite, with the SAP simulator standing in for S/4HANA; its steps are in e2e/chain.py."""

from __future__ import annotations

from crm_devstack import Suite
from e2e.chain import lead_to_cash


async def test_lead_to_cash(suite: Suite, sign_in, eventually) -> None:
    await lead_to_cash(suite, sign_in, eventually)
