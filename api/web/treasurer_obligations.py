"""A treasurer's view of the co-op's obligations at its federation: what it owes and is owed,
and the ones waiting for its word, which it confirms or disputes.

The same service functions as the API (clearing/obligations.py) decide who may do what; each
action form carries the CSRF token, its own idempotency key (a double tap acts once, and the
retry gets the first answer) and the version of the obligation the treasurer saw, so a decision
is never applied to an obligation that changed after the page was drawn.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from litestar import Controller, Request, Response, get, post
from sqlalchemy.engine import Connection

from accounts.actor import Actor, CoopRole
from api.runtime import Runtime
from api.web import session
from api.web.common import Form, layout, see_other
from api.web.forms import FormErrors, explain, new_form_key, text
from api.web.render import hours, render
from api.web.treasurer import require_treasurer
from clearing import obligations as ob
from clearing import service as fed
from clearing import tables as ct
from ledger import idempotency
from ledger.errors import DomainError

SHOWN = 200
STATUSES = (ob.PENDING, ob.DISPUTED, ob.CONFIRMED, ob.SETTLED, ob.CANCELLED)
ACTIONS = ("confirm", "dispute")


def federation_of(conn: Connection, coop_id: int) -> fed.FederationRecord | None:
    """The federation the co-op belongs to (a co-op joins at most one)."""
    fm = ct.federation_members
    federation_id = conn.execute(sa.select(fm.c.federation_id).where(fm.c.coop_id == coop_id)).scalar()
    return None if federation_id is None else fed.federation_by_id(conn, int(federation_id))


def actions_for(record: ob.ObligationRecord, coop_id: int) -> tuple[str, ...]:
    """What the co-op's treasurer may do with it: the debtor confirms a pending or disputed
    obligation, and disputes a pending one or a confirmed one no clearing has touched (the same
    rules as clearing/obligations.py, which has the last word)."""
    if record.debtor_coop_id != coop_id:
        return ()
    if record.status == ob.PENDING:
        return ("confirm", "dispute")
    if record.status == ob.DISPUTED:
        return ("confirm",)
    if record.status == ob.CONFIRMED and record.remaining == record.amount:
        return ("dispute",)
    return ()


def _describe(record: ob.ObligationRecord, scale: int, unit: str) -> str:
    return (
        f"{record.external_id} ({record.debtor} owes {record.creditor} {hours(record.amount, scale)} {unit})"
    )


class TreasurerObligationController(Controller):
    path = "/treasurer/obligations"

    def _page(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        runtime: Runtime,
        role: CoopRole,
        *,
        status_filter: str | None,
        errors: FormErrors,
        values: dict[str, str] | None = None,
        status: int = 200,
    ) -> Response[Any]:
        def fn(conn: Connection) -> dict[str, Any]:
            federation = federation_of(conn, role.coop_id)
            if federation is None:
                return {"federation": None, "records": [], "waiting": [], "more": False}
            records, more = ob.list_obligations(
                conn,
                requester=actor,
                federation=federation,
                status=status_filter,
                coop_slug=role.slug,
                cursor=None,
                limit=SHOWN,
            )
            waiting, _ = ob.list_obligations(
                conn,
                requester=actor,
                federation=federation,
                status=ob.PENDING,
                coop_slug=role.slug,
                cursor=None,
                limit=SHOWN,
            )
            return {
                "federation": federation,
                "records": records,
                "waiting": [r for r in waiting if r.debtor_coop_id == role.coop_id],
                "more": more is not None,
            }

        data = runtime.read(fn)
        # One idempotency key per rendered action form.
        keys = {
            (r.id, action): new_form_key()
            for r in [*data["waiting"], *data["records"]]
            for action in actions_for(r, role.coop_id)
        }
        return render(
            "treasurer_obligations.html",
            status=status,
            **layout(
                request,
                actor,
                coop_id=role.coop_id,
                coop_slug=role.slug,
                status_filter=status_filter or "",
                statuses=STATUSES,
                keys=keys,
                actions_for=actions_for,
                errors=errors,
                values=values or {},
                **data,
            ),
        )

    @get("/", sync_to_thread=True)
    def obligations(
        self, request: Request[Any, Any, Any], actor: Actor, runtime: Runtime, status: str = ""
    ) -> Response[Any]:
        role = require_treasurer(request, actor)
        return self._page(
            request,
            actor,
            runtime,
            role,
            status_filter=status if status in STATUSES else None,
            errors=FormErrors(),
        )

    @post("/{obligation_id:int}/{action:str}", sync_to_thread=True, status_code=303)
    def act(
        self,
        request: Request[Any, Any, Any],
        obligation_id: int,
        action: str,
        data: Form,
        actor: Actor,
        runtime: Runtime,
    ) -> Response[Any]:
        role = require_treasurer(request, actor)
        if action not in ACTIONS:
            raise DomainError("not_found", "no such action")
        values = {
            "key": text(data, "key", limit=60),
            "version": text(data, "version", limit=20),
            "reason": text(data, "reason", limit=ob.MAX_NOTE + 100),
            "obligation": str(obligation_id),
        }
        if not values["key"].startswith("web-"):
            values["key"] = new_form_key()
        errors = FormErrors()
        if action == "dispute" and len(values["reason"]) > ob.MAX_NOTE:
            errors.add(f"reason-{obligation_id}", f"Keep the reason under {ob.MAX_NOTE} characters")
        if not values["version"].isdigit():
            errors.add(None, "This form is incomplete; reload the page and try again.")
        if errors:
            return self._page(
                request, actor, runtime, role, status_filter=None, errors=errors, values=values, status=422
            )
        seen_version = int(values["version"])
        now = runtime.clock()

        def command(conn: Connection) -> tuple[int, Any]:
            record, _ = ob.obligation_for(conn, requester=actor, obligation_id=obligation_id)
            if role.coop_id not in (record.debtor_coop_id, record.creditor_coop_id):
                raise DomainError("obligation_not_found", "no such obligation")
            if record.version != seen_version:
                raise DomainError(
                    "conflict", f"obligation {record.external_id} changed after this page was drawn"
                )
            if action == "confirm":
                done = ob.confirm_obligation(conn, requester=actor, obligation_id=obligation_id, now=now)
            else:
                done = ob.dispute_obligation(
                    conn,
                    requester=actor,
                    obligation_id=obligation_id,
                    reason=values["reason"] or None,
                    now=now,
                )
            federation = fed.federation_by_id(conn, done.federation_id)
            return 200, {
                "status": done.status,
                "described": _describe(done, federation.scale, federation.unit_code),
            }

        body = {"action": action, "version": seen_version, "reason": values["reason"]}
        try:
            stored = idempotency.run_idempotent(
                runtime.engine,
                user_id=actor.user_id,
                key=values["key"],
                request_hash=idempotency.fingerprint(
                    "POST", f"/treasurer/obligations/{obligation_id}/{action}", body
                ),
                now=now,
                command=command,
            )
        except DomainError as exc:
            if exc.code.endswith("_not_found"):
                raise
            explain(exc, errors, fields={"note": f"reason-{obligation_id}"})
            return self._page(
                request,
                actor,
                runtime,
                role,
                status_filter=None,
                errors=errors,
                values=values,
                status=exc.status,
            )
        verb = "confirmed" if stored.body["status"] == ob.CONFIRMED else "disputed"
        session.flash(request, f"You {verb} obligation {stored.body['described']}.")
        return see_other("/treasurer/obligations")
