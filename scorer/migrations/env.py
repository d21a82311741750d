"""Alembic environment: uses the connection handed over by scorer.migrate."""

from __future__ import annotations

from alembic import context

from scorer.migrate import migration_connection
from scorer.store import Base

config = context.config
target_metadata = Base.metadata


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        with migration_connection(config.attributes["engine"]) as conn:
            _migrate(conn)
    else:
        _migrate(connection)


def _migrate(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        # SQLite's DDL is transactional too once pysqlite stays out of the way
        # (scorer.migrate.migration_connection): all of a migration or none of it.
        transactional_ddl=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run()
