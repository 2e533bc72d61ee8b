"""Period seals, pure: periods, the canonical encoding of ledger facts, and the hash chain.

Standard library only. The service (ledger/seals.py) loads facts and stores seals; everything
that decides what a digest is lives here, so that anyone can recompute a seal from an export
with this one file.

What a seal covers
------------------
A seal of period P (a calendar month in UTC, "2026-11") covers the co-op ledger's *final facts*
whose effective moment falls in P, where effective = COALESCE(resolved_at, created_at):

- every posted transfer (posted when it was created, or when its claim was accepted) with both
  of its postings: the postings carry the balances, so they are sealed too;
- every claim that reached a final outcome (rejected, cancelled, expired) in P.

Pending claims are left out: their status still changes. A claim is sealed in the period in
which it was resolved, by its final state. Nothing sealed can change afterwards through the
application (transfers and postings are append-only; the only legal update is pending → outcome,
and pending rows are never sealed), so a recomputation that differs means history was edited.

Canonical encoding (version "commons-seal/1")
---------------------------------------------
Each record is one line: a JSON array of strings, integers and nulls, serialised with no
whitespace, non-ASCII characters kept as UTF-8, and a final "\\n". With only those value types
this is exactly RFC 8785 (JCS) output, so other languages can reproduce it. Integers are amounts
in the unit's smallest step and ids; datetimes are UTC "YYYY-MM-DDTHH:MM:SS.ffffffZ"; dates are
"YYYY-MM-DD".

    header   ["commons-seal/1", coop_slug, period, unit_code, scale]
    transfer ["T", id, ledger_id, transaction_id, payer_id, payee_id, amount, memo, category,
              occurred_on, initiator_id, status, reverses_id, created_at, expires_at,
              resolved_at, resolved_by_id]
    posting  ["P", account_id, version, transfer_id, amount, balance_after, posted_at]

Transfers in ascending id, each followed by its postings in ascending (account_id, version).

    digest = SHA-256( previous_digest (32 raw bytes) || header || transfer/posting lines )

The first seal of a co-op chains to GENESIS (32 zero bytes). Because the header names the
period, each seal is bound to its month, and an empty month still gets its own digest.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from ledger.errors import Problem

SEAL_FORMAT = "commons-seal/1"
GENESIS = "0" * 64
# Sealing waits this long after a period ends: a write that took its timestamp just before
# midnight has committed by then (write transactions last milliseconds to seconds).
SEAL_GRACE = timedelta(minutes=10)

_PERIOD = re.compile(r"(?P<year>[0-9]{4})-(?P<month>[0-9]{2})")
_HEX64 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True, order=True)
class Period:
    """A calendar month in UTC: [start, end)."""

    year: int
    month: int

    @classmethod
    def parse(cls, text: str) -> Period:
        match = _PERIOD.fullmatch(text.strip()) if isinstance(text, str) else None
        if match is None:
            raise ValueError(f'{str(text)[:20]!r} is not a period such as "2026-11"')
        year, month = int(match["year"]), int(match["month"])
        if not 1 <= month <= 12 or year < 1970:
            raise ValueError(f"{text!r} is not a month (use YYYY-MM, from 1970-01)")
        return cls(year, month)

    @classmethod
    def of(cls, moment: datetime) -> Period:
        moment = as_utc(moment)
        return cls(moment.year, moment.month)

    @property
    def label(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    def __str__(self) -> str:
        return self.label

    @property
    def start(self) -> datetime:
        return datetime(self.year, self.month, 1, tzinfo=UTC)

    @property
    def end(self) -> datetime:
        return self.next().start

    @property
    def first_day(self) -> date:
        return self.start.date()

    @property
    def last_day(self) -> date:
        return (self.end - timedelta(days=1)).date()

    def next(self) -> Period:
        return Period(self.year + 1, 1) if self.month == 12 else Period(self.year, self.month + 1)

    def previous(self) -> Period:
        return Period(self.year - 1, 12) if self.month == 1 else Period(self.year, self.month - 1)

    def is_over(self, now: datetime, *, grace: timedelta = SEAL_GRACE) -> bool:
        return as_utc(now) >= self.end + grace


def periods_between(first: Period, last: Period) -> list[Period]:
    """Every month from `first` to `last`, both included (empty when first > last)."""
    out: list[Period] = []
    current = first
    while current <= last:
        out.append(current)
        current = current.next()
    return out


def as_utc(moment: datetime) -> datetime:
    """Naive datetimes (as SQLite hands them back) are UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@dataclass(frozen=True, slots=True)
class SealPosting:
    account_id: int
    version: int
    transfer_id: int
    amount: int
    balance_after: int
    posted_at: datetime


@dataclass(frozen=True, slots=True)
class SealTransfer:
    id: int
    ledger_id: int
    transaction_id: str
    payer_id: int
    payee_id: int
    amount: int
    memo: str | None
    category: str | None
    occurred_on: date
    initiator_id: int | None
    status: str
    reverses_id: int | None
    created_at: datetime
    expires_at: datetime | None
    resolved_at: datetime | None
    resolved_by_id: int | None
    postings: tuple[SealPosting, ...] = ()


@dataclass(frozen=True, slots=True)
class SealHeader:
    coop: str
    period: Period
    unit_code: str
    scale: int


@dataclass(frozen=True, slots=True)
class SealDigest:
    """What a recomputation yields for one period."""

    period: Period
    previous_digest: str
    digest: str
    transfer_count: int
    posting_count: int


@dataclass(frozen=True, slots=True)
class StoredSeal:
    period: Period
    previous_digest: str
    digest: str
    transfer_count: int
    posting_count: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing that differs from what the ledger's rules imply, named for a person to act on."""

    code: str
    subject: str
    detail: str

    def __str__(self) -> str:
        return f"{self.subject}: {self.detail}"


