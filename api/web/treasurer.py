"""A treasurer's pages: the members table, add a member, change limits, record an exchange for
a member who is offline, reverse a transfer with a reason."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from litestar import Controller, Request, Response, get, post
from sqlalchemy.engine import Connection

from accounts import service as accounts
from accounts.actor import Actor, CoopRole, Role
from api.runtime import Runtime
from api.web import session
from api.web.common import Form, layout, post_exchange, role_of, see_other
from api.web.forms import (
    FormErrors,
    explain,
    new_form_key,
    parse_day,
    parse_hours,
    parse_limit,
    text,
)
from api.web.render import hours, render
from api.web.views import ACTIVE, MEMBER_SORTS, all_accounts, directory, find_entry, members_table
from ledger import idempotency, queries, reconcile, service, statements
from ledger.errors import DomainError
from ledger.service import TransferInput

PAGE = 50


def require_treasurer(request: Request[Any, Any, Any], actor: Actor) -> CoopRole:
    role = role_of(request, actor)
    if role is None or role.role is not Role.TREASURER:
        raise DomainError("forbidden", "only a treasurer of this co-op may open this page")
    return role


def _coop(conn: Connection, role: CoopRole) -> accounts.CoopRecord:
    coop = accounts.coop_by_ledger(conn, role.ledger_id)
    assert coop is not None
    return coop


class TreasurerController(Controller):
    path = "/treasurer"

    @get("/", sync_to_thread=True)
    def members(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        runtime: Runtime,
        q: str = "",
        sort: str = "name",
        order: str = "asc",
    ) -> Response[Any]:
        role = require_treasurer(request, actor)
        sort = sort if sort in MEMBER_SORTS or sort == "activity" else "name"
        descending = order == "desc"

        def fn(
            conn: Connection,
        ) -> tuple[accounts.CoopRecord, list[Any], int, dict[int, Any]]:
            views = all_accounts(conn, role.ledger_id)
            activity = queries.last_activity(conn, role.ledger_id)
            rows = members_table(
                views, query=q[:100], sort="name" if sort == "activity" else sort, descending=descending
            )
            if sort == "activity":
                # Never active sorts as the oldest.
                rows.sort(
                    key=lambda v: activity.get(v.id) or datetime.min.replace(tzinfo=UTC), reverse=descending
                )
            return _coop(conn, role), rows, len(views), activity

        coop, rows, total, activity = runtime.read(fn)
        return render(
            "treasurer_members.html",
            **layout(
                request,
                actor,
                coop=coop,
                rows=rows,
                activity=activity,
                total=total,
                q=q[:100],
                sort=sort,
                descending=descending,
            ),
        )

    # --- add a member ----------------------------------------------------------------------

    def _member_page(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        values: dict[str, str],
        errors: FormErrors,
        status: int = 200,
    ) -> Response[Any]:
        return render(
            "treasurer_add.html",
            status=status,
            **layout(request, actor, values=values, errors=errors),
        )

    @get("/members/new", sync_to_thread=True)
    def add_member_form(self, request: Request[Any, Any, Any], actor: Actor) -> Response[Any]:
        require_treasurer(request, actor)
        return self._member_page(request, actor, {"role": "member"}, FormErrors())

    @post("/members", sync_to_thread=True, status_code=303)
    def add_member(
        self, request: Request[Any, Any, Any], data: Form, actor: Actor, runtime: Runtime
    ) -> Response[Any]:
        role = require_treasurer(request, actor)
        values = {name: text(data, name, limit=320) for name in ("name", "email", "role")}
        password = text(data, "password", limit=1024)
        values["role"] = "treasurer" if values["role"] == "treasurer" else "member"
        errors = FormErrors()
        if not values["name"]:
            errors.add("name", "Enter the member's name")
        if not values["email"]:
            errors.add("email", "Enter an email address: it is how they sign in")
        if errors:
            return self._member_page(request, actor, values, errors, 422)
        now = runtime.clock()
        try:
            _, account_id, _ = runtime.write(
                lambda conn: accounts.add_member(
                    conn,
                    actor=actor,
                    slug=role.slug,
                    email=values["email"],
                    name=values["name"],
                    role=Role(values["role"]),
                    password=password or None,
                    now=now,
                )
            )
        except DomainError as exc:
            if exc.code == "already_exists" and any(p.field == "password" for p in exc.problems):
                errors.add("password", "This person already has a login: leave the password empty")
            else:
                explain(exc, errors)
            return self._member_page(request, actor, values, errors, 422)
        session.flash(request, f"{values['name']} is now a member (account no. {account_id}).")
        return see_other(f"/treasurer?q={account_id}")

    # --- one account: limits and status ----------------------------------------------------

    def _account_page(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        runtime: Runtime,
        role: CoopRole,
        account_id: int,
        values: dict[str, str] | None,
        errors: FormErrors,
        status: int = 200,
    ) -> Response[Any]:
        def fn(conn: Connection) -> tuple[queries.AccountView, list[Any], dict[int, str]]:
            view = queries.account_for_reader(conn, actor=actor, account_id=account_id)
            if view.ledger_id != role.ledger_id:
                raise DomainError("account_not_found", "no such account")
            postings, _ = queries.list_postings(
                conn,
                account_id=account_id,
                start=None,
                end=None,
                cursor=None,
                limit=10,
                descending=True,
            )
            names = {e.account_id: e.holder for e in directory(all_accounts(conn, role.ledger_id))}
            return view, postings, names

        view, postings, names = runtime.read(fn)
        if values is None:
            values = {
                "min_balance": "" if view.min_balance is None else hours(-view.min_balance, view.scale),
                "max_balance": "" if view.max_balance is None else hours(view.max_balance, view.scale),
                "status": view.status,
            }
        return render(
            "treasurer_account.html",
            status=status,
            **layout(
                request,
                actor,
                account=view,
                postings=postings,
                names=names,
                values=values,
                errors=errors,
            ),
        )

    @get("/accounts/{account_id:int}", sync_to_thread=True)
    def account(
        self, request: Request[Any, Any, Any], account_id: int, actor: Actor, runtime: Runtime
    ) -> Response[Any]:
        role = require_treasurer(request, actor)
        return self._account_page(request, actor, runtime, role, account_id, None, FormErrors())

    @post("/accounts/{account_id:int}", sync_to_thread=True, status_code=303)
    def update_account(
        self,
        request: Request[Any, Any, Any],
        account_id: int,
        data: Form,
        actor: Actor,
        runtime: Runtime,
    ) -> Response[Any]:
        role = require_treasurer(request, actor)
        values = {name: text(data, name, limit=40) for name in ("min_balance", "max_balance", "status")}
        errors = FormErrors()
        scale = runtime.read(lambda conn: _coop(conn, role).scale)
        low = parse_limit(
            values["min_balance"], scale=scale, errors=errors, name="min_balance", negative=True
        )
        high = parse_limit(
            values["max_balance"], scale=scale, errors=errors, name="max_balance", negative=False
        )
        if values["status"] not in {"active", "frozen", "closed"}:
            errors.add("status", "Pick active, frozen or closed")
        if not errors:
            changes: dict[str, object] = {
                "min_balance": low,
                "max_balance": high,
                "status": values["status"],
            }

            def fn(conn: Connection) -> queries.AccountView:
                view = queries.account_for_reader(conn, actor=actor, account_id=account_id)
                if view.ledger_id != role.ledger_id:
                    raise DomainError("account_not_found", "no such account")
                return queries.update_account(conn, actor=actor, account_id=account_id, changes=changes)

            try:
                view = runtime.write(fn)
            except DomainError as exc:
                explain(exc, errors)
            else:
                session.flash(request, f"Saved the limits and status of {view.holder}.")
                return see_other(f"/treasurer/accounts/{account_id}")
        return self._account_page(request, actor, runtime, role, account_id, values, errors, 422)

    # --- record an exchange for someone offline --------------------------------------------

    def _record_page(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        runtime: Runtime,
        role: CoopRole,
        values: dict[str, str],
        errors: FormErrors,
        status: int = 200,
    ) -> Response[Any]:
        entries = runtime.read(lambda conn: directory(all_accounts(conn, role.ledger_id)))
        today = runtime.clock().date().isoformat()
        return render(
            "treasurer_record.html",
            status=status,
            **layout(
                request,
                actor,
                values=values,
                errors=errors,
                entries=[e for e in entries if e.status == ACTIVE],
                today=today,
            ),
        )

    @get("/exchanges/new", sync_to_thread=True)
    def record_form(self, request: Request[Any, Any, Any], actor: Actor, runtime: Runtime) -> Response[Any]:
        role = require_treasurer(request, actor)
        values = {"key": new_form_key(), "date": runtime.clock().date().isoformat()}
        return self._record_page(request, actor, runtime, role, values, FormErrors())

    @post("/exchanges", sync_to_thread=True, status_code=303)
    def record(
        self, request: Request[Any, Any, Any], data: Form, actor: Actor, runtime: Runtime
    ) -> Response[Any]:
        role = require_treasurer(request, actor)
        values = {
            n: text(data, n, limit=600)
            for n in ("helper", "helped", "hours", "category", "date", "note", "key")
        }
        if not values["key"].startswith("web-"):
            values["key"] = new_form_key()
        now = runtime.clock()
        errors = FormErrors()

        def prepare(conn: Connection) -> tuple[int, int, int] | None:
            coop = _coop(conn, role)
            entries = directory(all_accounts(conn, role.ledger_id))
            found = {}
            for name, what in (("helper", "who gave the help"), ("helped", "who received it")):
                entry = find_entry(entries, values[name])
                if entry is None:
                    errors.add(name, f"Pick the member {what} from the list")
                found[name] = entry
            amount = parse_hours(values["hours"], scale=coop.scale, errors=errors)
            helper, helped = found["helper"], found["helped"]
            if helper is not None and helped is not None and helper.account_id == helped.account_id:
                errors.add("helped", "Pick two different members")
            if errors or helper is None or helped is None or amount is None:
                return None
            return helped.account_id, helper.account_id, amount

        prepared = runtime.read(prepare)
        occurred = parse_day(values["date"], today=now.date(), errors=errors)
        if errors or prepared is None or occurred is None:
            return self._record_page(request, actor, runtime, role, values, errors, 422)
        payer, payee, amount = prepared
        request_input = TransferInput(
            payer, payee, amount, values["note"] or None, values["category"][:64] or None, occurred
        )

        try:
            stored = post_exchange(
                runtime,
                actor=actor,
                request=request_input,
                values=values,
                path="/treasurer/exchanges",
                now=now,
            )
        except DomainError as exc:
            explain(
                exc,
                errors,
                fields={"payer": "helped", "payee": "helper"},
                words={"payer": values["helped"], "payee": values["helper"]},
            )
            return self._record_page(request, actor, runtime, role, values, errors, 422)
        session.flash(
            request,
            f"Recorded: {values['helper']} helped {values['helped']} for {values['hours']} hours "
            f"(transfer no. {stored.body['id']}).",
        )
        return see_other("/treasurer/transfers")

    # --- reconciliation ------------------------------------------------------------------

    @get("/reconciliation", sync_to_thread=True)
    def reconciliation(
        self, request: Request[Any, Any, Any], actor: Actor, runtime: Runtime
    ) -> Response[Any]:
        role = require_treasurer(request, actor)
        now = runtime.clock()
        with reconcile.snapshot(runtime.engine) as conn:
            report = reconcile.reconciliation_report(conn, actor=actor, slug=role.slug, now=now)
        return render("treasurer_reconciliation.html", **layout(request, actor, report=report))

    @get("/trial-balance.csv", sync_to_thread=True)
    def trial_balance_csv(
        self, request: Request[Any, Any, Any], actor: Actor, runtime: Runtime
    ) -> Response[bytes]:
        role = require_treasurer(request, actor)
        now = runtime.clock()
        with reconcile.snapshot(runtime.engine) as conn:
            tb = statements.trial_balance(conn, actor=actor, slug=role.slug, at=now)
        return Response(
            content=statements.trial_balance_csv(tb),
            media_type="text/csv; charset=utf-8",
            headers={
                "Content-Disposition": f'attachment; filename="trial-balance-{role.slug}.csv"',
                "Cache-Control": "no-store",
            },
        )

    # --- transfers and reversals -----------------------------------------------------------

    @get("/transfers", sync_to_thread=True)
    def transfers(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        runtime: Runtime,
        before: int | None = None,
    ) -> Response[Any]:
        role = require_treasurer(request, actor)

        def fn(conn: Connection) -> tuple[Any, list[Any], int | None, dict[int, str]]:
            coop = _coop(conn, role)
            records, last = queries.list_transfers(
                conn, actor=actor, account_id=None, status=None, cursor=before, limit=PAGE
            )
            names = {e.account_id: e.holder for e in directory(all_accounts(conn, role.ledger_id))}
            return coop, [r for r in records if r.ledger_id == role.ledger_id], last, names

        coop, records, last, names = runtime.read(fn)
        reversed_ids = {r.reverses_id for r in records if r.reverses_id is not None}
        return render(
            "treasurer_transfers.html",
            **layout(
                request,
                actor,
                coop=coop,
                records=records,
                next_before=last,
                names=names,
                reversed_ids=reversed_ids,
            ),
        )

    def _reverse_page(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        runtime: Runtime,
        role: CoopRole,
        transfer_id: int,
        values: dict[str, str],
        errors: FormErrors,
        status: int = 200,
    ) -> Response[Any]:
        def fn(conn: Connection) -> tuple[Any, Any, dict[int, str]]:
            record = service.get_transfer(conn, transfer_id)
            if record.ledger_id != role.ledger_id:
                raise DomainError("transfer_not_found", "no such transfer")
            names = {e.account_id: e.holder for e in directory(all_accounts(conn, role.ledger_id))}
            return _coop(conn, role), record, names

        coop, record, names = runtime.read(fn)
        return render(
            "treasurer_reverse.html",
            status=status,
            **layout(request, actor, coop=coop, record=record, names=names, values=values, errors=errors),
        )

    @get("/transfers/{transfer_id:int}/reverse", sync_to_thread=True)
    def reverse_form(
        self, request: Request[Any, Any, Any], transfer_id: int, actor: Actor, runtime: Runtime
    ) -> Response[Any]:
        role = require_treasurer(request, actor)
        return self._reverse_page(
            request, actor, runtime, role, transfer_id, {"key": new_form_key()}, FormErrors()
        )

    @post("/transfers/{transfer_id:int}/reverse", sync_to_thread=True, status_code=303)
    def reverse(
        self,
        request: Request[Any, Any, Any],
        transfer_id: int,
        data: Form,
        actor: Actor,
        runtime: Runtime,
    ) -> Response[Any]:
        role = require_treasurer(request, actor)
        values = {"reason": text(data, "reason", limit=600), "key": text(data, "key", limit=60)}
        if not values["key"].startswith("web-"):
            values["key"] = new_form_key()
        errors = FormErrors()
        if not values["reason"]:
            errors.add("reason", "Say why, for the members reading their statements")
        elif len(values["reason"]) > 400:
            errors.add("reason", "Keep the reason under 400 characters")
        if errors:
            return self._reverse_page(request, actor, runtime, role, transfer_id, values, errors, 422)
        now = runtime.clock()

        def command(conn: Connection) -> tuple[int, Any]:
            original = service.get_transfer(conn, transfer_id)
            if original.ledger_id != role.ledger_id:
                raise DomainError("transfer_not_found", "no such transfer")
            record = service.reverse_transfer(
                conn, actor=actor, transfer_id=transfer_id, reason=values["reason"], now=now
            )
            return 201, {"id": record.id}

        try:
            stored = idempotency.run_idempotent(
                runtime.engine,
                user_id=actor.user_id,
                key=values["key"],
                request_hash=idempotency.fingerprint(
                    "POST",
                    f"/treasurer/transfers/{transfer_id}/reverse",
                    {"reason": values["reason"]},
                ),
                now=now,
                command=command,
            )
        except DomainError as exc:
            if exc.code == "transfer_not_found":
                raise
            explain(exc, errors, fields={"memo": "reason"})
            return self._reverse_page(request, actor, runtime, role, transfer_id, values, errors, 422)
        session.flash(request, f"Transfer no. {transfer_id} is reversed by transfer no. {stored.body['id']}.")
        return see_other("/treasurer/transfers")
