"""The suite for e2e scenarios: started once per session by the same launcher `make dev` uses,
on its own ports and data directory, with every process's output in e2e-suite.log; then the demo
org chart (identity) is created through the REST API, as `make dev` does."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import pytest

from crm_devstack import Suite, demo
from crm_devstack.keys import login

# Far from `make dev`'s ports, so the two can run side by side.
PORT_OFFSET = int(os.environ.get("CRM_E2E_PORT_OFFSET", "1000"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).is_relative_to(Path(__file__).parent):
            item.add_marker(pytest.mark.e2e)


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


@dataclass(frozen=True)
class Person:
    login: str
    token: str
    id: str
    team_ids: tuple[str, ...]

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture(scope="session")
def sign_in(suite: Suite, demo_org: dict[str, Any]) -> Callable[[str], Person]:
    """Signs a demo user in through the gateway (identity checks the password)."""

    def person(user: str) -> Person:
        token = login(suite.gateway_url, user, demo.DEMO_PASSWORD)
        claims = jwt.decode(token, options={"verify_signature": False})
        return Person(user, token, claims["sub"], tuple(claims.get("teams", [])))

    return person


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
