"""Bring a time bank in from another system: members.csv and transfers.csv.

members.csv    name,email                              (header row; extra columns are ignored)
transfers.csv  date,from_email,to_email,hours,reason   (date YYYY-MM-DD; hours a decimal string
               with at most the unit's decimals, e.g. "1.5")

A transfer row moves `hours` from the `from_email` member's account to the `to_email` member's
account: the from-member received the time (pays), the to-member gave it (is credited). The row's
date becomes the transfer's `occurred_on`; it is posted now, in date order (then file order), so
the limits are applied in the order the history happened, and months that are already sealed
stay untouched. Every row is accepted or rejected on its own; rejected rows are reported by line
with the reason, and nothing else is held back.

Running the same files again changes nothing. Each row's idempotency key is derived from its
content (date, both emails, amount, reason) and its occurrence among identical rows (the first
such row is #1, the second #2, ...), not from its line number: re-exporting the old system with
rows added, removed or reordered does not post anything twice, while two genuinely identical
exchanges on one day stay two transfers. Keys are checked against every user's stored keys, so
a rerun by another treasurer replays too. A row the ledger refused (a limit, say) is remembered
as refused under its key: a rerun reports it again rather than deciding it anew against balances
that the rest of the import has changed since. `retry_refused` (--retry-refused) decides those
rows afresh, e.g. after the treasurer widened a limit.

Transfers go through `ledger.batch.post_batch` in chunks, each chunk its own short write
transaction, so a running server keeps answering during a long import.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from accounts import service as accounts
from accounts.actor import Actor, CoopRole, Role
from accounts.service import CoopRecord
from ledger import tables as t
from ledger.amounts import AmountError, parse_amount
from ledger.batch import BatchEntry, idempotency_key, post_batch, stored_keys_query
from ledger.core import MAX_MEMO_LENGTH
from ledger.db import read_transaction, write_transaction
from ledger.errors import DomainError
from ledger.service import TransferInput, TransferRecord

CHUNK = 500  # keys per lookup and members per transaction
# Transfers per write transaction: as many as a raw batch of the bench commits at once. On SQLite
# a chunk holds the write lock ~70-90 ms, which a running server's payments wait out; 500 made
# two commits (two fsyncs) of every 1,000 rows and kept the import at 0.42-0.47 x the raw batch
# (docs/benchmarks.md, item 21).
TRANSFERS_PER_TRANSACTION = 1000
# The status stored with a refused row's key (the API's status for a refused transfer).
REFUSED_STATUS = 422
MEMBER_COLUMNS = ("name", "email")
TRANSFER_COLUMNS = ("date", "from_email", "to_email", "hours", "reason")

Progress = Callable[[int], None]


@dataclass(frozen=True, slots=True)
class Rejected:
    file: str
    line: int
    code: str
    detail: str


@dataclass(frozen=True, slots=True)
class MemberRow:
    line: int
    name: str
    email: str


@dataclass(frozen=True, slots=True)
class TransferRow:
    line: int
    occurred_on: date
    from_email: str
    to_email: str
    amount: int
    reason: str | None
    key: str
    request_hash: str


@dataclass
class ImportReport:
    members_added: int = 0
    members_existing: int = 0
    transfers_posted: int = 0
    transfers_replayed: int = 0
    rejected: list[Rejected] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.rejected


class CsvError(Exception):
    """A file that cannot be read at all (missing header columns, not UTF-8)."""


def _rows(path: Path, required: Sequence[str]) -> list[tuple[int, dict[str, str]]]:
    """(line number, row) for each data row; line numbers as a spreadsheet shows them."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None:
                raise CsvError(f"{path.name} is empty; it needs a header row: {','.join(required)}")
            names = [h.strip().lower() for h in header]
            missing = [c for c in required if c not in names]
            if missing:
                raise CsvError(
                    f"{path.name} lacks the column(s) {', '.join(missing)} (header: {','.join(required)})"
                )
            out = []
            start = reader.line_num + 1
            for values in reader:
                if any(v.strip() for v in values):
                    out.append(
                        (
                            start,
                            {
                                name: (values[i].strip() if i < len(values) else "")
                                for i, name in enumerate(names)
                            },
                        )
                    )
                start = reader.line_num + 1
            return out
    except UnicodeDecodeError as exc:
        raise CsvError(f"{path.name} is not UTF-8 text: save it as CSV UTF-8") from exc


