# ruff: noqa: ASYNC210
"""The launcher with real PostgreSQL and NATS and stand-in services (tests/standin.py).

The tests share one data dir and run in file order, like a developer's day: first `up`, restart,
stop by Ctrl-C and by SIGTERM, then reset.
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
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import nats
import pytest

from crm_devstack import demo
from crm_devstack.config import load_suite
from crm_devstack.keys import AUDIENCE, ISSUER, ensure_keys
from crm_devstack.suite import STATE_FILE, Suite, SuiteError, reset
from crmkit.auth.principal import DataScope
from crmkit.auth.tokens import AccessTokenVerifier
from crmkit.embedded import ServerStartError
from crmkit.testing.servers import free_port

pytestmark = pytest.mark.integration

STANDIN = Path(__file__).with_name("standin.py")
DEADLINE = 30.0
_written: set[str] = set()  # what test_up stored for test_restart_keeps_data to find


def _suite_toml(out: Path, *, crash: bool = False) -> str:
    py, s = json.dumps(sys.executable), json.dumps(str(STANDIN))
    env = f'env = {{ STANDIN_DIR = {json.dumps(str(out))}, STANDIN_DELAY = "0.5" }}'
    second = "crash" if crash else "serve"
    return f"""
[postgres]
port = {free_port()}

[nats]
port = {free_port()}
monitor_port = {free_port()}

[[services]]
name = "alpha"
serve = [{py}, {s}, "serve"]
migrate = [{py}, {s}, "migrate"]
database = "crm_alpha"
grpc_port = {free_port()}
metrics_port = {free_port()}
{env}

[[services]]
name = "beta-svc"
serve = [{py}, {s}, "{second}"]
migrate = [{py}, {s}, "migrate"]
database = "crm_beta"
grpc_port = {free_port()}
metrics_port = {free_port()}
ready_timeout = 20
{env}

