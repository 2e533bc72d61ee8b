"""Alembic migrations for Commons, usable from any working directory and from an installed package.

The scripts live next to this file (package data), so nothing depends on an alembic.ini at the
repository root: `alembic_config(url)` builds the configuration in code. The root alembic.ini is a
convenience for developers running the `alembic` command by hand.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

from ledger.db import normalise_url

__all__ = [
    "MIGRATIONS_DIR",
    "URL_ATTRIBUTE",
    "alembic_config",
    "downgrade_to_base",
    "head_revision",
    "is_at_head",
    "revision_status",
    "upgrade_to_head",
]

MIGRATIONS_DIR = Path(__file__).resolve().parent

# env.py takes the URL from here first, so an explicit URL always wins over COMMONS_DATABASE_URL.
URL_ATTRIBUTE = "commons_database_url"


def alembic_config(url: str) -> Config:
    """An Alembic configuration for the database at `url` (see `ledger.db.normalise_url`)."""
    full_url = normalise_url(url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # ConfigParser interpolates "%": a percent-encoded password must be escaped to survive.
    config.set_main_option("sqlalchemy.url", full_url.replace("%", "%%"))
    config.attributes[URL_ATTRIBUTE] = full_url
    return config


def upgrade_to_head(url: str) -> None:
    command.upgrade(alembic_config(url), "head")


def downgrade_to_base(url: str) -> None:
    command.downgrade(alembic_config(url), "base")


def head_revision() -> str:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    head = ScriptDirectory.from_config(config).get_current_head()
    if head is None:  # pragma: no cover - the package always ships 0001_core
        raise RuntimeError(f"no Alembic revisions found in {MIGRATIONS_DIR / 'versions'}")
    return head


def revision_status(engine: Engine) -> tuple[str | None, str]:
    """(the database's current revision or None when unmigrated, the head of the scripts)."""
    # A DEFERRED begin on SQLite: reading the version must not take the write lock.
    with engine.connect().execution_options(sqlite_begin="DEFERRED") as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    return current, head_revision()


def is_at_head(engine: Engine) -> bool:
    current, head = revision_status(engine)
    return current == head
