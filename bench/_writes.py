"""The write paths under test, each doing the same transfers: raw driver SQL, the service in
process, and the batch (raw multi-row/COPY against `ledger.batch`).

A workload is fixed before timing (seeded random), so every path of a round posts the same
transfers between the same accounts; only the code between the client and the database differs.
"""

from __future__ import annotations

import itertools
import json
import random
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import psycopg
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from accounts import service as accounts_service
from accounts import tokens
from accounts.actor import Actor, Role
from ledger import idempotency, pg_transfer, sqlite_transfer
from ledger import tables as t
from ledger.amounts import format_amount
from ledger.db import is_sqlite, write_transaction
from ledger.service import TransferInput, create_transfer

LIMIT = 10**12  # limits are set (so every UPDATE evaluates them) but never reached by the bench
SLUG = "bench"


@dataclass(frozen=True)
class Member:
    user_id: int
    account_id: int
    token_version: int
    email: str


@dataclass(frozen=True)
class BenchCoop:
    slug: str
    ledger_id: int
    coop_id: int
    treasurer: Member
    members: tuple[Member, ...]

    def token(self, member: Member, secret: str) -> str:
        token, _ = tokens.issue_access_token(
            secret=secret, user_id=member.user_id, token_version=member.token_version
        )
        return token


Item = tuple[int, int, int]  # payer account, payee account, amount in hundredths


def seed_coop(engine: Engine, *, members: int, slug: str = SLUG) -> BenchCoop:
    """A co-op with a treasurer and `members` members (no passwords: the bench mints tokens)."""
    now = datetime.now(UTC)
    with write_transaction(engine) as conn:
        admin_id = accounts_service.create_user(
            conn,
            email=f"admin@{slug}.example.org",
            name="Admin",
            password=None,
            is_admin=True,
            now=now,
        )
        admin = Actor(user_id=admin_id, is_admin=True)
        coop = accounts_service.create_coop(
            conn,
            actor=admin,
            slug=slug,
            name=slug.title(),
            unit_code="HOUR",
            scale=2,
            default_min_balance=-LIMIT,
            default_max_balance=LIMIT,
            claim_expiry_days=30,
            max_transfer_amount=10**9,
            now=now,
        )
        people = []
        for i in range(members + 1):
            email = f"treasurer@{slug}.example.org" if i == 0 else f"m{i}@{slug}.example.org"
            role = Role.TREASURER if i == 0 else Role.MEMBER
            user_id, account_id, _ = accounts_service.add_member(
                conn,
                actor=admin,
                slug=slug,
                email=email,
                name=email.split("@")[0],
                role=role,
                password=None,
                now=now,
            )
            version = conn.execute(
                sa.select(t.users.c.token_version).where(t.users.c.id == user_id)
            ).scalar_one()
            people.append(Member(user_id, account_id, int(version), email))
    return BenchCoop(slug, coop.ledger_id, coop.id, people[0], tuple(people[1:]))


def workload(coop: BenchCoop, *, clients: int, per_client: int, seed: int) -> list[list[Item]]:
    """Client i pays from member i's account to random other members."""
    rng = random.Random(seed)
    ids = [m.account_id for m in coop.members]
    plans = []
    for i in range(clients):
        payer = ids[i % len(ids)]
        others = [a for a in ids if a != payer]
        plans.append([(payer, rng.choice(others), rng.randint(1, 100)) for _ in range(per_client)])
    return plans


def run_clients(
    plans: Sequence[Sequence[Item]], workers: Sequence[Callable[[Item], None]]
) -> tuple[float, list[float]]:
    """One thread per client, each posting its plan in order. Returns (wall seconds, latencies)."""
    latencies: list[list[float]] = [[] for _ in plans]
    errors: list[BaseException] = []
    start_gate = threading.Barrier(len(plans) + 1)

    def client(i: int) -> None:
        work, out = workers[i], latencies[i]
        start_gate.wait()
        try:
            for item in plans[i]:
                t0 = time.perf_counter()
                work(item)
                out.append(time.perf_counter() - t0)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(len(plans))]
    for th in threads:
        th.start()
    start_gate.wait()
    t0 = time.perf_counter()
    for th in threads:
        th.join()
    elapsed = time.perf_counter() - t0
    if errors:
        raise errors[0]
    return elapsed, [x for lat in latencies for x in lat]


# --- raw: the least a correct transfer costs, straight through the driver ----------------------

