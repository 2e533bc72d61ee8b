"""The `commons` command: serve, demo, database, admin and file-mode tools."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer
from rich.console import Console

from api.cli_admin import register as register_admin_commands
from api.cli_federation import federation_app
from api.cli_treasurer import register as register_treasurer_commands
from clearing.cli import clear_command

app = typer.Typer(help="Commons: mutual-credit time bank and co-op federation ledger.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema management.", no_args_is_help=True)
admin_app = typer.Typer(help="Instance administration.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(admin_app, name="admin")
app.add_typer(federation_app, name="federation")
app.command("clear")(clear_command)

err = Console(stderr=True)
out = Console()


def _database_url() -> str:
    from api.settings import DEFAULT_DATABASE_URL

    return os.environ.get("COMMONS_DATABASE_URL") or DEFAULT_DATABASE_URL


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code)


SERVERS = ("uvicorn", "granian")


def _run_server(host: str, port: int, workers: int, server: str = "uvicorn") -> None:
    os.environ["COMMONS_SUPERVISOR_PID"] = str(os.getpid())  # workers die with it (api.asgi)
    log_level = os.environ.get("COMMONS_LOG_LEVEL", "info")
    access_log = os.environ.get("COMMONS_ACCESS_LOG", "0") == "1"
    if server == "granian":
        from granian import Granian
        from granian.constants import HTTPModes, Interfaces, Loops
        from granian.log import LogLevels

        Granian(
            "api.asgi:app_factory",
            factory=True,
            address=host,
            port=port,
            interface=Interfaces.ASGI,  # with lifespan: the claim sweeper starts and stops
            workers=workers,
            loop=Loops.uvloop,
            http=HTTPModes.http1,
            websockets=False,
            log_level=LogLevels(log_level),
            log_access=access_log,
            workers_kill_timeout=10,
        ).serve()
        return
    import uvicorn

    uvicorn.run(
        "api.asgi:app_factory",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        access_log=access_log,
        timeout_graceful_shutdown=10,
    )


def _preflight(*, demo: bool = False) -> None:
    """Refuse to start on bad settings or a database behind head, saying how to fix it."""
    from api.settings import Settings, SettingsError
    from ledger.db import DatabaseUrlError, make_engine
    from migrations import is_at_head, revision_status

    try:
        settings = Settings.from_env(demo_mode=demo)
    except (SettingsError, DatabaseUrlError) as exc:
        raise _fail(str(exc), 2) from exc
    engine = make_engine(settings.database_url, pool_size=1)
    try:
        if not is_at_head(engine):
            current, head = revision_status(engine)
            raise _fail(
                f"the database is at migration {current or 'none (empty)'}, this Commons needs {head}.\n"
                "Back it up, then run: commons db upgrade"
            )
    finally:
        engine.dispose()


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, help="Port to listen on."),
    workers: int | None = typer.Option(
        None,
        min=1,
        max=64,
        help="Worker processes [default: one per core on PostgreSQL, 2 on SQLite].",
    ),
    server: str | None = typer.Option(
        None,
        help="HTTP server: uvicorn or granian [default: uvicorn].",
    ),
) -> None:
    """Serve the HTTP API (configuration from COMMONS_* environment variables)."""
    if server is not None and server not in SERVERS:
        raise _fail(f"--server must be one of {', '.join(SERVERS)}", 2)
    _preflight()
    url = _database_url()
    _run_server(host, port, workers or default_workers(url), server or default_server(url))


def default_workers(database_url: str, cores: int | None = None) -> int:
    """What measured best on 2 cores (docs/benchmarks.md, Ledger): on PostgreSQL one worker per
    core; on SQLite two, whatever the cores (writes are serialised; a second process parses and
    answers requests while the first holds the write lock, a third only adds contention)."""
    cores = cores or os.cpu_count() or 1
    if database_url.startswith("sqlite"):
        return min(2, cores)
    return cores


def default_server(database_url: str) -> str:
    """uvicorn on both engines, measured on 2 cores with both servers on one database, interleaved
    (docs/benchmarks.md, Ledger, items 9 and 14). On PostgreSQL the two were within noise and
    uvicorn spent less CPU per request. On SQLite granian led while the write lock set the pace
    (Python under the lock); since a transfer runs on the driver (ledger.sqlite_transfer) the
    server's CPU sets it, and uvicorn spent 12-22% less per transfer in three runs (throughput
    +19%, -1%, +4%; p99 lower in all three). granian stays available with --server granian."""
    del database_url  # both engines alike now; kept so a measured difference can come back
    return "uvicorn"


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Bring the database schema to the newest migration."""
    from migrations import upgrade_to_head

    url = _database_url()
    upgrade_to_head(url)
    out.print(f"database at head ({url.split('://', 1)[0]})")


