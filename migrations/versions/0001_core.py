"""Core schema: users, co-ops, federations, ledgers, accounts, transfers, postings, idempotency.

Revision ID: 0001_core
Revises:
Create Date: 2026-11-25

Tables, CHECK constraints and indexes are exactly those of ledger/models.py and accounts/models.py
(`alembic check` proves it). Written by hand on top, for both dialects, because autogenerate does
not see them: the append-only triggers on transfers and postings (DESIGN §2.3).

Append-only, as enforced here:
- DELETE on transfers or postings is refused; UPDATE on postings is refused.
- UPDATE on transfers is refused except the one legal state change of a pending claim:
  OLD.status = 'pending', NEW.status in (posted, rejected, cancelled, expired), and nothing else
  changes except resolved_at and resolved_by_id.
- Every refusal's message starts with "append-only:" and is the same on both engines.
  PostgreSQL raises SQLSTATE 23001 (restrict_violation, class 23 "integrity constraint
  violation") from BEFORE ROW triggers; SQLite aborts with RAISE(ABORT, ...), which is
  SQLITE_CONSTRAINT_TRIGGER. Both reach Python as sqlalchemy.exc.IntegrityError.
- TRUNCATE stays allowed on PostgreSQL (no statement trigger): the test suite truncates between
  tests. TRUNCATE needs its own privilege, which the application's role should not be granted in
  production. Superusers can bypass triggers anyway (session_replication_role, DISABLE
  TRIGGER); period seals (DESIGN §5) detect what triggers cannot prevent.
"""

import textwrap
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0001_core"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the model types: a migration must not change when the models do.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
AutoString = sqlmodel.sql.sqltypes.AutoString
UTCDateTime = sqlmodel.sql.sqltypes.UTCDateTime

# --- append-only triggers -------------------------------------------------------------------

PENDING_OUTCOMES = ("posted", "rejected", "cancelled", "expired")
# A pending claim's resolution may change status, resolved_at and resolved_by_id; every other
# column of transfers is frozen.
FROZEN_TRANSFER_COLUMNS = (
    "id",
    "ledger_id",
    "transaction_id",
    "payer_id",
    "payee_id",
    "amount",
    "memo",
    "category",
    "occurred_on",
    "initiator_id",
    "reverses_id",
    "created_at",
    "expires_at",
)

TRANSFER_UPDATE_MESSAGE = (
    "append-only: UPDATE on transfers is refused (only a pending claim may change: status to "
    "posted, rejected, cancelled or expired, with resolved_at and resolved_by_id)"
)
REFUSALS = (
    # (trigger, table, operation); transfers UPDATE has its own condition below.
    ("trg_transfers_append_only_delete", "transfers", "DELETE"),
    ("trg_postings_append_only_update", "postings", "UPDATE"),
    ("trg_postings_append_only_delete", "postings", "DELETE"),
)
TRANSFER_UPDATE_TRIGGER = "trg_transfers_append_only_update"
TRIGGERS = (("transfers", TRANSFER_UPDATE_TRIGGER), *((table, name) for name, table, _ in REFUSALS))

PG_REFUSE_FUNCTION = "commons_refuse_append_only"
PG_TRANSFER_UPDATE_FUNCTION = "commons_transfers_guard_update"
PG_HINT = "Correct a mistake with a reversal: a new transfer linked to it by reverses_id."


def _refusal_message(table: str, operation: str) -> str:
    return f"append-only: {operation} on {table} is refused"


def _legal_resolution(same: str) -> str:
    """The one legal transfer UPDATE, as SQL; `same` is the NULL-safe equality operator."""
    outcomes = ", ".join(f"'{status}'" for status in PENDING_OUTCOMES)
    unchanged = " AND ".join(f"NEW.{col} {same} OLD.{col}" for col in FROZEN_TRANSFER_COLUMNS)
    return f"OLD.status = 'pending' AND NEW.status IN ({outcomes}) AND {unchanged}"


