"""Federations, their member co-ops and officers; obligations; clearing runs; cross-co-op
payment records."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from litestar import Controller, Response, get, patch, post
from litestar.params import Parameter
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from accounts.actor import Actor
from api import present
from api import present_federation as pf
from api import schemas as s
from api import schemas_federation as fs
from api.runtime import Runtime
from clearing import obligations as ob
from clearing import runs
from clearing import service as fed
from clearing.crosspay import get_cross_coop_payment
from clearing.obligation_csv import CsvHeaderError, ObligationInput, parse_obligations_csv
from clearing.rates import RateError, parse_rate
from ledger import queries
from ledger.errors import DomainError, Problem

T = TypeVar("T")

# Bulk import of obligations: a CSV of up to 16 MiB (about 300,000 rows) per request.
IMPORT_MAX_BODY_BYTES = 16 * 1024 * 1024
OBLIGATION_STATUS = "^(pending_confirmation|confirmed|disputed|cancelled|settled)$"


def _write(runtime: Runtime, fn: Callable[[Connection], T]) -> T:
    """One unit of work. Two requests creating the same thing at once (an external_id, a
    membership, a slug) meet at a unique index: the loser gets 409 and, on retry, the
    winner's result or a precise refusal. Any other integrity error is a bug and stays a 500."""
    try:
        return runtime.write(fn)
    except IntegrityError as exc:
        unique = getattr(exc.orig, "sqlstate", None) == "23505" or "UNIQUE constraint failed" in str(exc.orig)
        if unique:
            raise DomainError(
                "conflict", "another request changed the same thing at the same time; retry"
            ) from exc
        raise


def _limit(limit: int) -> int:
    return queries.check_limit(limit)


