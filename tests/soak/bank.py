"""The HTTP bank test with crashes, after Jepsen's bank test.

    python -m tests.soak.bank --engine sqlite|postgres --minutes M --clients N

Creates a fresh database (SQLite file / PostgreSQL database `commons_soak_<pid>`), migrates it,
seeds a co-op whose accounts may only hold -5.00 to +5.00 hours, and starts the real server
(`commons serve`, one worker) as a child process. N client threads post random transfers between
those accounts as the treasurer, each with a fresh Idempotency-Key, and after a timeout or a
connection error retry with the SAME key until the answer is definitive (201, or a limit
refusal). Reader threads check that every balance snapshot sums to 0 and respects every limit.
A chaos thread kills the server with SIGKILL every few seconds and restarts it.

At the end the server is killed one last time and the tables are compared with what the
clients were told (see tests/soak/verify.py). Prints one summary line; exits 1 on any lost or
duplicated transfer or other violation. Everything runs on 127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.soak.seed import SCALE, Bank, fresh_database, seed_bank
from tests.soak.server import Server
from tests.soak.verify import Findings, load_ledger, snapshot_problems, verify
from tests.soak.workload import History, Workload, chaos, client, read_snapshot, reader


@dataclass(frozen=True)
class Config:
    engine: str = "sqlite"
    minutes: float = 1.0
    clients: int = 4
    readers: int = 2
    members: int = 10
    limit: int = 5 * 10**SCALE  # every account: min -limit, max +limit
    max_amount: int = 4 * 10**SCALE  # transfers of 0.01 to 4.00: many are refused by the limits
    kill_interval: tuple[float, float] = (5.0, 15.0)
    min_kills: int = 0  # keep going past `minutes` until this many kills (bounded)
    settle_seconds: float = 60.0
    short_timeout_fraction: float = 0.03
    replay_fraction: float = 0.05
    reversal_fraction: float = 0.1
    seed: int | None = None
    workdir: Path | None = None
    keep: bool = False
    workers: int = 1  # `commons serve --workers`; the SIGKILL hits the supervisor and all of them


@dataclass(frozen=True)
class Report:
    config: Config
    seconds: float
    acknowledged: int
    reversals: int  # of the acknowledged
    refused: int
    unknown: int  # requests whose outcome was unknown at some point (reset, timeout)
    unknown_committed: int  # ... whose first answer was lost although it had committed
    kills: int
    restarts_seconds_max: float
    snapshots: int
    replay_probes: int
    server_errors: int
    findings: Findings

    @property
    def ok(self) -> bool:
        return self.findings.ok and self.kills >= self.config.min_kills

    def summary(self) -> str:
        f = self.findings
        verdict = "OK" if self.ok else "FAILED"
        return (
            f"bank {self.config.engine}: {self.seconds:.0f} s, {self.config.clients} clients; "
            f"transfers acknowledged {self.acknowledged} (reversals {self.reversals}), "
            f"refusals {self.refused}; outcome unknown then settled by retry {self.unknown} "
            f"({self.unknown_committed} had committed); kills {self.kills} "
            f"(restart ≤ {self.restarts_seconds_max:.1f} s); snapshots {self.snapshots}; "
            f"replay probes {self.replay_probes}; 5xx {self.server_errors}; "
            f"lost {len(f.lost)}, duplicated {len(f.duplicated)}, "
            f"violations {len(f.violations)} → {verdict}"
        )

    def details(self, limit: int = 20) -> str:
        f = self.findings
        lines = [
            *(f"lost: {x}" for x in f.lost),
            *(f"duplicated: {x}" for x in f.duplicated),
            *(f"violation: {x}" for x in f.violations),
        ]
        if self.kills < self.config.min_kills:
            lines.append(f"only {self.kills} kills, {self.config.min_kills} required")
        more = [f"... and {len(lines) - limit} more"] if len(lines) > limit else []
        return "\n".join(lines[:limit] + more)


def _log(message: str) -> None:
    print(f"[bank {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run(config: Config) -> Report:
    seed = config.seed if config.seed is not None else secrets.randbelow(10**6)
    with tempfile.TemporaryDirectory(prefix="commons-bank-") as tmp:
        workdir = config.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        with fresh_database(config.engine, workdir, keep=config.keep) as url:
            bank = seed_bank(url, members=config.members, min_balance=-config.limit, max_balance=config.limit)
            server = Server(
                database_url=url,
                secret_key=secrets.token_urlsafe(48),
                log_path=workdir / "server.log",
                workers=config.workers,
            )
            _log(
                f"{config.engine}: seed {seed}, server log {server.log_path}, "
                f"{config.minutes:g} min, {config.clients} clients, {config.workers} worker(s)"
            )
            try:
                return _run(config, bank, server, seed)
            finally:
                server.close()


def _run(config: Config, bank: Bank, server: Server, seed: int) -> Report:
    history = History()
    w = Workload(
        bank=bank,
        server=server,
        history=history,
        run_id=f"bank-{os.getpid()}-{seed}",
        seed=seed,
        max_amount=config.max_amount,
        settle_seconds=config.settle_seconds,
        short_timeout_fraction=config.short_timeout_fraction,
        replay_fraction=config.replay_fraction,
        reversal_fraction=config.reversal_fraction,
    )
    began = time.monotonic()
    try:
        _drive(config, w)
    finally:
        # Whatever happened, every thread ends by itself (clients within settle_seconds).
        w.stop_chaos.set()
        w.stop_new.set()
        w.stop_reads.set()
    seconds = time.monotonic() - began
    # The last word is the database's, after one more crash.
    server.kill()
    ledger = load_ledger(bank.database_url, ledger_id=bank.ledger_id, user_id=bank.treasurer_user_id)
    findings = verify(history.outcomes, ledger)
    findings.violations = history.violations + findings.violations
    outcomes = history.outcomes
    return Report(
        config=config,
        seconds=seconds,
        acknowledged=sum(o.status == "acknowledged" for o in outcomes),
        reversals=sum(o.status == "acknowledged" and o.reverses is not None for o in outcomes),
        refused=sum(o.status == "refused" for o in outcomes),
        unknown=sum(o.unknown for o in outcomes),
        unknown_committed=sum(o.unknown and o.replayed for o in outcomes),
        kills=history.kills,
        restarts_seconds_max=max(history.restart_seconds, default=0.0),
        snapshots=history.snapshots,
        replay_probes=history.replay_probes,
        server_errors=history.server_errors,
        findings=findings,
    )


def _drive(config: Config, w: Workload) -> None:
    """Start the server and the threads, let them run, then wind down in order."""
    server, history = w.server, w.history
    began = time.monotonic()
    server.start()
    w.sign_in()
    clients = [
        threading.Thread(target=client, args=(w, i), name=f"client-{i}", daemon=True)
        for i in range(config.clients)
    ]
    readers = [
        threading.Thread(target=reader, args=(w, i), name=f"reader-{i}", daemon=True)
        for i in range(config.readers)
    ]
    killer = threading.Thread(target=chaos, args=(w, config.kill_interval), name="chaos", daemon=True)
    for thread in [*clients, *readers, killer]:
        thread.start()
    end = began + config.minutes * 60
    # Enough for the kills asked for even when restarts are slow (a loaded CI machine), bounded.
    hard_end = end + max(60.0, (config.kill_interval[1] + 20) * config.min_kills)
    last_note = began
    while True:
        now = time.monotonic()
        if now >= hard_end or (now >= end and history.kills >= config.min_kills):
            break
        if not killer.is_alive():
            break  # the server could not be restarted: stop, the violation is recorded
        if now - last_note >= 30:
            last_note = now
            _log(
                f"{now - began:.0f} s: {len(history.outcomes)} transfers, "
                f"{history.kills} kills, {len(history.violations)} violations"
            )
        time.sleep(0.2)
    # Wind down: no more kills; the server up; every client settles what it has in flight.
    w.stop_chaos.set()
    killer.join(timeout=120)
    if server.process is None or server.process.poll() is not None:
        server.start()
    w.stop_new.set()
    for thread in clients:
        thread.join(timeout=config.settle_seconds * 2 + 30)
        if thread.is_alive():
            history.violation(f"{thread.name} did not finish")
    w.stop_reads.set()
    for thread in readers:
        thread.join(timeout=60)
    # One more snapshot, with every client settled.
    with httpx.Client(base_url=server.base_url, timeout=30) as http:
        final = read_snapshot(w, http)
    if final is None:
        history.violation("no final balance snapshot")
    else:
        for problem in snapshot_problems(final, expected_accounts=w.bank.accounts):
            history.violation(f"final snapshot: {problem}")


def parse_args(argv: Sequence[str] | None = None) -> Config:
    p = argparse.ArgumentParser(
        prog="python -m tests.soak.bank", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    p.add_argument("--engine", choices=["sqlite", "postgres"], default="sqlite")
    p.add_argument("--minutes", type=float, default=1.0, help="how long clients post transfers (default 1)")
    p.add_argument("--clients", type=int, default=4, help="client threads posting transfers (default 4)")
    p.add_argument("--readers", type=int, default=2, help="reader threads checking snapshots (default 2)")
    p.add_argument(
        "--kill-every",
        type=float,
        nargs=2,
        default=(5.0, 15.0),
        metavar=("MIN", "MAX"),
        help="seconds between kills (default 5 15)",
    )
    p.add_argument("--min-kills", type=int, default=0, help="run past --minutes until this many kills")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--workdir", type=Path, default=None, help="keep the SQLite file and server log here")
    p.add_argument("--keep", action="store_true", help="do not drop the PostgreSQL database")
    p.add_argument("--workers", type=int, default=1, help="commons serve --workers (default 1)")
    a = p.parse_args(argv)
    if a.workers < 1:
        p.error("need --workers ≥ 1")
    if a.clients < 1 or a.readers < 0 or a.minutes <= 0 or not 0 < a.kill_every[0] <= a.kill_every[1]:
        p.error("need --clients ≥ 1, --readers ≥ 0, --minutes > 0 and 0 < MIN ≤ MAX")
    return Config(
        engine=a.engine,
        minutes=a.minutes,
        clients=a.clients,
        readers=a.readers,
        kill_interval=(a.kill_every[0], a.kill_every[1]),
        min_kills=a.min_kills,
        seed=a.seed,
        workdir=a.workdir,
        keep=a.keep,
        workers=a.workers,
    )


def main(argv: Sequence[str] | None = None) -> int:
    report = run(parse_args(argv))
    if not report.ok:
        print(report.details(), file=sys.stderr)
    print(report.summary(), flush=True)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
