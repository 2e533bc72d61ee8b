"""A member's pages: home, log an exchange, answer claims, statement download."""

from __future__ import annotations

import csv
import io
from datetime import date
from typing import Any

from litestar import Controller, Request, Response, get, post
from sqlalchemy.engine import Connection

from accounts.actor import Actor, CoopRole
from api.runtime import Runtime
from api.web import session
from api.web.common import Form, layout, post_exchange, role_of, see_other
from api.web.forms import FormErrors, explain, new_form_key, parse_day, parse_hours, text
from api.web.render import hours, render
from api.web.views import (
    ACTIVE,
    all_accounts,
    all_postings,
    directory,
    find_entry,
    gauge,
    member_home,
    names,
)
from ledger import service
from ledger.errors import DomainError
from ledger.service import TransferInput

CATEGORIES = [
    "childcare",
    "cooking",
    "gardening",
    "repairs",
    "rides",
    "tutoring",
    "company",
    "other",
]
KINDS = {
    "gave": "I helped someone",
    "received": "Someone helped me",
}


def csv_cell(value: object) -> str:
    """Text a spreadsheet would run as a formula gets a leading apostrophe."""
    s = "" if value is None else str(value)
    return "'" + s if s[:1] in {"=", "+", "-", "@", "\t", "\r"} else s


def require_role(request: Request[Any, Any, Any], actor: Actor) -> CoopRole:
    role = role_of(request, actor)
    if role is None:
        raise DomainError("forbidden", "you are not a member of any co-op")
    return role


