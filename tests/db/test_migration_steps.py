"""0005_pg_transfer adds two PostgreSQL functions and nothing else, 0006_batch_key_index one index;
each one's downgrade removes what it added."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import Engine

from migrations import alembic_config, upgrade_to_head
from tests.db.test_migrations import fresh_engine, fresh_url, schema_objects  # noqa: F401

FUNCTIONS = {"commons_pay", "commons_idempotency_lookup"}


def test_the_pg_transfer_migration_downgrades_alone(fresh_url: str, fresh_engine: Engine) -> None:  # noqa: F811
    command.upgrade(alembic_config(fresh_url), "0004_seal_guard")
    before = schema_objects(fresh_engine)
    command.upgrade(alembic_config(fresh_url), "0005_pg_transfer")
    built = schema_objects(fresh_engine)
    postgresql = fresh_engine.dialect.name == "postgresql"
    assert built["function"] - before["function"] == FUNCTIONS if postgresql else built == before
    assert {k: v for k, v in built.items() if k != "function"} == {
        k: v for k, v in before.items() if k != "function"
    }

    command.downgrade(alembic_config(fresh_url), "0004_seal_guard")

    assert schema_objects(fresh_engine) == before
    command.upgrade(alembic_config(fresh_url), "0005_pg_transfer")
    assert schema_objects(fresh_engine) == built
    if postgresql:
        with fresh_engine.connect() as conn:
            found = conn.execute(sa.text("SELECT * FROM commons_idempotency_lookup(1, 1, 'k')")).one()
        assert tuple(found) == (True, None, None, None)


def test_the_batch_key_index_migration_adds_one_index_only(fresh_url: str, fresh_engine: Engine) -> None:  # noqa: F811
    command.upgrade(alembic_config(fresh_url), "0005_pg_transfer")
    before = schema_objects(fresh_engine)
    command.upgrade(alembic_config(fresh_url), "0006_batch_key_index")
    built = schema_objects(fresh_engine)
    assert built["index"] - before["index"] == {"ix_idempotency_keys_batch"}
    assert {**built, "index": before["index"]} == before

    command.downgrade(alembic_config(fresh_url), "0005_pg_transfer")

    assert schema_objects(fresh_engine) == before
    upgrade_to_head(fresh_url)
    assert schema_objects(fresh_engine) == built