def _execute(sql: str) -> None:
    # Dedented, so the stored trigger and function sources read well in psql and sqlite3.
    op.execute(textwrap.dedent(sql).strip())


def _create_triggers_postgresql() -> None:
    # SQLSTATE 23001 restrict_violation: psycopg maps class 23 to IntegrityError. plpgsql fills
    # the % placeholders with TG_OP and TG_TABLE_NAME, so the message matches SQLite's exactly.
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
    _execute(
        f"""
        CREATE FUNCTION {PG_TRANSFER_UPDATE_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            -- IS NOT TRUE: a condition that came out NULL must refuse, not pass.
            IF ({_legal_resolution("IS NOT DISTINCT FROM")}) IS NOT TRUE THEN
                RAISE EXCEPTION '{TRANSFER_UPDATE_MESSAGE}'
                    USING ERRCODE = 'restrict_violation', SCHEMA = TG_TABLE_SCHEMA,
                          TABLE = TG_TABLE_NAME, HINT = '{PG_HINT}';
            END IF;
            RETURN NEW;
        END
        $$
        """
    )
    _execute(
        f"CREATE TRIGGER {TRANSFER_UPDATE_TRIGGER} BEFORE UPDATE ON transfers "
        f"FOR EACH ROW EXECUTE FUNCTION {PG_TRANSFER_UPDATE_FUNCTION}()"
    )
    for name, table, operation in REFUSALS:
        _execute(
            f"CREATE TRIGGER {name} BEFORE {operation} ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION {PG_REFUSE_FUNCTION}()"
        )


def _create_triggers_sqlite() -> None:
    _execute(
        f"""
        CREATE TRIGGER {TRANSFER_UPDATE_TRIGGER} BEFORE UPDATE ON transfers FOR EACH ROW
        WHEN ({_legal_resolution("IS")}) IS NOT TRUE
        BEGIN
            SELECT RAISE(ABORT, '{TRANSFER_UPDATE_MESSAGE}');
        END
        """
    )
    for name, table, operation in REFUSALS:
        _execute(
            f"""
            CREATE TRIGGER {name} BEFORE {operation} ON {table} FOR EACH ROW
            BEGIN
                SELECT RAISE(ABORT, '{_refusal_message(table, operation)}');
            END
            """
        )


def _drop_triggers() -> None:
    postgresql = op.get_context().dialect.name == "postgresql"
    for table, name in TRIGGERS:
        op.execute(f"DROP TRIGGER {name} ON {table}" if postgresql else f"DROP TRIGGER {name}")
    if postgresql:
        op.execute(f"DROP FUNCTION {PG_TRANSFER_UPDATE_FUNCTION}()")
        op.execute(f"DROP FUNCTION {PG_REFUSE_FUNCTION}()")


# --- tables ---------------------------------------------------------------------------------


