"""The wiring: the servicer, the quote.accepted subscription, the periodic pass; and one run of
the pass the background task repeats."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from types import SimpleNamespace
from typing import Any

import pytest

from crm_contracts.adapters.identity import IdentityOrg, NoOrg
from crm_contracts.app import use_cases as uc
from crm_contracts.app.references import Owners
from crm_contracts.domain import model
from crm_contracts.domain.model import Instalment
from crm_contracts.main import SERVICE_NAME, run_passes_once, wire
from crm_contracts.settings import ContractsSettings
from crmkit.errors import Unavailable
from crmkit.testing.principals import EAST_REP
from crmkit.testing.service import EveryCustomer


class FakeRuntime(SimpleNamespace):
    def __init__(self, settings: ContractsSettings) -> None:
        super().__init__(settings=settings, sessions=None, subscriptions=[], background={}, added=[], channels=[])
        self.grpc = SimpleNamespace(add=lambda adder, servicer, name: self.added.append((servicer, name)))

    def add_background(self, name: str, run: Any) -> None:
        self.background[name] = run

    def add_periodic(self, name: str, run_pass: Any, interval: float, **_: Any) -> None:
        self.add_background(name, run_pass)

    def internal_channel(self, target: str) -> Any:
        import grpc

        self.channels.append(target)
        return grpc.aio.insecure_channel(target)

    def caller_channel(self, target: str) -> Any:
        return self.internal_channel(f"as-caller:{target}")


def settings(**kw: Any) -> ContractsSettings:
    return ContractsSettings(database_url="postgresql+asyncpg://x/y", principal_public_key="k", **kw)


async def test_wire_registers_the_service_the_consumers_and_the_pass() -> None:
    runtime = FakeRuntime(settings(identity_target="identity:50051", customers_target="customers:50051",
                                   opportunities_target="opportunities:50051"))
    wire(runtime)  # type: ignore[arg-type]
    [(servicer, name)] = runtime.added
    assert name == SERVICE_NAME == "crm.contracts.v1.ContractsService"
    assert isinstance(servicer._org, IdentityOrg)
    # The references of a write are checked as the caller; the draft from an event asks as the service.
    assert runtime.channels == ["identity:50051", "as-caller:customers:50051", "as-caller:opportunities:50051",
                                "customers:50051"]
    assert [(s.name, s.stream, s.subjects) for s in runtime.subscriptions] == [
        ("contracts-quote-accepted", "CRM_OPPORTUNITIES", ["crm.opportunities.quote.accepted"]),
        ("contracts-customer-reassigned", "CRM_CUSTOMERS", ["crm.customers.customer.reassigned"]),
        ("contracts-customer-merged", "CRM_CUSTOMERS", ["crm.customers.customer.merged"]),
        ("contracts-customer-updated", "CRM_CUSTOMERS", ["crm.customers.customer.updated"])]
    assert list(runtime.background) == ["contracts-periodic"]


async def test_without_an_identity_target_submission_says_so() -> None:
    runtime = FakeRuntime(settings(customers_target="customers:50051", opportunities_target="opportunities:50051"))
    wire(runtime)  # type: ignore[arg-type]
    org = runtime.added[0][0]._org
    assert isinstance(org, NoOrg)
    with pytest.raises(Unavailable) as e:
        await org.manager_chain("someone", 1)
    assert e.value.reason == "ORG_CHART_UNAVAILABLE"


async def test_one_run_of_the_periodic_pass(sessions, call, org) -> None:
    lines = [model.parse_line(0, "Valve", "", "1", "pcs", "100", "0", "0")]
    customer_id = uuid.uuid4()
    c = await call(EAST_REP, uc.create_contract, uc.Terms(
        customer_id=customer_id, lines=lines, start_date=dt.date(2027, 1, 1), end_date=dt.date(2027, 12, 31),
        instalments=[Instalment(1, dt.date(2027, 1, 1), Decimal("100.00"), "")]),
        Owners(EveryCustomer(), opportunities=None))  # type: ignore[arg-type]  # names no opportunity
    _, [step] = await call(EAST_REP, uc.submit, c.id, 0, {}, org)
    assert await run_passes_once(sessions, now=step.due_at, notice_months=6) == (1, 0)
    assert await run_passes_once(sessions, now=step.due_at, notice_months=6, lifecycle=False) == (0, 0)
