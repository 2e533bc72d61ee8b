"""One account: its state, limits, statement lines and balance at a moment."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, get, patch
from litestar.params import Parameter, QueryParameter
from sqlalchemy.engine import Connection

from accounts.actor import Actor
from api import present
from api import schemas as s
from api.runtime import Runtime
from ledger import queries
from ledger.errors import DomainError


class AccountController(Controller):
    path = "/accounts"
    tags = ["accounts"]

    @get("/{account_id:str}", sync_to_thread=True)
    def read(self, account_id: str, actor: Actor, runtime: Runtime) -> s.AccountOut:
        aid = present.id_in(account_id)
        return present.account(
            runtime.read(lambda conn: queries.account_for_reader(conn, actor=actor, account_id=aid))
        )

    @patch("/{account_id:str}", sync_to_thread=True)
    def update(self, account_id: str, data: s.AccountPatch, actor: Actor, runtime: Runtime) -> s.AccountOut:
        aid = present.id_in(account_id)

        def fn(conn: Connection) -> queries.AccountView:
            view = queries.account_for_reader(conn, actor=actor, account_id=aid)
            changes: dict[str, object] = {}
            for name in data.model_fields_set:
                value = getattr(data, name)
                if name == "status":
                    if value is None:
                        raise DomainError("validation_failed", "status cannot be null")
                    changes[name] = value
                else:
                    changes[name] = present.optional_amount_in(
                        value, scale=view.scale, field=name, allow_negative=True
                    )
            return queries.update_account(conn, actor=actor, account_id=aid, changes=changes)

        return present.account(runtime.write(fn))

    @get("/{account_id:str}/postings", sync_to_thread=True)
    def postings(
        self,
        account_id: str,
        actor: Actor,
        runtime: Runtime,
        from_: Annotated[str | None, QueryParameter(name="from")] = None,
        to: str | None = None,
        cursor: str | None = None,
        limit: int = Parameter(default=queries.DEFAULT_PAGE, ge=1, le=queries.MAX_PAGE),
        order: str = Parameter(default="asc", pattern="^(asc|desc)$"),
    ) -> s.PostingPage:
        """Statement lines, oldest first (`order=desc` for newest first), each with balance_after."""
        aid = present.id_in(account_id)
        start = present.iso_datetime(from_, field="from")
        end = present.iso_datetime(to, field="to")

        def fn(conn: Connection) -> s.PostingPage:
            view = queries.account_for_reader(conn, actor=actor, account_id=aid)
            rows, last = queries.list_postings(
                conn,
                account_id=aid,
                start=start,
                end=end,
                cursor=queries.decode_cursor(cursor),
                limit=queries.check_limit(limit),
                descending=order == "desc",
            )
            return s.PostingPage(
                items=[present.posting(p, scale=view.scale) for p in rows], next_cursor=present.cursor(last)
            )

        return runtime.read(fn)

    @get("/{account_id:str}/balance", sync_to_thread=True)
    def balance(self, account_id: str, actor: Actor, runtime: Runtime, at: str | None = None) -> s.BalanceOut:
        aid = present.id_in(account_id)
        moment = present.iso_datetime(at, field="at") or runtime.clock()

        def fn(conn: Connection) -> s.BalanceOut:
            view = queries.account_for_reader(conn, actor=actor, account_id=aid)
            amount = queries.balance_at(conn, account_id=aid, at=moment)
            return s.BalanceOut(
                account=str(aid), at=moment, balance=present.format_amount(amount, scale=view.scale)
            )

        return runtime.read(fn)
