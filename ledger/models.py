"""Ledger tables. The service writes them with SQL Core statements; these classes define schema.

Every integer of money is BIGINT. Ids are BIGINT identities (INTEGER PRIMARY KEY on SQLite,
which is SQLite's 64-bit rowid). CHECK constraints repeat the domain rules so that a write that
bypasses Python is refused too; migrations add the immutability triggers by hand.
"""

from __future__ import annotations

from datetime import date, datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _pk() -> sa.Column[int]:
    return sa.Column(BigId, primary_key=True, autoincrement=True)


class Ledger(SQLModel, table=True):
    __tablename__ = "ledgers"
    __table_args__ = (
        sa.CheckConstraint("scale >= 0 AND scale <= 6", name="ck_ledgers_scale"),
        sa.CheckConstraint("kind IN ('coop', 'federation')", name="ck_ledgers_kind"),
    )

    id: int | None = Field(default=None, sa_column=_pk())
    kind: str = Field(max_length=16)
    unit_code: str = Field(max_length=16)
    scale: int
    created_at: datetime


class Account(SQLModel, table=True):
    __tablename__ = "accounts"
    __table_args__ = (
        sa.CheckConstraint("min_balance IS NULL OR balance >= min_balance", name="ck_accounts_min_balance"),
        sa.CheckConstraint("max_balance IS NULL OR balance <= max_balance", name="ck_accounts_max_balance"),
        sa.CheckConstraint("debits >= 0 AND credits >= 0", name="ck_accounts_counters"),
        sa.CheckConstraint("balance = credits - debits", name="ck_accounts_balance"),
        sa.CheckConstraint("status IN ('active', 'frozen', 'closed')", name="ck_accounts_status"),
        sa.CheckConstraint("kind IN ('member', 'coop', 'federation')", name="ck_accounts_kind"),
    )

    id: int | None = Field(default=None, sa_column=_pk())
    ledger_id: int = Field(
        sa_column=sa.Column(BigId, sa.ForeignKey("ledgers.id"), nullable=False, index=True)
    )
    kind: str = Field(max_length=16)
    holder: str = Field(max_length=200)
    user_id: int | None = Field(
        default=None, sa_column=sa.Column(BigId, sa.ForeignKey("users.id"), nullable=True, index=True)
    )
    balance: int = Field(default=0, sa_column=sa.Column(sa.BigInteger, nullable=False, server_default="0"))
    debits: int = Field(default=0, sa_column=sa.Column(sa.BigInteger, nullable=False, server_default="0"))
    credits: int = Field(default=0, sa_column=sa.Column(sa.BigInteger, nullable=False, server_default="0"))
    min_balance: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger, nullable=True))
    max_balance: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger, nullable=True))
    status: str = Field(default="active", max_length=16)
    version: int = Field(default=0, sa_column=sa.Column(sa.BigInteger, nullable=False, server_default="0"))
    created_at: datetime


class Transfer(SQLModel, table=True):
    __tablename__ = "transfers"
    __table_args__ = (
        sa.CheckConstraint("amount > 0", name="ck_transfers_amount"),
        sa.CheckConstraint("payer_id <> payee_id", name="ck_transfers_distinct"),
        sa.CheckConstraint(
            "status IN ('posted', 'pending', 'rejected', 'cancelled', 'expired')",
            name="ck_transfers_status",
        ),
        sa.Index("ix_transfers_payer", "payer_id", "id"),
        sa.Index("ix_transfers_payee", "payee_id", "id"),
        sa.Index("ix_transfers_ledger", "ledger_id", "id"),
        sa.Index("ix_transfers_transaction", "transaction_id"),
        sa.Index(
            "uq_transfers_one_reversal",
            "reverses_id",
            unique=True,
            sqlite_where=sa.text("reverses_id IS NOT NULL"),
            postgresql_where=sa.text("reverses_id IS NOT NULL"),
        ),
    )

    id: int | None = Field(default=None, sa_column=_pk())
    ledger_id: int = Field(sa_column=sa.Column(BigId, sa.ForeignKey("ledgers.id"), nullable=False))
    transaction_id: str = Field(max_length=36)
    payer_id: int = Field(sa_column=sa.Column(BigId, sa.ForeignKey("accounts.id"), nullable=False))
    payee_id: int = Field(sa_column=sa.Column(BigId, sa.ForeignKey("accounts.id"), nullable=False))
    amount: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    memo: str | None = Field(default=None, max_length=500)
    category: str | None = Field(default=None, max_length=40)
    occurred_on: date
    initiator_id: int | None = Field(
        default=None, sa_column=sa.Column(BigId, sa.ForeignKey("users.id"), nullable=True)
    )
    status: str = Field(max_length=16)
    reverses_id: int | None = Field(
        default=None, sa_column=sa.Column(BigId, sa.ForeignKey("transfers.id"), nullable=True)
    )
    created_at: datetime
    expires_at: datetime | None = None
    resolved_at: datetime | None = None
    resolved_by_id: int | None = Field(
        default=None, sa_column=sa.Column(BigId, sa.ForeignKey("users.id"), nullable=True)
    )


class Posting(SQLModel, table=True):
    """One change of one account. (account_id, version) makes a lost update a key violation."""

    __tablename__ = "postings"
    __table_args__ = (
        sa.CheckConstraint("amount <> 0", name="ck_postings_amount"),
        sa.CheckConstraint("version > 0", name="ck_postings_version"),
        sa.Index("ix_postings_account_time", "account_id", "posted_at"),
        sa.Index("ix_postings_transfer", "transfer_id"),
    )

    account_id: int = Field(
        sa_column=sa.Column(BigId, sa.ForeignKey("accounts.id"), primary_key=True, autoincrement=False)
    )
    version: int = Field(sa_column=sa.Column(sa.BigInteger, primary_key=True, autoincrement=False))
    transfer_id: int = Field(sa_column=sa.Column(BigId, sa.ForeignKey("transfers.id"), nullable=False))
    amount: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    balance_after: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    posted_at: datetime


BATCH_KEYS = "key LIKE 'batch:%'"  # ledger.batch.idempotency_key


class IdempotencyRecord(SQLModel, table=True):
    """The stored outcome of a request that created ledger state, keyed per user and key."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (
        # Batch and import keys by key alone, whoever stored them (ledger/csv_import.py: a rerun by
        # another treasurer must replay, not post again); the primary key leads with user_id.
        # Partial, so the keys of single requests, the most written, cost nothing more. A query
        # must repeat BATCH_KEYS word for word for either engine to use it.
        sa.Index(
            "ix_idempotency_keys_batch",
            "key",
            sqlite_where=sa.text(BATCH_KEYS),
            postgresql_where=sa.text(BATCH_KEYS),
        ),
    )

    user_id: int = Field(
        sa_column=sa.Column(BigId, sa.ForeignKey("users.id"), primary_key=True, autoincrement=False)
    )
    key: str = Field(sa_column=sa.Column(sa.String(255), primary_key=True))
    request_hash: str = Field(max_length=64)
    response_status: int
    response_body: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    created_at: datetime
