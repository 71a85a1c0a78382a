"""The suite for e2e scenarios: started once per session by the same launcher `make dev` uses,
on its own ports and data directory, with every process's output in e2e-suite.log."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from crm_devstack import Suite

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
