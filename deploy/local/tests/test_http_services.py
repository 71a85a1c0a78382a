"""[[http_services]] in suite.toml: plain HTTP processes (the SAP simulator) that start before the
services, shift with the port offset, and whose URL the services' env can name."""

from __future__ import annotations

import json
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from crm_devstack.config import load_suite
from crm_devstack.keys import ensure_keys
from crm_devstack.suite import Suite
from crmkit.testing.servers import free_port


def _toml(tmp: Path, port: int, *, ready_path: str = "/") -> Path:
    py = json.dumps(sys.executable)
    path = tmp / "suite.toml"
    path.write_text(textwrap.dedent(f"""
        [postgres]
        port = 1
        [nats]
        port = 2
        monitor_port = 3

        [[http_services]]
        name = "sap-simulator"
        serve = [{py}, "-m", "http.server", "--bind", "127.0.0.1", "{{port}}"]
        http_port = {port}
        ready_path = "{ready_path}"
        ready_timeout = 15

        [[services]]
        name = "sap"
        serve = ["crm-sap", "serve"]
        database = "crm_sap"
        grpc_port = 4
        metrics_port = 5
        env = {{ CRM_SAP_BASE_URL = "{{sap_simulator_url}}" }}
    """))
    return path


def test_http_services_are_read_shifted_and_named_in_env(tmp_path: Path) -> None:
    config = load_suite(_toml(tmp_path, 50280))
    [sim] = config.http_services
    assert (sim.name, sim.http_port, sim.ready_path, sim.placeholder) == (
        "sap-simulator", 50280, "/", "sap_simulator_url")
    shifted = config.shifted(100)
    assert shifted.http_services[0].http_port == 50380
    assert shifted.http_services[0].argv()[-1] == "50380"
    assert shifted.ports()["sap-simulator http"] == 50380

    suite = Suite(tmp_path / "data", 100, suite_file=tmp_path / "suite.toml")
    suite.keys = ensure_keys(tmp_path / "data")
    env = suite.service_env(suite.service("sap"))
    assert env["CRM_SAP_BASE_URL"] == "http://127.0.0.1:50380"


def test_duplicate_names_are_refused(tmp_path: Path) -> None:
    path = _toml(tmp_path, 50280)
    path.write_text(path.read_text().replace('name = "sap"', 'name = "sap-simulator"'))
    with pytest.raises(ValueError, match="duplicate"):
        load_suite(path)


def test_http_service_starts_and_is_waited_for(tmp_path: Path) -> None:
    port = free_port()
    suite = Suite(tmp_path / "data", suite_file=_toml(tmp_path, port), output=sys.stderr)
    suite.keys = ensure_keys(tmp_path / "data")
    try:
        suite.start_http_services()
        assert httpx.get(f"http://127.0.0.1:{port}/").status_code == 200
        assert "sap-simulator" in suite.pids()
    finally:
        suite.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/", timeout=2)


def test_an_http_service_that_never_gets_ready_fails_the_start(tmp_path: Path) -> None:
    suite = Suite(tmp_path / "data", suite_file=_toml(tmp_path, free_port(), ready_path="/missing"),
                  output=sys.stderr)
    suite.keys = ensure_keys(tmp_path / "data")
    suite.config = replace(suite.config, http_services=tuple(
        replace(h, ready_timeout=2.0) for h in suite.config.http_services))
    try:
        with pytest.raises(Exception, match="not ready"):
            suite.start_http_services()
    finally:
        suite.stop()
