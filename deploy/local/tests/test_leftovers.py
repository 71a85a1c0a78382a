"""No process outlives its launcher, and a leftover of an earlier run is named, never killed.

The launcher (`crm-dev up`) runs real PostgreSQL, NATS and SAP simulator, and stand-in services
(tests/standin.py). Killed with SIGKILL it cannot stop anything itself: its children stop on
their parent-death signal. A next start beside leftovers refuses and says what to run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from crm_devstack.suite import STATE_FILE, Suite, SuiteError, reset
from crmkit.embedded import EmbeddedNats, EmbeddedPostgres
from crmkit.testing.processes import running
from crmkit.testing.servers import free_port

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")]

STANDIN = Path(__file__).with_name("standin.py")
DEADLINE = 30.0


def _suite_toml(out: Path) -> str:
    py, s = json.dumps(sys.executable), json.dumps(str(STANDIN))
    env = f'env = {{ STANDIN_DIR = {json.dumps(str(out))} }}'
    return f"""
[postgres]
port = {free_port()}

[nats]
port = {free_port()}
monitor_port = {free_port()}

[[http_services]]
name = "sap-simulator"
serve = ["crm-sap-simulator", "--port", "{{port}}"]
http_port = {free_port()}
env = {{ CRM_SAP_SIMULATOR_STATE_FILE = "{{data_dir}}/sap-simulator/state.json" }}

[[services]]
name = "alpha"
serve = [{py}, {s}, "serve"]
migrate = [{py}, {s}, "migrate"]
database = "crm_alpha"
grpc_port = {free_port()}
metrics_port = {free_port()}
{env}

[gateway]
serve = [{py}, {s}, "gateway"]
http_port = {free_port()}
{env}
"""


@pytest.fixture
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="crm-lo-", dir="/tmp"))  # short: PostgreSQL's socket path
    (path / "suite.toml").write_text(_suite_toml(path / "out"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _wait_gone(pids: list[int], timeout: float = DEADLINE) -> list[int]:
    deadline = time.monotonic() + timeout
    while (alive := [p for p in pids if running(p)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive


def test_every_child_stops_when_the_launcher_is_killed(workdir: Path) -> None:
    data = workdir / "data"
    launcher = subprocess.Popen(
        [sys.executable, "-m", "crm_devstack.cli", "up", "--data-dir", str(data), "--suite",
         str(workdir / "suite.toml"), "--no-demo"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(launcher.stdout or []), daemon=True)
    reader.start()
    pids: dict[str, int] = {}
    try:
        deadline = time.monotonic() + 120
        while not any("CRM suite is up." in line for line in lines):
            assert launcher.poll() is None and time.monotonic() < deadline, "".join(lines)
            time.sleep(0.05)
        pids = json.loads((data / STATE_FILE).read_text())["pids"]
        assert set(pids) == {"postgres", "nats", "sap-simulator", "alpha", "gateway"}
        assert all(running(pid) for pid in pids.values())
    finally:
        launcher.send_signal(signal.SIGKILL)
        launcher.wait()
        reader.join(5)
    alive = _wait_gone(list(pids.values()))
    for pid in alive:  # leave nothing behind for the next test, but fail
        os.kill(pid, signal.SIGKILL)
    assert alive == [], f"outlived the launcher: {[n for n, p in pids.items() if p in alive]}"
    # PostgreSQL stopped cleanly on its signal (a fast shutdown), not cut off
    assert "database system is shut down" in (data / "postgres.log").read_text()


def test_a_next_start_names_every_leftover_with_the_command_to_stop_it(workdir: Path) -> None:
    data = workdir / "data"
    suite = Suite(data, suite_file=workdir / "suite.toml", output=sys.stderr)
    # what a launcher killed before parent-death signals existed left behind: its servers on the
    # data dir, and a process still holding one of the suite's ports
    postgres = EmbeddedPostgres(data / "postgres", suite.config.postgres_port,
                                settings={"fsync": "off"}).start()
    nats_server = EmbeddedNats(data / "nats", suite.config.nats_port, suite.config.nats_monitor_port).start()
    gateway_port = suite.config.gateway.http_port
    holder = subprocess.Popen([sys.executable, "-c", "import socket, sys, time\n"
                               "s = socket.socket(); s.bind(('127.0.0.1', int(sys.argv[1]))); s.listen()\n"
                               "print('listening', flush=True); time.sleep(600)", str(gateway_port)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "listening"
        with pytest.raises(SuiteError) as refused:
            suite.start()
        message = str(refused.value)
        assert f"postgres (pid {postgres.pid}) from an earlier run: stop it with `kill -INT {postgres.pid}`" in message
        assert f"nats (pid {nats_server.pid}) from an earlier run: stop it with `kill {nats_server.pid}`" in message
        assert f"port {gateway_port} (gateway http) is held by pid {holder.pid}" in message
        assert f"stop it with `kill {holder.pid}`" in message
        # nothing was killed, nothing was started
        assert postgres.running_pid() == postgres.pid and nats_server.running_pid() == nats_server.pid
        assert holder.poll() is None
        assert suite.pids() == {}

        with pytest.raises(SuiteError, match=f"kill -INT {postgres.pid}"):
            reset(data)
        assert postgres.running_pid() == postgres.pid
    finally:
        holder.kill()
        holder.wait()
        nats_server.stop()
        postgres.stop()
