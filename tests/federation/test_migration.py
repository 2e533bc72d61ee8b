"""Migration 0002_federation: builds clearing/models.py exactly (with its CHECK constraints) on
both engines and its downgrade removes exactly what it added."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import command
from sqlalchemy.engine import Engine

import clearing.models  # noqa: F401  (registers the tables on SQLModel.metadata)
from clearing import tables as ct
from migrations import alembic_config, upgrade_to_head
from tests.db.test_migrations import fresh_engine, fresh_url, schema_objects  # noqa: F401

FEDERATION_TABLES = {
    table.name
    for table in (
        ct.federation_ledgers,
        ct.federation_officers,
        ct.federation_members,
        ct.cross_coop_payments,
        ct.obligations,
        ct.clearing_runs,
        ct.clearing_run_items,
        ct.clearing_run_participants,
        ct.clearing_run_cycles,
    )
}


def test_upgrade_downgrade_and_upgrade_again(fresh_url: str, fresh_engine: Engine) -> None:  # noqa: F811
    config = alembic_config(fresh_url)
    command.upgrade(config, "0001_core")
    core = schema_objects(fresh_engine)
    assert not FEDERATION_TABLES & core["table"]

    command.upgrade(config, "0002_federation")
    built = schema_objects(fresh_engine)
    assert built["table"] - core["table"] == FEDERATION_TABLES
    inspector = sa.inspect(fresh_engine)
    for table in (getattr(ct, name) for name in dir(ct) if isinstance(getattr(ct, name), sa.Table)):
        declared = {c.name for c in table.constraints if isinstance(c, sa.CheckConstraint)}
        reflected = {c["name"] for c in inspector.get_check_constraints(table.name)}
        assert declared <= reflected, f"{table.name}: missing {declared - reflected}"

    command.downgrade(config, "0001_core")
    assert schema_objects(fresh_engine) == core

    upgrade_to_head(fresh_url)
    command.check(config)  # no drift between the models and the migrations at head
