"""Transfers: pay, claim, answer a claim, reverse, list; and the treasurer's batch import."""

from __future__ import annotations

import functools
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.concurrency import sync_to_thread
from litestar.di import Provide
from litestar.params import HeaderParameter, Parameter
from sqlalchemy.engine import Connection

from accounts import service as accounts
from accounts.actor import Actor
from accounts.tokens import AccessClaims
from api import present
from api import schemas as s
from api.batch import TransferRenderer, item_request_hash
from api.runtime import Runtime, provide_claims
from ledger import idempotency, payment, pg_transfer, queries, service, sqlite_transfer
from ledger.batch import BatchEntry, post_batch
from ledger.core import TransferStatus, validate_text
from ledger.db import is_sqlite
from ledger.errors import DomainError, Problem
from ledger.service import TransferInput, TransferRecord

IdempotencyKey = Annotated[str | None, HeaderParameter(name="Idempotency-Key", required=False)]


def _render(
    conn: Connection, record: TransferRecord, units: dict[int, tuple[str, int]] | None = None
) -> dict[str, Any]:
    units = {} if units is None else units
    if record.ledger_id not in units:
        units[record.ledger_id] = queries.ledger_unit(conn, record.ledger_id)
    code, scale = units[record.ledger_id]
    return present.transfer(record, unit_code=code, scale=scale).model_dump(mode="json")


def _idempotent(
    request: Request[Any, Any, Any],
    runtime: Runtime,
    user_id: int,
    key: str | None,
    body: Any,
    command: Any,
) -> Response[Any]:
    key = idempotency.validate_key(key)
    request_hash = idempotency.fingerprint(request.method, request.url.path, body)
    stored = idempotency.run_idempotent(
        runtime.engine,
        user_id=user_id,
        key=key,
        request_hash=request_hash,
        now=runtime.clock(),
        command=command,
    )
    return _response(stored)


def _response(stored: idempotency.StoredResponse) -> Response[Any]:
    headers = {"Idempotent-Replayed": "true"} if stored.replayed else {}
    return Response(content=stored.body, status_code=stored.status, headers=headers)


def _fast_payment(
    claims: AccessClaims,
    data: s.TransferCreate,
    *,
    payer: int,
    payee: int,
    key: str,
    request_hash: str,
    now: datetime,
) -> payment.Payment | None:
    """The payment for the fast path (ledger.payment: `commons_pay` on PostgreSQL, the driver's
    statements on SQLite), made before any lock is taken; None where only the Python path
    applies (an amount or text it would refuse, a memo that mimics a hole)."""
    amount = payment.decimal_amount(data.amount)
    if amount is None or validate_text(data.memo, data.category):
        return None
    occurred_on = data.occurred_on or now.date()
    transaction_id = str(uuid.uuid4())
    # The response as the Python path renders it (present.transfer), with holes for what only
    # the database knows.
    shape = TransferRecord(
        id=0,
        ledger_id=0,
        transaction_id=transaction_id,
        payer_id=payer,
        payee_id=payee,
        amount=0,
        memo=data.memo,
        category=data.category,
        occurred_on=occurred_on,
        initiator_id=claims.user_id,
        status=TransferStatus.POSTED.value,
        reverses_id=None,
        created_at=now.astimezone(UTC),  # as the database hands it back
        expires_at=None,
        resolved_at=None,
        resolved_by_id=None,
    )
    rendered = present.transfer(shape, unit_code="X", scale=0).model_dump(mode="json")
    rendered["id"], rendered["amount"] = payment.ID, payment.AMOUNT
    rendered["unit"]["code"], rendered["unit"]["scale"] = payment.UNIT_CODE, payment.SCALE
    template = payment.body_template(rendered)
    if template is None:
        return None
    return payment.Payment(
        user_id=claims.user_id,
        token_version=claims.token_version,
        key=key,
        request_hash=request_hash,
        lock_id=idempotency.lock_id(user_id=claims.user_id, key=key),
        payer_id=payer,
        payee_id=payee,
        amount=amount[0],
        decimals=amount[1],
        memo=data.memo,
        category=data.category,
        occurred_on=occurred_on,
        transaction_id=transaction_id,
        now=now,
        body=template,
    )


