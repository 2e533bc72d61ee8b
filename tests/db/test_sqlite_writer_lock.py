"""SQLite writers of several processes queue on a file lock beside the database (ledger.db).

`commons serve --workers 2` on SQLite runs two processes; their writers must be ordered by a lock
the kernel hands over at once (and drops when its holder dies), not by SQLite's napping busy
handler. These tests use real processes on a real file.
"""

from __future__ import annotations

import fcntl
import multiprocessing
import os
import signal
import time
from pathlib import Path

import sqlalchemy as sa

from ledger.db import SqliteWriterLock, make_engine, write_transaction, writer_lock_path

CONTEXT = multiprocessing.get_context("spawn")  # as uvicorn starts its workers


def _counter_db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'lock.db'}"
    engine = make_engine(url, pool_size=1)
    with write_transaction(engine) as conn:
        conn.execute(sa.text("CREATE TABLE counter (n INTEGER NOT NULL)"))
        conn.execute(sa.text("INSERT INTO counter VALUES (0)"))
    engine.dispose()
    return url


def _increment(url: str, times: int, threads: int) -> None:
    """Read-modify-write in Python: a lost update shows if two writers ever overlap."""
    import threading

    engine = make_engine(url, pool_size=threads)

    def work() -> None:
        for _ in range(times):
            with write_transaction(engine) as conn:
                n = conn.execute(sa.text("SELECT n FROM counter")).scalar_one()
                conn.execute(sa.text("UPDATE counter SET n = :n"), {"n": n + 1})

    pool = [threading.Thread(target=work) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    engine.dispose()


def _hold_then_wait(url: str, ready: str) -> None:
    engine = make_engine(url, pool_size=1)
    with write_transaction(engine) as conn:
        conn.execute(sa.text("UPDATE counter SET n = n + 100"))
        Path(ready).touch()
        time.sleep(60)  # killed long before


def test_the_lock_file_sits_beside_the_database(tmp_path: Path) -> None:
    assert writer_lock_path(str(tmp_path / "a.db")) == str(tmp_path / "a.db") + ".writer-lock"
    assert writer_lock_path(":memory:") is None
    assert writer_lock_path("") is None


def test_a_write_transaction_holds_the_file_lock_until_commit(tmp_path: Path) -> None:
    url = _counter_db(tmp_path)
    lock_path = writer_lock_path(str(tmp_path / "lock.db"))
    assert lock_path is not None
    engine = make_engine(url, pool_size=1)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT)
    try:
        with write_transaction(engine) as conn:
            conn.execute(sa.text("UPDATE counter SET n = n + 1"))
            try:  # another open file description (as another process has) cannot take it
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                held = True
            else:
                held = False
                fcntl.flock(fd, fcntl.LOCK_UN)
        assert held
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released with the commit
        fcntl.flock(fd, fcntl.LOCK_UN)
        lock = SqliteWriterLock(lock_path)
        with lock, lock:  # reentrant in one thread; the file is locked once
            pass
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the outer exit released it
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
        engine.dispose()


def test_writers_of_two_processes_never_overlap(tmp_path: Path) -> None:
    url = _counter_db(tmp_path)
    procs = [CONTEXT.Process(target=_increment, args=(url, 40, 4)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    engine = make_engine(url, pool_size=1)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT n FROM counter")).scalar_one() == 2 * 40 * 4
    engine.dispose()


def test_a_killed_holder_releases_the_lock_and_its_transaction(tmp_path: Path) -> None:
    url = _counter_db(tmp_path)
    ready = tmp_path / "ready"
    holder = CONTEXT.Process(target=_hold_then_wait, args=(url, str(ready)))
    holder.start()
    deadline = time.monotonic() + 60
    while not ready.exists():
        assert time.monotonic() < deadline and holder.is_alive()
        time.sleep(0.05)
    assert holder.pid is not None
    os.kill(holder.pid, signal.SIGKILL)
    holder.join(10)
    engine = make_engine(url, pool_size=1)
    began = time.monotonic()
    with write_transaction(engine) as conn:
        conn.execute(sa.text("UPDATE counter SET n = n + 1"))
    assert time.monotonic() - began < 5  # handed over by the kernel, not after a busy timeout
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT n FROM counter")).scalar_one() == 1  # the +100 rolled back
    engine.dispose()