PG_INSERT_TRANSFER = (
    "INSERT INTO transfers (ledger_id, transaction_id, payer_id, payee_id, amount, occurred_on, "
    "initiator_id, status, created_at) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, 'posted', %s) RETURNING id"
)
PG_DEBIT = (
    "UPDATE accounts SET balance = balance - %(d)s, debits = debits + %(d)s, version = version + 1 "
    "WHERE id = %(id)s AND status = 'active' AND (min_balance IS NULL OR balance - %(d)s >= "
    "min_balance) "
    "RETURNING balance, version"
)
PG_CREDIT = (
    "UPDATE accounts SET balance = balance + %(d)s, credits = credits + %(d)s, version = version "
    "+ 1 "
    "WHERE id = %(id)s AND status = 'active' AND (max_balance IS NULL OR balance + %(d)s <= "
    "max_balance) "
    "RETURNING balance, version"
)
PG_POSTINGS = (
    "INSERT INTO postings (account_id, version, transfer_id, amount, balance_after, posted_at) "
    "VALUES (%s, %s, %s, %s, %s, %s), (%s, %s, %s, %s, %s, %s)"
)


def _qmark(sql: str) -> str:
    return sql.replace("%(d)s", ":d").replace("%(id)s", ":id").replace("%s", "?")


def sqlite_when(moment: datetime) -> str:
    """SQLAlchemy's SQLite DateTime storage format (always with microseconds)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


class RefusedError(RuntimeError):
    pass


def raw_transfer(cur: object, item: Item, *, ledger_id: int, user_id: int, sqlite: bool) -> None:
    """Insert the transfer, move both accounts in id order under their limits, insert postings."""
    payer, payee, amount = item
    now = datetime.now(UTC)
    ins, debit, credit, post = (
        (_qmark(PG_INSERT_TRANSFER), _qmark(PG_DEBIT), _qmark(PG_CREDIT), _qmark(PG_POSTINGS))
        if sqlite
        else (PG_INSERT_TRANSFER, PG_DEBIT, PG_CREDIT, PG_POSTINGS)
    )
    when: object = sqlite_when(now) if sqlite else now
    today: object = now.date().isoformat() if sqlite else now.date()
    execute = cur.execute  # type: ignore[attr-defined]
    transfer_id = execute(
        ins, (ledger_id, str(uuid.uuid4()), payer, payee, amount, today, user_id, when)
    ).fetchone()[0]
    moved = {}
    for account, sql in sorted(((payer, debit), (payee, credit))):
        row = execute(sql, {"d": amount, "id": account}).fetchone()
        if row is None:
            raise RefusedError(f"account {account} refused {amount}")
        moved[account] = row
    execute(
        post,
        (
            payer,
            moved[payer][1],
            transfer_id,
            -amount,
            moved[payer][0],
            when,
            payee,
            moved[payee][1],
            transfer_id,
            amount,
            moved[payee][0],
            when,
        ),
    )


def sqlite_connect(path: str) -> sqlite3.Connection:
    """A connection configured as `ledger.db` configures its own (WAL, synchronous=FULL, ...)."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10)
    for pragma in (
        "busy_timeout = 10000",
        "journal_mode = WAL",
        "synchronous = FULL",
        "foreign_keys = ON",
        "recursive_triggers = ON",
    ):
        conn.execute(f"PRAGMA {pragma}")
    return conn


def raw_worker(url: str, sqlite_path: str | None, coop: BenchCoop) -> Callable[[int], Callable[[Item], None]]:
    # SQLite: the bench's threads queue on one lock before BEGIN IMMEDIATE, as ledger.db does;
    # left to SQLite's busy handler (naps of up to 100 ms) the ceiling would be needlessly low.
    writers = threading.Lock()

    def make(i: int) -> Callable[[Item], None]:
        user_id = coop.members[i % len(coop.members)].user_id
        if sqlite_path is not None:
            conn = sqlite_connect(sqlite_path)

            def work(item: Item) -> None:
                with writers:
                    _raw_sqlite_transfer(conn, item, user_id)

            def _raw_sqlite_transfer(conn: sqlite3.Connection, item: Item, user_id: int) -> None:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    raw_transfer(conn, item, ledger_id=coop.ledger_id, user_id=user_id, sqlite=True)
                    conn.execute("COMMIT")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise

            return work
        pg = psycopg.connect(url)

        def work_pg(item: Item) -> None:
            with pg.transaction():
                raw_transfer(pg.cursor(), item, ledger_id=coop.ledger_id, user_id=user_id, sqlite=False)

        return work_pg

    return make


# --- service: Commons' ledger service in process, idempotent as the API calls it ---------------