def read_members(path: Path) -> tuple[list[MemberRow], list[Rejected]]:
    rows: list[MemberRow] = []
    rejected: list[Rejected] = []
    seen: dict[str, int] = {}
    for line, row in _rows(path, MEMBER_COLUMNS):
        name, email = row["name"], accounts.normalise_email(row["email"])
        if not name:
            rejected.append(Rejected(path.name, line, "validation_failed", "the name is empty"))
        elif not accounts.EMAIL.match(email):
            rejected.append(
                Rejected(
                    path.name,
                    line,
                    "validation_failed",
                    f"{row['email']!r} is not an email address",
                )
            )
        elif email in seen:
            rejected.append(
                Rejected(
                    path.name,
                    line,
                    "validation_failed",
                    f"{email} already appears on line {seen[email]}",
                )
            )
        else:
            seen[email] = line
            rows.append(MemberRow(line, name, email))
    return rows, rejected


def read_transfers(path: Path, *, scale: int, today: date) -> tuple[list[TransferRow], list[Rejected]]:
    rows: list[TransferRow] = []
    rejected: list[Rejected] = []
    occurrences: dict[str, int] = {}
    for line, row in _rows(path, TRANSFER_COLUMNS):

        def reject(code: str, detail: str, line: int = line) -> None:
            rejected.append(Rejected(path.name, line, code, detail))

        try:
            occurred_on = date.fromisoformat(row["date"])
        except ValueError:
            reject("validation_failed", f"date {row['date']!r} is not YYYY-MM-DD")
            continue
        if occurred_on > today:
            reject("validation_failed", f"date {occurred_on} is in the future")
            continue
        try:
            amount = parse_amount(row["hours"], scale=scale)
        except AmountError as exc:
            reject("invalid_amount", f"hours: {exc}")
            continue
        if amount == 0:
            reject("invalid_amount", "hours must be greater than zero")
            continue
        source, target = (
            accounts.normalise_email(row["from_email"]),
            accounts.normalise_email(row["to_email"]),
        )
        reason = row["reason"] or None
        if reason is not None and len(reason) > MAX_MEMO_LENGTH:
            reject("validation_failed", f"the reason is longer than {MAX_MEMO_LENGTH} characters")
            continue
        content = "\x1f".join([occurred_on.isoformat(), source, target, str(amount), reason or ""])
        content_hash = hashlib.sha256(content.encode()).hexdigest()
        occurrences[content_hash] = occurrences.get(content_hash, 0) + 1
        rows.append(
            TransferRow(
                line,
                occurred_on,
                source,
                target,
                amount,
                reason,
                f"csv:{content_hash[:48]}:{occurrences[content_hash]}",
                content_hash,
            )
        )
    return rows, rejected


def importing_actor(conn: Connection, *, coop: CoopRecord, email: str | None) -> Actor:
    """The treasurer an import is recorded under: `email`, or the co-op's first treasurer."""
    m = t.memberships
    query = (
        sa.select(m.c.user_id)
        .where(m.c.coop_id == coop.id, m.c.role == Role.TREASURER.value)
        .order_by(m.c.id)
        .limit(1)
    )
    if email is not None:
        user_id = accounts.find_user_id(conn, email)
        query = query.where(m.c.user_id == user_id)
    user_id = conn.execute(query).scalar()
    if user_id is None:
        who = email or "anyone"
        raise DomainError("forbidden", f"{who} is not a treasurer of {coop.slug}; name one with --as EMAIL")
    roles = tuple(
        CoopRole(r.coop_id, r.slug, r.ledger_id, Role(r.role), r.account_id)
        for r in conn.execute(
            sa.select(m.c.coop_id, t.coops.c.slug, t.coops.c.ledger_id, m.c.role, m.c.account_id)
            .join(t.coops, t.coops.c.id == m.c.coop_id)
            .where(m.c.user_id == user_id)
        )
    )
    return Actor(user_id=int(user_id), is_admin=False, roles=roles)