@admin_app.command("create")
def admin_create(
    email: str = typer.Option(..., help="The admin's email (their login)."),
    name: str = typer.Option("Administrator", help="Display name."),
    password_file: Path | None = typer.Option(
        None, help="Read the password from this file instead of a prompt."
    ),
) -> None:
    """Create an instance admin (who can create co-ops and their first treasurers)."""
    from datetime import UTC, datetime

    from accounts.service import create_user
    from ledger.db import make_engine, write_transaction
    from ledger.errors import DomainError

    if password_file is not None:
        password = password_file.read_text().strip()
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    engine = make_engine(_database_url(), pool_size=1)
    try:
        with write_transaction(engine) as conn:
            user_id = create_user(
                conn, email=email, name=name, password=password, is_admin=True, now=datetime.now(UTC)
            )
    except DomainError as exc:
        raise _fail(exc.detail + "".join(f"\n  {p.field}: {p.detail}" for p in exc.problems), 2) from exc
    finally:
        engine.dispose()
    out.print(f"admin {email} created (user {user_id})")


@app.command()
def demo(
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8000, help="Port to listen on."),
    no_serve: bool = typer.Option(False, "--no-serve", help="Seed the demo data and exit."),
) -> None:
    """Create the demo time bank "Riverside Time Bank" (once), print its logins and serve it."""
    from api.demo import seed
    from ledger.db import make_engine
    from migrations import upgrade_to_head

    url = _database_url()
    upgrade_to_head(url)
    engine = make_engine(url, pool_size=2)
    with err.status("Seeding Riverside Time Bank…"):
        logins = seed(engine)
    engine.dispose()
    base = f"http://{host}:{port}"
    out.print("\n[bold]Riverside Time Bank[/] is ready.")
    out.print(f"  API:            {base}/api/v1   (docs: {base}/schema/swagger)")
    out.print(f"  Web:            {base}/sign-in  (open {base}/ in a browser)")
    out.print(f"  Sign in (API):  POST {base}/api/v1/auth/token with an email and the password below")
    out.print(f"  Admin:          {logins.admin}")
    out.print(f"  Treasurer:      {logins.treasurer}")
    out.print(f"  Members:        {', '.join(logins.members)} (and 26 more)")
    out.print(f"  Password (all): {logins.password}")
    out.print(f"  Database:       {url}\n")
    if no_serve:
        return
    os.environ["COMMONS_DEMO"] = "1"
    _run_server(host, port, 1)


@app.command("expire-claims")
def expire_claims() -> None:
    """Mark every claim past its co-op's expiry as expired (the server also does this each minute)."""
    from datetime import UTC, datetime

    from ledger.db import make_engine, write_transaction
    from ledger.service import expire_claims as sweep

    engine = make_engine(_database_url(), pool_size=1)
    with write_transaction(engine) as conn:
        count = sweep(conn, now=datetime.now(UTC))
    engine.dispose()
    out.print(f"{count} claim(s) expired")


register_treasurer_commands(app)
register_admin_commands(admin_app)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
