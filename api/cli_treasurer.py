"""The treasurer's commands: reconcile, verify, seal, export, import, import-csv, backup, and
prune-idempotency.

Each is a thin shell over a ledger service, run directly against the database named by
COMMONS_DATABASE_URL (no server needed; safe while the server runs). Exit codes: 0 all good,
1 something differs or was rejected, 2 the command could not run.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from ledger.reconcile import ReconciliationReport

err = Console(stderr=True, soft_wrap=True)
out = Console(soft_wrap=True)


def _database_url() -> str:
    from api.settings import DEFAULT_DATABASE_URL

    return os.environ.get("COMMONS_DATABASE_URL") or DEFAULT_DATABASE_URL


def _fail(message: str, code: int = 2) -> typer.Exit:
    err.print(f"[bold red]error:[/] {escape(message)}")
    return typer.Exit(code)


@contextmanager
def _engine(*, migrate_empty: bool = False) -> Iterator[Engine]:
    """An engine on a database at the newest migration (an empty one is migrated if asked)."""
    from ledger.db import DatabaseUrlError, make_engine
    from migrations import is_at_head, revision_status, upgrade_to_head

    url = _database_url()
    try:
        engine = make_engine(url, pool_size=2)
    except DatabaseUrlError as exc:
        raise _fail(str(exc)) from exc
    try:
        current, head = revision_status(engine)
        if current is None and migrate_empty:
            upgrade_to_head(url)
            err.print(f"[dim]empty database: migrated to {head}[/]")
        elif not is_at_head(engine):
            raise _fail(
                f"the database is at migration {current or 'none (empty)'}, this Commons needs "
                f"{head}; run: commons db upgrade"
            )
        yield engine
    finally:
        engine.dispose()


def _domain(fn: Callable[[], Any]) -> Any:
    from ledger.errors import DomainError

    try:
        return fn()
    except DomainError as exc:
        raise _fail(
            exc.detail + "".join(f"\n  {p.field}: {p.detail}" for p in exc.problems if p.field)
        ) from exc


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=False,
    )


def _now() -> datetime:
    return datetime.now(UTC)


# --- reconcile and verify -----------------------------------------------------------------


def _print_report(report: ReconciliationReport) -> None:
    from ledger.amounts import format_optional

    scale = report.scale

    def fmt(amount: int | None) -> str:
        return format_optional(amount, scale=scale) or "-"

    status = "[bold green]books are whole[/]" if report.ok else "[bold red]books do NOT reconcile[/]"
    out.print(
        f"[bold]{report.coop}[/] ({report.unit_code}) at {report.at.isoformat(timespec='seconds')}: {status}"
    )
    out.print(
        f"  {report.account_count} accounts, {report.transfer_count} transfers, "
        f"{report.seal_count} seals; ledger sum {fmt(report.ledger_sum)}, "
        f"postings sum {fmt(report.postings_sum)}"
    )
    if report.mismatched_accounts:
        table = Table(
            "account",
            "holder",
            "cached",
            "postings",
            "last balance_after",
            "differs",
            title="Cached balances that differ",
        )
        for c in report.mismatched_accounts:
            table.add_row(
                str(c.id),
                escape(c.holder),
                fmt(c.balance),
                fmt(c.postings_sum),
                fmt(c.last_balance_after),
                ", ".join(c.differences),
            )
        out.print(table)
    for title, rows in (("Beyond a limit", report.beyond_limits), ("At a limit", report.at_limit)):
        if rows:
            table = Table("account", "holder", "balance", "min", "max", title=title)
            for b in rows:
                table.add_row(
                    str(b.account_id),
                    escape(b.holder),
                    fmt(b.balance),
                    fmt(b.min_balance),
                    fmt(b.max_balance),
                )
            out.print(table)
    if report.pending_claims:
        table = Table("claim", "payer", "payee", "amount", "age (days)", "expires", title="Pending claims")
        for p in report.pending_claims:
            expiry = p.expires_at.date().isoformat() if p.expires_at else "-"
            table.add_row(
                str(p.transfer_id),
                escape(p.payer),
                escape(p.payee),
                fmt(p.amount),
                f"{p.age_days:.1f}",
                expiry + (" (overdue)" if p.overdue else ""),
            )
        out.print(table)
    if report.federation is not None:
        from ledger.reconcile import exact_decimal

        position = report.federation
        fed = f"{exact_decimal(Fraction(position.federation_balance), position.scale)}"
        out.print(
            f"  position at federation {escape(position.federation)}: federation account "
            f"{fmt(position.mirror_balance)} {report.unit_code} here, {fed} "
            f"{position.unit_code} in the federation ledger; rounding from conversions "
            f"{exact_decimal(position.rounding_difference, position.scale)} {position.unit_code}"
            + ("" if position.ok else " [red](does not add up)[/]")
        )
    for f in report.findings:
        out.print(f"[red]✗[/] {escape(f.subject)}: {escape(f.detail)}")


def reconcile_command(
    coop: str = typer.Option(..., "--coop", help="The co-op's slug."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON (the API's shape)."),
) -> None:
    """Reconcile a co-op's books: ledger sum, cached balances against postings, limits, pending
    claims and seals. Exit code 1 when anything is wrong."""
    from ledger.reconcile import reconciliation_report, snapshot

    with _engine() as engine, snapshot(engine) as conn:
        report = _domain(lambda: reconciliation_report(conn, actor=None, slug=coop, now=_now()))
    if as_json:
        from api.routes.treasurer import reconciliation_out

        out.print_json(reconciliation_out(report).model_dump_json())
    else:
        _print_report(report)
    raise typer.Exit(0 if report.ok else 1)


def verify_command(
    coop: str | None = typer.Option(None, "--coop", help="Only this co-op (default: every ledger)."),
) -> None:
    """Recompute every seal and every cached balance; exit 1 naming whatever differs."""
    from ledger.reconcile import snapshot, verify

    with _engine() as engine, snapshot(engine) as conn, err.status("verifying…"):
        checked, findings = _domain(lambda: verify(conn, slug=coop))
    for f in findings:
        out.print(f"[red]✗[/] {escape(f.subject)}: {escape(f.detail)}")
    if findings:
        err.print(
            f"[bold red]{len(findings)} difference(s)[/] in {', '.join(checked)}: history or "
            "cached state was changed behind the application's back"
        )
        raise typer.Exit(1)
    out.print(
        f"[green]✓[/] verified {', '.join(checked) or 'an empty database'}: "
        "every seal and cached balance agrees with the history"
    )


def seal_command(
    coop: str = typer.Option(..., "--coop", help="The co-op's slug."),
    period: str | None = typer.Option(
        None, "--period", help="YYYY-MM; default: every month that is over and not sealed."
    ),
) -> None:
    """Seal months of a co-op's ledger (as the operator), oldest first. Suits a monthly cron."""
    from ledger import seals
    from ledger.db import read_transaction
    from ledger.seal_core import Period

    now = _now()
    with _engine() as engine:
        if period is not None:
            try:
                months = [Period.parse(period)]
            except ValueError as exc:
                raise _fail(str(exc)) from exc
        else:
            from accounts.service import get_coop

            with read_transaction(engine) as conn:
                record = _domain(lambda: get_coop(conn, coop))
                months = seals.closed_unsealed_periods(conn, coop=record, now=now)
        for month in months:

            def seal_one(month: Period = month) -> seals.SealView:
                return seals.seal_period(engine, actor=None, slug=coop, period=month, now=now)

            view = _domain(seal_one)
            out.print(f"sealed {coop} {view.period}: {view.transfer_count} transfers, digest {view.digest}")
    if not months:
        out.print(f"nothing to seal for {coop}")