class FederationController(Controller):
    path = "/federations"
    tags = ["federations"]

    @post("/", sync_to_thread=True, status_code=201)
    def create(self, data: fs.FederationCreate, actor: Actor, runtime: Runtime) -> fs.FederationOut:
        """Create a federation with its own ledger (admin)."""
        now = runtime.clock()
        record = _write(
            runtime,
            lambda conn: fed.create_federation(
                conn,
                actor=actor,
                slug=data.slug,
                name=data.name,
                unit_code=data.unit.code,
                scale=data.unit.scale,
                now=now,
            ),
        )
        return pf.federation(record)

    @get("/{slug:str}", sync_to_thread=True)
    def read(self, slug: str, actor: Actor, runtime: Runtime) -> fs.FederationOut:
        """Admins, officers and anyone with a role in a member co-op."""

        def fn(conn: Connection) -> fed.FederationRecord:
            federation = fed.get_federation(conn, slug)
            fed.require_reader(conn, actor, federation)
            return federation

        return pf.federation(runtime.read(fn))

    @post("/{slug:str}/officers", sync_to_thread=True, status_code=201)
    def appoint(self, slug: str, data: fs.OfficerCreate, actor: Actor, runtime: Runtime) -> fs.OfficerOut:
        """Appoint an existing user as officer (admin)."""
        now = runtime.clock()

        def fn(conn: Connection) -> fs.OfficerOut:
            federation = fed.get_federation(conn, slug)
            user_id = fed.appoint_officer(conn, actor=actor, federation=federation, email=data.email, now=now)
            found = next(o for o in fed.list_officers(conn, federation) if o[0] == user_id)
            return fs.OfficerOut(user_id=str(found[0]), email=found[1], name=found[2])

        return _write(runtime, fn)

    @get("/{slug:str}/officers", sync_to_thread=True)
    def officers(self, slug: str, actor: Actor, runtime: Runtime) -> fs.OfficerList:
        def fn(conn: Connection) -> fs.OfficerList:
            federation = fed.get_federation(conn, slug)
            fed.require_reader(conn, actor, federation)
            return fs.OfficerList(
                items=[
                    fs.OfficerOut(user_id=str(i), email=e, name=n)
                    for i, e, n in fed.list_officers(conn, federation)
                ]
            )

        return runtime.read(fn)

    @post("/{slug:str}/members", sync_to_thread=True, status_code=201)
    def join(self, slug: str, data: fs.MemberJoin, actor: Actor, runtime: Runtime) -> fs.FederationMemberOut:
        """A co-op joins at a fixed rate (admin or officer); min_balance/max_balance are its
        limits in the federation ledger (default: min 0, no maximum)."""
        try:
            rate = parse_rate(data.rate)
        except RateError as exc:
            raise DomainError(
                "validation_failed", str(exc), [Problem("validation_failed", str(exc), "rate")]
            ) from exc
        now = runtime.clock()

        def fn(conn: Connection) -> fs.FederationMemberOut:
            federation = fed.get_federation(conn, slug)
            scale = federation.scale
            record = fed.join_federation(
                conn,
                requester=actor,
                federation=federation,
                coop_slug=data.coop,
                rate=rate,
                min_balance=present.optional_amount_in(
                    data.min_balance, scale=scale, field="min_balance", allow_negative=True
                ),
                max_balance=present.optional_amount_in(
                    data.max_balance, scale=scale, field="max_balance", allow_negative=True
                ),
                now=now,
            )
            return pf.member(record, federation, full=True)

        return _write(runtime, fn)

    @get("/{slug:str}/members", sync_to_thread=True)
    def members(
        self,
        slug: str,
        actor: Actor,
        runtime: Runtime,
        cursor: str | None = None,
        limit: int = Parameter(default=queries.DEFAULT_PAGE, ge=1, le=queries.MAX_PAGE),
    ) -> fs.FederationMemberPage:
        """Member co-ops with their rates; officers and admins also see every federation
        account, a treasurer its own co-op's."""

        def fn(conn: Connection) -> fs.FederationMemberPage:
            federation = fed.get_federation(conn, slug)
            found = fed.require_reader(conn, actor, federation)
            page = fed.list_members(
                conn, federation, cursor=queries.decode_cursor(cursor), limit=_limit(limit) + 1
            )
            last = page[limit - 1].member_id if len(page) > limit else None
            items = [
                pf.member(
                    m,
                    federation,
                    full=found.officer or found.admin or m.coop_id in found.treasurer_of,
                )
                for m in page[:limit]
            ]
            return fs.FederationMemberPage(items=items, next_cursor=present.cursor(last))

        return runtime.read(fn)

    @get("/{slug:str}/members/{coop:str}", sync_to_thread=True)
    def member(self, slug: str, coop: str, actor: Actor, runtime: Runtime) -> fs.FederationMemberOut:
        def fn(conn: Connection) -> fs.FederationMemberOut:
            federation = fed.get_federation(conn, slug)
            found = fed.require_reader(conn, actor, federation)
            record = fed.get_member(conn, federation, coop)
            full = found.officer or found.admin or record.coop_id in found.treasurer_of
            return pf.member(record, federation, full=full)

        return runtime.read(fn)

    @get("/{slug:str}/members/{coop:str}/postings", sync_to_thread=True)
    def member_postings(
        self,
        slug: str,
        coop: str,
        actor: Actor,
        runtime: Runtime,
        cursor: str | None = None,
        limit: int = Parameter(default=queries.DEFAULT_PAGE, ge=1, le=queries.MAX_PAGE),
    ) -> s.PostingPage:
        """Statement lines of a co-op's account in the federation ledger, oldest first
        (officers and admins; the co-op's own treasurer)."""

        def fn(conn: Connection) -> s.PostingPage:
            federation = fed.get_federation(conn, slug)
            found = fed.require_reader(conn, actor, federation)
            record = fed.get_member(conn, federation, coop)
            if not (found.officer or found.admin or record.coop_id in found.treasurer_of):
                raise DomainError(
                    "forbidden",
                    "only officers and the co-op's treasurer see its federation account",
                )
            rows, last = queries.list_postings(
                conn,
                account_id=record.account_id,
                start=None,
                end=None,
                cursor=queries.decode_cursor(cursor),
                limit=_limit(limit),
            )
            return s.PostingPage(
                items=[present.posting(p, scale=federation.scale) for p in rows],
                next_cursor=present.cursor(last),
            )

        return runtime.read(fn)

    @patch("/{slug:str}/members/{coop:str}", sync_to_thread=True)
    def update_member(
        self, slug: str, coop: str, data: fs.MemberPatch, actor: Actor, runtime: Runtime
    ) -> fs.FederationMemberOut:
        """An officer sets a co-op's limits in the federation ledger, or freezes its account."""

        def fn(conn: Connection) -> fs.FederationMemberOut:
            federation = fed.get_federation(conn, slug)
            changes: dict[str, Any] = {}
            for name in data.model_fields_set:
                value = getattr(data, name)
                if name == "status":
                    if value is None:
                        raise DomainError("validation_failed", "status cannot be null")
                    changes[name] = value
                else:
                    changes[name] = present.optional_amount_in(
                        value, scale=federation.scale, field=name, allow_negative=True
                    )
            record = fed.update_member_account(
                conn, requester=actor, federation=federation, coop_slug=coop, changes=changes
            )
            return pf.member(record, federation, full=True)

        return _write(runtime, fn)

    # --- obligations --------------------------------------------------------------------

    @post("/{slug:str}/obligations", sync_to_thread=True, status_code=201)
    def record_obligation(
        self, slug: str, data: fs.ObligationCreate, actor: Actor, runtime: Runtime
    ) -> Response[fs.ObligationOut]:
        """Record what one member co-op owes another (treasurer of either). 201 when new; 200
        with the existing obligation when this external_id was already recorded the same way."""
        now = runtime.clock()

        def fn(conn: Connection) -> tuple[fs.ObligationOut, bool]:
            federation = fed.get_federation(conn, slug)
            amount = present.amount_in(data.amount, scale=federation.scale, field="amount")
            record, created = ob.record_obligation(
                conn,
                requester=actor,
                federation=federation,
                data=ObligationInput(
                    data.external_id,
                    data.debtor,
                    data.creditor,
                    amount,
                    data.due_on,
                    data.reference,
                ),
                now=now,
            )
            return pf.obligation(record, federation), created

        body, created = _write(runtime, fn)
        return Response(content=body, status_code=201 if created else 200)

    @post(
        "/{slug:str}/obligations/import",
        sync_to_thread=True,
        status_code=200,
        request_max_body_size=IMPORT_MAX_BODY_BYTES,
    )
    def import_obligations(self, slug: str, body: bytes, actor: Actor, runtime: Runtime) -> fs.ImportOut:
        """Import a CSV (`text/csv`, up to 16 MiB): header `id,debtor,creditor,amount` or
        `debtor,creditor,amount` (ids are then row numbers), optional `due_on,reference`;
        debtor and creditor are co-op slugs, amounts in the federation unit. An officer imports
        the federation's record; a treasurer rows of its own co-op. Each row is recorded or
        refused on its own; refused rows are reported by line."""
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DomainError("validation_failed", "the file must be UTF-8 text") from exc
        now = runtime.clock()

        def fn(conn: Connection) -> fs.ImportOut:
            federation = fed.get_federation(conn, slug)
            fed.require_reader(conn, actor, federation)
            try:
                rows, problems = parse_obligations_csv(text, scale=federation.scale)
            except CsvHeaderError as exc:
                raise DomainError("validation_failed", str(exc)) from exc
            result = ob.import_obligations(
                conn, requester=actor, federation=federation, rows=rows, problems=problems, now=now
            )
            return fs.ImportOut(
                created=result.created,
                unchanged=result.unchanged,
                refused=result.refused,
                problems=[
                    fs.ImportProblemOut(line=p.line, id=p.external_id, code=p.code, message=p.message)
                    for p in result.problems
                ],
            )

        return _write(runtime, fn)

    @get("/{slug:str}/obligations", sync_to_thread=True)
    def obligations(
        self,
        slug: str,
        actor: Actor,
        runtime: Runtime,
        status: str | None = Parameter(default=None, pattern=OBLIGATION_STATUS),
        coop: str | None = None,
        cursor: str | None = None,
        limit: int = Parameter(default=queries.DEFAULT_PAGE, ge=1, le=queries.MAX_PAGE),
    ) -> fs.ObligationPage:
        """Officers: all; a treasurer: its own co-op's (as debtor or creditor); members: 403."""

        def fn(conn: Connection) -> fs.ObligationPage:
            federation = fed.get_federation(conn, slug)
            records, last = ob.list_obligations(
                conn,
                requester=actor,
                federation=federation,
                status=status,
                coop_slug=coop,
                cursor=queries.decode_cursor(cursor),
                limit=_limit(limit),
            )
            return fs.ObligationPage(
                items=[pf.obligation(r, federation) for r in records],
                next_cursor=present.cursor(last),
            )

        return runtime.read(fn)

    # --- clearing runs ------------------------------------------------------------------

    @post("/{slug:str}/clearing-runs", sync_to_thread=True, status_code=201)
    def propose_run(self, slug: str, data: fs.RunCreate, actor: Actor, runtime: Runtime) -> fs.RunOut:
        """Propose a clearing run over the confirmed obligations with something remaining
        (officer). Nothing changes until it is applied."""
        now = runtime.clock()

        def fn(conn: Connection) -> fs.RunOut:
            federation = fed.get_federation(conn, slug)
            record = runs.propose_run(
                conn,
                requester=actor,
                federation=federation,
                period=data.period,
                settle_with_credit=data.settle_with_credit,
                now=now,
            )
            return pf.run(runs.view_run(conn, requester=actor, run_id=record.id))

        return _write(runtime, fn)

    @get("/{slug:str}/clearing-runs", sync_to_thread=True)
    def list_runs(
        self,
        slug: str,
        actor: Actor,
        runtime: Runtime,
        cursor: str | None = None,
        limit: int = Parameter(default=queries.DEFAULT_PAGE, ge=1, le=queries.MAX_PAGE),
    ) -> fs.RunPage:
        """Newest first. Totals are shown to officers only."""

        def fn(conn: Connection) -> fs.RunPage:
            federation = fed.get_federation(conn, slug)
            records, scope, last = runs.list_runs(
                conn,
                requester=actor,
                federation=federation,
                cursor=queries.decode_cursor(cursor),
                limit=_limit(limit),
            )
            return fs.RunPage(
                items=[pf.run_summary(r, federation, full=scope is None) for r in records],
                next_cursor=present.cursor(last),
            )

        return runtime.read(fn)


