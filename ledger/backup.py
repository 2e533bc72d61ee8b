"""Consistent copies of a running database.

SQLite: the online backup API (`sqlite3.Connection.backup`), in a single step, so the copy is
one read snapshot: in WAL mode it never blocks the server's writers, and it is never restarted
by them (a stepwise copy is restarted whenever another connection writes). The copy is written
beside the target, switched to a self-contained rollback journal, checked with
`PRAGMA integrity_check`, and only then renamed into place.

PostgreSQL: pg_dump takes a consistent snapshot without blocking writers; `pg_dump_guidance`
says how.
"""

from __future__ import annotations

import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from ledger.db import normalise_url


class BackupError(Exception):
    pass


@dataclass(frozen=True, slots=True)
class BackupResult:
    path: Path
    bytes: int
    pages: int
    seconds: float


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL, or None for another database."""
    full = normalise_url(url)
    if not full.startswith("sqlite"):
        return None
    return Path(full.split(":///", 1)[1])


def backup_sqlite(source: Path, target: Path, *, overwrite: bool = False) -> BackupResult:
    if not source.exists():
        raise BackupError(f"there is no database at {source}")
    if target.exists() and not overwrite:
        raise BackupError(f"{target} exists; choose another name or pass --force")
    if target.resolve() == source.resolve():
        raise BackupError("the backup must go to another file than the database")
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    started = time.perf_counter()
    src = sqlite3.connect(source, timeout=30)
    try:
        src.execute("PRAGMA busy_timeout = 30000")
        dst = sqlite3.connect(partial)
        try:
            src.backup(dst, pages=-1)  # one step: one consistent snapshot
            dst.execute("PRAGMA journal_mode = DELETE")  # a single self-contained file
            check = dst.execute("PRAGMA integrity_check").fetchone()
            if check is None or check[0] != "ok":
                raise BackupError(f"the copy failed its integrity check: {check}")
            pages = int(dst.execute("PRAGMA page_count").fetchone()[0])
        finally:
            dst.close()
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        src.close()
    os.replace(partial, target)
    return BackupResult(target, target.stat().st_size, pages, time.perf_counter() - started)


def pg_dump_guidance(url: str, target: Path) -> str:
    parts = urlsplit(normalise_url(url).replace("postgresql+psycopg://", "postgresql://"))
    database = parts.path.lstrip("/") or "commons"
    host = parts.hostname or "localhost"
    port = parts.port or 5432
    user = parts.username or "commons"
    name = target.name if target.suffix == ".dump" else target.stem + ".dump"
    return (
        "This Commons runs on PostgreSQL: back it up with pg_dump, which takes a consistent\n"
        "snapshot while the server keeps running (it does not block writers):\n\n"
        f"  pg_dump --format=custom --no-owner --host={host} --port={port} \\\n"
        f"          --username={user} --file={name} {database}\n\n"
        "Restore into an empty database, then check it:\n\n"
        f"  createdb --host={host} --port={port} --username={user} {database}_restored\n"
        f"  pg_restore --no-owner --exit-on-error --host={host} --port={port} \\\n"
        f"             --username={user} --dbname={database}_restored {name}\n"
        f"  COMMONS_DATABASE_URL=postgresql://{user}@{host}:{port}/{database}_restored \\\n"
        "    commons verify\n\n"
        "Use the pg_dump of the server's major version (or newer). For point-in-time recovery,\n"
        "add WAL archiving (archive_mode, archive_command) or a tool such as pgBackRest."
    )
