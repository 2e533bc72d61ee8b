"""Alembic environment for Commons: one script set builds both SQLite and PostgreSQL.

The database URL, first match wins:
1. `config.attributes["commons_database_url"]`, set by `migrations.alembic_config(url)`;
2. the COMMONS_DATABASE_URL environment variable (for developers running `alembic` by hand);
3. `sqlalchemy.url` from the ini file; 4. sqlite:///./commons.db.
A caller may also hand over an open connection in `config.attributes["connection"]`.
"""

from __future__ import annotations

import os
from logging.config import fileConfig
from typing import Any

from alembic import context
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

# Every module that declares tables, in one place: autogenerate and `alembic check` see only
# the tables imported here.
import accounts.models  # noqa: F401
import clearing.models  # noqa: F401
import ledger.models
import ledger.seal_models  # noqa: F401
from ledger.db import make_engine, normalise_url

DEFAULT_URL = "sqlite:///./commons.db"
URL_ATTRIBUTE = "commons_database_url"  # the same key as migrations.URL_ATTRIBUTE

config = context.config
target_metadata = SQLModel.metadata

if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)


def database_url() -> str:
    url = (
        config.attributes.get(URL_ATTRIBUTE)
        or os.environ.get("COMMONS_DATABASE_URL")
        or config.get_main_option("sqlalchemy.url")
        or DEFAULT_URL
    )
    return normalise_url(url)


def configure_options(dialect_name: str) -> dict[str, Any]:
    return {
        "target_metadata": target_metadata,
        "compare_type": True,
        # SQLite cannot ALTER most things: let autogenerate write batch (copy-and-move) operations.
        "render_as_batch": dialect_name == "sqlite",
        # SQLite can roll DDL back too; one transaction means a failed upgrade changes nothing.
        "transactional_ddl": True,
    }


def run_migrations_offline() -> None:
    """Emit SQL to stdout (`alembic upgrade head --sql`) instead of running it."""
    url = database_url()
    context.configure(
        url=url,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
        **configure_options(url.split(":", 1)[0].split("+", 1)[0]),
    )
    with context.begin_transaction():
        context.run_migrations()


def _run_on(connection: Connection) -> None:
    context.configure(connection=connection, **configure_options(connection.dialect.name))
    with context.begin_transaction():
        context.run_migrations()
        if connection.dialect.name == "sqlite":
            _sqlite_foreign_key_check(connection)


def _sqlite_foreign_key_check(connection: Connection) -> None:
    """Foreign keys are off while migrating (below); prove nothing dangles before committing."""
    problems = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if problems:
        raise RuntimeError(f"migration left dangling foreign keys: {problems[:10]}")


def run_migrations_online() -> None:
    given = config.attributes.get("connection")
    if given is not None:
        _run_on(given)
        return
    # make_engine applies the SQLite pragmas (WAL, busy timeout, BEGIN IMMEDIATE, foreign keys).
    engine = make_engine(database_url(), pool_size=1)
    try:
        with engine.connect() as connection:
            if connection.dialect.name == "sqlite":
                # SQLite's documented procedure for schema changes: batch operations copy, drop
                # and rename tables, which foreign key enforcement would break or cascade into.
                # The pragma is a no-op inside a transaction, so set it on the raw connection
                # before Alembic begins; the check above runs before the commit.
                raw = connection.connection.driver_connection
                assert raw is not None
                raw.execute("PRAGMA foreign_keys = OFF")
            _run_on(connection)
    finally:
        # Closing every connection also checkpoints SQLite's WAL into the main file.
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
