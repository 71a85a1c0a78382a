"""The embedded servers and the test fixtures built on them, against real PostgreSQL and NATS."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import nats
import pytest

from crmkit.embedded import EmbeddedNats, EmbeddedPostgres, run_admin_sql
from crmkit.testing import servers
from crmkit.testing.servers import (
    NatsServer,
    PostgresServer,
    free_port,
    fresh_database,
    start_postgres_server,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="crm-t-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _plain(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


# ---------------------------------------------------------------------------- session fixtures


async def test_postgres_server_creates_database_and_accepts_asyncpg(
    postgres_server: PostgresServer,
) -> None:
    url = postgres_server.create_database("crmkit_fixture_check")
    assert url.startswith("postgresql+asyncpg://")
    conn = await asyncpg.connect(_plain(url))
    try:
        await conn.execute("CREATE TABLE t (id int primary key, name text)")
        await conn.execute("INSERT INTO t VALUES (1, '迈瑞配件')")
        assert await conn.fetchval("SELECT name FROM t WHERE id = 1") == "迈瑞配件"
        assert await conn.fetchval("SELECT current_database()") == "crmkit_fixture_check"
    finally:
        await conn.close()
    postgres_server.drop_database("crmkit_fixture_check")


async def test_nats_server_has_jetstream_publish_ack(nats_server: NatsServer) -> None:
    nc = await nats.connect(nats_server.url)
    try:
        js = nc.jetstream()
        await js.add_stream(name="CRMKIT_TEST", subjects=["crm.crmkit_test.>"])
        ack = await js.publish("crm.crmkit_test.thing.created", b"payload",
                               headers={"Nats-Msg-Id": "evt-1"})
        assert ack.stream == "CRMKIT_TEST"
        duplicate = await js.publish("crm.crmkit_test.thing.created", b"payload",
                                     headers={"Nats-Msg-Id": "evt-1"})
        assert duplicate.duplicate
        sub = await js.pull_subscribe("crm.crmkit_test.>", durable="crmkit-test")
        [msg] = await sub.fetch(1, timeout=5)
        assert msg.data == b"payload"
        await msg.ack_sync()
        info = await js.consumer_info("CRMKIT_TEST", "crmkit-test")
        assert info.num_ack_pending == 0
        await js.delete_stream("CRMKIT_TEST")
    finally:
        await nc.close()


def test_nats_embedded_server_syncs_always(nats_server: NatsServer) -> None:
    if nats_server.monitor_url is None:
        pytest.skip("monitor port only known for servers this session started")
    with urllib.request.urlopen(f"{nats_server.monitor_url}/varz", timeout=5) as response:
        config = json.load(response)["jetstream"]["config"]
    assert config["sync_always"] is True


MIGRATIONS: list[str] = []


def _migrate(url: str) -> None:
    """Stands in for a service's Alembic upgrade: sync, may use asyncio.run inside."""
    import asyncio

    MIGRATIONS.append(url)

    async def run() -> None:
        conn = await asyncpg.connect(_plain(url))
        await conn.execute("CREATE TABLE customer (id serial primary key, name text not null)")
        await conn.execute("INSERT INTO customer (name) VALUES ('seed')")
        # leave the connection open, as a careless migration might: the template copes
        conn.terminate()

    asyncio.run(run())


async def test_fresh_database_migrates_once_and_copies_template(
    postgres_server: PostgresServer, database_factory
) -> None:
    MIGRATIONS.clear()
    first = database_factory("crmkit_fresh", _migrate)
    second = fresh_database(postgres_server, "crmkit_fresh", _migrate)  # async caller is fine
    assert first != second
    assert len(MIGRATIONS) == 1
    for url in (first, second):
        conn = await asyncpg.connect(_plain(url))
        try:
            assert await conn.fetchval("SELECT name FROM customer") == "seed"
            await conn.execute("INSERT INTO customer (name) VALUES ('only here')")
        finally:
            await conn.close()
    conn = await asyncpg.connect(_plain(second))
    try:  # each database is its own copy
        assert await conn.fetchval("SELECT count(*) FROM customer") == 2
    finally:
        await conn.close()
    postgres_server.drop_database(servers.database_name(second))


def test_fresh_database_from_sync_code(postgres_server: PostgresServer) -> None:
    url = fresh_database(postgres_server, "crmkit_fresh", _migrate)
    rows = run_admin_sql(url, "SELECT count(*) AS n FROM customer")[0]
    assert rows[0]["n"] == 1
    postgres_server.drop_database(servers.database_name(url))


# ---------------------------------------------------------------------------- resolution order


def test_environment_variable_wins(postgres_server: PostgresServer, monkeypatch) -> None:
    monkeypatch.setenv("CRM_TEST_POSTGRES_URL", postgres_server.url("postgres", driver=None))
    server = start_postgres_server()
    assert server.source == "env"
    assert server.execute("SELECT 1 AS one")[0][0]["one"] == 1
    server.close()  # an external server is left running
    assert postgres_server.execute("SELECT 1 AS one")[0][0]["one"] == 1


def test_docker_detection_is_quick_and_can_be_disabled(monkeypatch) -> None:
    started = time.monotonic()
    servers._probe_docker()
    assert time.monotonic() - started < 5
    monkeypatch.setenv("CRM_TEST_DOCKER", "0")
    assert servers._probe_docker() is False


# ---------------------------------------------------------------------------- embedded servers


async def test_embedded_postgres_restart_keeps_data_and_reuses_running(short_tmp: Path) -> None:
    port = free_port()
    pg = EmbeddedPostgres(short_tmp / "pg", port).start()
    try:
        assert pg.create_database("keep") is True
        assert pg.create_database("keep") is False  # idempotent
        run_admin_sql(pg.url("keep"), "CREATE TABLE t (v text)", "INSERT INTO t VALUES ('kept')")

        again = EmbeddedPostgres(short_tmp / "pg", port).start()
        assert again.reused and again.pid == pg.pid

        first_pid = pg.pid
        pg.stop()
        assert pg.running_pid() is None
        pg.start()
        assert pg.pid != first_pid and not pg.reused
        conn = await asyncpg.connect(pg.url("keep"))
        try:
            assert await conn.fetchval("SELECT v FROM t") == "kept"
        finally:
            await conn.close()
    finally:
        pg.stop()
    assert pg.running_pid() is None


async def test_embedded_nats_restart_keeps_stream_data(short_tmp: Path) -> None:
    server = EmbeddedNats(short_tmp / "nats", free_port(), free_port())
    server.start()
    try:
        conf = server.config_file.read_text()
        assert "sync_interval: always" in conf and "127.0.0.1" in conf
        nc = await nats.connect(server.url)
        js = nc.jetstream()
        await js.add_stream(name="KEEP", subjects=["crm.keep.>"])
        await js.publish("crm.keep.x.created", b"one")
        await nc.close()

        assert EmbeddedNats(short_tmp / "nats", server.port, server.monitor_port).start().reused
        server.stop()
        assert server.running_pid() is None
        server.start()
        nc = await nats.connect(server.url)
        try:
            js = nc.jetstream()
            info = await js.stream_info("KEEP")
            assert info.state.messages == 1
            msg = await js.get_msg("KEEP", seq=1)
            assert msg.data == b"one"
        finally:
            await nc.close()
    finally:
        server.stop()
    assert (short_tmp / "nats" / "jetstream").is_dir()
