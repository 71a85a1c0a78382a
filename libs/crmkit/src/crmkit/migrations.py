"""Alembic, the same way in every service: `run_env` is the whole of a service's env.py, and
`upgrade` is what its `migrate` command, the migration Job and the test fixtures call."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, pool
from sqlalchemy.ext.asyncio import async_engine_from_config

from crmkit.idempotency import metadata as idempotency_metadata
from crmkit.outbox.schema import metadata as infrastructure_metadata


def locate(main_file: str) -> Path:
    """A service's migrations folder: packaged beside its main module in an installed wheel, or
    at the package root (services/<name>/migrations) in a source checkout."""
    here = Path(main_file).resolve().parent
    packaged = here / "migrations"
    return packaged if packaged.exists() else here.parents[1] / "migrations"


# crmkit's own tables that every service database has (the idempotency keys): one branch of
# migrations, labelled `crmkit`, kept here once and applied beside each service's own line.
SHARED_MIGRATIONS = Path(__file__).resolve().parent / "shared_migrations"


def alembic_config(migrations_dir: Path, database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir))
    config.set_main_option("path_separator", "os")
    config.set_main_option("version_locations", os.pathsep.join([str(migrations_dir / "versions"),
                                                                  str(SHARED_MIGRATIONS)]))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(migrations_dir: Path, database_url: str, revision: str = "heads") -> None:
    """Every head: the service's own line and crmkit's branch (`SHARED_MIGRATIONS`)."""
    command.upgrade(alembic_config(migrations_dir, database_url), revision)


def run_env(target_metadata: MetaData) -> None:
    """Body of a service's migrations/env.py."""
    config = context.config
    metadatas = [target_metadata, infrastructure_metadata, idempotency_metadata]

    def do_run(connection: object) -> None:
        context.configure(connection=connection, target_metadata=metadatas, compare_type=True)  # type: ignore[arg-type]
        with context.begin_transaction():
            context.run_migrations()

    async def run_async() -> None:
        engine = async_engine_from_config(config.get_section(config.config_ini_section, {}),
                                          prefix="sqlalchemy.", poolclass=pool.NullPool)
        async with engine.connect() as connection:
            await connection.run_sync(do_run)
        await engine.dispose()

    if context.is_offline_mode():
        context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=metadatas,
                          literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
    else:
        asyncio.run(run_async())
