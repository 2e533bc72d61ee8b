"""Idempotent commands: the key, a hash of the request and the response are stored in the same
DB transaction as the effect (DESIGN §2 invariant 5).

- same key + same request → the stored response again, nothing re-executed;
- same key + different request → `idempotency_key_reused` (422);
- same key while the first request is still running → `idempotency_request_in_progress` (409)
  (in this process: from before BEGIN until COMMIT, so a retry cannot overtake an attempt still
  waiting for the database; PostgreSQL also: a transaction-scoped advisory lock on the key,
  tried without waiting, for requests in other worker processes; SQLite: an exclusive record
  lock on one byte of a file beside the database, also tried without waiting, held from before
  the writers' queue until after COMMIT — see `_KeyLocks`).

A refused command writes nothing, key included: a retry is evaluated afresh.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import tempfile
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from ledger import tables as t
from ledger.db import is_sqlite, write_transaction, writer_lock_path
from ledger.errors import DomainError

log = logging.getLogger(__name__)

MAX_KEY_LENGTH = 255


@dataclass(frozen=True, slots=True)
class StoredResponse:
    status: int
    body: Any
    replayed: bool


def fingerprint(method: str, path: str, body: Any) -> str:
    canonical = json.dumps([method.upper(), path, body], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def validate_key(key: str | None) -> str:
    if key is None or not key.strip():
        raise DomainError("idempotency_key_required", "this request needs an Idempotency-Key header")
    if len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise DomainError(
            "validation_failed",
            f"the Idempotency-Key must be printable and at most {MAX_KEY_LENGTH} characters",
        )
    return key


# Built once (see ledger.service: no per-request statement construction on the write path).
_ik = t.idempotency_keys
_LOOKUP = sa.select(_ik.c.request_hash, _ik.c.response_status, _ik.c.response_body).where(
    _ik.c.user_id == sa.bindparam("ik_user", type_=sa.BigInteger),
    _ik.c.key == sa.bindparam("ik_key", type_=sa.String),
)
_STORE = sa.insert(_ik)
_LOCK_AND_LOOKUP = sa.text(
    "SELECT o_locked AS locked, o_request_hash AS request_hash, o_status AS response_status,"
    " o_body AS response_body"
    " FROM commons_idempotency_lookup(CAST(:lock_id AS bigint), CAST(:ik_user AS bigint), :ik_key)"
)


def lookup(conn: Connection, *, user_id: int, key: str, request_hash: str) -> StoredResponse | None:
    row = conn.execute(_LOOKUP, {"ik_user": user_id, "ik_key": key}).first()
    return _replay(row, request_hash=request_hash)


def _replay(row: Any, *, request_hash: str) -> StoredResponse | None:
    """The stored response of a key's row (request_hash, response_status, response_body)."""
    if row is None:
        return None
    if row.request_hash != request_hash:
        raise DomainError(
            "idempotency_key_reused",
            "this Idempotency-Key was already used for a different request",
        )
    return StoredResponse(row.response_status, json.loads(row.response_body), replayed=True)


def encode_body(body: Any) -> str:
    """The stored form of a response (ledger.pg_transfer renders its template with it too)."""
    return json.dumps(body, separators=(",", ":"))


def store(
    conn: Connection,
    *,
    user_id: int,
    key: str,
    request_hash: str,
    status: int,
    body: Any,
    now: datetime,
) -> None:
    conn.execute(
        _STORE,
        {
            "user_id": user_id,
            "key": key,
            "request_hash": request_hash,
            "response_status": status,
            "response_body": encode_body(body),
            "created_at": now,
        },
    )


