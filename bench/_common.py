"""Shared pieces of the ledger benchmark: figures, databases, the server under test.

Nothing here times anything by itself; `bench.ledger` decides what is measured and when.
"""

from __future__ import annotations

import os
import secrets
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

REPO = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get("COMMONS_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
BENCH_SECRET = "bench-secret-" + secrets.token_urlsafe(40)


# --- figures ---------------------------------------------------------------------------------


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values (0 when empty)."""
    if not sorted_values:
        return 0.0
    rank = max(1, min(len(sorted_values), round(q / 100 * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


@dataclass
class Figure:
    """One measured path: how many operations, in how much wall time, each with its latency."""

    name: str
    unit: str = "transfers"
    count: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    per_round: list[float] = field(default_factory=list)  # rate of each interleaved round
    note: str = ""

    def add(self, count: int, seconds: float, latencies: Sequence[float]) -> None:
        self.count += count
        self.seconds += seconds
        self.latencies.extend(latencies)
        self.per_round.append(count / seconds if seconds else 0.0)

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0

    def p(self, q: float) -> float:
        return percentile(sorted(self.latencies), q) * 1000

    def row(self, baseline: Figure | None) -> list[str]:
        ratio = "" if baseline is None or not baseline.rate else f"{self.rate / baseline.rate:.2f}"
        spread = ""
        if baseline is not None and len(self.per_round) == len(baseline.per_round) > 1:
            ratios = [a / b for a, b in zip(self.per_round, baseline.per_round, strict=True) if b]
            spread = f"{min(ratios):.2f}-{max(ratios):.2f}"
        return [
            self.name,
            f"{self.rate:,.0f}",
            f"{self.p(50):.2f}",
            f"{self.p(99):.2f}",
            ratio,
            spread,
            self.note,
        ]


def table(title: str, figures: Sequence[tuple[Figure, Figure | None]], *, rate_label: str = "per s") -> str:
    header = ["path", rate_label, "p50 ms", "p99 ms", "x base", "rounds", "note"]
    rows = [header] + [f.row(base) for f, base in figures]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = [title]
    for n, r in enumerate(rows):
        lines.append(
            "  ".join(
                c.ljust(w) if i in (0, 6) else c.rjust(w)
                for i, (c, w) in enumerate(zip(r, widths, strict=True))
            ).rstrip()
        )
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else 0.0


# --- databases -------------------------------------------------------------------------------


def pg_url(dbname: str) -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + dbname


def pg_reachable() -> str | None:
    try:
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception as exc:
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    return None


def pg_create(dbname: str) -> str:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{dbname}"')
    return pg_url(dbname)


def pg_drop(dbname: str) -> None:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


def pg_drop_orphans(prefix: str = "commons_bench_") -> None:
    """Drop bench databases whose run (the pid at the end of the name) no longer exists."""
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        for (name,) in conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s", [prefix + "%"]
        ).fetchall():
            pid = name.rsplit("_", 1)[-1]
            if pid.isdigit() and not Path(f"/proc/{pid}").exists():
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- the server under test -------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def commons_server(
    database_url: str, *, workers: int, pool_size: int, log: Path, server: str | None = None
) -> Iterator[str]:
    """`commons serve` as production runs it, in its own process group; yields the base URL.
    `server` is passed as `--server` (default: `commons serve`'s own for the engine)."""
    port = free_port()
    env = {
        **os.environ,
        "COMMONS_DATABASE_URL": database_url,
        "COMMONS_SECRET_KEY": BENCH_SECRET,
        "COMMONS_POOL_SIZE": str(pool_size),
        "COMMONS_LOG_LEVEL": "warning",
        "COMMONS_CLAIM_SWEEP_SECONDS": "86400",
    }
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "api.cli",
                "serve",
                "--port",
                str(port),
                "--workers",
                str(workers),
                *(["--server", server] if server else []),
            ],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"commons serve exited with {proc.returncode}; see {log}")
            try:
                with urllib.request.urlopen(base + "/api/v1/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"commons serve did not answer within 60 s; see {log}")
            time.sleep(0.1)
        # Every worker must be up before timing starts: the server answers as soon as one is.
        time.sleep(0.5 + 0.3 * workers)
        yield base
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 15)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait()


def machine() -> str:
    load = os.getloadavg()
    cpu = "unknown cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    average = " ".join(f"{v:.2f}" for v in load)
    return f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB, load average {average}"
