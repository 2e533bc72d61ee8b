"""`commons federation …`: clearing runs from the command line, over the same services as the API.

Whoever runs the command already holds the database, so it acts with an officer's rights; the
run is recorded without a user (created_by NULL).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from datetime import datetime

    from sqlalchemy.engine import Connection

    from clearing.runs import RunView

federation_app = typer.Typer(help="Federations: monthly clearing runs.", no_args_is_help=True)

err = Console(stderr=True)
out = Console()

SHOWN_COOPS = 25
SHOWN_CYCLES = 10


def _database_url() -> str:
    from api.settings import DEFAULT_DATABASE_URL

    return os.environ.get("COMMONS_DATABASE_URL") or DEFAULT_DATABASE_URL


@federation_app.command("clear")
def clear_command(
    federation: str = typer.Option(..., "--federation", help="The federation's slug."),
    period: str = typer.Option(..., "--period", help="The month the run is for: YYYY-MM."),
    apply: bool = typer.Option(False, "--apply", help="Apply the run at once (one transaction)."),
    with_credit: bool = typer.Option(
        False,
        "--with-credit",
        help="Also settle residual debts in the federation's mutual credit, within limits.",
    ),
    report: Path | None = typer.Option(
        None, "--report", help="Write the per-co-op report (CSV) to this file."
    ),
) -> None:
    """Propose a clearing run over the federation's confirmed obligations (and apply it with
    --apply); print the summary."""

    def work(conn: Connection) -> RunView:
        from clearing import runs
        from clearing.service import CommandLine, get_federation

        requester = CommandLine()
        record = runs.propose_run(
            conn,
            requester=requester,
            federation=get_federation(conn, federation),
            period=period,
            settle_with_credit=with_credit,
            now=_now(),
        )
        if apply:
            runs.apply_run(conn, requester=requester, run_id=record.id, now=_now())
        return runs.view_run(conn, requester=requester, run_id=record.id)

    view = _run(work, "Clearing…")
    _print(view)
    if report is not None:
        _write_report(view, report)


@federation_app.command("apply")
def apply_command(
    run_id: int = typer.Argument(..., help="The id of a proposed clearing run."),
) -> None:
    """Apply a proposed clearing run (applying an applied run changes nothing)."""

    def work(conn: Connection) -> RunView:
        from clearing import runs
        from clearing.service import CommandLine

        runs.apply_run(conn, requester=CommandLine(), run_id=run_id, now=_now())
        return runs.view_run(conn, requester=CommandLine(), run_id=run_id)

    _print(_run(work, "Applying…"))


def _now() -> datetime:
    from datetime import UTC, datetime

    return datetime.now(UTC)


def _run(work: Callable[[Connection], RunView], message: str) -> RunView:
    from ledger.db import make_engine, write_transaction
    from ledger.errors import DomainError

    engine = make_engine(_database_url(), pool_size=1)
    try:
        with err.status(message), write_transaction(engine) as conn:
            return work(conn)
    except DomainError as exc:
        err.print(f"[bold red]error:[/] {exc.detail} ({exc.code})")
        for p in exc.problems:
            if p.field:
                err.print(f"  {p.field}: {p.detail}")
        raise typer.Exit(2) from exc
    finally:
        engine.dispose()


def _print(view: RunView) -> None:
    from api.present_federation import fraction
    from ledger.amounts import format_amount

    run, federation = view.run, view.federation

    def amount(value: int) -> str:
        return format_amount(value, scale=federation.scale)

    summary = Table(
        title=f"Clearing run {run.id}: {federation.slug} {run.period} ({run.status})",
        show_header=False,
    )
    summary.add_column(style="bold")
    summary.add_column(justify="right")
    summary.add_row("obligations", str(run.obligation_count))
    summary.add_row("participants", str(len(view.participants)))
    summary.add_row(f"total ({federation.unit_code})", amount(run.total))
    summary.add_row("net internal debt", amount(run.net_internal_debt))
    summary.add_row("set-off", f"{amount(run.total_setoff)} ({fraction(run.total_setoff, run.total)})")
    if run.settle_with_credit:
        summary.add_row("paid in mutual credit", amount(run.total_credit_paid))
        summary.add_row("more than set-off alone", amount(run.extra_cleared_by_credit))
    summary.add_row("remainder", amount(run.total - run.total_discharged))
    out.print(summary)

    coops = Table(title="Per co-op (largest discharge first)")
    for column in (
        "co-op",
        "owes before",
        "owed before",
        "net",
        "set-off",
        "credit",
        "owes after",
        "owed after",
    ):
        coops.add_column(column, justify="left" if column == "co-op" else "right")
    ranked = sorted(
        view.participants, key=lambda p: (-(p.setoff + p.credit_paid + p.credit_received), p.coop)
    )
    for p in ranked[:SHOWN_COOPS]:
        coops.add_row(
            p.coop,
            amount(p.owes_before),
            amount(p.owed_before),
            amount(p.net_position),
            amount(p.setoff),
            amount(p.credit_balance_change),
            amount(p.owes_after),
            amount(p.owed_after),
        )
    out.print(coops)
    if len(ranked) > SHOWN_COOPS:
        out.print(f"… and {len(ranked) - SHOWN_COOPS} more co-ops (--report FILE writes them all)")
    for cycle in view.cycles[:SHOWN_CYCLES]:
        out.print(f"  {' → '.join((*cycle.coops, cycle.coops[0]))}: {amount(cycle.amount)} set off")
    if len(view.cycles) > SHOWN_CYCLES:
        out.print(f"  … and {len(view.cycles) - SHOWN_CYCLES} more cycles")
    if run.status == "proposed":
        out.print(f"Proposed, nothing changed yet. Apply with: commons federation apply {run.id}")


def _write_report(view: RunView, path: Path) -> None:
    from api.present_federation import report_csv

    path.write_text(report_csv(view.participants, scale=view.federation.scale), encoding="utf-8")
    out.print(f"report written to {path}")
