"""pytest plugin (entry point `pytest11: crmkit`): server fixtures for every CRM package.

    postgres_server   session: PostgresServer (admin_url, url(db), create_database(name, template))
    nats_server       session: NatsServer (url)
    database_factory  function: make(name_prefix, migrate) -> asyncpg URL of a fresh migrated
                      database, dropped when the test ends
    service_key       session: the suite's service KeyPair; a service under test that calls
                      another as itself signs with `ServiceToken(name, service_key.private_pem)`
                      and the callee's verifier gets `service_pems=(service_key.public_pem,)`

A service's conftest typically does:

    @pytest.fixture
    def database_url(database_factory):
        return database_factory("customers", migrate)   # migrate(url) runs Alembic upgrade head

Servers start lazily: a test session that uses none of these fixtures starts nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from crmkit.auth.keys import KeyPair
    from crmkit.testing.servers import NatsServer, PostgresServer


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    from crmkit.testing.servers import start_postgres_server

    server = start_postgres_server()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def nats_server() -> Iterator[NatsServer]:
    from crmkit.testing.servers import start_nats_server

    server = start_nats_server()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def database_factory(
    postgres_server: PostgresServer,
) -> Iterator[Callable[[str, Callable[[str], None]], str]]:
    from crmkit.testing.servers import database_name, fresh_database

    made: list[str] = []

    def make(name_prefix: str, migrate: Callable[[str], None]) -> str:
        url = fresh_database(postgres_server, name_prefix, migrate)
        made.append(database_name(url))
        return url

    yield make
    for name in made:
        postgres_server.drop_database(name)


@pytest.fixture(scope="session")
def service_key() -> KeyPair:
    from crmkit.auth.keys import generate_keypair

    return generate_keypair()


_SERVER_FIXTURES = {"postgres_server", "nats_server", "database_factory"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that use a real server are integration tests (`make test-fast` leaves them out)."""
    for item in items:
        if _SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)
