"""`commons serve` chooses its worker count from the database (docs/benchmarks.md, Ledger)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from api.cli import default_server, default_workers


def test_sqlite_serves_with_two_workers_whatever_the_cores() -> None:
    assert default_workers("sqlite:///./commons.db", cores=8) == 2
    assert default_workers("sqlite:///./commons.db", cores=2) == 2
    assert default_workers("sqlite:///./commons.db", cores=1) == 1


def test_postgresql_serves_with_one_worker_per_core() -> None:
    assert default_workers("postgresql://u@h/db", cores=2) == 2
    assert default_workers("postgresql://u@h/db", cores=6) == 6


def test_both_engines_are_served_by_uvicorn() -> None:
    assert default_server("sqlite:///./commons.db") == "uvicorn"
    assert default_server("postgresql://u@h/db") == "uvicorn"


SUPERVISOR = """
import os, subprocess, sys, time
os.environ["COMMONS_SUPERVISOR_PID"] = str(os.getpid())
worker = subprocess.Popen([sys.executable, "-c", "from api.asgi import die_with_supervisor; "
    "die_with_supervisor(); import time; time.sleep(120)"])
print(worker.pid, flush=True)
time.sleep(120)
"""


def test_a_worker_dies_with_its_supervisor_even_on_sigkill() -> None:
    """A server's workers must not keep serving on its port after the supervisor was killed."""
    supervisor = subprocess.Popen([sys.executable, "-c", SUPERVISOR], stdout=subprocess.PIPE, text=True)
    assert supervisor.stdout is not None
    worker = int(supervisor.stdout.readline())
    time.sleep(3)  # the worker has imported the app and asked to die with its parent
    assert _alive(worker)
    supervisor.kill()
    supervisor.wait()
    deadline = time.monotonic() + 10
    while _alive(worker) and time.monotonic() < deadline:
        time.sleep(0.1)
    survived = _alive(worker)
    if survived:
        os.kill(worker, signal.SIGKILL)
    assert not survived


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


FACTORY = """
import gc
from api.asgi import app_factory
before = gc.get_freeze_count()
app_factory()
print(before, gc.get_freeze_count(), flush=True)
"""


def test_a_worker_freezes_its_startup_objects_out_of_garbage_collection(
    sqlite_template: Path, tmp_path: Path
) -> None:
    """A full collection must not walk the modules and the app in every worker (item 17 of
    docs/benchmarks.md: ~70 ms pauses in batch requests)."""
    db = tmp_path / "commons.db"
    db.write_bytes(sqlite_template.read_bytes())
    env = {**os.environ, "COMMONS_DATABASE_URL": f"sqlite:///{db}", "COMMONS_SECRET_KEY": "s" * 48}
    env.pop("COMMONS_SUPERVISOR_PID", None)
    out = subprocess.run(
        [sys.executable, "-c", FACTORY], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    before, after = map(int, out.stdout.split())
    assert before == 0
    assert after > 50_000  # the app, its routes and models, SQLAlchemy's and pydantic's metadata
