"""Where the CPU went during a phase: the load client (this process), the server's processes,
and the PostgreSQL backends serving the bench's databases. Read from /proc (Linux only; elsewhere
every figure is 0)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import psycopg

TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _cpu(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def _group(pgid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getpgid(int(entry.name)) == pgid:
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


@dataclass
class CpuMeter:
    """Snapshot before, snapshot after: CPU seconds per part."""

    admin_url: str
    databases: tuple[str, ...]
    server_pgid: int | None = None
    peer_pids: tuple[int, ...] = ()

    def _backends(self) -> list[int]:
        try:
            with psycopg.connect(self.admin_url, autocommit=True) as conn:
                rows = conn.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = ANY(%s)",
                    [list(self.databases)],
                ).fetchall()
            return [int(r[0]) for r in rows]
        except Exception:
            return []

    def snapshot(self) -> dict[str, dict[int, float]]:
        server = _group(self.server_pgid) if self.server_pgid else []
        return {
            "client": {os.getpid(): _cpu(os.getpid())},
            "server": {p: _cpu(p) for p in server},
            "peer": {p: _cpu(p) for p in self.peer_pids},
            "postgres": {p: _cpu(p) for p in self._backends()} if self.databases else {},
        }

    @staticmethod
    def used(before: dict[str, dict[int, float]], after: dict[str, dict[int, float]]) -> dict[str, float]:
        out = {}
        for part, now in after.items():
            then = before.get(part, {})
            # A backend that appeared during the phase counts from zero.
            out[part] = sum(max(0.0, v - then.get(p, 0.0)) for p, v in now.items())
        return out
