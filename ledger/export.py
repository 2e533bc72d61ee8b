"""Export one co-op to JSON Lines and import it into another database, ids preserved.

The file holds everything needed to rebuild the co-op: its ledger and policy, the people in it
(name and email, never password hashes: they set a new password after a move), accounts with
their cached state, memberships, every transfer and posting, and every seal. Ids are kept, so
the seals recomputed in the new database equal the stored ones, and an import is checked by
exactly that: it runs the whole of `commons verify` for the co-op before it commits.

Format (`commons-export`, version 1), one JSON object per line, in this order:

    {"type": "commons-export", "version": 1, "coop": slug, "exported_at": ISO 8601, ...}
    ledger, user*, coop, account*, membership*, transfer*, posting*, seal*
    {"type": "end", "records": N, "sha256": hex}

Each record is {"type": <table>, <column>: <value>, ...}: integers for ids and amounts (in the
unit's smallest step; the scale is on the ledger record), ISO 8601 strings for datetimes (UTC)
and dates, strings, booleans and nulls. `end` counts the records before it and hashes their
bytes (each line with its "\\n"), so a truncated or edited file is refused.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import IO, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from accounts import service as accounts
from ledger import tables as t
from ledger.db import is_sqlite, write_transaction
from ledger.reconcile import coop_findings
from ledger.seal_core import Finding, as_utc
from ledger.seal_models import seals as seal_table

FORMAT = "commons-export"
VERSION = 1
CHUNK = 1000
USER_COLUMNS = ("id", "email", "name", "created_at")
# Tables in the order a file lists them (parents before the rows that refer to them).
TABLES: dict[str, sa.Table] = {
    "ledger": t.ledgers,
    "user": t.users,
    "coop": t.coops,
    "account": t.accounts,
    "membership": t.memberships,
    "transfer": t.transfers,
    "posting": t.postings,
    "seal": seal_table,
}
SERIAL_TABLES = ("ledgers", "users", "coops", "accounts", "memberships", "transfers", "seals")

Progress = Callable[[int], None]


class ImportRefusedError(Exception):
    """The file cannot be imported here; the message says why, findings say what differs."""

    def __init__(self, message: str, findings: list[Finding] | None = None) -> None:
        super().__init__(message)
        self.findings = findings or []


@dataclass
class Summary:
    coop: str
    counts: dict[str, int] = field(default_factory=dict)
    sha256: str = ""


def _columns(kind: str) -> list[str]:
    if kind == "user":
        return list(USER_COLUMNS)
    return [c.name for c in TABLES[kind].columns]


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return as_utc(value).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return value


def _records(conn: Connection, slug: str) -> Iterator[dict[str, Any]]:
    coop = accounts.get_coop(conn, slug)
    ledger_id = coop.ledger_id
    tr, p, a, m = t.transfers, t.postings, t.accounts, t.memberships
    ledger_accounts = sa.select(a.c.id).where(a.c.ledger_id == ledger_id)
    people = sa.union(
        sa.select(m.c.user_id.label("id")).where(m.c.coop_id == coop.id),
        sa.select(a.c.user_id).where(a.c.ledger_id == ledger_id, a.c.user_id.is_not(None)),
        sa.select(tr.c.initiator_id).where(tr.c.ledger_id == ledger_id, tr.c.initiator_id.is_not(None)),
        sa.select(tr.c.resolved_by_id).where(tr.c.ledger_id == ledger_id, tr.c.resolved_by_id.is_not(None)),
        sa.select(seal_table.c.created_by_id).where(
            seal_table.c.coop_id == coop.id, seal_table.c.created_by_id.is_not(None)
        ),
    ).subquery()
    queries: list[tuple[str, sa.Select[Any]]] = [
        ("ledger", sa.select(t.ledgers).where(t.ledgers.c.id == ledger_id)),
        (
            "user",
            sa.select(*(t.users.c[c] for c in USER_COLUMNS))
            .where(t.users.c.id.in_(sa.select(people.c.id)))
            .order_by(t.users.c.id),
        ),
        ("coop", sa.select(t.coops).where(t.coops.c.id == coop.id)),
        ("account", sa.select(a).where(a.c.ledger_id == ledger_id).order_by(a.c.id)),
        ("membership", sa.select(m).where(m.c.coop_id == coop.id).order_by(m.c.id)),
        ("transfer", sa.select(tr).where(tr.c.ledger_id == ledger_id).order_by(tr.c.id)),
        (
            "posting",
            sa.select(p).where(p.c.account_id.in_(ledger_accounts)).order_by(p.c.account_id, p.c.version),
        ),
        (
            "seal",
            sa.select(seal_table).where(seal_table.c.coop_id == coop.id).order_by(seal_table.c.period),
        ),
    ]
    for kind, query in queries:
        for row in conn.execute(query.execution_options(yield_per=CHUNK)):
            yield {"type": kind, **{k: _json_value(v) for k, v in row._mapping.items()}}


def _line(record: dict[str, Any]) -> bytes:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def export_coop(
    conn: Connection, *, slug: str, out: IO[bytes], now: datetime, progress: Progress | None = None
) -> Summary:
    """Write the co-op to `out`. Run it in a snapshot (ledger.reconcile.snapshot)."""
    accounts.get_coop(conn, slug)  # coop_not_found before anything is written
    out.write(
        _line(
            {
                "type": FORMAT,
                "version": VERSION,
                "coop": slug,
                "exported_at": now.isoformat(),
                "database": conn.dialect.name,
            }
        )
    )
    digest = hashlib.sha256()
    summary = Summary(slug)
    total = 0
    for record in _records(conn, slug):
        line = _line(record)
        digest.update(line)
        out.write(line)
        summary.counts[record["type"]] = summary.counts.get(record["type"], 0) + 1
        total += 1
        if progress is not None and total % CHUNK == 0:
            progress(CHUNK)
    if progress is not None:
        progress(total % CHUNK)
    summary.sha256 = digest.hexdigest()
    out.write(_line({"type": "end", "records": total, "sha256": summary.sha256}))
    return summary


# --- import -------------------------------------------------------------------------------


def _read(path: Path) -> Iterator[tuple[int, bytes, dict[str, Any]]]:
    with path.open("rb") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as exc:
                raise ImportRefusedError(f"line {number} is not JSON: {exc}") from exc
            if not isinstance(record, dict) or not isinstance(record.get("type"), str):
                raise ImportRefusedError(f"line {number} is not a Commons export record")
            yield number, line if line.endswith(b"\n") else line + b"\n", record


def inspect_file(path: Path) -> tuple[dict[str, Any], dict[str, int]]:
    """Check the header, the record types and order, and the end record (count and hash)."""
    digest = hashlib.sha256()
    header: dict[str, Any] | None = None
    counts: dict[str, int] = {}
    order = list(TABLES)
    position = 0
    ended = False
    for number, line, record in _read(path):
        kind = record["type"]
        if header is None:
            if kind != FORMAT:
                raise ImportRefusedError(f"{path} is not a Commons export (line 1 has type {kind!r})")
            if record.get("version") != VERSION:
                raise ImportRefusedError(
                    f"export format version {record.get('version')!r} is not supported "
                    f"(this Commons reads {VERSION})"
                )
            header = record
            continue
        if ended:
            raise ImportRefusedError(f"line {number}: records after the end record")
        if kind == "end":
            total = sum(counts.values())
            if record.get("records") != total or record.get("sha256") != digest.hexdigest():
                raise ImportRefusedError(
                    "the file was changed or cut short: its end record does not match its content"
                )
            ended = True
            continue
        if kind not in TABLES:
            raise ImportRefusedError(f"line {number}: unknown record type {kind!r}")
        if order.index(kind) < position:
            raise ImportRefusedError(
                f"line {number}: {kind} records must come before {order[position]} records"
            )
        position = order.index(kind)
        unknown = set(record) - {"type", *_columns(kind)}
        if unknown:
            raise ImportRefusedError(f"line {number}: unknown {kind} field(s) {sorted(unknown)}")
        digest.update(line)
        counts[kind] = counts.get(kind, 0) + 1
    if header is None:
        raise ImportRefusedError(f"{path} is empty")
    if not ended:
        raise ImportRefusedError("the file has no end record: it was cut short")
    if counts.get("coop") != 1 or counts.get("ledger") != 1:
        raise ImportRefusedError("an export holds exactly one co-op and its ledger")
    return header, counts


def _typed(table: sa.Table, record: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, value in record.items():
        if name == "type":
            continue
        column = table.c[name]
        kind = getattr(column.type, "impl", column.type)  # UTCDateTime decorates DateTime
        if value is not None and isinstance(kind, sa.DateTime):
            value = as_utc(datetime.fromisoformat(value))
        elif value is not None and isinstance(kind, sa.Date):
            value = date.fromisoformat(value)
        values[name] = value
    return values


def _users(conn: Connection, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The exported people to insert; someone already here with the same id and email is kept."""
    u = t.users
    fresh = []
    for row in rows:
        by_id = conn.execute(sa.select(u.c.email).where(u.c.id == row["id"])).first()
        if by_id is not None:
            if by_id.email != row["email"]:
                raise ImportRefusedError(
                    f"user id {row['id']} is {by_id.email} here, not {row['email']}: "
                    "import into an empty database"
                )
            continue
        if accounts.find_user_id(conn, row["email"]) is not None:
            raise ImportRefusedError(
                f"{row['email']} already exists here with another id: import into an empty database"
            )
        fresh.append({**row, "password_hash": None, "is_admin": False, "token_version": 0})
    return fresh