def _run_id(text: str) -> int:
    return present.id_in(text, code="clearing_run_not_found", what="clearing run")


class ClearingRunController(Controller):
    path = "/clearing-runs"
    tags = ["clearing"]

    @get("/{run_id:str}", sync_to_thread=True)
    def read(self, run_id: str, actor: Actor, runtime: Runtime) -> fs.RunOut:
        """Officers see the whole run; a treasurer its own co-op's part (no totals)."""
        rid = _run_id(run_id)
        return runtime.read(lambda conn: pf.run(runs.view_run(conn, requester=actor, run_id=rid)))

    @get("/{run_id:str}/items", sync_to_thread=True)
    def items(
        self,
        run_id: str,
        actor: Actor,
        runtime: Runtime,
        coop: str | None = None,
        cursor: str | None = None,
        limit: int = Parameter(default=queries.DEFAULT_PAGE, ge=1, le=queries.MAX_PAGE),
    ) -> fs.RunItemPage:
        """Per-obligation set-offs and credit payments of the run."""
        rid = _run_id(run_id)

        def fn(conn: Connection) -> fs.RunItemPage:
            _run, federation, rows, last = runs.run_items(
                conn,
                requester=actor,
                run_id=rid,
                coop_slug=coop,
                cursor=queries.decode_cursor(cursor),
                limit=_limit(limit),
            )
            return fs.RunItemPage(
                items=[pf.run_item(i, scale=federation.scale) for i in rows],
                next_cursor=present.cursor(last),
            )

        return runtime.read(fn)

    @get("/{run_id:str}/report.csv", sync_to_thread=True, media_type="text/csv")
    def report(self, run_id: str, actor: Actor, runtime: Runtime) -> Response[str]:
        """The per-co-op report as CSV (a treasurer gets its own co-op's line)."""
        rid = _run_id(run_id)

        def fn(conn: Connection) -> str:
            run, federation, scope = runs.run_for(conn, requester=actor, run_id=rid)
            return pf.report_csv(runs.participants(conn, run.id, scope), scale=federation.scale)

        content = runtime.read(fn)
        return Response(
            content=content,
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="clearing-run-{rid}.csv"'},
        )

    @post("/{run_id:str}/apply", sync_to_thread=True, status_code=200)
    def apply(self, run_id: str, actor: Actor, runtime: Runtime) -> fs.RunOut:
        """Apply a proposed run in one transaction (officer); 409 stale_clearing_run if any of
        its obligations changed since. Applying an applied run returns it unchanged."""
        rid = _run_id(run_id)
        now = runtime.clock()

        def fn(conn: Connection) -> fs.RunOut:
            runs.apply_run(conn, requester=actor, run_id=rid, now=now)
            return pf.run(runs.view_run(conn, requester=actor, run_id=rid))

        return _write(runtime, fn)

    @post("/{run_id:str}/cancel", sync_to_thread=True, status_code=200)
    def cancel(self, run_id: str, actor: Actor, runtime: Runtime) -> fs.RunOut:
        rid = _run_id(run_id)
        now = runtime.clock()

        def fn(conn: Connection) -> fs.RunOut:
            runs.cancel_run(conn, requester=actor, run_id=rid, now=now)
            return pf.run(runs.view_run(conn, requester=actor, run_id=rid))

        return _write(runtime, fn)


