"""A key in flight in another worker process of the same SQLite database is answered 409 at once.

SQLite's writers queue on a lock that wakes them in no set order (ledger.db), so without a lock
per key shared by the processes a retry in one worker could overtake its own first attempt
waiting in another: be refused by a limit (a refusal stores nothing), then the first attempt
commits, and the client told "refused" owns a transfer. PostgreSQL tries an advisory lock on the
key instead (tests/soak/test_races.py).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

from accounts.service import create_user
from ledger import idempotency
from ledger.db import make_engine, write_transaction
from ledger.errors import DomainError
from migrations import upgrade_to_head

HOLD = textwrap.dedent(
    """
    import fcntl, os, sys
    fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, int(sys.argv[2]), os.SEEK_SET)
    print("held", flush=True)
    sys.stdin.read()
    """
)


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    url = f"sqlite:///{tmp_path / 'keys.db'}"
    upgrade_to_head(url)
    engine = make_engine(url)
    with write_transaction(engine) as conn:
        user = create_user(conn, email="k@x.org", name="K", password=None, now=datetime.now(UTC))
    assert user == 1
    return engine


def run(engine: Engine, key: str, calls: list[int]) -> idempotency.StoredResponse:
    def command(_conn: object) -> tuple[int, dict[str, int]]:
        calls.append(1)
        return 201, {"n": len(calls)}

    return idempotency.run_idempotent(
        engine, user_id=1, key=key, request_hash="h", now=datetime.now(UTC), command=command
    )


def test_a_key_held_by_another_process_is_in_progress(engine: Engine, tmp_path: Path) -> None:
    offset = idempotency._KeyLocks.offset(user_id=1, key="k-1")
    path = str((tmp_path / "keys.db").resolve()) + ".key-locks"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, path, str(offset)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        calls: list[int] = []
        with pytest.raises(DomainError) as refused:
            run(engine, "k-1", calls)
        assert refused.value.code == "idempotency_request_in_progress"
        assert calls == []  # nothing ran, nothing stored
        assert run(engine, "k-2", calls).status == 201  # another key is not held up
    finally:
        holder.communicate("")
    # The holder is gone (as after a SIGKILL: the kernel drops its locks): the key runs once.
    first = run(engine, "k-1", calls)
    again = run(engine, "k-1", calls)
    assert (first.replayed, again.replayed) == (False, True)
    assert first.body == again.body


def test_a_finished_key_is_released_in_this_process(engine: Engine) -> None:
    calls: list[int] = []
    for key in ("a", "b", "a"):
        run(engine, key, calls)
    assert len(calls) == 2
    offset = idempotency._KeyLocks.offset(user_id=1, key="a")
    locks = idempotency._key_locks(engine)
    assert locks is not None and locks.try_lock(offset)  # not left held by the run
    locks.unlock(offset)