def _member_accounts(conn: Connection, coop_id: int) -> dict[str, int]:
    m, u = t.memberships, t.users
    return {
        r.email: r.account_id
        for r in conn.execute(
            sa.select(u.c.email, m.c.account_id).join(u, u.c.id == m.c.user_id).where(m.c.coop_id == coop_id)
        )
    }


def import_members(
    engine: Engine,
    *,
    actor: Actor,
    coop: CoopRecord,
    rows: Sequence[MemberRow],
    now: datetime,
    progress: Progress | None = None,
) -> tuple[int, int, list[Rejected]]:
    """Add each person who is not a member yet (without a password). (added, existing, rejected)"""
    added = existing = 0
    rejected: list[Rejected] = []
    for start in range(0, len(rows), CHUNK):
        chunk = rows[start : start + CHUNK]
        with write_transaction(engine) as conn:
            members = _member_accounts(conn, coop.id)
            for row in chunk:
                if row.email in members:
                    existing += 1
                    continue
                try:
                    with conn.begin_nested():
                        accounts.add_member(
                            conn,
                            actor=actor,
                            slug=coop.slug,
                            email=row.email,
                            name=row.name,
                            role=Role.MEMBER,
                            password=None,
                            now=now,
                        )
                    added += 1
                except DomainError as exc:
                    rejected.append(Rejected("members", row.line, exc.code, exc.detail))
        if progress is not None:
            progress(len(chunk))
    return added, existing, rejected


@dataclass(frozen=True, slots=True)
class _Stored:
    request_hash: str
    status: int
    body: Any


def _already_imported(conn: Connection, ledger_id: int, rows: Sequence[TransferRow]) -> dict[str, _Stored]:
    """What this ledger already stored (under any user) for these rows' keys."""
    keys = [idempotency_key(ledger_id, r.key) for r in rows]
    found: dict[str, _Stored] = {}
    for start in range(0, len(keys), CHUNK):
        for r in conn.execute(stored_keys_query(keys[start : start + CHUNK])):
            found[r.key] = _Stored(r.request_hash, r.response_status, json.loads(r.response_body))
    return found


def _render(record: TransferRecord) -> dict[str, Any]:
    return {"transfer": str(record.id), "source": "import-csv"}


def _remember_refusals(
    conn: Connection,
    *,
    actor: Actor,
    ledger_id: int,
    refused: list[tuple[TransferRow, str, str]],
    now: datetime,
) -> None:
    """Store the ledger's refusals like its acceptances, so that a rerun replays them instead of
    re-deciding rows against balances that the rest of the import has since changed."""
    if refused:
        conn.execute(
            sa.insert(t.idempotency_keys),
            [
                {
                    "user_id": actor.user_id,
                    "key": idempotency_key(ledger_id, row.key),
                    "request_hash": row.request_hash,
                    "response_status": REFUSED_STATUS,
                    "response_body": json.dumps({"code": code, "detail": detail}, separators=(",", ":")),
                    "created_at": now,
                }
                for row, code, detail in refused
            ],
        )


