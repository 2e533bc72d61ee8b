"""A federation officer's pages: member co-ops and their positions, obligations (list, CSV
upload), clearing runs (propose, report with the network before and after, apply)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from litestar import Controller, Request, Response, get, post
from sqlalchemy.engine import Connection

from accounts.actor import Actor
from api.runtime import Runtime
from api.web import session
from api.web.common import Form, Upload, layout, see_other
from api.web.forms import FormErrors, explain, text
from api.web.network import network_svg
from api.web.render import render
from clearing import obligations as ob
from clearing import runs
from clearing import service as fed
from clearing import tables as ct
from clearing.obligation_csv import CsvHeaderError, parse_obligations_csv
from ledger.errors import DomainError

UPLOAD_MAX_BYTES = 16 * 1024 * 1024
SHOWN_OBLIGATIONS = 200
DRAWN_ITEMS = 5000


def federations_of(conn: Connection, user_id: int) -> list[fed.FederationRecord]:
    """The federations this user is an officer of."""
    fo = ct.federation_officers
    ids = conn.execute(
        sa.select(fo.c.federation_id).where(fo.c.user_id == user_id).order_by(fo.c.federation_id)
    ).scalars()
    return [fed.federation_by_id(conn, int(i)) for i in ids]


def _federation(conn: Connection, actor: Actor, slug: str) -> fed.FederationRecord:
    federation = fed.get_federation(conn, slug)
    fed.require_officer(conn, actor, federation)
    return federation


class OfficerController(Controller):
    path = "/officer"

    @get("/", sync_to_thread=True)
    def index(self, request: Request[Any, Any, Any], actor: Actor, runtime: Runtime) -> Response[Any]:
        federations = runtime.read(lambda conn: federations_of(conn, actor.user_id))
        if not federations:
            raise DomainError("forbidden", "you are not an officer of any federation")
        if len(federations) == 1:
            return see_other(f"/officer/{federations[0].slug}")
        return render("officer_index.html", **layout(request, actor, federations=federations))

    def _federation_page(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        runtime: Runtime,
        slug: str,
        errors: FormErrors,
        period: str = "",
        status: int = 200,
    ) -> Response[Any]:
        def fn(conn: Connection) -> dict[str, Any]:
            federation = _federation(conn, actor, slug)
            obligations, more = ob.list_obligations(
                conn,
                requester=actor,
                federation=federation,
                status=None,
                coop_slug=None,
                cursor=None,
                limit=SHOWN_OBLIGATIONS,
            )
            run_list, _, _ = runs.list_runs(
                conn, requester=actor, federation=federation, cursor=None, limit=20
            )
            return {
                "federation": federation,
                "members": fed.list_members(conn, federation),
                "obligations": obligations,
                "more_obligations": more is not None,
                "runs": run_list,
            }

        data = runtime.read(fn)
        period = period or runtime.clock().strftime("%Y-%m")
        return render(
            "officer_federation.html",
            status=status,
            **layout(request, actor, errors=errors, period=period, **data),
        )

    @get("/{slug:str}", sync_to_thread=True)
    def federation(
        self, request: Request[Any, Any, Any], slug: str, actor: Actor, runtime: Runtime
    ) -> Response[Any]:
        return self._federation_page(request, actor, runtime, slug, FormErrors())

    @post(
        "/{slug:str}/obligations",
        sync_to_thread=True,
        status_code=303,
        request_max_body_size=UPLOAD_MAX_BYTES,
    )
    def upload(
        self,
        request: Request[Any, Any, Any],
        slug: str,
        data: Upload,
        actor: Actor,
        runtime: Runtime,
    ) -> Response[Any]:
        errors = FormErrors()
        upload = data.get("file")
        raw = upload.file.read() if upload is not None and hasattr(upload, "file") else b""
        if not raw:
            errors.add("file", "Choose a CSV file of obligations")
            return self._federation_page(request, actor, runtime, slug, errors, status=422)
        try:
            csv_text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            errors.add("file", "The file must be UTF-8 text (save it as CSV UTF-8)")
            return self._federation_page(request, actor, runtime, slug, errors, status=422)
        now = runtime.clock()

        def fn(conn: Connection) -> ob.ImportResult:
            federation = _federation(conn, actor, slug)
            rows, problems = parse_obligations_csv(csv_text, scale=federation.scale)
            return ob.import_obligations(
                conn, requester=actor, federation=federation, rows=rows, problems=problems, now=now
            )

        try:
            result = runtime.write(fn)
        except CsvHeaderError as exc:
            errors.add("file", f"The first line is not a header we know: {exc}")
            return self._federation_page(request, actor, runtime, slug, errors, status=422)
        message = (
            f"Obligations file read: {result.created} recorded, {result.unchanged} already there, "
            f"{result.refused} refused."
        )
        if result.problems:
            first = "; ".join(
                p.message if p.message.startswith("line") else f"line {p.line}: {p.message}"
                for p in result.problems[:3]
            )
            message += f" {first}"
        session.flash(request, message)
        return see_other(f"/officer/{slug}")

    @post("/{slug:str}/runs", sync_to_thread=True, status_code=303)
    def propose(
        self, request: Request[Any, Any, Any], slug: str, data: Form, actor: Actor, runtime: Runtime
    ) -> Response[Any]:
        period = text(data, "period", limit=20)
        settle = text(data, "settle_with_credit") == "yes"
        now = runtime.clock()

        def fn(conn: Connection) -> runs.RunRecord:
            federation = _federation(conn, actor, slug)
            return runs.propose_run(
                conn,
                requester=actor,
                federation=federation,
                period=period,
                settle_with_credit=settle,
                now=now,
            )

        try:
            run = runtime.write(fn)
        except DomainError as exc:
            if exc.code in {"forbidden", "federation_not_found"}:
                raise
            errors = explain(exc, FormErrors(), fields={"period": "period"})
            if "period" in errors.fields:
                errors.fields["period"] = "Enter the month as year-month, for example 2026-11"
            return self._federation_page(request, actor, runtime, slug, errors, period, 422)
        session.flash(request, f"Clearing run no. {run.id} proposed: nothing changes until you apply it.")
        return see_other(f"/officer/runs/{run.id}")

    @get("/runs/{run_id:int}", sync_to_thread=True)
    def run(
        self, request: Request[Any, Any, Any], run_id: int, actor: Actor, runtime: Runtime
    ) -> Response[Any]:
        return self._run_page(request, actor, runtime, run_id, FormErrors())

    def _run_page(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        runtime: Runtime,
        run_id: int,
        errors: FormErrors,
        status: int = 200,
    ) -> Response[Any]:
        def fn(conn: Connection) -> tuple[runs.RunView, list[runs.ItemRow]]:
            view = runs.view_run(conn, requester=actor, run_id=run_id)
            if view.scope is not None:
                raise DomainError("forbidden", "only officers see the whole clearing run")
            items: list[runs.ItemRow] = []
            cursor: int | None = None
            while True:
                _, _, rows, cursor = runs.run_items(
                    conn, requester=actor, run_id=run_id, coop_slug=None, cursor=cursor, limit=200
                )
                items.extend(rows)
                if cursor is None or len(items) >= DRAWN_ITEMS:
                    break
            return view, items

        view, items = runtime.read(fn)
        run, scale = view.run, view.federation.scale
        before: dict[tuple[str, str], int] = {}
        after: dict[tuple[str, str], int] = {}
        for item in items:
            pair = (item.debtor, item.creditor)
            before[pair] = before.get(pair, 0) + item.remaining_before
            after[pair] = after.get(pair, 0) + item.remaining_after
        nodes = sorted({p.coop for p in view.participants} | {c for pair in before for c in pair})
        widest = max(before.values(), default=1)
        cleared = run.total_setoff + run.total_credit_paid
        pictures = {
            "before": network_svg(
                before, nodes, scale=scale, widest=widest, title="Obligations before clearing"
            ),
            "after": network_svg(
                after, nodes, scale=scale, widest=widest, title="Obligations after clearing"
            ),
        }
        return render(
            "officer_run.html",
            status=status,
            **layout(
                request,
                actor,
                view=view,
                run=run,
                scale=scale,
                after_total=run.total - cleared,
                fraction=(100 * cleared / run.total) if run.total else 0.0,
                cycles=sorted(view.cycles, key=lambda c: (-c.amount, c.position))[:10],
                pictures=pictures,
                drawn_all=len(items) < DRAWN_ITEMS,
                errors=errors,
            ),
        )

    @post("/runs/{run_id:int}/apply", sync_to_thread=True, status_code=303)
    def apply(
        self,
        request: Request[Any, Any, Any],
        run_id: int,
        data: Form,
        actor: Actor,
        runtime: Runtime,
    ) -> Response[Any]:
        if text(data, "confirm") != "yes":
            errors = FormErrors()
            errors.add("confirm", "Tick the box to confirm that the delegates agreed")
            return self._run_page(request, actor, runtime, run_id, errors, 422)
        now = runtime.clock()
        try:
            runtime.write(lambda conn: runs.apply_run(conn, requester=actor, run_id=run_id, now=now))
        except DomainError as exc:
            if exc.code in {"forbidden", "clearing_run_not_found"}:
                raise
            errors = FormErrors()
            if exc.code == "stale_clearing_run":
                errors.add(
                    None,
                    "Some obligations changed since this run was proposed: cancel it and propose a new one.",
                )
            else:
                explain(exc, errors)
            return self._run_page(request, actor, runtime, run_id, errors, 409)
        session.flash(request, f"Clearing run no. {run_id} is applied: the obligations are reduced.")
        return see_other(f"/officer/runs/{run_id}")

    @post("/runs/{run_id:int}/cancel", sync_to_thread=True, status_code=303)
    def cancel(
        self, request: Request[Any, Any, Any], run_id: int, actor: Actor, runtime: Runtime
    ) -> Response[Any]:
        now = runtime.clock()
        runtime.write(lambda conn: runs.cancel_run(conn, requester=actor, run_id=run_id, now=now))
        session.flash(request, f"Clearing run no. {run_id} is cancelled.")
        return see_other(f"/officer/runs/{run_id}")