# --- export and import --------------------------------------------------------------------


def export_command(
    coop: str = typer.Option(..., "--coop", help="The co-op's slug."),
    output: Path = typer.Option(..., "-o", "--output", help="The .jsonl file to write."),
    force: bool = typer.Option(False, "--force", help="Overwrite the file if it exists."),
) -> None:
    """Export a co-op (policy, members without passwords, accounts, transfers, postings, seals)."""
    from ledger.export import export_coop
    from ledger.reconcile import snapshot

    if output.exists() and not force:
        raise _fail(f"{output} exists; choose another name or pass --force")
    partial = output.with_name(output.name + ".partial")
    with _engine() as engine, snapshot(engine) as conn, partial.open("wb") as f, _progress() as bar:
        task = bar.add_task("exporting", total=None)
        summary = _domain(
            lambda: export_coop(conn, slug=coop, out=f, now=_now(), progress=lambda n: bar.advance(task, n))
        )
    partial.replace(output)
    counts = ", ".join(f"{n} {kind}s" for kind, n in summary.counts.items())
    out.print(f"exported {coop} to {output}: {counts}; sha256 {summary.sha256}")


def import_command(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="A file made by commons export."),
) -> None:
    """Import an exported co-op into this database (empty, or without those ids), verified
    before it commits: identical balances, postings and seal digests, or nothing at all."""
    from api.startup import freeze_startup_objects
    from ledger.export import ImportRefusedError, import_file

    freeze_startup_objects()
    with _engine(migrate_empty=True) as engine, _progress() as bar:
        task = bar.add_task(f"importing {file.name}", total=None)
        try:
            summary = _domain(lambda: import_file(engine, file, progress=lambda n: bar.advance(task, n)))
        except ImportRefusedError as exc:
            bar.stop()
            for f in exc.findings:
                err.print(f"[red]✗[/] {escape(f.subject)}: {escape(f.detail)}")
            raise _fail(str(exc), 1 if exc.findings else 2) from exc
    counts = ", ".join(f"{n} {kind}s" for kind, n in summary.counts.items())
    out.print(f"imported co-op {summary.coop}: {counts}; seals and balances verified")
    out.print("people were imported without passwords: set them with the password reset of this instance")