def upgrade() -> None:
    op.create_table(
        "federations",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("slug", sa.String(length=64), nullable=False),
        sa.Column("name", AutoString(length=200), nullable=False),
        sa.Column("unit_code", AutoString(length=16), nullable=False),
        sa.Column("unit_scale", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("unit_scale >= 0 AND unit_scale <= 6", name="ck_federations_scale"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("slug"),
    )
    op.create_table(
        "ledgers",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("kind", AutoString(length=16), nullable=False),
        sa.Column("unit_code", AutoString(length=16), nullable=False),
        sa.Column("scale", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("scale >= 0 AND scale <= 6", name="ck_ledgers_scale"),
        sa.CheckConstraint("kind IN ('coop', 'federation')", name="ck_ledgers_kind"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "users",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("name", AutoString(length=200), nullable=False),
        sa.Column("password_hash", AutoString(length=255), nullable=True),
        sa.Column("is_admin", sa.Boolean(), nullable=False),
        sa.Column("token_version", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("email"),
    )
    op.create_table(
        "accounts",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("ledger_id", BigId, nullable=False),
        sa.Column("kind", AutoString(length=16), nullable=False),
        sa.Column("holder", AutoString(length=200), nullable=False),
        sa.Column("user_id", BigId, nullable=True),
        sa.Column("balance", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("debits", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("credits", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("min_balance", sa.BigInteger(), nullable=True),
        sa.Column("max_balance", sa.BigInteger(), nullable=True),
        sa.Column("status", AutoString(length=16), nullable=False),
        sa.Column("version", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("min_balance IS NULL OR balance >= min_balance", name="ck_accounts_min_balance"),
        sa.CheckConstraint("max_balance IS NULL OR balance <= max_balance", name="ck_accounts_max_balance"),
        sa.CheckConstraint("debits >= 0 AND credits >= 0", name="ck_accounts_counters"),
        sa.CheckConstraint("balance = credits - debits", name="ck_accounts_balance"),
        sa.CheckConstraint("status IN ('active', 'frozen', 'closed')", name="ck_accounts_status"),
        sa.CheckConstraint("kind IN ('member', 'coop', 'federation')", name="ck_accounts_kind"),
        sa.ForeignKeyConstraint(["ledger_id"], ["ledgers.id"]),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_accounts_ledger_id", "accounts", ["ledger_id"])
    op.create_index("ix_accounts_user_id", "accounts", ["user_id"])
    op.create_table(
        "coops",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("slug", sa.String(length=64), nullable=False),
        sa.Column("name", AutoString(length=200), nullable=False),
        sa.Column("ledger_id", BigId, nullable=False),
        sa.Column("default_min_balance", sa.BigInteger(), nullable=True),
        sa.Column("default_max_balance", sa.BigInteger(), nullable=True),
        sa.Column("claim_expiry_days", sa.Integer(), nullable=False),
        sa.Column("max_transfer_amount", sa.BigInteger(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("claim_expiry_days > 0", name="ck_coops_claim_expiry"),
        sa.CheckConstraint("max_transfer_amount > 0", name="ck_coops_max_transfer"),
        sa.ForeignKeyConstraint(["ledger_id"], ["ledgers.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("slug"),
        sa.UniqueConstraint("ledger_id"),
    )
    op.create_table(
        "idempotency_keys",
        sa.Column("user_id", BigId, autoincrement=False, nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("request_hash", AutoString(length=64), nullable=False),
        sa.Column("response_status", sa.Integer(), nullable=False),
        sa.Column("response_body", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("user_id", "key"),
    )
    op.create_table(
        "refresh_tokens",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("user_id", BigId, nullable=False),
        sa.Column("family_id", AutoString(length=36), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("rotated_at", UTCDateTime(), nullable=True),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_index("ix_refresh_tokens_user_id", "refresh_tokens", ["user_id"])
    op.create_index("ix_refresh_tokens_family_id", "refresh_tokens", ["family_id"])
    op.create_table(
        "memberships",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("user_id", BigId, nullable=False),
        sa.Column("coop_id", BigId, nullable=False),
        sa.Column("role", AutoString(length=16), nullable=False),
        sa.Column("account_id", BigId, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("role IN ('member', 'treasurer')", name="ck_memberships_role"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"]),
        sa.ForeignKeyConstraint(["coop_id"], ["coops.id"]),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("user_id", "coop_id", name="uq_memberships_user_coop"),
        sa.UniqueConstraint("account_id"),
    )
    op.create_index("ix_memberships_coop_id", "memberships", ["coop_id"])
    op.create_table(
        "transfers",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("ledger_id", BigId, nullable=False),
        sa.Column("transaction_id", AutoString(length=36), nullable=False),
        sa.Column("payer_id", BigId, nullable=False),
        sa.Column("payee_id", BigId, nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("memo", AutoString(length=500), nullable=True),
        sa.Column("category", AutoString(length=40), nullable=True),
        sa.Column("occurred_on", sa.Date(), nullable=False),
        sa.Column("initiator_id", BigId, nullable=True),
        sa.Column("status", AutoString(length=16), nullable=False),
        sa.Column("reverses_id", BigId, nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=True),
        sa.Column("resolved_at", UTCDateTime(), nullable=True),
        sa.Column("resolved_by_id", BigId, nullable=True),
        sa.CheckConstraint("amount > 0", name="ck_transfers_amount"),
        sa.CheckConstraint("payer_id <> payee_id", name="ck_transfers_distinct"),
        sa.CheckConstraint(
            "status IN ('posted', 'pending', 'rejected', 'cancelled', 'expired')",
            name="ck_transfers_status",
        ),
        sa.ForeignKeyConstraint(["ledger_id"], ["ledgers.id"]),
        sa.ForeignKeyConstraint(["payer_id"], ["accounts.id"]),
        sa.ForeignKeyConstraint(["payee_id"], ["accounts.id"]),
        sa.ForeignKeyConstraint(["initiator_id"], ["users.id"]),
        sa.ForeignKeyConstraint(["reverses_id"], ["transfers.id"]),
        sa.ForeignKeyConstraint(["resolved_by_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_transfers_payer", "transfers", ["payer_id", "id"])
    op.create_index("ix_transfers_payee", "transfers", ["payee_id", "id"])
    op.create_index("ix_transfers_ledger", "transfers", ["ledger_id", "id"])
    op.create_index("ix_transfers_transaction", "transfers", ["transaction_id"])
    # At most one reversal per transfer (DESIGN §2.3).
    op.create_index(
        "uq_transfers_one_reversal",
        "transfers",
        ["reverses_id"],
        unique=True,
        sqlite_where=sa.text("reverses_id IS NOT NULL"),
        postgresql_where=sa.text("reverses_id IS NOT NULL"),
    )
    op.create_table(
        "postings",
        sa.Column("account_id", BigId, autoincrement=False, nullable=False),
        sa.Column("version", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("transfer_id", BigId, nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("balance_after", sa.BigInteger(), nullable=False),
        sa.Column("posted_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("amount <> 0", name="ck_postings_amount"),
        sa.CheckConstraint("version > 0", name="ck_postings_version"),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"]),
        sa.ForeignKeyConstraint(["transfer_id"], ["transfers.id"]),
        # (account_id, version): a lost update becomes a key violation (DESIGN §2.4).
        sa.PrimaryKeyConstraint("account_id", "version"),
    )
    op.create_index("ix_postings_account_time", "postings", ["account_id", "posted_at"])
    op.create_index("ix_postings_transfer", "postings", ["transfer_id"])

    if op.get_context().dialect.name == "postgresql":
        _create_triggers_postgresql()
    else:
        _create_triggers_sqlite()


def downgrade() -> None:
    _drop_triggers()
    op.drop_index("ix_postings_transfer", table_name="postings")
    op.drop_index("ix_postings_account_time", table_name="postings")
    op.drop_table("postings")
    op.drop_index("uq_transfers_one_reversal", table_name="transfers")
    op.drop_index("ix_transfers_transaction", table_name="transfers")
    op.drop_index("ix_transfers_ledger", table_name="transfers")
    op.drop_index("ix_transfers_payee", table_name="transfers")
    op.drop_index("ix_transfers_payer", table_name="transfers")
    op.drop_table("transfers")
    op.drop_index("ix_memberships_coop_id", table_name="memberships")
    op.drop_table("memberships")
    op.drop_index("ix_refresh_tokens_family_id", table_name="refresh_tokens")
    op.drop_index("ix_refresh_tokens_user_id", table_name="refresh_tokens")
    op.drop_table("refresh_tokens")
    op.drop_table("idempotency_keys")
    op.drop_table("coops")
    op.drop_index("ix_accounts_user_id", table_name="accounts")
    op.drop_index("ix_accounts_ledger_id", table_name="accounts")
    op.drop_table("accounts")
    op.drop_table("users")
    op.drop_table("ledgers")
    op.drop_table("federations")
