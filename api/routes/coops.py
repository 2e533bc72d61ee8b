"""Co-ops, their members and their account directory."""

from __future__ import annotations

from litestar import Controller, get, patch, post
from litestar.params import Parameter
from sqlalchemy.engine import Connection

from accounts import service as accounts
from accounts.actor import Actor, Role
from api import present
from api import schemas as s
from api.runtime import Runtime
from ledger import queries
from ledger.amounts import ABSOLUTE_MAX_AMOUNT
from ledger.errors import DomainError

DEFAULT_MAX_TRANSFER_UNITS = 1000


class CoopController(Controller):
    path = "/coops"
    tags = ["coops"]

    @post("/", sync_to_thread=True, status_code=201)
    def create(self, data: s.CoopCreate, actor: Actor, runtime: Runtime) -> s.CoopOut:
        scale = data.unit.scale
        lo = present.optional_amount_in(
            data.default_min_balance, scale=scale, field="default_min_balance", allow_negative=True
        )
        hi = present.optional_amount_in(
            data.default_max_balance, scale=scale, field="default_max_balance", allow_negative=True
        )
        max_transfer = (
            present.amount_in(data.max_transfer_amount, scale=scale, field="max_transfer_amount")
            if data.max_transfer_amount is not None
            else min(DEFAULT_MAX_TRANSFER_UNITS * 10**scale, ABSOLUTE_MAX_AMOUNT)
        )
        now = runtime.clock()
        record = runtime.write(
            lambda conn: accounts.create_coop(
                conn,
                actor=actor,
                slug=data.slug,
                name=data.name,
                unit_code=data.unit.code,
                scale=scale,
                default_min_balance=lo,
                default_max_balance=hi,
                claim_expiry_days=data.claim_expiry_days,
                max_transfer_amount=max_transfer,
                now=now,
            )
        )
        return present.coop(record)

    @get("/{slug:str}", sync_to_thread=True)
    def read(self, slug: str, actor: Actor, runtime: Runtime) -> s.CoopOut:
        def fn(conn: Connection) -> accounts.CoopRecord:
            coop = accounts.get_coop(conn, slug)
            accounts.require_coop_reader(actor, coop)
            return coop

        return present.coop(runtime.read(fn))

    @patch("/{slug:str}", sync_to_thread=True)
    def update(self, slug: str, data: s.CoopUpdate, actor: Actor, runtime: Runtime) -> s.CoopOut:
        def fn(conn: Connection) -> accounts.CoopRecord:
            coop = accounts.get_coop(conn, slug)
            changes: dict[str, object] = {}
            for name in data.model_fields_set:
                value = getattr(data, name)
                if name in {"default_min_balance", "default_max_balance"}:
                    changes[name] = present.optional_amount_in(
                        value, scale=coop.scale, field=name, allow_negative=True
                    )
                elif name == "max_transfer_amount":
                    if value is None:
                        raise DomainError("validation_failed", "max_transfer_amount cannot be removed")
                    changes[name] = present.amount_in(value, scale=coop.scale, field=name)
                elif value is None:
                    raise DomainError("validation_failed", f"{name} cannot be null")
                else:
                    changes[name] = value
            return accounts.update_coop(conn, actor=actor, slug=slug, changes=changes)

        return present.coop(runtime.write(fn))

    @post("/{slug:str}/members", sync_to_thread=True, status_code=201)
    def add_member(self, slug: str, data: s.MemberCreate, actor: Actor, runtime: Runtime) -> s.MemberOut:
        now = runtime.clock()
        user_id, account_id, role = runtime.write(
            lambda conn: accounts.add_member(
                conn,
                actor=actor,
                slug=slug,
                email=data.email,
                name=data.name,
                role=Role(data.role),
                password=data.password,
                now=now,
            )
        )
        return s.MemberOut(user_id=str(user_id), account_id=str(account_id), role=role.value)

    @get("/{slug:str}/accounts", sync_to_thread=True)
    def accounts(
        self,
        slug: str,
        actor: Actor,
        runtime: Runtime,
        cursor: str | None = None,
        limit: int = Parameter(default=queries.DEFAULT_PAGE, ge=1, le=queries.MAX_PAGE),
    ) -> s.AccountPage:
        """Treasurer: every account with balances. Member: a directory of names and ids."""

        def fn(conn: Connection) -> s.AccountPage:
            coop = accounts.get_coop(conn, slug)
            accounts.require_coop_reader(actor, coop)
            views, last = queries.list_ledger_accounts(
                conn,
                ledger_id=coop.ledger_id,
                cursor=queries.decode_cursor(cursor),
                limit=queries.check_limit(limit),
            )
            full = actor.is_treasurer_of_coop(coop.id)
            items: list[s.AccountOut | s.DirectoryEntry] = [
                present.account(v) if full else present.directory_entry(v) for v in views
            ]
            return s.AccountPage(items=items, next_cursor=present.cursor(last))

        return runtime.read(fn)
