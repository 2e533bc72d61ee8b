"""Database engines for both supported backends, configured as DESIGN §2 requires.

SQLite: WAL, synchronous=FULL, foreign keys and a busy timeout on every connection; every write
transaction opens with BEGIN IMMEDIATE (a deferred BEGIN would lose concurrent writers to
"database is locked" at their first write). PostgreSQL: psycopg 3, READ COMMITTED.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

SQLITE_BUSY_TIMEOUT_MS = 10_000
# A pooled PostgreSQL connection is pinged before use only after it sat idle this long (a server
# restart or an idle timeout may have closed it); a busy pool reuses connections without a ping.
IDLE_PING_SECONDS = 10.0


class DatabaseUrlError(ValueError):
    pass


def normalise_url(url: str) -> str:
    """Accept `sqlite:///path` or a plain `postgresql://…` URL; choose the driver ourselves."""
    if url.startswith("sqlite:///") or url.startswith("sqlite+pysqlite:///"):
        return "sqlite+pysqlite:///" + url.split(":///", 1)[1]
    for prefix in ("postgresql://", "postgres://", "postgresql+psycopg://", "postgresql+psycopg2://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    raise DatabaseUrlError(
        f"COMMONS_DATABASE_URL must start with sqlite:/// or postgresql:// (got {url.split(':', 1)[0]!r})"
    )


def is_sqlite(engine: Engine | Connection) -> bool:
    return engine.dialect.name == "sqlite"


class SqliteWriterLock:
    """Writers of one SQLite file queue here before BEGIN IMMEDIATE, and are woken in turn.

    Without it every pooled connection waits for the write lock in SQLite's busy handler, which
    sleeps (up to 100 ms a nap) instead of being woken: under 16 concurrent writers the lock sat
    idle between naps and some writers starved past the busy timeout ("database is locked").
    In the process, threads queue on a lock; across processes (`commons serve --workers 2`),
    the one thread per process that holds it queues on an exclusive `flock` of a file beside the
    database, which the kernel hands over as soon as it is released and drops if the holder
    dies (SIGKILL included). BEGIN IMMEDIATE stays the authority: a writer that bypasses this
    lock (another program, `sqlite3` on the command line) is still ordered by SQLite itself.
    """

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.threads = threading.RLock()
        self._depth = 0
        self._fd: int | None = None

    def __enter__(self) -> None:
        self.threads.acquire()
        if self._depth == 0 and self.path is not None:
            try:
                # Opened per transaction (a few microseconds): nothing is inherited across fork,
                # no descriptor is held per database, and closing it releases the lock.
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX)  # waits without holding the GIL
                except BaseException:
                    os.close(fd)
                    raise
            except BaseException:
                self.threads.release()
                raise
            self._fd = fd
        self._depth += 1

    def __exit__(self, *_: object) -> None:
        self._depth -= 1
        try:
            if self._depth == 0 and self._fd is not None:
                fd, self._fd = self._fd, None
                os.close(fd)  # releases the flock
        finally:
            self.threads.release()


_SQLITE_WRITERS: weakref.WeakKeyDictionary[Engine, SqliteWriterLock] = weakref.WeakKeyDictionary()
_LOCKS_BY_FILE: dict[str, SqliteWriterLock] = {}
_LOCKS_GUARD = threading.Lock()


def writer_lock_path(database: str | None, suffix: str = ".writer-lock") -> str | None:
    """A lock file beside a SQLite database file (the writers' queue here; the keys in flight in
    ledger.idempotency with another suffix); None for an in-memory database."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return os.path.realpath(database) + suffix


def _writer_lock(database: str | None) -> SqliteWriterLock:
    """One lock per database file in this process, shared by every engine on that file."""
    path = writer_lock_path(database)
    if path is None:
        return SqliteWriterLock(None)
    with _LOCKS_GUARD:
        lock = _LOCKS_BY_FILE.get(path)
        if lock is None:
            lock = _LOCKS_BY_FILE[path] = SqliteWriterLock(path)
        return lock


def sqlite_writers(engine: Engine) -> SqliteWriterLock | None:
    """The lock `write_transaction` queues on before BEGIN IMMEDIATE on this SQLite engine (None
    on PostgreSQL), for a write transaction run on the driver itself (ledger.sqlite_transfer)."""
    return _SQLITE_WRITERS.get(engine)


def _configure_sqlite(engine: Engine) -> None:
    _SQLITE_WRITERS[engine] = _writer_lock(engine.url.database)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Hand transaction control to SQLAlchemy's "begin" event below.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.execute("PRAGMA foreign_keys = ON")
        # REPLACE / INSERT OR REPLACE deletes the old row; without this the append-only DELETE
        # triggers would not fire for it and history could be overwritten.
        cursor.execute("PRAGMA recursive_triggers = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "IMMEDIATE")
        conn.exec_driver_sql(f"BEGIN {mode}")


def make_engine(url: str, *, pool_size: int = 10, echo: bool = False) -> Engine:
    """Create the engine for `url` (see `normalise_url`)."""
    full = normalise_url(url)
    if full.startswith("sqlite"):
        engine = sa.create_engine(
            full,
            echo=echo,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_pre_ping=False,
        )
        _configure_sqlite(engine)
        return engine
    engine = sa.create_engine(
        full,
        echo=echo,
        pool_size=pool_size,
        max_overflow=pool_size,
        isolation_level="READ COMMITTED",
    )
    _ping_when_idle(engine)
    return engine


def _ping_when_idle(engine: Engine) -> None:
    """pool_pre_ping costs a round trip on every checkout, i.e. on every request; ping only a
    connection that has been idle, where a dead one is likely. Raising DisconnectionError makes
    the pool discard it and hand out a fresh connection, exactly as pre_ping would."""

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since < IDLE_PING_SECONDS:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise sa.exc.DisconnectionError("idle connection failed its ping") from exc
        if not alive:
            raise sa.exc.DisconnectionError("idle connection failed its ping")


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """One short write transaction: BEGIN IMMEDIATE on SQLite, READ COMMITTED on PostgreSQL.

    Commits when the block ends without an exception; the caller answers only afterwards.
    """
    writers = _SQLITE_WRITERS.get(engine)
    if writers is None:
        with engine.begin() as conn:
            yield conn
        return
    # Checked out first, then queued: the pool still sees every request's connection at once.
    with engine.connect() as conn, writers, conn.begin():
        yield conn


@contextmanager
def read_transaction(engine: Engine) -> Iterator[Connection]:
    """A read-only snapshot. On SQLite a deferred BEGIN, so readers never wait for writers."""
    with engine.connect().execution_options(sqlite_begin="DEFERRED") as conn, conn.begin():
        yield conn
