"""An index of batch and import idempotency keys by key alone.

Revision ID: 0006_batch_key_index
Revises: 0005_pg_transfer
Create Date: 2026-11-26

The CSV import looks up its rows' keys (`batch:<ledger>:<row>`) under any user, so that a rerun
by another treasurer replays instead of posting again. The primary key (user_id, key) cannot
serve a lookup by key alone, so every chunk of 500 rows scanned the whole table: an import got
slower with every key stored (per 1,000 rows 62 ms on an empty table, 150 ms after 48,000 keys).
The index is partial: only keys that begin with `batch:`, so the keys of single requests cost no
more to write.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_batch_key_index"
down_revision: str | Sequence[str] | None = "0005_pg_transfer"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH_KEYS = "key LIKE 'batch:%'"  # as in ledger.models, frozen here


def upgrade() -> None:
    op.create_index(
        "ix_idempotency_keys_batch",
        "idempotency_keys",
        ["key"],
        sqlite_where=sa.text(BATCH_KEYS),
        postgresql_where=sa.text(BATCH_KEYS),
    )


def downgrade() -> None:
    op.drop_index("ix_idempotency_keys_batch", table_name="idempotency_keys")