def service_worker(engine: Engine, coop: BenchCoop) -> Callable[[int], Callable[[Item], None]]:
    with engine.connect() as conn:
        actors = [
            accounts_service.load_actor(
                conn, tokens.AccessClaims(m.user_id, m.token_version, datetime.now(UTC))
            )
            for m in coop.members
        ]

    # The same fast path as the API (ledger.pg_transfer on PostgreSQL, ledger.sqlite_transfer on
    # SQLite), Python behind it.
    template = pg_transfer.body_template({"id": pg_transfer.ID, "status": "posted"})
    fast_path = sqlite_transfer if is_sqlite(engine) else pg_transfer
    assert template is not None

    def make(i: int) -> Callable[[Item], None]:
        actor = actors[i % len(actors)]
        token_version = coop.members[i % len(actors)].token_version

        def work(item: Item) -> None:
            payer, payee, amount = item
            body = {"payer": str(payer), "payee": str(payee), "amount": format_amount(amount, scale=2)}
            now = datetime.now(UTC)
            key = uuid.uuid4().hex
            request_hash = idempotency.fingerprint("POST", "/api/v1/transfers", body)

            def command(conn: sa.Connection) -> tuple[int, object]:
                record = create_transfer(
                    conn, actor=actor, request=TransferInput(payer, payee, amount), now=now
                )
                return 201, {"id": str(record.id), "status": record.status}

            payment = pg_transfer.Payment(
                user_id=actor.user_id,
                token_version=token_version,
                key=key,
                request_hash=request_hash,
                lock_id=idempotency.lock_id(user_id=actor.user_id, key=key),
                payer_id=payer,
                payee_id=payee,
                amount=amount,
                decimals=None,
                memo=None,
                category=None,
                occurred_on=now.date(),
                transaction_id=str(uuid.uuid4()),
                now=now,
                body=template,
            )
            idempotency.run_idempotent(
                engine,
                user_id=actor.user_id,
                key=key,
                request_hash=request_hash,
                now=now,
                command=command,
                fast=lambda: fast_path.pay(engine, payment),
            )

        return work

    return make


# --- batch: many transfers per transaction -----------------------------------------------------


def batch_items(coop: BenchCoop, *, count: int, seed: int) -> list[Item]:
    rng = random.Random(seed)
    ids = [m.account_id for m in coop.members]
    out = []
    for _ in range(count):
        payer, payee = rng.sample(ids, 2)
        out.append((payer, payee, rng.randint(1, 100)))
    return out


def _transfer_json(tid: int, item: Item, ledger_id: int, when: datetime) -> str:
    payer, payee, amount = item
    return json.dumps(
        {
            "id": str(tid),
            "payer": str(payer),
            "payee": str(payee),
            "amount": format_amount(amount, scale=2),
            "unit": "HOUR",
            "status": "posted",
            "created_at": when.isoformat(),
            "ledger": str(ledger_id),
        },
        separators=(",", ":"),
    )