class MemberController(Controller):
    path = "/"

    @get("/home", sync_to_thread=True)
    def home(self, request: Request[Any, Any, Any], actor: Actor, runtime: Runtime) -> Response[Any]:
        role = role_of(request, actor)
        if role is None:
            return render("no_coop.html", **layout(request, actor))
        data = runtime.read(lambda conn: member_home(conn, actor=actor, role=role))
        return render("home.html", **layout(request, actor, home=data, gauge=gauge(data.account)))

    @post("/coop", sync_to_thread=False, status_code=303)
    def switch_coop(self, request: Request[Any, Any, Any], data: Form, actor: Actor) -> Response[Any]:
        slug = text(data, "coop", limit=64)
        if any(r.slug == slug for r in actor.roles):
            s = session.data(request)
            s["coop"] = slug
            request.set_session(s)
        return see_other("/home")

    def _exchange_page(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        runtime: Runtime,
        *,
        values: dict[str, str],
        errors: FormErrors,
        status: int = 200,
    ) -> Response[Any]:
        role = require_role(request, actor)
        entries = runtime.read(lambda conn: directory(all_accounts(conn, role.ledger_id)))
        others = [e for e in entries if e.account_id != role.account_id and e.status == ACTIVE]
        return render(
            "exchange.html",
            status=status,
            **layout(
                request,
                actor,
                values=values,
                errors=errors,
                entries=others,
                categories=CATEGORIES,
                kinds=KINDS,
                today=runtime.clock().date().isoformat(),
            ),
        )

    @get("/exchanges/new", sync_to_thread=True)
    def exchange_form(
        self, request: Request[Any, Any, Any], actor: Actor, runtime: Runtime, kind: str = "gave"
    ) -> Response[Any]:
        values = {
            "kind": kind if kind in KINDS else "gave",
            "key": new_form_key(),
            "date": runtime.clock().date().isoformat(),
        }
        return self._exchange_page(request, actor, runtime, values=values, errors=FormErrors())

    @post("/exchanges", sync_to_thread=True, status_code=303)
    def log_exchange(
        self, request: Request[Any, Any, Any], data: Form, actor: Actor, runtime: Runtime
    ) -> Response[Any]:
        role = require_role(request, actor)
        values = {
            name: text(data, name, limit=600)
            for name in ("kind", "member", "hours", "category", "date", "note", "key")
        }
        if values["kind"] not in KINDS:
            values["kind"] = "gave"
        if not values["key"].startswith("web-"):
            values["key"] = new_form_key()
        now = runtime.clock()
        errors = FormErrors()

        def prepare(conn: Connection) -> tuple[int, int] | None:
            from accounts.service import coop_by_ledger

            coop = coop_by_ledger(conn, role.ledger_id)
            assert coop is not None
            entries = directory(all_accounts(conn, role.ledger_id))
            other = find_entry(entries, values["member"])
            if not values["member"]:
                errors.add("member", "Pick the member you exchanged with")
            elif other is None:
                errors.add("member", "Pick a member from the list (start typing their name)")
            elif other.account_id == role.account_id:
                errors.add("member", "You cannot log an exchange with yourself")
            amount = parse_hours(values["hours"], scale=coop.scale, errors=errors)
            if amount is not None and amount > coop.max_transfer_amount:
                errors.add(
                    "hours",
                    f"One exchange can be at most {hours(coop.max_transfer_amount, coop.scale)} hours",
                )
            return None if errors or other is None or amount is None else (other.account_id, amount)

        prepared = runtime.read(prepare)
        occurred = parse_day(values["date"], today=now.date(), errors=errors)
        if len(values["note"]) > 500:
            errors.add("note", "Keep the note under 500 characters")
        if errors or prepared is None or occurred is None:
            return self._exchange_page(request, actor, runtime, values=values, errors=errors, status=422)
        other_id, amount = prepared
        payer, payee = (
            (other_id, role.account_id) if values["kind"] == "gave" else (role.account_id, other_id)
        )
        request_input = TransferInput(
            payer, payee, amount, values["note"] or None, values["category"][:64] or None, occurred
        )

        try:
            stored = post_exchange(
                runtime, actor=actor, request=request_input, values=values, path="/exchanges", now=now
            )
        except DomainError as exc:
            name = values["member"]
            words = {
                "payer": "you" if payer == role.account_id else name,
                "payee": "you" if payee == role.account_id else name,
            }
            explain(exc, errors, words=words)
            return self._exchange_page(request, actor, runtime, values=values, errors=errors, status=422)
        if stored.body["status"] == "pending":
            message = f"Sent: {values['member']} is asked to confirm the {values['hours']} hours you gave."
        else:
            message = f"Done: {values['hours']} hours paid to {values['member']}."
        session.flash(request, message)
        return see_other("/home")

    def _answer(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        runtime: Runtime,
        transfer_id: int,
        action: Any,
        done: str,
    ) -> Response[Any]:
        now = runtime.clock()
        try:
            runtime.write(lambda conn: action(conn, actor=actor, transfer_id=transfer_id, now=now))
        except DomainError as exc:
            errors = explain(exc, FormErrors(), words={"payer": "you", "payee": "they"})
            session.flash(request, " ".join([*errors.general, *errors.fields.values()]))
        else:
            session.flash(request, done)
        return see_other("/home")

    @post("/claims/{transfer_id:int}/accept", sync_to_thread=True, status_code=303)
    def accept(
        self, request: Request[Any, Any, Any], transfer_id: int, actor: Actor, runtime: Runtime
    ) -> Response[Any]:
        return self._answer(
            request,
            actor,
            runtime,
            transfer_id,
            service.accept_claim,
            "Accepted: the hours are posted.",
        )

    @post("/claims/{transfer_id:int}/reject", sync_to_thread=True, status_code=303)
    def reject(
        self, request: Request[Any, Any, Any], transfer_id: int, actor: Actor, runtime: Runtime
    ) -> Response[Any]:
        return self._answer(
            request,
            actor,
            runtime,
            transfer_id,
            service.reject_claim,
            "Declined: nothing was posted.",
        )

    @post("/claims/{transfer_id:int}/cancel", sync_to_thread=True, status_code=303)
    def cancel(
        self, request: Request[Any, Any, Any], transfer_id: int, actor: Actor, runtime: Runtime
    ) -> Response[Any]:
        return self._answer(
            request, actor, runtime, transfer_id, service.cancel_claim, "Your claim is withdrawn."
        )

    @get("/statement.csv", sync_to_thread=True)
    def statement(self, request: Request[Any, Any, Any], actor: Actor, runtime: Runtime) -> Response[bytes]:
        role = require_role(request, actor)

        def fn(conn: Connection) -> tuple[list[Any], dict[int, str], int]:
            from accounts.service import coop_by_ledger

            coop = coop_by_ledger(conn, role.ledger_id)
            assert coop is not None
            return (
                all_postings(conn, role.account_id),
                names(directory(all_accounts(conn, role.ledger_id))),
                coop.scale,
            )

        rows, who, scale = runtime.read(fn)
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(
            ["date", "posted_at", "transfer", "with", "category", "note", "hours", "balance_after"]
        )
        for p in rows:
            writer.writerow(
                [
                    p.occurred_on.isoformat() if isinstance(p.occurred_on, date) else p.occurred_on,
                    p.posted_at.isoformat(),
                    p.transfer_id,
                    csv_cell(who.get(p.counterparty_id, p.counterparty_id)),
                    csv_cell(p.category),
                    csv_cell(p.memo),
                    hours(p.amount, scale).replace("\u2212", "-"),
                    hours(p.balance_after, scale).replace("\u2212", "-"),
                ]
            )
        filename = f"commons-statement-{role.slug}-{role.account_id}.csv"
        return Response(
            content=out.getvalue().encode(),
            media_type="text/csv; charset=utf-8",
            headers={
                "Content-Disposition": f'attachment; filename="{filename}"',
                "Cache-Control": "no-store",
            },
        )
