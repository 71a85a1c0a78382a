"""Test support for every CRM package: real PostgreSQL and NATS servers and fresh databases.

The pytest plugin `crmkit.testing.plugin` (registered through the `pytest11` entry point, so any
test in the workspace can use it) provides the session fixtures `postgres_server` and
`nats_server` and the per-test `database_factory`. Outside fixtures, use the functions below.
"""

from crmkit.testing.servers import (
    NatsServer,
    PostgresServer,
    docker_available,
    free_port,
    fresh_database,
    start_nats_server,
    start_postgres_server,
)

__all__ = [
    "NatsServer",
    "PostgresServer",
    "docker_available",
    "free_port",
    "fresh_database",
    "start_nats_server",
    "start_postgres_server",
]