def _obligation_id(text: str) -> int:
    return present.id_in(text, code="obligation_not_found", what="obligation")


class ObligationController(Controller):
    path = "/obligations"
    tags = ["obligations"]

    def _answer(self, runtime: Runtime, fn: Callable[[Connection], ob.ObligationRecord]) -> fs.ObligationOut:
        def run(conn: Connection) -> fs.ObligationOut:
            record = fn(conn)
            return pf.obligation(record, fed.federation_by_id(conn, record.federation_id))

        return _write(runtime, run)

    @get("/{obligation_id:str}", sync_to_thread=True)
    def read(self, obligation_id: str, actor: Actor, runtime: Runtime) -> fs.ObligationOut:
        oid = _obligation_id(obligation_id)

        def fn(conn: Connection) -> fs.ObligationOut:
            record, _ = ob.obligation_for(conn, requester=actor, obligation_id=oid)
            return pf.obligation(record, fed.federation_by_id(conn, record.federation_id))

        return runtime.read(fn)

    @post("/{obligation_id:str}/confirm", sync_to_thread=True, status_code=200)
    def confirm(self, obligation_id: str, actor: Actor, runtime: Runtime) -> fs.ObligationOut:
        """The debtor's treasurer confirms (a pending or disputed obligation)."""
        oid, now = _obligation_id(obligation_id), runtime.clock()
        return self._answer(
            runtime,
            lambda conn: ob.confirm_obligation(conn, requester=actor, obligation_id=oid, now=now),
        )

    @post("/{obligation_id:str}/dispute", sync_to_thread=True, status_code=200)
    def dispute(
        self,
        obligation_id: str,
        actor: Actor,
        runtime: Runtime,
        data: fs.ObligationNote | None = None,
    ) -> fs.ObligationOut:
        """The debtor's treasurer disputes (a pending one, or a confirmed one that no clearing
        has touched)."""
        oid, now = _obligation_id(obligation_id), runtime.clock()
        reason = data.reason if data else None
        return self._answer(
            runtime,
            lambda conn: ob.dispute_obligation(
                conn, requester=actor, obligation_id=oid, reason=reason, now=now
            ),
        )

    @post("/{obligation_id:str}/cancel", sync_to_thread=True, status_code=200)
    def cancel(
        self,
        obligation_id: str,
        actor: Actor,
        runtime: Runtime,
        data: fs.ObligationNote | None = None,
    ) -> fs.ObligationOut:
        """The creditor's treasurer waives an open obligation; whoever entered one may withdraw
        it while no clearing has touched it."""
        oid, now = _obligation_id(obligation_id), runtime.clock()
        reason = data.reason if data else None
        return self._answer(
            runtime,
            lambda conn: ob.cancel_obligation(
                conn, requester=actor, obligation_id=oid, reason=reason, now=now
            ),
        )


@get("/cross-coop-payments/{transaction_id:str}", sync_to_thread=True, tags=["transfers"])
def read_cross_coop_payment(transaction_id: str, actor: Actor, runtime: Runtime) -> fs.CrossCoopPaymentOut:
    """The three legs of a cross-co-op payment with the rates used (its payer, its payee, the
    treasurers of both co-ops and the federation's officers)."""
    if len(transaction_id) > 36:
        raise DomainError("not_found", "no such cross-co-op payment")
    return pf.cross_coop_payment(
        runtime.read(lambda conn: get_cross_coop_payment(conn, actor=actor, transaction_id=transaction_id))
    )


FEDERATION_HANDLERS: list[Any] = [
    FederationController,
    ClearingRunController,
    ObligationController,
    read_cross_coop_payment,
]
