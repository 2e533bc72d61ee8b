"""PostgreSQL too: a key in flight in another worker process of the same host is answered 409 at
once, before the request waits for a connection (the advisory lock on the key is taken only once
it has one). The bank test found a retry overtaking its own first attempt that way
(docs/reliability.md)."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime

import pytest
from sqlalchemy.engine import Engine

from accounts.service import create_user
from ledger import idempotency
from ledger.db import write_transaction
from ledger.errors import DomainError
from tests.ledger.test_key_locks import HOLD

pytestmark = pytest.mark.parametrize(
    "db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)


def test_a_key_held_by_another_process_on_this_host_is_in_progress(engine: Engine) -> None:
    with write_transaction(engine) as conn:
        user = create_user(conn, email="k@x.org", name="K", password=None, now=datetime.now(UTC))
    calls: list[int] = []

    def run(key: str) -> idempotency.StoredResponse:
        def command(_conn: object) -> tuple[int, dict[str, int]]:
            calls.append(1)
            return 201, {"n": len(calls)}

        return idempotency.run_idempotent(
            engine, user_id=user, key=key, request_hash="h", now=datetime.now(UTC), command=command
        )

    locks = idempotency._key_locks(engine)
    assert locks is not None  # one file per database, in the temporary directory
    offset = idempotency._KeyLocks.offset(user_id=user, key="k-1")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, locks.path, str(offset)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(DomainError) as refused:
            run("k-1")
        assert refused.value.code == "idempotency_request_in_progress"
        assert calls == []  # nothing ran, nothing stored
        assert run("k-2").status == 201  # another key is not held up
    finally:
        holder.communicate("")
    first, again = run("k-1"), run("k-1")  # the holder is gone: the key runs once
    assert (first.replayed, again.replayed) == (False, True)