def import_transfers(
    engine: Engine,
    *,
    actor: Actor,
    coop: CoopRecord,
    rows: Sequence[TransferRow],
    file: str,
    now: datetime,
    retry_refused: bool = False,
    progress: Progress | None = None,
) -> tuple[int, int, list[Rejected]]:
    """Post the rows in date order, in chunks. (posted, replayed, rejected)

    A row the ledger refused before (a limit, a frozen account) is reported again as refused,
    unchanged, unless `retry_refused`: then it is decided afresh (after a treasurer changed a
    limit, say).
    """
    ledger_id = coop.ledger_id
    ordered = sorted(rows, key=lambda r: (r.occurred_on, r.line))
    with read_transaction(engine) as conn:
        members = _member_accounts(conn, coop.id)
        stored = _already_imported(conn, ledger_id, ordered)
    posted = replayed = 0
    rejected: list[Rejected] = []
    todo: list[TransferRow] = []
    retried: list[str] = []
    for row in ordered:
        key = idempotency_key(ledger_id, row.key)
        previous = stored.get(key)
        if previous is not None and previous.request_hash != row.request_hash:
            rejected.append(
                Rejected(
                    file,
                    row.line,
                    "idempotency_key_reused",
                    "this row's key was used for a different transfer",
                )
            )
            continue
        if previous is not None and previous.status != REFUSED_STATUS:
            replayed += 1
            continue
        if previous is not None and not retry_refused:
            body = previous.body if isinstance(previous.body, dict) else {}
            rejected.append(
                Rejected(
                    file,
                    row.line,
                    str(body.get("code", "refused")),
                    f"{body.get('detail', 'refused')} (when first imported)",
                )
            )
            continue
        unknown = [e for e in (row.from_email, row.to_email) if e not in members]
        if unknown:
            rejected.append(
                Rejected(
                    file,
                    row.line,
                    "account_not_found",
                    f"{unknown[0]} is not a member of {coop.slug} (add them to members.csv)",
                )
            )
            continue
        if previous is not None:
            retried.append(key)
        todo.append(row)
    if progress is not None:
        progress(len(ordered) - len(todo))
    for start in range(0, len(todo), TRANSFERS_PER_TRANSACTION):
        chunk = todo[start : start + TRANSFERS_PER_TRANSACTION]
        by_key = {r.key: r for r in chunk}
        entries = [
            BatchEntry(
                r.key,
                r.request_hash,
                TransferInput(
                    members[r.from_email],
                    members[r.to_email],
                    r.amount,
                    r.reason,
                    None,
                    r.occurred_on,
                ),
            )
            for r in chunk
        ]
        refusals: list[tuple[TransferRow, str, str]] = []
        with write_transaction(engine) as conn:
            again = [
                idempotency_key(ledger_id, r.key)
                for r in chunk
                if idempotency_key(ledger_id, r.key) in retried
            ]
            if again:
                ik = t.idempotency_keys
                conn.execute(sa.delete(ik).where(ik.c.key.in_(again), ik.c.response_status == REFUSED_STATUS))
            results = post_batch(
                conn,
                actor=actor,
                ledger_id=ledger_id,
                entries=entries,
                now=now,
                render=_render,
                stored_by_anyone=True,  # what another treasurer imported meanwhile, too
            )
            for result in results:
                if result.outcome == "posted":
                    posted += 1
                elif result.outcome == "replayed":
                    replayed += 1
                else:
                    problem = result.problem
                    code, detail = (problem.code, problem.detail) if problem else ("refused", "refused")
                    rejected.append(Rejected(file, by_key[result.key].line, code, detail))
                    if code != "idempotency_key_reused":
                        refusals.append((by_key[result.key], code, detail))
            _remember_refusals(conn, actor=actor, ledger_id=ledger_id, refused=refusals, now=now)
        if progress is not None:
            progress(len(chunk))
    return posted, replayed, rejected


def import_csv(
    engine: Engine,
    *,
    slug: str,
    members_csv: Path,
    transfers_csv: Path,
    as_email: str | None,
    now: datetime,
    retry_refused: bool = False,
    progress: Callable[[str, int], Progress] | None = None,
) -> ImportReport:
    """Import both files. `progress(task, total)` returns a callback that advances that task."""
    with read_transaction(engine) as conn:
        coop = accounts.get_coop(conn, slug)
        actor = importing_actor(conn, coop=coop, email=as_email)
    member_rows, member_rejects = read_members(members_csv)
    transfer_rows, transfer_rejects = read_transfers(transfers_csv, scale=coop.scale, today=now.date())
    report = ImportReport()
    report.rejected += [Rejected(members_csv.name, r.line, r.code, r.detail) for r in member_rejects]
    added, existing, rejected = import_members(
        engine,
        actor=actor,
        coop=coop,
        rows=member_rows,
        now=now,
        progress=progress("members", len(member_rows)) if progress else None,
    )
    report.members_added, report.members_existing = added, existing
    report.rejected += [Rejected(members_csv.name, r.line, r.code, r.detail) for r in rejected]
    report.rejected += transfer_rejects
    posted, replayed, rejected = import_transfers(
        engine,
        actor=actor,
        coop=coop,
        rows=transfer_rows,
        file=transfers_csv.name,
        now=now,
        retry_refused=retry_refused,
        progress=progress("transfers", len(transfer_rows)) if progress else None,
    )
    report.transfers_posted, report.transfers_replayed = posted, replayed
    report.rejected += rejected
    report.rejected.sort(key=lambda r: (r.file, r.line))
    return report
