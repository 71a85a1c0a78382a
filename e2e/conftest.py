"""The suite for e2e scenarios: started once per session by the same launcher `make dev` uses,
on its own ports and data directory, with every process's output in e2e-suite.log; then the demo
org chart (identity) is created through the REST API, as `make dev` does."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from crm_devstack import Suite, demo
from e2e.chain import Person, signed_in

FUZZ_MODULE = Path(__file__).parent / "test_fuzz.py"
# Far from `make dev`'s ports, so the two can run side by side.
PORT_OFFSET = int(os.environ.get("CRM_E2E_PORT_OFFSET", "1000"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).is_relative_to(Path(__file__).parent):
            item.add_marker(pytest.mark.e2e)
    # The fuzz pass creates configuration (rules, pipelines, webhooks) other scenarios must not meet.
    items.sort(key=lambda item: Path(str(item.fspath)) == FUZZ_MODULE)


@pytest.fixture(scope="session")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Suite]:
    data_dir = tmp_path_factory.mktemp("suite")
    log = (data_dir.parent / "e2e-suite.log").open("w")
    with Suite(data_dir, port_offset=PORT_OFFSET, output=log) as running:
        yield running
    log.close()


@pytest.fixture(scope="session")
def demo_org(suite: Suite) -> dict[str, Any]:
    """The demo org chart, users and partner client (with its API key, shown only at creation)."""
    return demo.seed(suite.gateway_url, log=lambda _: None)


@pytest.fixture(scope="session")
def sign_in(suite: Suite, demo_org: dict[str, Any]) -> Callable[[str], Person]:
    """Signs a demo user in through the gateway (identity checks the password)."""
    return lambda user: signed_in(suite.gateway_url, user)


@pytest.fixture(scope="session")
def eventually() -> Callable[..., Awaitable[Any]]:
    """Polls `check` until it returns a truthy value, up to a deadline (never a fixed sleep)."""

    async def wait(check: Callable[[], Awaitable[Any]], timeout: float = 15.0,  # noqa: ASYNC109
                   what: str = "condition") -> Any:
        deadline = time.monotonic() + timeout
        while True:
            result = await check()
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"{what} not reached within {timeout}s")
            await asyncio.sleep(0.1)

    return wait