def _timestamp(moment: datetime | None) -> str | None:
    return None if moment is None else as_utc(moment).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _line(values: Sequence[object]) -> bytes:
    for value in values:
        if not (value is None or isinstance(value, str | int)) or isinstance(value, bool):
            raise TypeError(f"canonical records hold strings, integers and nulls, not {value!r}")
    return json.dumps(list(values), ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def encode_header(header: SealHeader) -> bytes:
    return _line([SEAL_FORMAT, header.coop, header.period.label, header.unit_code, header.scale])


def encode_transfer(transfer: SealTransfer) -> bytes:
    t = transfer
    lines = [
        _line(
            [
                "T",
                t.id,
                t.ledger_id,
                t.transaction_id,
                t.payer_id,
                t.payee_id,
                t.amount,
                t.memo,
                t.category,
                t.occurred_on.isoformat(),
                t.initiator_id,
                t.status,
                t.reverses_id,
                _timestamp(t.created_at),
                _timestamp(t.expires_at),
                _timestamp(t.resolved_at),
                t.resolved_by_id,
            ]
        )
    ]
    for p in sorted(t.postings, key=lambda p: (p.account_id, p.version)):
        lines.append(
            _line(
                [
                    "P",
                    p.account_id,
                    p.version,
                    p.transfer_id,
                    p.amount,
                    p.balance_after,
                    _timestamp(p.posted_at),
                ]
            )
        )
    return b"".join(lines)


def valid_digest(text: str) -> bool:
    return isinstance(text, str) and _HEX64.fullmatch(text) is not None


def compute_digest(header: SealHeader, previous_digest: str, transfers: Iterable[SealTransfer]) -> SealDigest:
    """Chain one period onto `previous_digest`. `transfers` must come in ascending id order."""
    if not valid_digest(previous_digest):
        raise ValueError("previous_digest must be 64 lowercase hex characters")
    h = hashlib.sha256(bytes.fromhex(previous_digest))
    h.update(encode_header(header))
    transfer_count = posting_count = 0
    last_id: int | None = None
    for transfer in transfers:
        if last_id is not None and transfer.id <= last_id:
            raise ValueError("transfers must be sealed in ascending id order")
        last_id = transfer.id
        h.update(encode_transfer(transfer))
        transfer_count += 1
        posting_count += len(transfer.postings)
    return SealDigest(header.period, previous_digest, h.hexdigest(), transfer_count, posting_count)


def sealing_problems(
    period: Period,
    *,
    now: datetime,
    opened: Period,
    sealed: Sequence[Period],
    earliest_unsealed_with_facts: Period | None,
) -> list[Problem]:
    """Why `period` cannot be sealed now, if it cannot. Empty when it can.

    The rules: the period is over (plus SEAL_GRACE); it is not sealed yet; no later period is
    sealed (the chain grows forward only); it is not before the co-op's first month; and every
    earlier month that holds facts is sealed first (months without facts may be skipped: no
    fact can appear in a closed month later, so a skipped empty month stays provably empty, and
    `commons verify` checks that it is).
    """
    problems: list[Problem] = []
    if period < opened:
        problems.append(Problem("validation_failed", f"the co-op's ledger starts in {opened}", "period"))
    if not period.is_over(now):
        problems.append(
            Problem(
                "period_not_over",
                f"{period} can be sealed from {(period.end + SEAL_GRACE).isoformat()}",
                "period",
            )
        )
    if period in sealed:
        problems.append(Problem("already_sealed", f"{period} is already sealed", "period"))
    elif sealed and max(sealed) > period:
        problems.append(
            Problem(
                "seal_out_of_order",
                f"{max(sealed)} is already sealed; seals are made in order, month by month",
                "period",
            )
        )
    if earliest_unsealed_with_facts is not None and earliest_unsealed_with_facts < period:
        problems.append(
            Problem(
                "seal_out_of_order",
                f"{earliest_unsealed_with_facts} has transfers and is not sealed; seal it first",
                "period",
            )
        )
    return problems


def chain_findings(coop: str, stored: Sequence[StoredSeal]) -> list[Finding]:
    """Links of the chain that do not hold: each seal must point at the digest before it."""
    findings: list[Finding] = []
    previous = GENESIS
    for seal in sorted(stored, key=lambda s: s.period):
        if seal.previous_digest != previous:
            findings.append(
                Finding(
                    "seal_chain_broken",
                    f"{coop} seal {seal.period}",
                    f"chained to {seal.previous_digest[:16]}… but the seal before it is {previous[:16]}…",
                )
            )
        previous = seal.digest
    return findings


def seal_findings(coop: str, stored: StoredSeal, recomputed: SealDigest) -> list[Finding]:
    """What differs between a stored seal and the recomputation of its period."""
    subject = f"{coop} seal {stored.period}"
    findings: list[Finding] = []
    if recomputed.transfer_count != stored.transfer_count:
        findings.append(
            Finding(
                "seal_count_differs",
                subject,
                f"sealed {stored.transfer_count} transfers, the ledger now has "
                f"{recomputed.transfer_count} in that month",
            )
        )
    if recomputed.posting_count != stored.posting_count:
        findings.append(
            Finding(
                "seal_count_differs",
                subject,
                f"sealed {stored.posting_count} postings, the ledger now has "
                f"{recomputed.posting_count} in that month",
            )
        )
    if recomputed.digest != stored.digest:
        findings.append(
            Finding(
                "seal_digest_differs",
                subject,
                f"sealed digest {stored.digest[:16]}…, recomputed {recomputed.digest[:16]}…: "
                "a transfer or posting of that month was changed, added or removed",
            )
        )
    return findings