def import_csv_command(
    members: Path = typer.Argument(..., exists=True, dir_okay=False, help="members.csv: name,email"),
    transfers: Path = typer.Argument(
        ...,
        exists=True,
        dir_okay=False,
        help="transfers.csv: date,from_email,to_email,hours,reason",
    ),
    coop: str = typer.Option(..., "--coop", help="The co-op to import into."),
    as_email: str | None = typer.Option(
        None, "--as", help="The treasurer recorded as importer (default: the first)."
    ),
    rejected_file: Path | None = typer.Option(
        None, "--rejected", help="Also write the rejected rows to this CSV."
    ),
    retry_refused: bool = typer.Option(
        False, "--retry-refused", help="Decide rows the ledger refused before afresh."
    ),
) -> None:
    """Bring in a time bank from another system. Rerunning the same files changes nothing.
    Exit code 1 when rows were rejected (listed by file and line)."""
    from api.startup import freeze_startup_objects
    from ledger.csv_import import CsvError, import_csv

    freeze_startup_objects()
    with _engine() as engine, _progress() as bar:

        def progress(name: str, total: int) -> Callable[[int], None]:
            task = bar.add_task(name, total=total)
            return lambda n: bar.advance(task, n)

        try:
            report = _domain(
                lambda: import_csv(
                    engine,
                    slug=coop,
                    members_csv=members,
                    transfers_csv=transfers,
                    as_email=as_email,
                    now=_now(),
                    retry_refused=retry_refused,
                    progress=progress,
                )
            )
        except CsvError as exc:
            raise _fail(str(exc)) from exc
    out.print(
        f"members: {report.members_added} added, {report.members_existing} already there; "
        f"transfers: {report.transfers_posted} posted, "
        f"{report.transfers_replayed} already imported; "
        f"{len(report.rejected)} row(s) rejected"
    )
    if report.rejected:
        table = Table("file", "line", "code", "reason", title="Rejected rows")
        for r in report.rejected[:200]:
            table.add_row(escape(r.file), str(r.line), r.code, escape(r.detail))
        out.print(table)
        if len(report.rejected) > 200:
            out.print(
                f"… and {len(report.rejected) - 200} more"
                + ("" if rejected_file else " (use --rejected FILE for all)")
            )
        if rejected_file is not None:
            import csv

            with rejected_file.open("w", newline="", encoding="utf-8") as f:
                writer = csv.writer(f)
                writer.writerow(["file", "line", "code", "reason"])
                writer.writerows([r.file, r.line, r.code, r.detail] for r in report.rejected)
            out.print(f"rejected rows written to {rejected_file}")
        raise typer.Exit(1)