def _raw_batch_rows(
    items: Sequence[Item],
    tids: Iterator[int],
    state: dict[int, list[Any]],
    *,
    coop: BenchCoop,
    prefix: str,
    stamp: Any,
    today: Any,
    now: datetime,
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The raw batches' work in memory, the same on both engines: check the limits the way the
    service would (a refused item is skipped), move the balances in `state` (balance, debits,
    credits, version, min, max per account) and build the transfer, posting and idempotency-key
    rows. `stamp` and `today` are `now` and its date as the engine's driver stores them; each
    kept item takes the next id."""
    user_id = coop.treasurer.user_id
    transfers: list[tuple[Any, ...]] = []
    postings: list[tuple[Any, ...]] = []
    keys: list[tuple[Any, ...]] = []
    for n, item in enumerate(items):
        payer, payee, amount = item
        a, b = state[payer], state[payee]
        if (a[4] is not None and a[0] - amount < a[4]) or (b[5] is not None and b[0] + amount > b[5]):
            continue  # refused, like the service would
        tid = next(tids)
        a[0] -= amount
        a[1] += amount
        a[3] += 1
        b[0] += amount
        b[2] += amount
        b[3] += 1
        transfers.append(
            (tid, coop.ledger_id, str(uuid.uuid4()), payer, payee, amount, today, user_id, "posted", stamp)
        )
        postings.append((payer, a[3], tid, -amount, a[0], stamp))
        postings.append((payee, b[3], tid, amount, b[0], stamp))
        keys.append(
            (user_id, f"{prefix}:{n}", "0" * 64, 201, _transfer_json(tid, item, coop.ledger_id, now), stamp)
        )
    return transfers, postings, keys


def raw_batch_pg(conn: psycopg.Connection, items: Sequence[Item], *, coop: BenchCoop, prefix: str) -> None:
    """One transaction: lock the accounts in id order, check limits in memory, then COPY the
    transfers (ids reserved from their sequence), postings and idempotency keys, and update every
    touched account with one statement from arrays."""
    now = datetime.now(UTC)
    today = now.date()
    with conn.transaction(), conn.cursor() as cur:
        ids = sorted({a for p, q, _ in items for a in (p, q)})
        state = {
            r[0]: [r[1], r[2], r[3], r[4], r[5], r[6]]
            for r in cur.execute(
                "SELECT id, balance, debits, credits, version, min_balance, max_balance FROM "
                "accounts "
                "WHERE id = ANY(%s) AND status = 'active' ORDER BY id FOR UPDATE",
                [ids],
            )
        }
        tids = [
            r[0]
            for r in cur.execute(
                "SELECT nextval('transfers_id_seq') FROM generate_series(1, %s)", [len(items)]
            )
        ]
        transfers, postings, keys = _raw_batch_rows(
            items, iter(tids), state, coop=coop, prefix=prefix, stamp=now, today=today, now=now
        )
        with cur.copy(
            "COPY transfers (id, ledger_id, transaction_id, payer_id, payee_id, amount, "
            "occurred_on, initiator_id, status, created_at) FROM STDIN"
        ) as cp:
            for row in transfers:
                cp.write_row(row)
        with cur.copy(
            "COPY postings (account_id, version, transfer_id, amount, balance_after, posted_at) FROM STDIN"
        ) as cp:
            for row in postings:
                cp.write_row(row)
        touched = sorted(state)
        cur.execute(
            "UPDATE accounts a SET balance = v.balance, debits = v.debits, credits = v.credits, "
            "version = v.version "
            "FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[], %s::bigint[]) AS "
            "v(id, balance, debits, credits, version) "
            "WHERE a.id = v.id",
            [
                touched,
                [state[i][0] for i in touched],
                [state[i][1] for i in touched],
                [state[i][2] for i in touched],
                [state[i][3] for i in touched],
            ],
        )
        with cur.copy(
            "COPY idempotency_keys (user_id, key, request_hash, response_status, response_body, "
            "created_at) FROM STDIN"
        ) as cp:
            for row in keys:
                cp.write_row(row)


def raw_batch_sqlite(
    conn: sqlite3.Connection, items: Sequence[Item], *, coop: BenchCoop, prefix: str
) -> None:
    """The same on SQLite: BEGIN IMMEDIATE holds the write lock, so ids can be assigned here;
    executemany multi-row inserts."""
    now = datetime.now(UTC)
    when = sqlite_when(now)
    today = now.date().isoformat()
    conn.execute("BEGIN IMMEDIATE")
    try:
        ids = sorted({a for p, q, _ in items for a in (p, q)})
        marks = ",".join("?" * len(ids))
        state = {
            r[0]: [r[1], r[2], r[3], r[4], r[5], r[6]]
            for r in conn.execute(
                f"SELECT id, balance, debits, credits, version, min_balance, max_balance FROM "
                f"accounts WHERE id IN ({marks}) AND status = 'active'",
                ids,
            )
        }
        next_id = int(conn.execute("SELECT coalesce(max(id), 0) FROM transfers").fetchone()[0]) + 1
        transfers, postings, keys = _raw_batch_rows(
            items, itertools.count(next_id), state, coop=coop, prefix=prefix, stamp=when, today=today, now=now
        )
        conn.executemany(
            "INSERT INTO transfers (id, ledger_id, transaction_id, payer_id, payee_id, amount, "
            "occurred_on, initiator_id, status, created_at) VALUES (?,?,?,?,?,?,?,?,?,?)",
            transfers,
        )
        conn.executemany(
            "INSERT INTO postings (account_id, version, transfer_id, amount, balance_after, "
            "posted_at) VALUES (?,?,?,?,?,?)",
            postings,
        )
        conn.executemany(
            "UPDATE accounts SET balance = ?, debits = ?, credits = ?, version = ? WHERE id = ?",
            [(s[0], s[1], s[2], s[3], i) for i, s in sorted(state.items())],
        )
        conn.executemany(
            "INSERT INTO idempotency_keys (user_id, key, request_hash, response_status, "
            "response_body, created_at) VALUES (?,?,?,?,?,?)",
            keys,
        )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def batch_body(items: Sequence[Item], *, prefix: str) -> dict[str, object]:
    return {
        "transfers": [
            {
                "id": f"{prefix}:{n}",
                "payer": str(p),
                "payee": str(q),
                "amount": format_amount(a, scale=2),
                "occurred_on": date.today().isoformat(),
            }
            for n, (p, q, a) in enumerate(items)
        ]
    }