[gateway]
serve = [{py}, {s}, "gateway"]
http_port = {free_port()}
{env}
"""


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="crm-dev-t-", dir="/tmp"))
    (path / "suite.toml").write_text(_suite_toml(path / "out"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _data(workdir: Path) -> Path:
    return workdir / "data"


def _record(workdir: Path, name: str, kind: str) -> dict:
    return json.loads((workdir / "out" / f"{name}.{kind}.json").read_text())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie that nobody has reaped yet is gone for our purposes
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _wait_gone(pids: list[int], timeout: float = 10.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while (alive := [p for p in pids if _alive(p)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive


def _all_pids(workdir: Path, state_pids: dict[str, int]) -> list[int]:
    pids = list(state_pids.values())
    for name in ("alpha", "beta-svc"):
        pids.append(_record(workdir, name, "serve")["grandchild_pid"])
    return pids


# ------------------------------------------------------------------------------------ tests


def test_port_offset_shifts_every_port(workdir: Path) -> None:
    base = load_suite(workdir / "suite.toml")
    shifted = base.shifted(100)
    assert {k: v + 100 for k, v in base.ports().items()} == shifted.ports()
    assert shifted.services[1].target_env_name == "CRM_BETA_SVC_TARGET"


async def test_up_starts_servers_and_children_with_their_env(workdir: Path) -> None:
    data = _data(workdir)
    suite = Suite(data, suite_file=workdir / "suite.toml", output=sys.stderr)
    started = time.time()
    suite.start()
    try:
        ready_at = time.time()
        pids = suite.pids()
        assert set(pids) == {"postgres", "nats", "alpha", "beta-svc", "gateway"}
        assert json.loads((data / STATE_FILE).read_text())["launcher_pid"] == os.getpid()

        # PostgreSQL: one database per service, migrated, reachable with asyncpg
        for name in ("alpha", "beta-svc"):
            conn = await asyncpg.connect(suite.database_url(name, driver=None))
            try:
                assert await conn.fetchval("SELECT count(*) FROM migrations_run") == 1
            finally:
                await conn.close()
        conn = await asyncpg.connect(suite.database_url("alpha", driver=None))
        try:
            await conn.execute("CREATE TABLE survives (v text)")
            await conn.execute("INSERT INTO survives VALUES ('kept across restarts')")
        finally:
            await conn.close()
        _written.add("postgres")

        # NATS: JetStream on, every write synced, store inside the data dir
        conf = (data / "nats" / "nats.conf").read_text()
        assert "sync_interval: always" in conf
        assert f'store_dir: "{data / "nats" / "jetstream"}"' in conf
        with urllib.request.urlopen(f"{suite.nats.monitor_url}/varz", timeout=5) as r:
            varz = json.load(r)
        assert varz["jetstream"]["config"]["sync_always"] is True
        assert varz["host"] == "127.0.0.1"
        nc = await nats.connect(suite.nats_url)
        try:
            js = nc.jetstream()
            await js.add_stream(name="CRM_TEST", subjects=["crm.test.>"])
            ack = await js.publish("crm.test.thing.created", b"kept")
            assert ack.seq == 1
        finally:
            await nc.close()
        _written.add("nats")

        # children got the right environment
        keys = ensure_keys(data)
        for name in ("alpha", "beta-svc"):
            spec = suite.service(name)
            for kind in ("migrate", "serve"):
                env = _record(workdir, name, kind)["env"]
                assert env["CRM_DATABASE_URL"] == (
                    f"postgresql+asyncpg://postgres@127.0.0.1:{suite.config.postgres_port}"
                    f"/{spec.database}")
                assert env["CRM_NATS_URL"] == suite.nats.url  # no credentials in the URL
                assert env["CRM_NATS_USER"] == name  # its own user: crmkit.events.permissions
                assert env["CRM_GRPC_PORT"] == str(spec.grpc_port)
                assert env["CRM_METRICS_PORT"] == str(spec.metrics_port)
                assert env["CRM_PRINCIPAL_PUBLIC_KEY"] == keys.principal_public_pem
                assert env["CRM_LOG_LEVEL"] == "INFO"
                assert "CRM_PRINCIPAL_PRIVATE_KEY" not in env
                # a service calls the others as itself
                assert env["CRM_SERVICE_PRIVATE_KEY"] == keys.service_private_pem
                assert env["CRM_SERVICE_PUBLIC_KEYS"] == keys.service_public_pem
                assert env["CRM_ALPHA_TARGET"] == suite.grpc_target("alpha")
        assert "CRM_SERVICE_PRIVATE_KEY" not in _record(workdir, "gateway", "serve")["env"]
        gw = _record(workdir, "gateway", "serve")["env"]
        assert gw["CRM_HTTP_PORT"] == str(suite.config.gateway.http_port)
        assert gw["CRM_ALPHA_TARGET"] == suite.grpc_target("alpha")
        assert gw["CRM_BETA_SVC_TARGET"] == suite.grpc_target("beta-svc")
        assert gw["CRM_NATS_URL"] == suite.nats.url
        assert gw["CRM_NATS_USER"] == "gateway" and gw["CRM_NATS_PASSWORD"]
        assert gw["CRM_JWT_ISSUER"] == ISSUER and gw["CRM_JWT_AUDIENCE"] == AUDIENCE
        assert gw["CRM_PRINCIPAL_PRIVATE_KEY"] == keys.principal_private_pem
        assert "CRM_DATABASE_URL" not in gw

        # readiness: start() returned only after the slow services answered health checks
        for name in ("alpha", "beta-svc"):
            serving_at = _record(workdir, name, "serve")["serving_at"]
            assert started < serving_at <= ready_at

        # tokens verify against the JWKS the gateway got
        token = suite.token("bob", roles=["sales_manager"], data_scope="team", team_ids=["east"])
        principal = AccessTokenVerifier(gw["CRM_JWT_JWKS"], issuer=ISSUER,
                                        audience=AUDIENCE).verify(token)
        assert principal.subject == "bob" and principal.data_scope is DataScope.TEAM
        assert principal.team_ids == ("east",)

        # demo data goes through the gateway, once
        assert demo.load(suite.gateway_url, token, log=lambda _: None) == len(demo.CUSTOMERS)
        posts = _record(workdir, "gateway", "gateway-posts")
        assert posts["auth_ok"]
        assert "/api/v1/customers/c0/contacts" in posts["posts"]
        assert "/api/v1/customers/c0/follow-ups" in posts["posts"]
        assert demo.load(suite.gateway_url, token, log=lambda _: None) == 0

        all_pids = _all_pids(workdir, pids)
    finally:
        suite.stop()
    assert _wait_gone(all_pids) == []
    assert not (data / STATE_FILE).exists()


async def test_restart_keeps_data(workdir: Path) -> None:
    # Depends on the data test_up stored; say so plainly rather than report "data gone".
    assert _written == {"postgres", "nats"}, "test_up_starts_servers_and_children_with_their_env stored no data"
    data = _data(workdir)
    async with Suite(data, suite_file=workdir / "suite.toml", output=sys.stderr) as suite:
        conn = await asyncpg.connect(suite.database_url("alpha", driver=None))
        try:
            assert await conn.fetchval("SELECT v FROM survives") == "kept across restarts"
            assert await conn.fetchval("SELECT count(*) FROM migrations_run") == 2  # re-run
        finally:
            await conn.close()
        nc = await nats.connect(suite.nats_url)
        try:
            msg = await nc.jetstream().get_msg("CRM_TEST", seq=1)
            assert msg.data == b"kept"
        finally:
            await nc.close()


class _Launcher:
    """`crm-dev up` as a subprocess, its output collected by a thread."""

    def __init__(self, workdir: Path) -> None:
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "crm_devstack.cli", "up", "--data-dir", str(_data(workdir)),
             "--suite", str(workdir / "suite.toml"), "--no-demo"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def wait_for(self, text: str, timeout: float = DEADLINE) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"no {text!r} in launcher output:\n{''.join(self.lines)}")
            time.sleep(0.05)

    def finish(self, timeout: float = DEADLINE) -> int:
        try:
            return self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self._reader.join(5)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_signal_stops_every_process(workdir: Path, signum: int) -> None:
    data = _data(workdir)
    launcher = _Launcher(workdir)
    try:
        launcher.wait_for("CRM suite is up.")
        state = json.loads((data / STATE_FILE).read_text())
        assert state["launcher_pid"] == launcher.proc.pid
        pids = _all_pids(workdir, state["pids"])
        assert set(state["pids"]) == {"postgres", "nats", "alpha", "beta-svc", "gateway"}
        assert all(_alive(p) for p in pids)
        out = "".join(launcher.lines)
        assert "alpha          | alpha serving on" in out  # child output, prefixed

        # neither a second `up` nor `reset` may touch a running suite
        with pytest.raises(SuiteError, match="already runs"):
            Suite(data, suite_file=workdir / "suite.toml").start()
        with pytest.raises(SuiteError, match="running"):
            reset(data)

        launcher.proc.send_signal(signum)
        assert launcher.finish() == 0
    finally:
        if launcher.proc.poll() is None:
            launcher.proc.kill()
    out = "".join(launcher.lines)
    # reverse order: the gateway first, then services newest first, then NATS and PostgreSQL
    assert out.index("beta-svc stopping") < out.index("alpha stopping")
    assert _wait_gone(pids) == []
    assert not (data / STATE_FILE).exists()


def test_token_cli_prints_a_verifiable_token(workdir: Path) -> None:
    data = _data(workdir)
    result = subprocess.run(
        [sys.executable, "-m", "crm_devstack.cli", "token", "--offline", "--data-dir", str(data),
         "--user", "carol", "--roles", "finance,sales_rep", "--data-scope", "department",
         "--department", "/sales/east"],
        check=True, capture_output=True, text=True,
    )
    keys = ensure_keys(data)
    principal = AccessTokenVerifier(keys.jwks, issuer=ISSUER, audience=AUDIENCE).verify(
        result.stdout.strip())
    assert principal.subject == "carol"
    assert principal.roles == ("finance", "sales_rep")
    assert principal.data_scope is DataScope.DEPARTMENT
    assert principal.department_path == "/sales/east"


def test_reset_wipes_the_data_dir(workdir: Path) -> None:
    data = _data(workdir)
    assert (data / "postgres" / "PG_VERSION").exists()
    result = subprocess.run(
        [sys.executable, "-m", "crm_devstack.cli", "reset", "--data-dir", str(data)],
        check=False, capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr
    assert not data.exists()
    stranger = workdir / "not-ours"
    (stranger / "precious").mkdir(parents=True)
    with pytest.raises(SuiteError, match="does not look like"):
        reset(stranger)


def test_a_crashing_service_fails_up_and_leaves_nothing_running(workdir: Path) -> None:
    crash_dir = workdir / "crash"
    crash_dir.mkdir()
    (crash_dir / "suite.toml").write_text(_suite_toml(crash_dir / "out", crash=True))
    suite = Suite(crash_dir / "data", suite_file=crash_dir / "suite.toml", output=sys.stderr)
    with pytest.raises(ServerStartError, match="beta-svc exited with status 3"):
        suite.start()
    assert suite.pids() == {}
    assert _wait_gone([_record(crash_dir, "alpha", "serve")["grandchild_pid"]]) == []
    assert suite.postgres.running_pid() is None and suite.nats.running_pid() is None
