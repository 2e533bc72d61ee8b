"""Form input and plain-language errors for the web pages.

Domain errors carry a stable code and the field they concern; here they become a sentence a
member understands, placed next to the form field it is about (the API's field names are
mapped to the form's). Nothing here touches the database.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from ledger.amounts import AmountError, parse_amount
from ledger.errors import DomainError, Problem

MAX_NOTE = 500


@dataclass
class FormErrors:
    """Errors by form field; `general` for those that belong to no field."""

    fields: dict[str, str] = field(default_factory=dict)
    general: list[str] = field(default_factory=list)

    def add(self, name: str | None, message: str) -> None:
        if name is None:
            if message not in self.general:
                self.general.append(message)
        else:
            self.fields.setdefault(name, message)

    def __bool__(self) -> bool:
        return bool(self.fields or self.general)


def text(data: dict[str, Any], name: str, *, limit: int = 200) -> str:
    value = data.get(name, "")
    if isinstance(value, list):
        value = value[0] if value else ""
    return str(value).replace("\x00", "").strip()[:limit]


def new_form_key() -> str:
    """An idempotency key per rendered form: a double submit posts once."""
    return "web-" + secrets.token_urlsafe(18)


def parse_hours(raw: str, *, scale: int, errors: FormErrors, name: str = "hours") -> int | None:
    """'1.5', '1,5' and '1:30' all mean an hour and a half."""
    value = raw.strip().replace(",", ".")
    if not value:
        errors.add(name, "Enter how many hours, for example 1.5")
        return None
    if ":" in value:
        h, _, m = value.partition(":")
        if h.isdigit() and m.isdigit() and len(m) == 2 and int(m) < 60:
            minutes = int(h) * 60 + int(m)
            value = f"{minutes // 60}.{(minutes % 60) * 100 // 60:02d}" if scale >= 2 else str(minutes // 60)
        else:
            errors.add(name, "Write hours and minutes as 1:30, or hours as 1.5")
            return None
    try:
        amount = parse_amount(value, scale=scale)
    except AmountError:
        errors.add(name, f"Enter hours as a number such as 1.5 (at most {scale} decimals)")
        return None
    if amount <= 0:
        errors.add(name, "Enter more than zero hours")
        return None
    return amount


def parse_limit(raw: str, *, scale: int, errors: FormErrors, name: str, negative: bool) -> int | None:
    """A limit field: empty means no limit."""
    value = raw.strip().replace(",", ".").replace("\u2212", "-")
    if not value:
        return None
    try:
        amount = parse_amount(value, scale=scale, allow_negative=True)
    except AmountError:
        errors.add(name, "Enter a number of hours such as -20, or leave it empty for no limit")
        return None
    if negative and amount > 0:
        amount = -amount  # "20" in the spending-limit box means "may go down to -20"
    if not negative and amount < 0:
        errors.add(name, "The most a member may hold cannot be below zero")
        return None
    return amount


def parse_day(raw: str, *, today: date, errors: FormErrors, name: str = "date") -> date | None:
    if not raw.strip():
        return today
    try:
        value = date.fromisoformat(raw.strip())
    except ValueError:
        errors.add(name, "Enter the date as year-month-day, for example 2026-03-14")
        return None
    if value > today:
        errors.add(name, "The exchange cannot be in the future")
        return None
    return value


# What a domain code means to the person at the form. `{other}` is the other member's name.
MESSAGES: dict[str, str] = {
    "insufficient_credit": "That is more than {payer} can spend "
    "right now (it would go below the spending limit).",
    "ceiling_exceeded": "{payee} cannot receive that many hours (it would go above the most they may hold).",
    "account_frozen": "This account is frozen: no exchanges until the treasurer unfreezes it.",
    "account_closed": "This account is closed.",
    "same_account": "You cannot log an exchange with yourself.",
    "account_not_found": "Pick a member from the list.",
    "invalid_amount": "Enter hours as a number such as 1.5; the "
    "co-op allows at most {max} hours in one exchange.",
    "not_pending": "This claim was already answered.",
    "claim_expired": "This claim has expired; ask them to log it again.",
    "already_reversed": "This exchange was already reversed.",
    "not_reversible": "Only a posted exchange that is not itself a reversal can be reversed.",
    "forbidden": "You are not allowed to do this.",
    "already_exists": "{detail}",
    "limit_violated_by_balance": "The balance is already outside "
    "these limits; settle it first or pick wider limits.",
    "account_not_empty": "An account can be closed only when its balance is zero.",
    "idempotency_request_in_progress": "This form is already being sent; wait a moment and reload the page.",
    "idempotency_key_reused": "This form was already sent with other values; reload the page to start again.",
    "rate_limited": "Too many attempts; wait a few minutes and try again.",
    "invalid_obligation_state": "This obligation can no longer be answered that way "
    "(it was answered already, or a clearing run used it): see its state below.",
    "conflict": "This changed after the page was drawn: look at it again below, then decide.",
    "invalid_credentials": "The email or the password is wrong.",
}

# API field names → form field names.
FIELD_NAMES = {
    "amount": "hours",
    "payer": "member",
    "payee": "member",
    "memo": "note",
    "category": "category",
    "min_balance": "min_balance",
    "max_balance": "max_balance",
    "status": "status",
    "email": "email",
    "name": "name",
    "password": "password",
}


def explain(
    exc: DomainError,
    errors: FormErrors,
    *,
    fields: Mapping[str, str] | None = None,
    words: Mapping[str, str] | None = None,
) -> FormErrors:
    """Put a domain error's problems next to the form's fields, in plain language."""
    mapping = {**FIELD_NAMES, **(fields or {})}
    problems = exc.problems or [Problem(exc.code, exc.detail)]
    for p in problems:
        template = MESSAGES.get(p.code)
        if template is None:
            message = p.detail[:1].upper() + p.detail[1:]
        else:
            values = {
                "payer": "the payer",
                "payee": "the payee",
                "max": "?",
                "detail": p.detail,
                **(words or {}),
            }
            message = template.format(**values)
        errors.add(mapping.get(p.field) if p.field else None, message[:1].upper() + message[1:])
    return errors
