"""Seals are append-only: the database refuses UPDATE and DELETE on the seals table.

Revision ID: 0004_seal_guard
Revises: 0003_seals
Create Date: 2026-11-25

`commons verify` recomputes every seal, so an edited seal is caught; a deleted one is not (the
chain simply ends one month earlier). Nothing in the application updates or deletes a seal
(ledger/seals.py only inserts), so both are refused here, in the style of 0001_core's
append-only triggers:
- the message starts with "append-only:" and is the same on both engines
  ("append-only: DELETE on seals is refused");
- PostgreSQL raises SQLSTATE 23001 (restrict_violation) from BEFORE ROW triggers, SQLite
  aborts with RAISE(ABORT, ...); both reach Python as sqlalchemy.exc.IntegrityError;
- TRUNCATE stays allowed on PostgreSQL (no statement trigger), as for transfers and postings.
PostgreSQL gets its own function rather than 0001's, for a hint that fits seals.
"""

import textwrap
from collections.abc import Sequence

from alembic import op

revision: str = "0004_seal_guard"
down_revision: str | Sequence[str] | None = "0003_seals"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REFUSALS = (
    # (trigger, table, operation)
    ("trg_seals_append_only_update", "seals", "UPDATE"),
    ("trg_seals_append_only_delete", "seals", "DELETE"),
)
PG_REFUSE_FUNCTION = "commons_refuse_seal_change"
PG_HINT = "A seal is never changed or removed; commons verify recomputes every seal."


def _refusal_message(table: str, operation: str) -> str:
    return f"append-only: {operation} on {table} is refused"


def _execute(sql: str) -> None:
    # Dedented, so the stored trigger and function sources read well in psql and sqlite3.
    op.execute(textwrap.dedent(sql).strip())


def _create_triggers_postgresql() -> None:
    _execute(
        f"""
        CREATE FUNCTION {PG_REFUSE_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'append-only: % on % is refused', TG_OP, TG_TABLE_NAME
                USING ERRCODE = 'restrict_violation', SCHEMA = TG_TABLE_SCHEMA,
                      TABLE = TG_TABLE_NAME, HINT = '{PG_HINT}';
        END
        $$
        """
    )
    for name, table, operation in REFUSALS:
        _execute(
            f"CREATE TRIGGER {name} BEFORE {operation} ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION {PG_REFUSE_FUNCTION}()"
        )


def _create_triggers_sqlite() -> None:
    for name, table, operation in REFUSALS:
        _execute(
            f"""
            CREATE TRIGGER {name} BEFORE {operation} ON {table} FOR EACH ROW
            BEGIN
                SELECT RAISE(ABORT, '{_refusal_message(table, operation)}');
            END
            """
        )


def upgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        _create_triggers_postgresql()
    else:
        _create_triggers_sqlite()


def downgrade() -> None:
    postgresql = op.get_context().dialect.name == "postgresql"
    for name, table, _ in REFUSALS:
        op.execute(f"DROP TRIGGER {name} ON {table}" if postgresql else f"DROP TRIGGER {name}")
    if postgresql:
        op.execute(f"DROP FUNCTION {PG_REFUSE_FUNCTION}()")