class TransferController(Controller):
    path = "/transfers"
    tags = ["transfers"]

    # The hot write path. The caller is loaded inside the write transaction (`claims`, not
    # `actor`), so a transfer costs one pooled connection and one transaction, not two. The
    # handler runs on the event loop: SQLite's payment is queued for the group's writer
    # (ledger.sqlite_transfer.pay_async), PostgreSQL's `commons_pay` awaited on an asyncio
    # connection (ledger.pg_transfer.pay_async); only the Python path leaves the loop, for
    # Litestar's worker threads, whose small pool matters: anyio's 40 threads cost PostgreSQL a
    # quarter of its throughput (docs/benchmarks.md, items 16 and 22).
    @post("/", status_code=201, dependencies={"claims": Provide(provide_claims, sync_to_thread=False)})
    async def create(
        self,
        request: Request[Any, Any, Any],
        data: s.TransferCreate,
        claims: AccessClaims,
        runtime: Runtime,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[s.TransferOut]:
        """Pay (you hold the payer account), claim (you hold the payee account), or record as treasurer."""
        payer, payee = present.id_in(data.payer), present.id_in(data.payee)
        now = runtime.clock()
        caller: list[Actor] = []

        def authenticate(conn: Connection) -> None:
            caller.append(accounts.load_actor(conn, claims))

        def command(conn: Connection) -> tuple[int, Any]:
            units = queries.account_units(conn, payer, payee)
            actor = caller[0]
            ledgers = {ledger for ledger, _, _ in units.values()}
            if not actor.is_admin and not any(actor.is_member_of_ledger(lg) for lg in ledgers):
                # None of it is the caller's: answer as for missing ids, before reading the amount.
                raise DomainError("account_not_found", "neither account exists")
            scale = queries.first_scale(units, payer, payee)
            amount = present.amount_in(data.amount, scale=scale, field="amount")
            record = service.create_transfer(
                conn,
                actor=caller[0],
                request=TransferInput(payer, payee, amount, data.memo, data.category, data.occurred_on),
                now=now,
            )
            known = {ledger: (code, places) for ledger, code, places in units.values()}
            return 201, _render(conn, record, known)

        key = idempotency.validate_key(idempotency_key)
        request_hash = idempotency.fingerprint(request.method, request.url.path, data.model_dump(mode="json"))
        engine = runtime.engine
        guarded = functools.partial(
            idempotency.run_guarded,
            engine,
            user_id=claims.user_id,
            key=key,
            request_hash=request_hash,
            now=now,
            command=command,
            before=authenticate,
        )

        with idempotency.key_guard(engine, user_id=claims.user_id, key=key):
            prepared = _fast_payment(
                claims, data, payer=payer, payee=payee, key=key, request_hash=request_hash, now=now
            )
            stored = None
            if prepared is not None:
                if is_sqlite(engine):
                    stored = await sqlite_transfer.pay_async(engine, prepared)
                else:
                    stored = await pg_transfer.pay_async(engine, prepared)
            if stored is None:
                stored = await sync_to_thread(guarded)
        return _response(stored)

    @get("/{transfer_id:str}", sync_to_thread=True)
    def read(self, transfer_id: str, actor: Actor, runtime: Runtime) -> s.TransferOut:
        tid = present.id_in(transfer_id, code="transfer_not_found", what="transfer")

        def fn(conn: Connection) -> dict[str, Any]:
            record = service.get_transfer(conn, tid)
            if not service.visible_to(actor, record):
                raise service.not_yours(actor, record, "only its parties and treasurers may read it")
            return _render(conn, record)

        return s.TransferOut.model_validate(runtime.read(fn))

    @get("/", sync_to_thread=True)
    def list(
        self,
        actor: Actor,
        runtime: Runtime,
        account: str | None = None,
        status: str | None = Parameter(default=None, pattern="^(posted|pending|rejected|cancelled|expired)$"),
        cursor: str | None = None,
        limit: int = Parameter(default=queries.DEFAULT_PAGE, ge=1, le=queries.MAX_PAGE),
    ) -> s.TransferPage:
        account_id = None if account is None else present.id_in(account)

        def fn(conn: Connection) -> s.TransferPage:
            records, last = queries.list_transfers(
                conn,
                actor=actor,
                account_id=account_id,
                status=status,
                cursor=queries.decode_cursor(cursor),
                limit=queries.check_limit(limit),
            )
            units: dict[int, tuple[str, int]] = {}
            return s.TransferPage(
                items=[s.TransferOut.model_validate(_render(conn, r, units)) for r in records],
                next_cursor=present.cursor(last),
            )

        return runtime.read(fn)

    def _answer(self, runtime: Runtime, actor: Actor, transfer_id: str, action: Any) -> s.TransferOut:
        tid = present.id_in(transfer_id, code="transfer_not_found", what="transfer")
        now = runtime.clock()
        body = runtime.write(lambda conn: _render(conn, action(conn, actor=actor, transfer_id=tid, now=now)))
        return s.TransferOut.model_validate(body)

    @post("/{transfer_id:str}/accept", sync_to_thread=True, status_code=200)
    def accept(self, transfer_id: str, actor: Actor, runtime: Runtime) -> s.TransferOut:
        """The payer accepts a claim: it is posted now, within the limits as they are now."""
        return self._answer(runtime, actor, transfer_id, service.accept_claim)

    @post("/{transfer_id:str}/reject", sync_to_thread=True, status_code=200)
    def reject(self, transfer_id: str, actor: Actor, runtime: Runtime) -> s.TransferOut:
        return self._answer(runtime, actor, transfer_id, service.reject_claim)

    @post("/{transfer_id:str}/cancel", sync_to_thread=True, status_code=200)
    def cancel(self, transfer_id: str, actor: Actor, runtime: Runtime) -> s.TransferOut:
        return self._answer(runtime, actor, transfer_id, service.cancel_claim)

    @post("/{transfer_id:str}/reverse", sync_to_thread=True, status_code=201)
    def reverse(
        self,
        request: Request[Any, Any, Any],
        transfer_id: str,
        actor: Actor,
        runtime: Runtime,
        data: s.ReverseIn | None = None,
        idempotency_key: IdempotencyKey = None,
    ) -> Response[s.TransferOut]:
        """A treasurer corrects a posted transfer with a linked transfer the other way."""
        tid = present.id_in(transfer_id, code="transfer_not_found", what="transfer")
        reason = data.reason if data else None
        now = runtime.clock()

        def command(conn: Connection) -> tuple[int, Any]:
            record = service.reverse_transfer(conn, actor=actor, transfer_id=tid, reason=reason, now=now)
            return 201, _render(conn, record)

        body = data.model_dump(mode="json") if data else None
        return _idempotent(request, runtime, actor.user_id, idempotency_key, body, command)


@post(
    "/coops/{slug:str}/transfers/batch",
    sync_to_thread=True,
    status_code=200,
    tags=["transfers"],
    request_max_body_size=4 * 1024 * 1024,
)
def post_transfer_batch(slug: str, data: s.BatchIn, actor: Actor, runtime: Runtime) -> Response[s.BatchOut]:
    """Import many transfers (treasurer). Each item's `id` is its idempotency key; a refused item
    does not stop the others."""
    now = runtime.clock()

    def fn(conn: Connection) -> dict[str, Any]:
        coop = accounts.get_coop(conn, slug)
        if not actor.is_treasurer_of_coop(coop.id):
            raise DomainError("forbidden", "only a treasurer of this co-op may import transfers")
        entries = [_batch_entry(item, scale=coop.scale) for item in data.transfers]
        render = TransferRenderer(unit_code=coop.unit_code, scale=coop.scale)
        results = post_batch(
            conn, actor=actor, ledger_id=coop.ledger_id, entries=entries, now=now, render=render
        )
        # BatchOut's shape from plain values: every body is a TransferOut dump already (rendered
        # or stored), and validating thousands of items into models again bought nothing.
        items = [
            {
                "id": r.key,
                "outcome": r.outcome,
                "transfer": r.body,
                "code": None if r.problem is None else r.problem.code,
                "detail": None if r.problem is None else r.problem.detail,
            }
            for r in results
        ]
        counts = {o: sum(1 for r in results if r.outcome == o) for o in ("posted", "replayed", "refused")}
        return {**counts, "items": items}

    # Two batches racing on one item id that share no account (so neither waited for the other).
    with idempotency.racing_writers(
        "another batch with one of these item ids was being written; send it again"
    ):
        body: Any = runtime.write(fn)  # BatchOut's JSON shape, encoded as it is
    return Response(content=body)


def _batch_entry(item: s.BatchItem, *, scale: int) -> BatchEntry:
    request_hash = item_request_hash(item)
    try:
        payer = present.id_in(item.payer)
        payee = present.id_in(item.payee)
        amount = present.amount_in(item.amount, scale=scale, field="amount")
    except DomainError as exc:
        problem = exc.problems[0] if exc.problems else Problem(exc.code, exc.detail)
        return BatchEntry(item.id, request_hash, None, problem)
    return BatchEntry(
        item.id, request_hash, TransferInput(payer, payee, amount, item.memo, item.category, item.occurred_on)
    )
