"""Idempotent commands: the key, a hash of the request and the response are stored in the same
DB transaction as the effect (DESIGN §2 invariant 5).

- same key + same request → the stored response again, nothing re-executed;
- same key + different request → `idempotency_key_reused` (422);
- same key while the first request is still running → `idempotency_request_in_progress` (409)
  (PostgreSQL: a transaction-scoped advisory lock on the key, tried without waiting; SQLite:
  BEGIN IMMEDIATE already serialises writers, so a second request sees the first one's outcome).

A refused command writes nothing, key included: a retry is evaluated afresh.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from ledger import tables as t
from ledger.db import is_sqlite, write_transaction
from ledger.errors import DomainError

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


def lookup(conn: Connection, *, user_id: int, key: str, request_hash: str) -> StoredResponse | None:
    ik = t.idempotency_keys
    row = conn.execute(
        sa.select(ik.c.request_hash, ik.c.response_status, ik.c.response_body).where(
            ik.c.user_id == user_id, ik.c.key == key
        )
    ).first()
    if row is None:
        return None
    if row.request_hash != request_hash:
        raise DomainError(
            "idempotency_key_reused",
            "this Idempotency-Key was already used for a different request",
        )
    return StoredResponse(row.response_status, json.loads(row.response_body), replayed=True)


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
        sa.insert(t.idempotency_keys).values(
            user_id=user_id,
            key=key,
            request_hash=request_hash,
            response_status=status,
            response_body=json.dumps(body, separators=(",", ":")),
            created_at=now,
        )
    )


def _try_lock(conn: Connection, *, user_id: int, key: str) -> None:
    if is_sqlite(conn):
        return
    digest = hashlib.sha256(f"{user_id}:{key}".encode()).digest()
    lock_id = int.from_bytes(digest[:8], "big", signed=True)
    got = conn.execute(sa.select(sa.func.pg_try_advisory_xact_lock(lock_id))).scalar()
    if not got:
        raise DomainError(
            "idempotency_request_in_progress",
            "a request with this Idempotency-Key is still being processed; retry shortly",
        )


def run_idempotent(
    engine: Engine,
    *,
    user_id: int,
    key: str,
    request_hash: str,
    now: datetime,
    command: Callable[[Connection], tuple[int, Any]],
) -> StoredResponse:
    """Run `command` once per (user, key) in one write transaction with its stored response."""
    try:
        with write_transaction(engine) as conn:
            _try_lock(conn, user_id=user_id, key=key)
            stored = lookup(conn, user_id=user_id, key=key, request_hash=request_hash)
            if stored is not None:
                return stored
            status, body = command(conn)
            store(conn, user_id=user_id, key=key, request_hash=request_hash, status=status, body=body, now=now)
            return StoredResponse(status, body, replayed=False)
    except IntegrityError as exc:
        # The unique key backs the advisory lock: two writers of one key cannot both commit.
        if "idempotency_keys" in str(exc.orig) or "idempotency" in str(exc):
            raise DomainError(
                "idempotency_request_in_progress",
                "a request with this Idempotency-Key was being processed; retry to get its result",
            ) from exc
        raise
