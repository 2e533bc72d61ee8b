"""SQLAlchemy Core handles on the ledger tables, for statements on hot paths (no ORM churn)."""

from __future__ import annotations

import sqlalchemy as sa

from accounts.models import Coop, Federation, Membership, RefreshToken, User
from ledger.models import Account, IdempotencyRecord, Ledger, Posting, Transfer


def _table(model: type) -> sa.Table:
    table = model.__table__  # type: ignore[attr-defined]
    assert isinstance(table, sa.Table)
    return table


ledgers = _table(Ledger)
accounts = _table(Account)
transfers = _table(Transfer)
postings = _table(Posting)
idempotency_keys = _table(IdempotencyRecord)
users = _table(User)
coops = _table(Coop)
federations = _table(Federation)
memberships = _table(Membership)
refresh_tokens = _table(RefreshToken)