def _insert(conn: Connection, kind: str, rows: list[dict[str, Any]]) -> None:
    if kind == "user":
        rows = _users(conn, rows)
    if not rows:
        return
    try:
        with conn.begin_nested():
            conn.execute(sa.insert(TABLES[kind]), rows)
    except IntegrityError as exc:
        raise ImportRefusedError(
            f"the {kind} records collide with rows already in this database (same ids or keys); "
            "import into an empty database (commons db upgrade on a new one)"
        ) from exc


def _flush(conn: Connection, kind: str, rows: list[dict[str, Any]], progress: Progress | None) -> None:
    _insert(conn, kind, rows)
    if progress is not None:
        progress(len(rows))


def _reset_sequences(conn: Connection) -> None:
    if is_sqlite(conn):
        return  # INTEGER PRIMARY KEY continues after the largest id by itself
    for table in SERIAL_TABLES:
        conn.execute(
            sa.text(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)"
            )
        )


def import_file(engine: Engine, path: Path, *, progress: Progress | None = None) -> Summary:
    """Import an export into this database in one transaction; verified before it commits."""
    header, counts = inspect_file(path)
    slug = str(header.get("coop"))
    summary = Summary(slug, counts)
    with write_transaction(engine) as conn:
        if conn.execute(sa.select(t.coops.c.id).where(t.coops.c.slug == slug)).first() is not None:
            raise ImportRefusedError(f"a co-op {slug!r} already exists in this database")
        batch: list[dict[str, Any]] = []
        kind = ""
        for _, _, record in _read(path):
            if record["type"] in (FORMAT, "end"):
                continue
            if batch and (record["type"] != kind or len(batch) >= CHUNK):
                _flush(conn, kind, batch, progress)
                batch = []
            kind = record["type"]
            batch.append(_typed(TABLES[kind], record))
        if batch:
            _flush(conn, kind, batch, progress)
        _reset_sequences(conn)
        coop = accounts.get_coop(conn, slug)
        _, findings = coop_findings(conn, coop)
        if findings:
            raise ImportRefusedError("the imported co-op does not verify; nothing was imported", findings)
    return summary
