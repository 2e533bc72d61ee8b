"""Domain errors: one family, each with a stable machine code.

The pure core returns `Problem` values; services raise `DomainError` at their boundary and the
API maps every `DomainError` to RFC 9457 problem+json in one place (api/errors.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing that is wrong with an input, as a value."""

    code: str
    detail: str
    field: str | None = None


# The HTTP status each stable code maps to. Kept beside the codes so the mapping is one table.
STATUS_BY_CODE: dict[str, int] = {
    "validation_failed": 422,
    "invalid_amount": 422,
    "same_account": 422,
    "federation_account": 422,
    "unit_mismatch": 422,
    "insufficient_credit": 422,
    "ceiling_exceeded": 422,
    "account_frozen": 422,
    "account_closed": 422,
    "account_not_empty": 409,
    "limit_violated_by_balance": 409,
    "idempotency_key_required": 400,
    "idempotency_key_reused": 422,
    "idempotency_request_in_progress": 409,
    "not_pending": 409,
    "claim_expired": 409,
    "already_reversed": 409,
    "not_reversible": 409,
    "conflict": 409,
    "forbidden": 403,
    "unauthenticated": 401,
    "invalid_credentials": 401,
    "invalid_token": 401,
    "not_found": 404,
    "account_not_found": 404,
    "coop_not_found": 404,
    "transfer_not_found": 404,
    "payload_too_large": 413,
    "method_not_allowed": 405,
    "rate_limited": 429,
    "already_exists": 409,
    "period_not_over": 409,
    "already_sealed": 409,
    "seal_out_of_order": 409,
    "federation_not_found": 404,
    "obligation_not_found": 404,
    "clearing_run_not_found": 404,
    "user_not_found": 404,
    "stale_clearing_run": 409,
    "clearing_run_closed": 409,
    "invalid_obligation_state": 409,
    "external_id_conflict": 409,
    "database_behind": 503,
    "service_unavailable": 503,
    "internal_error": 500,
}


@dataclass
class DomainError(Exception):
    """Raised by services; carries a stable `code` and the problems behind it."""

    code: str
    detail: str
    problems: list[Problem] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(f"{self.code}: {self.detail}")

    @property
    def status(self) -> int:
        return STATUS_BY_CODE.get(self.code, 400)

    @classmethod
    def from_problems(cls, problems: list[Problem]) -> DomainError:
        first = problems[0]
        return cls(first.code, first.detail, problems=list(problems))
