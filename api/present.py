"""Domain values → public shapes. Amounts become decimal strings at the unit's scale."""

from __future__ import annotations

from datetime import UTC, datetime

from accounts.service import CoopRecord
from api import schemas as s
from ledger.amounts import AmountError, format_amount, format_optional, parse_amount
from ledger.errors import DomainError, Problem
from ledger.queries import AccountView, PostingView, encode_cursor
from ledger.service import TransferRecord


def coop(c: CoopRecord) -> s.CoopOut:
    return s.CoopOut(
        slug=c.slug,
        name=c.name,
        unit=s.UnitOut(code=c.unit_code, scale=c.scale),
        default_min_balance=format_optional(c.default_min_balance, scale=c.scale),
        default_max_balance=format_optional(c.default_max_balance, scale=c.scale),
        claim_expiry_days=c.claim_expiry_days,
        max_transfer_amount=format_amount(c.max_transfer_amount, scale=c.scale),
        coop_account=None if c.coop_account_id is None else str(c.coop_account_id),
    )


def account(v: AccountView) -> s.AccountOut:
    return s.AccountOut(
        id=str(v.id),
        coop=v.coop,
        kind=v.kind,
        holder=v.holder,
        balance=format_amount(v.balance, scale=v.scale),
        min_balance=format_optional(v.min_balance, scale=v.scale),
        max_balance=format_optional(v.max_balance, scale=v.scale),
        status=v.status,
        total_given=format_amount(v.credits, scale=v.scale),
        total_received=format_amount(v.debits, scale=v.scale),
        unit=s.UnitOut(code=v.unit_code, scale=v.scale),
    )


def directory_entry(v: AccountView) -> s.DirectoryEntry:
    return s.DirectoryEntry(id=str(v.id), holder=v.holder, kind=v.kind, status=v.status)


def transfer(r: TransferRecord, *, unit_code: str, scale: int) -> s.TransferOut:
    return s.TransferOut(
        id=str(r.id),
        status=r.status,
        payer=str(r.payer_id),
        payee=str(r.payee_id),
        amount=format_amount(r.amount, scale=scale),
        memo=r.memo,
        category=r.category,
        occurred_on=r.occurred_on,
        initiator=None if r.initiator_id is None else str(r.initiator_id),
        transaction_id=r.transaction_id,
        reverses=None if r.reverses_id is None else str(r.reverses_id),
        created_at=r.created_at,
        expires_at=r.expires_at,
        resolved_at=r.resolved_at,
        unit=s.UnitOut(code=unit_code, scale=scale),
    )


def posting(p: PostingView, *, scale: int) -> s.PostingOut:
    return s.PostingOut(
        account=str(p.account_id),
        version=p.version,
        transfer=str(p.transfer_id),
        amount=format_amount(p.amount, scale=scale),
        balance_after=format_amount(p.balance_after, scale=scale),
        posted_at=p.posted_at,
        counterparty=str(p.counterparty_id),
        memo=p.memo,
        category=p.category,
        occurred_on=p.occurred_on,
    )


def cursor(value: int | None) -> str | None:
    return None if value is None else encode_cursor(value)


def amount_in(text: object, *, scale: int, field: str, allow_negative: bool = False) -> int:
    """Parse an incoming amount or raise `invalid_amount` naming the field."""
    try:
        return parse_amount(text, scale=scale, allow_negative=allow_negative)
    except AmountError as exc:
        raise DomainError("invalid_amount", str(exc), [Problem("invalid_amount", str(exc), field)]) from exc


def optional_amount_in(
    text: str | None, *, scale: int, field: str, allow_negative: bool = False
) -> int | None:
    return None if text is None else amount_in(text, scale=scale, field=field, allow_negative=allow_negative)


def id_in(text: str, *, code: str = "account_not_found", what: str = "account") -> int:
    """Ids are strings of digits; anything else names nothing that exists."""
    if not text.isdigit() or len(text) > 18:
        raise DomainError(code, f"no such {what}: {text[:40]!r}")
    return int(text)


def iso_datetime(text: str | None, *, field: str) -> datetime | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise DomainError(
            "validation_failed",
            f"{field} must be an ISO 8601 date-time",
            [Problem("validation_failed", "not ISO 8601", field)],
        ) from exc
    # Stored times are UTC; a time without an offset is read as UTC.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
