"""Tables for people and organisations: users, co-ops, federations, memberships, refresh tokens."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from ledger.models import BigId


def _pk() -> sa.Column[int]:
    return sa.Column(BigId, primary_key=True, autoincrement=True)


class User(SQLModel, table=True):
    __tablename__ = "users"

    id: int | None = Field(default=None, sa_column=_pk())
    email: str = Field(sa_column=sa.Column(sa.String(320), nullable=False, unique=True))
    name: str = Field(max_length=200)
    password_hash: str | None = Field(default=None, max_length=255)
    is_admin: bool = Field(default=False)
    token_version: int = Field(default=0)
    created_at: datetime


class Coop(SQLModel, table=True):
    __tablename__ = "coops"
    __table_args__ = (
        sa.CheckConstraint("claim_expiry_days > 0", name="ck_coops_claim_expiry"),
        sa.CheckConstraint("max_transfer_amount > 0", name="ck_coops_max_transfer"),
    )

    id: int | None = Field(default=None, sa_column=_pk())
    slug: str = Field(sa_column=sa.Column(sa.String(64), nullable=False, unique=True))
    name: str = Field(max_length=200)
    ledger_id: int = Field(
        sa_column=sa.Column(BigId, sa.ForeignKey("ledgers.id"), nullable=False, unique=True)
    )
    default_min_balance: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger))
    default_max_balance: int | None = Field(default=None, sa_column=sa.Column(sa.BigInteger))
    claim_expiry_days: int = Field(default=30)
    max_transfer_amount: int = Field(sa_column=sa.Column(sa.BigInteger, nullable=False))
    created_at: datetime


class Federation(SQLModel, table=True):
    __tablename__ = "federations"
    __table_args__ = (sa.CheckConstraint("unit_scale >= 0 AND unit_scale <= 6", name="ck_federations_scale"),)

    id: int | None = Field(default=None, sa_column=_pk())
    slug: str = Field(sa_column=sa.Column(sa.String(64), nullable=False, unique=True))
    name: str = Field(max_length=200)
    unit_code: str = Field(max_length=16)
    unit_scale: int
    created_at: datetime


class Membership(SQLModel, table=True):
    __tablename__ = "memberships"
    __table_args__ = (
        sa.UniqueConstraint("user_id", "coop_id", name="uq_memberships_user_coop"),
        sa.CheckConstraint("role IN ('member', 'treasurer')", name="ck_memberships_role"),
    )

    id: int | None = Field(default=None, sa_column=_pk())
    user_id: int = Field(sa_column=sa.Column(BigId, sa.ForeignKey("users.id"), nullable=False))
    coop_id: int = Field(sa_column=sa.Column(BigId, sa.ForeignKey("coops.id"), nullable=False, index=True))
    role: str = Field(max_length=16)
    account_id: int = Field(
        sa_column=sa.Column(BigId, sa.ForeignKey("accounts.id"), nullable=False, unique=True)
    )
    created_at: datetime


class RefreshToken(SQLModel, table=True):
    """Opaque refresh tokens, stored as SHA-256 hashes, rotated on every use.

    A token presented after it was rotated reveals a copy in someone else's hands: the whole
    family (every token descended from the same login) is revoked.
    """

    __tablename__ = "refresh_tokens"

    id: int | None = Field(default=None, sa_column=_pk())
    user_id: int = Field(sa_column=sa.Column(BigId, sa.ForeignKey("users.id"), nullable=False, index=True))
    family_id: str = Field(max_length=36, index=True)
    token_hash: str = Field(sa_column=sa.Column(sa.String(64), nullable=False, unique=True))
    created_at: datetime
    expires_at: datetime
    rotated_at: datetime | None = None
    revoked_at: datetime | None = None
