"""Ledger benchmark: every write and read path against the least work a correct ledger can do,
in one run, on the same database, interleaved so the noise of a shared machine hits all alike.

    python -m bench.ledger --engine both                 # full size (see docs/benchmarks.md)
    python -m bench.ledger --smoke --json out.json       # seconds; what CI runs

Writes (transfers/s, latency p50/p99, ratio to raw), on PostgreSQL and SQLite:
  raw      the driver alone: INSERT transfer, conditional limit-checked UPDATEs of both accounts
           in id order, INSERT postings; one transaction per transfer
  service  ledger.service.create_transfer in process, idempotent (run_idempotent) as the API runs it
  api      POST /api/v1/transfers against `commons serve` in its own processes, 16 connections
  peer     django-hordak Account.transfer_to, one transaction each (PostgreSQL; own virtualenv)
  batch    POST /coops/{slug}/transfers/batch (and the CSV import) against raw COPY/multi-row SQL
Reads, through the API against the bare SQL: the statement's first page and the balance at a
moment for an account with --postings postings; the trial balance and the account list of a
co-op with --accounts accounts.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from api.cli import default_server
from api.startup import freeze_startup_objects
from bench import _http, _reads, _writes
from bench._common import (
    BENCH_SECRET,
    PG_ADMIN_URL,
    REPO,
    Figure,
    commons_server,
    machine,
    pg_create,
    pg_drop,
    pg_drop_orphans,
    pg_reachable,
    table,
)
from bench._cpu import CpuMeter
from ledger.amounts import format_amount
from ledger.csv_import import TRANSFERS_PER_TRANSACTION

HORDAK_VENV = REPO / "bench" / ".venv-hordak"
OUT = REPO / "bench" / "out"

TARGETS = {  # issue 6: ratio to the baseline, or milliseconds at most
    ("postgres", "api/raw"): 0.6,
    ("postgres", "api/peer"): 2.5,
    ("postgres", "service/raw"): 0.8,
    ("sqlite", "service/raw"): 0.8,
    ("postgres", "batch/raw batch"): 0.5,
    ("sqlite", "batch/raw batch"): 0.5,
    ("sqlite", "api/raw"): 0.5,
}
READ_TARGET_MS = 20.0


@dataclass
class Options:
    engines: list[str]
    transfers: int
    clients: int
    rounds: int
    pg_workers: int
    sqlite_workers: int
    servers: list[str]
    pool_size: int
    batch_transfers: int
    batch_size: int
    postings: int
    accounts: int
    read_repeats: int
    peer: bool
    peer_procs: int
    reads: bool
    batch: bool
    csv: bool
    members: int
    keep: bool
    json_path: Path | None


@dataclass
class EngineResult:
    engine: str
    writes: dict[str, Figure] = field(default_factory=dict)
    batch: dict[str, Figure] = field(default_factory=dict)
    reads: list[dict[str, Any]] = field(default_factory=list)
    cpu: dict[str, dict[str, float]] = field(default_factory=dict)  # mode -> part -> CPU ms per transfer
    notes: list[str] = field(default_factory=list)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- the peer ----------------------------------------------------------------------------------


def ensure_hordak_venv() -> Path:
    python = HORDAK_VENV / "bin" / "python"
    if not python.exists():
        log(f"creating {HORDAK_VENV} for django-hordak (bench only) ...")
        subprocess.run(["python3", "-m", "venv", str(HORDAK_VENV)], check=True)
        subprocess.run(
            [
                str(HORDAK_VENV / "bin" / "pip"),
                "install",
                "-q",
                "-r",
                str(REPO / "bench" / "requirements-hordak.txt"),
            ],
            check=True,
        )
    return python


class Peer:
    """`procs` hordak processes (as many as the API has workers: the same CPU budget)."""

    def __init__(self, url: str, accounts: int, procs: int) -> None:
        python = ensure_hordak_venv()
        script = str(REPO / "bench" / "_hordak.py")
        self.procs: list[subprocess.Popen[str]] = []
        for n in range(procs):
            args = [str(python), script, url, str(accounts)] + (["--setup"] if n == 0 else [])
            proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
            self.procs.append(proc)
            line = proc.stdout.readline() if proc.stdout else ""
            if not line or not json.loads(line).get("ready"):
                raise RuntimeError("django-hordak peer did not start")

    def run(self, plans: Sequence[Sequence[tuple[int, int, int]]]) -> tuple[float, list[float]]:
        shares = [list(plans[i :: len(self.procs)]) for i in range(len(self.procs))]
        t0 = time.perf_counter()
        for proc, share in zip(self.procs, shares, strict=True):
            assert proc.stdin is not None
            proc.stdin.write(json.dumps({"plans": share}) + "\n")
        latencies: list[float] = []
        for proc in self.procs:
            assert proc.stdout is not None
            reply = json.loads(proc.stdout.readline())
            if reply.get("error"):
                raise RuntimeError("django-hordak: " + reply["error"])
            latencies += reply["latencies"]
        return time.perf_counter() - t0, latencies

    def close(self) -> None:
        for proc in self.procs:
            if proc.stdin:
                proc.stdin.close()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


# --- one engine --------------------------------------------------------------------------------


def _split(total: int, parts: int) -> int:
    return max(1, total // parts)


def bench_engine(engine_name: str, opts: Options, stack: ExitStack) -> EngineResult:
    from ledger.db import make_engine
    from migrations import upgrade_to_head

    result = EngineResult(engine_name)
    pid = os.getpid()
    sqlite_path: str | None = None
    databases: tuple[str, ...] = ()
    if engine_name == "postgres":
        dbname = f"commons_bench_{pid}"
        url = pg_create(dbname)
        databases = (dbname,)
        if not opts.keep:
            stack.callback(pg_drop, dbname)
    else:
        tmp = tempfile.mkdtemp(prefix="commons-bench-")
        sqlite_path = str(Path(tmp) / "bench.db")
        url = f"sqlite:///{sqlite_path}"
    log(f"[{engine_name}] migrating {url}")
    upgrade_to_head(url)
    engine = make_engine(url, pool_size=opts.clients)
    stack.callback(engine.dispose)
    coop = _writes.seed_coop(engine, members=opts.members)
    workers = opts.pg_workers if engine_name == "postgres" else opts.sqlite_workers
    OUT.mkdir(parents=True, exist_ok=True)
    # Several servers (`--server uvicorn,granian`): each its own `commons serve` on the same
    # database, timed as its own path in the same interleaved rounds; the first is "api".
    servers = opts.servers or [default_server(url)]
    bases = [
        stack.enter_context(
            commons_server(
                url,
                workers=workers,
                pool_size=opts.pool_size,
                log=OUT / f"server-{engine_name}-{name}.log",
                server=name,
            )
        )
        for name in servers
    ]
    base = bases[0]
    server_pgid = _server_pgid(base)
    peer: Peer | None = None
    if engine_name == "postgres" and opts.peer:
        hname = f"commons_bench_hordak_{pid}"
        hurl = pg_create(hname)
        databases += (hname,)
        if not opts.keep:
            stack.callback(pg_drop, hname)
        log(f"[{engine_name}] starting django-hordak peer ({opts.peer_procs} processes)")
        peer = Peer(hurl, len(coop.members), opts.peer_procs)
        stack.callback(peer.close)
    meter = CpuMeter(PG_ADMIN_URL, databases, server_pgid, tuple(p.pid for p in peer.procs) if peer else ())
    index = {m.account_id: n for n, m in enumerate(coop.members)}
    tokens = [coop.token(coop.members[i % len(coop.members)], BENCH_SECRET) for i in range(opts.clients)]

    raw_make = _writes.raw_worker(url, sqlite_path, coop)
    service_make = _writes.service_worker(engine, coop)
    raw_workers = [raw_make(i) for i in range(opts.clients)]
    service_workers = [service_make(i) for i in range(opts.clients)]

    def api(plans: Sequence[Sequence[_writes.Item]], base: str = base) -> tuple[float, list[float]]:
        requests = [
            [
                _http.request_bytes(
                    base,
                    "POST",
                    "/api/v1/transfers",
                    token=tokens[i],
                    body={"payer": str(p), "payee": str(q), "amount": format_amount(a, scale=2)},
                    headers={"Idempotency-Key": uuid.uuid4().hex},
                )
                for p, q, a in plan
            ]
            for i, plan in enumerate(plans)
        ]
        run = _http.run(base, requests, expect=201)
        api.client_cpu += run.client_cpu  # type: ignore[attr-defined]
        return run.seconds, run.latencies

    api.client_cpu = 0.0  # type: ignore[attr-defined]

    modes: dict[str, Callable[[Sequence[Sequence[_writes.Item]]], tuple[float, list[float]]]] = {
        "raw": lambda plans: _writes.run_clients(plans, raw_workers),
        "service": lambda plans: _writes.run_clients(plans, service_workers),
        "api": api,
    }
    meters = {m: meter for m in modes}
    for name, other in zip(servers[1:], bases[1:], strict=True):
        modes[f"api {name}"] = lambda plans, b=other: api(plans, b)  # type: ignore[misc]
        meters[f"api {name}"] = dataclasses.replace(meter, server_pgid=_server_pgid(other))
    if peer is not None:
        modes["peer"] = lambda plans: peer.run(
            [[(index[p], index[q], a) for p, q, a in plan] for plan in plans]
        )
        meters["peer"] = meter
    result.writes = {m: Figure(m) for m in modes}
    cpu_total: dict[str, dict[str, float]] = {m: {} for m in modes}

    log(f"[{engine_name}] warming up")
    warm = _writes.workload(
        coop,
        clients=opts.clients,
        per_client=max(2, min(20, opts.transfers // (opts.clients * 4))),
        seed=10_000,
    )
    for run_mode in modes.values():
        run_mode(warm)
    per_client = _split(opts.transfers, opts.clients * opts.rounds)
    names = list(modes)
    for r in range(opts.rounds):
        plans = _writes.workload(coop, clients=opts.clients, per_client=per_client, seed=r)
        order = names[r % len(names) :] + names[: r % len(names)]
        for m in order:
            before = meters[m].snapshot()
            seconds, latencies = modes[m](plans)
            used = CpuMeter.used(before, meters[m].snapshot())
            for part, v in used.items():
                cpu_total[m][part] = cpu_total[m].get(part, 0.0) + v
            result.writes[m].add(len(latencies), seconds, latencies)
            log(f"[{engine_name}] round {r + 1}/{opts.rounds} {m:8s} {len(latencies) / seconds:9,.0f}/s")
    for m, parts in cpu_total.items():
        n = result.writes[m].count
        result.cpu[m] = {part: 1000 * v / n for part, v in parts.items() if v}
    api_count = sum(f.count for m, f in result.writes.items() if m.startswith("api"))
    client_ms = 1000 * api.client_cpu / max(1, api_count)  # type: ignore[attr-defined]
    api_seconds = sum(f.seconds for m, f in result.writes.items() if m.startswith("api"))
    result.writes["api"].note = (
        f"{workers} {servers[0]} workers, {opts.clients} connections; "
        f"load client {client_ms:.3f} ms CPU/request "
        f"= {100 * api.client_cpu / max(api_seconds, 1e-9):.0f}% of one core"  # type: ignore[attr-defined]
    )
    for name in servers[1:]:
        result.writes[f"api {name}"].note = f"{workers} {name} workers, {opts.clients} connections"
    if peer is not None:
        result.writes[
            "peer"
        ].note = f"django-hordak {opts.peer_procs} processes x {opts.clients // opts.peer_procs} threads"

    if opts.batch:
        _bench_batch(result, opts, coop=coop, base=base, url=url, sqlite_path=sqlite_path, engine=engine)
    if opts.reads:
        _bench_reads(result, opts, coop=coop, base=base, url=url, sqlite_path=sqlite_path, engine=engine)
    return result


def _server_pgid(base: str) -> int | None:
    port = base.rsplit(":", 1)[1]
    try:
        out = subprocess.run(
            ["ss", "-Htlnp", f"sport = :{port}"], capture_output=True, text=True, timeout=5
        ).stdout
        pid = int(out.split("pid=", 1)[1].split(",", 1)[0])
        return os.getpgid(pid)
    except (OSError, IndexError, ValueError, subprocess.SubprocessError):
        return None


def _raw_conn(url: str, sqlite_path: str | None) -> psycopg.Connection | sqlite3.Connection:
    return _writes.sqlite_connect(sqlite_path) if sqlite_path else psycopg.connect(url)


def _bench_batch(
    result: EngineResult,
    opts: Options,
    *,
    coop: _writes.BenchCoop,
    base: str,
    url: str,
    sqlite_path: str | None,
    engine: Any,
) -> None:
    conn = _raw_conn(url, sqlite_path)
    treasurer = coop.token(coop.treasurer, BENCH_SECRET)
    figs = {"raw batch": Figure("raw batch"), "batch": Figure("batch")}
    csv_import = _csv_importer(engine, coop) if opts.csv else None
    if csv_import is not None:
        figs["csv import"] = Figure("csv import")
    size = min(opts.batch_size, opts.batch_transfers)
    per_round = _split(opts.batch_transfers, opts.rounds)
    for r in range(opts.rounds):
        items = _writes.batch_items(coop, count=per_round, seed=500 + r)
        chunks = [items[i : i + size] for i in range(0, len(items), size)]
        tag = f"{uuid.uuid4().hex[:8]}"
        runs: dict[str, Callable[[], tuple[float, list[float]]]] = {}

        def raw_batches() -> tuple[float, list[float]]:
            lat = []
            t0 = time.perf_counter()
            for n, chunk in enumerate(chunks):  # noqa: B023
                s = time.perf_counter()
                if isinstance(conn, sqlite3.Connection):
                    _writes.raw_batch_sqlite(conn, chunk, coop=coop, prefix=f"raw:{tag}:{n}")  # noqa: B023
                else:
                    _writes.raw_batch_pg(conn, chunk, coop=coop, prefix=f"raw:{tag}:{n}")  # noqa: B023
                lat.append(time.perf_counter() - s)
            return time.perf_counter() - t0, lat

        def api_batches() -> tuple[float, list[float]]:
            requests = [
                _http.request_bytes(
                    base,
                    "POST",
                    f"/api/v1/coops/{coop.slug}/transfers/batch",
                    token=treasurer,
                    body=_writes.batch_body(chunk, prefix=f"api:{tag}:{n}"),  # noqa: B023
                )
                for n, chunk in enumerate(chunks)  # noqa: B023
            ]
            run = _http.run(base, [requests], expect=200)
            body = json.loads(run.last_body)
            if body.get("refused"):
                raise RuntimeError(f"batch refused items: {body['items'][0]}")
            return run.seconds, run.latencies

        runs["raw batch"] = raw_batches
        runs["batch"] = api_batches
        if csv_import is not None:
            runs["csv import"] = lambda: csv_import(chunks, tag)  # noqa: B023
        order = list(runs)
        order = order[r % len(order) :] + order[: r % len(order)]
        for name in order:
            seconds, lat = runs[name]()
            figs[name].add(per_round, seconds, lat)
            log(f"[{result.engine}] batch round {r + 1} {name:10s} {per_round / seconds:9,.0f}/s")
    figs["batch"].note = f"{size} transfers per request, one client; latency is per batch"
    figs["raw batch"].note = (
        "COPY / multi-row, one transaction per batch"
        if not sqlite_path
        else "executemany, one transaction per batch"
    )
    if "csv import" in figs:
        rows = TRANSFERS_PER_TRANSACTION
        figs["csv import"].note = f"ledger.csv_import.import_csv in process ({rows} rows per transaction)"
    result.batch = figs
    conn.close()


def _csv_importer(
    engine: Any, coop: _writes.BenchCoop
) -> Callable[[Sequence[Sequence[_writes.Item]], str], tuple[float, list[float]]] | None:
    try:
        from ledger import csv_import
    except ImportError:
        return None
    email = {m.account_id: m.email for m in coop.members}
    folder = Path(tempfile.mkdtemp(prefix="commons-bench-csv-"))
    members = folder / "members.csv"
    members.write_text("name,email\n" + "".join(f"{e.split('@')[0]},{e}\n" for e in email.values()))

    def run(chunks: Sequence[Sequence[_writes.Item]], tag: str) -> tuple[float, list[float]]:
        transfers = folder / f"transfers-{tag}.csv"
        with transfers.open("w") as f:
            f.write("date,from_email,to_email,hours,reason\n")
            today = datetime.now(UTC).date().isoformat()
            for n, (p, q, a) in enumerate(x for c in chunks for x in c):
                f.write(f"{today},{email[p]},{email[q]},{format_amount(a, scale=2)},{tag} {n}\n")
        t0 = time.perf_counter()
        report = csv_import.import_csv(
            engine,
            slug=coop.slug,
            members_csv=members,
            transfers_csv=transfers,
            as_email=coop.treasurer.email,
            now=datetime.now(UTC),
        )
        seconds = time.perf_counter() - t0
        if report.rejected:
            raise RuntimeError(f"csv import rejected rows: {report.rejected[:2]}")
        return seconds, [seconds]

    return run


def _time(fn: Callable[[], object], repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return out


def _bench_reads(
    result: EngineResult,
    opts: Options,
    *,
    coop: _writes.BenchCoop,
    base: str,
    url: str,
    sqlite_path: str | None,
    engine: Any,
) -> None:
    conn = _raw_conn(url, sqlite_path)
    is_pg = isinstance(conn, psycopg.Connection)
    log(
        f"[{result.engine}] seeding {opts.postings:,} postings on one account and a co-op of "
        f"{opts.accounts:,} accounts"
    )
    t0 = time.perf_counter()
    holder = coop.members[-1]
    if is_pg:
        with conn.transaction():  # type: ignore[union-attr]
            history = _reads.seed_long_history(
                conn,
                ledger_id=coop.ledger_id,
                account_id=holder.account_id,
                user_id=holder.user_id,
                postings=opts.postings,
            )
    else:
        conn.execute("BEGIN IMMEDIATE")
        history = _reads.seed_long_history(
            conn,
            ledger_id=coop.ledger_id,
            account_id=holder.account_id,
            user_id=holder.user_id,
            postings=opts.postings,
        )
        conn.execute("COMMIT")
    wide = _writes.seed_coop(engine, members=0, slug="wide")
    if is_pg:
        with conn.transaction():  # type: ignore[union-attr]
            _reads.seed_wide_ledger(
                conn,
                ledger_id=wide.ledger_id,
                user_id=wide.treasurer.user_id,
                accounts=opts.accounts,
            )
        conn.execute("ANALYZE")
        conn.commit()  # type: ignore[union-attr]
    else:
        conn.execute("BEGIN IMMEDIATE")
        _reads.seed_wide_ledger(
            conn, ledger_id=wide.ledger_id, user_id=wide.treasurer.user_id, accounts=opts.accounts
        )
        conn.execute("COMMIT")
        conn.execute("ANALYZE")
    result.notes.append(f"read fixtures seeded in {time.perf_counter() - t0:.1f} s")
    if is_pg:
        conn.autocommit = True  # type: ignore[union-attr]

    at = history.first + (history.last - history.first) / 2
    holder_token = coop.token(holder, BENCH_SECRET)
    tre_token = wide.token(wide.treasurer, BENCH_SECRET)
    aid = holder.account_id
    at_q = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    now = datetime.now(UTC)
    reps = opts.read_repeats
    wide_reps = max(2, min(5, reps))

    def api_latencies(raw: bytes, repeats: int) -> list[float]:
        _http.run(base, [[raw]], expect=200)  # warm
        return _http.run(base, [[raw] * repeats], expect=200).latencies

    def sql_latencies(sql: str, params: Sequence[object], repeats: int) -> list[float]:
        _reads.bare(conn, sql, params)
        return _time(lambda: _reads.bare(conn, sql, params), repeats)

    def walk_api() -> tuple[float, int]:
        cursor, pages, t0 = None, 0, time.perf_counter()
        while True:
            path = f"/api/v1/coops/{wide.slug}/accounts?limit=200" + (f"&cursor={cursor}" if cursor else "")
            _, body = _http.fetch(base, _http.request_bytes(base, "GET", path, token=tre_token))
            pages += 1
            cursor = json.loads(body)["next_cursor"]
            if not cursor:
                return time.perf_counter() - t0, pages

    def walk_sql() -> tuple[float, int]:
        last, pages, t0 = 0, 0, time.perf_counter()
        while True:
            rows = _reads.bare(conn, _reads.ACCOUNTS_PAGE, [wide.ledger_id, last])
            pages += 1
            if len(rows) <= 200:
                return time.perf_counter() - t0, pages
            last = int(rows[199][0])  # type: ignore[arg-type]

    cases = [
        (
            "statement first page (50)",
            f"{opts.postings:,} postings",
            _http.request_bytes(base, "GET", f"/api/v1/accounts/{aid}/postings?limit=50", token=holder_token),
            (_reads.STATEMENT_PAGE.format(order="ASC"), [aid]),
            reps,
        ),
        (
            "statement newest page (50)",
            f"{opts.postings:,} postings",
            _http.request_bytes(
                base,
                "GET",
                f"/api/v1/accounts/{aid}/postings?limit=50&order=desc",
                token=holder_token,
            ),
            (_reads.STATEMENT_PAGE.format(order="DESC"), [aid]),
            reps,
        ),
        (
            "balance at a moment",
            f"{opts.postings:,} postings",
            _http.request_bytes(base, "GET", f"/api/v1/accounts/{aid}/balance?at={at_q}", token=holder_token),
            (_reads.BALANCE_AT, [aid, at]),
            reps,
        ),
        (
            "account list page (200)",
            f"{opts.accounts:,} accounts",
            _http.request_bytes(
                base, "GET", f"/api/v1/coops/{wide.slug}/accounts?limit=200", token=tre_token
            ),
            (_reads.ACCOUNTS_PAGE, [wide.ledger_id, 0]),
            reps,
        ),
    ]
    tb_probe = (
        _http.run(
            base,
            [[_http.request_bytes(base, "GET", f"/api/v1/coops/{wide.slug}/trial-balance", token=tre_token)]],
            expect=200,
        )
        if _has_trial_balance(base, wide.slug, tre_token)
        else None
    )
    if tb_probe is not None:
        cases.append(
            (
                "trial balance (whole co-op)",
                f"{opts.accounts:,} accounts",
                _http.request_bytes(base, "GET", f"/api/v1/coops/{wide.slug}/trial-balance", token=tre_token),
                (_reads.TRIAL_BALANCE, [now, wide.ledger_id, wide.ledger_id, now]),
                wide_reps,
            )
        )
    else:
        result.notes.append(
            "GET /coops/{slug}/trial-balance is not in this build; trial balance measured as the "
            "account-list walk"
        )
    for name, size, raw, (sql, params), repeats in cases:
        api_l = sorted(api_latencies(raw, repeats))
        sql_l = sorted(sql_latencies(sql, params, repeats))
        result.reads.append(
            _read_row(name, size, api_l, sql_l, target=name.startswith(("statement first", "balance")))
        )
        log(
            f"[{result.engine}] read {name:30s} api p50 {1000 * _p(api_l, 50):8.2f} ms  sql p50 "
            f"{1000 * _p(sql_l, 50):8.2f} ms"
        )
    walks_api = [walk_api() for _ in range(2)]
    walks_sql = [walk_sql() for _ in range(2)]
    api_l = sorted(w[0] for w in walks_api)
    sql_l = sorted(w[0] for w in walks_sql)
    result.reads.append(
        _read_row(
            f"account list, all {walks_api[0][1]} pages",
            f"{opts.accounts:,} accounts",
            api_l,
            sql_l,
            target=False,
        )
    )
    log(f"[{result.engine}] read account walk api {api_l[0]:.2f} s sql {sql_l[0]:.2f} s")
    conn.close()


def _has_trial_balance(base: str, slug: str, token: str) -> bool:
    try:
        _http.run(
            base,
            [
                [
                    _http.request_bytes(
                        base,
                        "GET",
                        f"/api/v1/coops/{slug}/trial-balance?at=2000-01-01T00:00:00Z",
                        token=token,
                    )
                ]
            ],
            expect=200,
        )
    except _http.HttpError:
        return False
    return True


def _p(values: Sequence[float], q: float) -> float:
    from bench._common import percentile

    return percentile(values, q)


def _read_row(
    name: str, size: str, api_l: Sequence[float], sql_l: Sequence[float], *, target: bool
) -> dict[str, Any]:
    row = {
        "read": name,
        "size": size,
        "api_p50_ms": 1000 * _p(api_l, 50),
        "api_p99_ms": 1000 * _p(api_l, 99),
        "sql_p50_ms": 1000 * _p(sql_l, 50),
        "sql_p99_ms": 1000 * _p(sql_l, 99),
        "repeats": len(api_l),
        "target_ms": READ_TARGET_MS if target else None,
    }
    row["ratio"] = row["api_p50_ms"] / row["sql_p50_ms"] if row["sql_p50_ms"] else 0.0
    return row


# --- report ------------------------------------------------------------------------------------


def report(results: Sequence[EngineResult], opts: Options) -> tuple[str, dict[str, Any]]:
    lines = [f"machine: {machine()}", ""]
    data: dict[str, Any] = {
        "machine": machine(),
        "options": {k: str(v) for k, v in vars(opts).items()},
        "engines": {},
    }
    for res in results:
        raw = res.writes.get("raw")
        rows = [(res.writes[m], raw if m != "raw" else None) for m in res.writes]
        lines.append(
            table(
                f"{res.engine}: transfers, one transaction each ({opts.clients} concurrent "
                f"clients, {opts.rounds} interleaved rounds)",
                rows,
                rate_label="transfers/s",
            )
        )
        if "peer" in res.writes:
            ratio = res.writes["api"].rate / res.writes["peer"].rate if res.writes["peer"].rate else 0
            lines.append(f"  api / django-hordak = {ratio:.2f}")
        lines.append(
            "  CPU per transfer (ms): "
            + "; ".join(
                f"{m}: " + ", ".join(f"{part} {v:.2f}" for part, v in sorted(parts.items()))
                for m, parts in res.cpu.items()
            )
        )
        lines.append("")
        if res.batch:
            base = res.batch["raw batch"]
            lines.append(
                table(
                    f"{res.engine}: batches",
                    [(f, base if n != "raw batch" else None) for n, f in res.batch.items()],
                    rate_label="transfers/s",
                )
            )
            lines.append("")
        if res.reads:
            lines.append(f"{res.engine}: reads, API against the bare SQL (sequential, keep-alive)")
            cols = ("api p50", "api p99", "sql p50", "sql p99")
            hdr = f"  {'read':34s} {'size':>18s} " + " ".join(f"{c:>9s}" for c in cols) + "  api/sql"
            lines.append(hdr)
            for r in res.reads:
                unit = "s" if r["read"].startswith("account list, all") else "ms"
                scale = 1000 if unit == "s" else 1
                lines.append(
                    f"  {r['read']:34s} {r['size']:>18s} {r['api_p50_ms'] / scale:8.2f}{unit} "
                    f"{r['api_p99_ms'] / scale:8.2f}{unit} "
                    f"{r['sql_p50_ms'] / scale:8.2f}{unit} {r['sql_p99_ms'] / scale:8.2f}{unit} "
                    f"{r['ratio']:8.2f}"
                )
            lines.append("")
        for note in res.notes:
            lines.append(f"  note: {note}")
        data["engines"][res.engine] = {
            "writes": {m: _fig(f) for m, f in res.writes.items()},
            "batch": {m: _fig(f) for m, f in res.batch.items()},
            "reads": res.reads,
            "cpu_ms_per_transfer": res.cpu,
            "notes": res.notes,
        }
    lines.append("targets (issue 6):")
    checks = []
    by_engine = {r.engine: r for r in results}
    for (eng, pair), want in TARGETS.items():
        res = by_engine.get(eng)
        if res is None:
            continue
        num, den = pair.split("/")
        figs = {**res.writes, **res.batch}
        if num not in figs or den not in figs or not figs[den].rate:
            continue
        got = figs[num].rate / figs[den].rate
        checks.append({"engine": eng, "ratio": pair, "target": want, "got": got, "met": got >= want})
        lines.append(
            f"  {eng:8s} {pair:18s} ≥ {want:<4}  got {got:5.2f}  {'met' if got >= want else 'MISSED'}"
        )
    for res in results:
        for r in res.reads:
            if r["target_ms"] is not None:
                met = r["api_p50_ms"] <= r["target_ms"]
                checks.append(
                    {
                        "engine": res.engine,
                        "read": r["read"],
                        "target_ms": r["target_ms"],
                        "got_ms": r["api_p50_ms"],
                        "met": met,
                    }
                )
                lines.append(
                    f"  {res.engine:8s} {r['read']:30s} ≤ {r['target_ms']:.0f} ms  got "
                    f"{r['api_p50_ms']:6.2f} ms (p50)  {'met' if met else 'MISSED'}"
                )
    data["targets"] = checks
    return "\n".join(lines), data


def _fig(f: Figure) -> dict[str, Any]:
    return {
        "count": f.count,
        "seconds": f.seconds,
        "rate": f.rate,
        "p50_ms": f.p(50),
        "p99_ms": f.p(99),
        "per_round": f.per_round,
        "note": f.note,
    }


def parse(argv: Sequence[str] | None = None) -> Options:
    ap = argparse.ArgumentParser(
        prog="python -m bench.ledger",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--engine", choices=["postgres", "sqlite", "both"], default="both")
    ap.add_argument(
        "--transfers",
        type=int,
        default=24_000,
        help="transfers per write path per engine (split over the rounds)",
    )
    ap.add_argument(
        "--clients",
        type=int,
        default=16,
        help="concurrent clients (connections) for every write path",
    )
    ap.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="interleaved rounds (each path once per round, rotating order)",
    )
    ap.add_argument(
        "--workers",
        type=int,
        default=None,
        help="server workers for both engines (default: the recommended ones)",
    )
    ap.add_argument(
        "--pg-workers",
        type=int,
        default=2,
        help="uvicorn workers on PostgreSQL (recommended: one per core)",
    )
    ap.add_argument(
        "--sqlite-workers",
        type=int,
        default=2,
        help="server workers on SQLite (recommended and `commons serve`'s default: 2)",
    )
    ap.add_argument(
        "--server",
        default=None,
        help="`commons serve --server` for the api path (default: its own for the engine); "
        "a comma-separated list (uvicorn,granian) times one server of each, interleaved",
    )
    ap.add_argument(
        "--pool-size",
        type=int,
        default=None,
        help="COMMONS_POOL_SIZE per worker (default: clients / workers)",
    )
    ap.add_argument("--batch-transfers", type=int, default=20_000)
    ap.add_argument("--batch-size", type=int, default=1000)
    ap.add_argument("--postings", type=int, default=1_000_000, help="postings on the statement account")
    ap.add_argument("--accounts", type=int, default=100_000, help="accounts in the trial-balance co-op")
    ap.add_argument("--read-repeats", type=int, default=200)
    ap.add_argument("--no-peer", action="store_true", help="skip django-hordak")
    ap.add_argument(
        "--peer-procs",
        type=int,
        default=None,
        help="django-hordak processes (default: the API's PostgreSQL workers)",
    )
    ap.add_argument("--no-reads", action="store_true")
    ap.add_argument("--no-batch", action="store_true")
    ap.add_argument("--no-csv", action="store_true", help="skip the CSV import in the batch figures")
    ap.add_argument("--members", type=int, default=64, help="member accounts the transfers move between")
    ap.add_argument(
        "--smoke",
        action="store_true",
        help="tiny sizes, no peer: checks that every path works (CI)",
    )
    ap.add_argument("--keep", action="store_true", help="keep the bench databases")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures as JSON here")
    a = ap.parse_args(argv)
    if a.workers is not None:
        a.pg_workers = a.sqlite_workers = a.workers
    if a.smoke:
        a.transfers, a.clients, a.rounds = 48, 4, 2
        a.batch_transfers, a.batch_size = 40, 10
        a.postings, a.accounts, a.read_repeats = 300, 450, 3
        a.no_peer, a.members = True, 8
        a.pg_workers = min(a.pg_workers, 1)
    return Options(
        engines=["postgres", "sqlite"] if a.engine == "both" else [a.engine],
        transfers=a.transfers,
        clients=a.clients,
        rounds=a.rounds,
        pg_workers=a.pg_workers,
        sqlite_workers=a.sqlite_workers,
        servers=[n for n in (a.server or "").split(",") if n],
        pool_size=a.pool_size or max(2, -(-a.clients // max(1, min(a.pg_workers, a.sqlite_workers)))),
        batch_transfers=a.batch_transfers,
        batch_size=a.batch_size,
        postings=a.postings,
        accounts=a.accounts,
        read_repeats=a.read_repeats,
        peer=not a.no_peer,
        peer_procs=a.peer_procs or a.pg_workers,
        reads=not a.no_reads,
        batch=not a.no_batch,
        csv=not a.no_csv,
        members=max(a.members, 2),
        keep=a.keep,
        json_path=a.json,
    )


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse(argv)
    # The in-process paths (raw, service, CSV import) run here as `commons import` runs in its own
    # process and `commons serve` in its workers: with the startup objects frozen out of garbage
    # collection (api.startup), so that a full collection costs them what it would cost there.
    freeze_startup_objects()
    results = []
    if "postgres" in opts.engines:
        problem = pg_reachable()
        if problem is not None:
            log(f"PostgreSQL is not reachable at {PG_ADMIN_URL} ({problem}); skipping it")
            opts.engines.remove("postgres")
        else:
            pg_drop_orphans()
    for name in opts.engines:
        with ExitStack() as stack:
            results.append(bench_engine(name, opts, stack))
    text, data = report(results, opts)
    print(text)
    if opts.json_path is not None:
        opts.json_path.write_text(json.dumps(data, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