# --- backup -------------------------------------------------------------------------------


def backup_command(
    output: Path = typer.Option(..., "-o", "--output", help="The file to write the copy to."),
    force: bool = typer.Option(False, "--force", help="Overwrite the file if it exists."),
) -> None:
    """A consistent copy of the database while the server runs (SQLite online backup). On
    PostgreSQL, prints how to use pg_dump instead, and exits 2."""
    from ledger.backup import BackupError, backup_sqlite, pg_dump_guidance, sqlite_path
    from ledger.db import DatabaseUrlError

    url = _database_url()
    try:
        source = sqlite_path(url)
    except DatabaseUrlError as exc:
        raise _fail(str(exc)) from exc
    if source is None:
        err.print(pg_dump_guidance(url, output))
        raise typer.Exit(2)
    try:
        with err.status(f"copying {source}…"):
            result = backup_sqlite(source, output, overwrite=force)
    except BackupError as exc:
        raise _fail(str(exc)) from exc
    out.print(
        f"backed up {source} to {result.path}: {result.bytes:,} bytes, {result.pages:,} pages "
        f"in {result.seconds:.2f} s; integrity ok"
    )


# --- retention ----------------------------------------------------------------------------


def prune_idempotency_command(
    older_than: str | None = typer.Option(
        None,
        "--older-than",
        help="Age beyond which stored responses go: 30d (days), 36h (hours) or 30 (days). "
        "Default: COMMONS_IDEMPOTENCY_RETENTION_DAYS, else 30 days.",
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only count what would be pruned."),
) -> None:
    """Delete stored idempotent responses older than the retention window (safe while the
    server runs). A retry with a pruned key is then treated as a new request; imported batch
    items (import-csv, the batch endpoint) are kept, so re-importing a file still changes nothing."""
    from api.settings import SettingsError, idempotency_retention_days
    from ledger.retention import parse_age, prune_idempotency

    try:
        age_text = older_than if older_than is not None else f"{idempotency_retention_days()}d"
    except SettingsError as exc:
        raise _fail(str(exc)) from exc
    age = _domain(lambda: parse_age(age_text))
    with _engine() as engine:
        if dry_run:
            result = prune_idempotency(engine, older_than=age, now=_now(), dry_run=True)
        else:
            with _progress() as bar:
                task = bar.add_task("pruning", total=None)

                def advance(deleted: int, total: int) -> None:
                    bar.update(task, advance=deleted, total=max(total, deleted))

                result = prune_idempotency(engine, older_than=age, now=_now(), progress=advance)
    verb = "would prune" if result.dry_run else "pruned"
    out.print(
        f"{verb} {result.pruned} stored response(s) created before "
        f"{result.cutoff.isoformat(timespec='seconds')}; kept {result.kept_batch_items} older "
        "batch-item record(s)"
    )


def register(app: typer.Typer) -> None:
    app.command("reconcile")(reconcile_command)
    app.command("verify")(verify_command)
    app.command("seal")(seal_command)
    app.command("export")(export_command)
    app.command("import")(import_command)
    app.command("import-csv")(import_csv_command)
    app.command("backup")(backup_command)
    app.command("prune-idempotency")(prune_idempotency_command)