def lock_id(*, user_id: int, key: str) -> int:
    """The PostgreSQL advisory lock of one (user, key); commons_pay takes the same."""
    digest = hashlib.sha256(f"{user_id}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _in_progress() -> DomainError:
    return DomainError(
        "idempotency_request_in_progress",
        "a request with this Idempotency-Key is still being processed; retry shortly",
    )


def _lock_and_lookup(conn: Connection, *, user_id: int, key: str) -> Any:
    """The key's lock (PostgreSQL), then its stored row if any: one round trip.

    On PostgreSQL one call of commons_idempotency_lookup (migration 0005_pg_transfer): the lookup
    is a statement of its own inside it, so it sees a response committed by whoever held the
    lock before us (a single SELECT would read with a snapshot taken before the lock)."""
    params = {"ik_user": user_id, "ik_key": key}
    if is_sqlite(conn):
        return conn.execute(_LOOKUP, params).first()
    row = conn.execute(_LOCK_AND_LOOKUP, {**params, "lock_id": lock_id(user_id=user_id, key=key)}).one()
    if not row.locked:
        raise _in_progress()
    return None if row.request_hash is None else row


_running: set[tuple[int, str]] = set()
_running_lock = threading.Lock()


class _KeyLocks:
    """Keys in flight across the worker processes of one database (see `_key_locks`).

    SQLite has no advisory locks, and its writers (ledger.db) queue on a lock that wakes them in
    no particular order: without this, a retry in one worker could take the write lock before its
    own first attempt waiting in another, be refused by a limit (storing nothing), and the first
    attempt then commit; on PostgreSQL the same while the first attempt waits for a connection.
    Each key in flight holds an exclusive POSIX record lock on one byte of a `.key-locks` file,
    at an offset drawn from the key's hash, tried without waiting. Record
    locks belong to the process (threads are told apart by `_running`), vanish when it dies
    (SIGKILL included), and all of a process's locks on a file go when it closes any descriptor
    of that file: so each process opens the file once and never closes it.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None
        self._pid = 0
        self._guard = threading.Lock()

    def _descriptor(self) -> int:
        with self._guard:
            if self._fd is None or self._pid != os.getpid():  # a forked worker opens its own
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
                self._pid = os.getpid()
            return self._fd

    @staticmethod
    def offset(*, user_id: int, key: str) -> int:
        return int.from_bytes(hashlib.sha256(f"{user_id}:{key}".encode()).digest()[:6], "big")

    def try_lock(self, offset: int) -> bool:
        try:
            fcntl.lockf(self._descriptor(), fcntl.LOCK_EX | fcntl.LOCK_NB, 1, offset, os.SEEK_SET)
        except (BlockingIOError, PermissionError):
            return False
        return True

    def unlock(self, offset: int) -> None:
        fcntl.lockf(self._descriptor(), fcntl.LOCK_UN, 1, offset, os.SEEK_SET)


_KEY_LOCKS: dict[str, _KeyLocks] = {}
_KEY_LOCKS_BY_ENGINE: weakref.WeakKeyDictionary[Engine, _KeyLocks | None] = weakref.WeakKeyDictionary()


def _key_locks(engine: Engine) -> _KeyLocks | None:
    """The cross-process key locks of a database; None for an in-memory SQLite database (one
    process) or where the lock file cannot be opened. Found once per engine: resolving the path
    is file-system work that has no place on every request.

    SQLite: beside the database file. PostgreSQL: in the temporary directory, one file per
    database (host, port, name, user), shared by the workers of one host. Its advisory lock on
    the key is taken in the database, only once a request holds a connection: a first attempt
    still waiting for one (or for one to be opened) was not covered, and its retry in another
    worker could run to a refusal first (found by the bank test, docs/reliability.md). Workers on
    other hosts still have only the advisory lock.
    """
    try:
        return _KEY_LOCKS_BY_ENGINE[engine]
    except KeyError:
        pass
    if is_sqlite(engine):
        path = writer_lock_path(engine.url.database, ".key-locks")
    else:
        identity = engine.url.set(password=None).render_as_string(hide_password=True)
        name = hashlib.sha256(identity.encode()).hexdigest()[:24]
        path = os.path.join(tempfile.gettempdir(), f"commons-{name}.key-locks")
    with _running_lock:
        locks = None if path is None else _KEY_LOCKS.setdefault(path, _KeyLocks(path))
        if locks is not None:
            try:
                locks._descriptor()  # opened once and kept: closing it would drop the locks
            except OSError:
                log.warning("cannot open %s: keys in flight are guarded in this process only", path)
                locks = None
        _KEY_LOCKS_BY_ENGINE[engine] = locks
    return locks


@contextmanager
def _across_processes(engine: Engine, *, user_id: int, key: str) -> Iterator[None]:
    locks = _key_locks(engine)
    if locks is None:
        yield
        return
    offset = _KeyLocks.offset(user_id=user_id, key=key)
    if not locks.try_lock(offset):
        raise _in_progress()
    try:
        yield
    finally:
        locks.unlock(offset)


@contextmanager
def _in_flight(*, user_id: int, key: str) -> Iterator[None]:
    """Refuse a second request with this key while the first is running in this process.

    BEGIN IMMEDIATE serialises writers but does not order them: a retry sent after a timeout
    could win the write lock from its own first attempt, be refused by a limit (storing
    nothing), and the first attempt then commit — the client, told "refused", would own a
    transfer. Found by the bank test (tests/soak)."""
    with _running_lock:
        if (user_id, key) in _running:
            raise _in_progress()
        _running.add((user_id, key))
    try:
        yield
    finally:
        with _running_lock:
            _running.discard((user_id, key))


@contextmanager
def key_guard(engine: Engine, *, user_id: int, key: str) -> Iterator[None]:
    """Hold (user, key) for one request: refused with 409 `idempotency_request_in_progress`
    while another request with this key runs, in this process or another worker of this host
    (`_key_locks`); a unique-key violation from a writer that raced past it answers the same."""
    with (
        racing_writers("a request with this Idempotency-Key was being processed; retry to get its result"),
        _in_flight(user_id=user_id, key=key),
        _across_processes(engine, user_id=user_id, key=key),
    ):
        yield


@contextmanager
def racing_writers(detail: str) -> Iterator[None]:
    """A unique-key violation on the stored responses means another request stored the same key
    first (the unique key backs every lock): answer 409 `idempotency_request_in_progress`, so the
    client retries and gets that request's outcome, instead of a 500."""
    try:
        yield
    except IntegrityError as exc:
        if "idempotency_keys" in str(exc.orig) or "idempotency" in str(exc):
            raise DomainError("idempotency_request_in_progress", detail) from exc
        raise


def run_idempotent(
    engine: Engine,
    *,
    user_id: int,
    key: str,
    request_hash: str,
    now: datetime,
    command: Callable[[Connection], tuple[int, Any]],
    before: Callable[[Connection], None] | None = None,
    fast: Callable[[], StoredResponse | None] | None = None,
) -> StoredResponse:
    """Run `command` once per (user, key) in one write transaction with its stored response.

    `before` runs first in that transaction, before a stored response can be replayed (the API
    loads and checks the caller there, instead of in a read transaction of its own).

    `fast` is tried first, under the same guard: the whole request on the driver
    (ledger.pg_transfer on PostgreSQL, ledger.sqlite_transfer on SQLite, see ledger.payment),
    which either answers or writes nothing and returns None.
    """
    with key_guard(engine, user_id=user_id, key=key):
        if fast is not None:
            answered = fast()
            if answered is not None:
                return answered
        return run_guarded(
            engine,
            user_id=user_id,
            key=key,
            request_hash=request_hash,
            now=now,
            command=command,
            before=before,
        )


def run_guarded(
    engine: Engine,
    *,
    user_id: int,
    key: str,
    request_hash: str,
    now: datetime,
    command: Callable[[Connection], tuple[int, Any]],
    before: Callable[[Connection], None] | None = None,
) -> StoredResponse:
    """`run_idempotent` without its fast path, for a caller already holding `key_guard`."""
    with write_transaction(engine) as conn:
        row = _lock_and_lookup(conn, user_id=user_id, key=key)
        if before is not None:
            before(conn)
        stored = _replay(row, request_hash=request_hash)
        if stored is not None:
            return stored
        status, body = command(conn)
        store(conn, user_id=user_id, key=key, request_hash=request_hash, status=status, body=body, now=now)
        return StoredResponse(status, body, replayed=False)
