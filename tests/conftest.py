"""Fixtures that run the same tests on SQLite and on PostgreSQL.

`engine` is parametrised over both backends. PostgreSQL is reached at COMMONS_TEST_PG_URL
(default postgresql://postgres@127.0.0.1:5432/test); each xdist worker gets its own database,
migrated once, truncated between tests. On a laptop without PostgreSQL those tests skip with a
message; under CI (CI=true) an unreachable PostgreSQL fails the run instead.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ledger.db import make_engine
from migrations import upgrade_to_head

PG_ADMIN_URL = os.environ.get("COMMONS_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def _pg_database_url(worker: str) -> str:
    base, _, _ = PG_ADMIN_URL.rpartition("/")
    # The pid keeps concurrent runs on one machine (two developers, CI beside a session) apart.
    return f"{base}/commons_test_{worker}_{os.getpid()}"


def _pg_reachable() -> str | None:
    try:
        engine = make_engine(PG_ADMIN_URL, pool_size=1)
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # any failure means "not reachable" here
        return f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
    return None


@pytest.fixture(scope="session")
def worker_id_safe(request: pytest.FixtureRequest) -> str:
    worker = getattr(request.config, "workerinput", {}).get("workerid", "main")
    return str(worker)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    upgrade_to_head(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_url(worker_id_safe: str) -> Iterator[str]:
    problem = _pg_reachable()
    if problem is not None:
        message = f"PostgreSQL is not reachable at {PG_ADMIN_URL} ({problem})"
        if IN_CI:
            pytest.fail(message + "; under CI the PostgreSQL tests must run", pytrace=False)
        pytest.skip(message + "; start it to run the PostgreSQL half of the suite")
    url = _pg_database_url(worker_id_safe)
    dbname = url.rsplit("/", 1)[1]
    admin = sa.create_engine(
        "postgresql+psycopg://" + PG_ADMIN_URL.split("://", 1)[1], isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        _drop_orphans(conn)
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{dbname}"'))
    upgrade_to_head(url)
    yield url
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)'))
    admin.dispose()


def _drop_orphans(conn: sa.Connection) -> None:
    """Drop test databases left by runs that were killed (their pid no longer exists)."""
    names = conn.execute(sa.text("SELECT datname FROM pg_database WHERE datname LIKE 'commons_test_%'"))
    for (name,) in list(names):
        pid = name.rsplit("_", 1)[-1]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _truncate_all(engine: Engine) -> None:
    with engine.begin() as conn:
        tables = [
            name
            for (name,) in conn.execute(
                sa.text(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                    "AND tablename <> 'alembic_version'"
                )
            )
        ]
        if tables:
            quoted = ", ".join(f'"{t}"' for t in tables)
            conn.execute(sa.text(f"TRUNCATE {quoted} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty database URL, fresh for each test, on each backend."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "commons.db"
        shutil.copyfile(template, path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("postgres_url")
    engine = make_engine(url, pool_size=1)
    _truncate_all(engine)
    engine.dispose()
    return url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url, pool_size=20)
    yield eng
    eng.dispose()


@pytest.fixture(autouse=True)
def _commands_do_not_freeze_pytest(monkeypatch: pytest.MonkeyPatch) -> None:
    """`commons import-csv` and `commons import` freeze their process's startup objects out of
    garbage collection (api.startup). Run in process by CliRunner, they would freeze pytest's, and
    a later test's reference cycles among those would never be collected. The real freeze is
    tested in a process of its own (tests/api/test_serve.py)."""
    monkeypatch.setattr("api.startup.freeze_startup_objects", lambda: None)
