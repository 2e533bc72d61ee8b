"""A Hypothesis state machine driving the real ledger service on a real database.

Every rule calls a service function (pay, claim, accept/reject/cancel, reverse, limits, freeze,
close, batch import, expiry) inside one `write_transaction`, exactly as the API does, and
predicts the outcome with a plain-dict model that knows nothing of `ledger.core`. After every
step the invariants of DESIGN §2 are checked against the database itself: each ledger sums to
zero, each cached balance is the sum of its postings and the last posting's balance_after,
versions run 1..n without a gap, no balance is beyond its limits, and the model agrees with the
database. A refused operation must leave every row it could have touched exactly as it was.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any

import sqlalchemy as sa
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from sqlalchemy.engine import Connection, Engine

from accounts.actor import Actor, CoopRole, Role
from accounts.service import add_member, create_coop, create_user
from ledger import queries, service
from ledger import tables as t
from ledger.amounts import format_amount
from ledger.batch import BatchEntry, post_batch
from ledger.db import make_engine, read_transaction, write_transaction
from ledger.errors import DomainError, Problem
from ledger.idempotency import fingerprint
from ledger.service import TransferInput, TransferRecord

MIN, MAX, MAX_TRANSFER, EXPIRY_DAYS = -600, 900, 800, 3
START = datetime(2030, 1, 1, tzinfo=UTC)
MEMBERS = ("tess", "ana", "ben", "cleo")  # tess is the treasurer
_serial = count()


@dataclass
class Person:
    name: str
    user_id: int
    account_id: int
    ledger_id: int
    treasurer: bool
    actor: Actor


@dataclass
class MAccount:
    id: int
    ledger_id: int
    kind: str
    balance: int = 0
    lo: int | None = None
    hi: int | None = None
    status: str = "active"


@dataclass
class MTransfer:
    id: int
    payer: int
    payee: int
    amount: int
    status: str
    initiator: int
    expires_at: datetime | None = None
    reverses: int | None = None
    reversed: bool = False


@dataclass
class Model:
    ledger_id: int
    accounts: dict[int, MAccount] = field(default_factory=dict)
    transfers: dict[int, MTransfer] = field(default_factory=dict)
    batch_keys: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)

    def visible(self, person: Person, tr: MTransfer) -> bool:
        return person.account_id in (tr.payer, tr.payee) or self.treasurer(person, self.ledger_id)

    @staticmethod
    def treasurer(person: Person, ledger_id: int) -> bool:
        return person.treasurer and person.ledger_id == ledger_id

    def movement_codes(
        self, payer: int, payee: int, amount: int, *, limits: bool, batch: bool = False
    ) -> set[str]:
        """What refuses this movement now; empty when it would be posted."""
        codes: set[str] = set()
        if amount <= 0 or amount > MAX_TRANSFER:
            codes.add("invalid_amount")
        if payer == payee:
            codes.add("same_account")
        for account_id in (payer, payee):
            account = self.accounts[account_id]
            if batch and account.ledger_id != self.ledger_id:
                codes.add("account_not_found")
            elif account.status != "active":
                codes.add(f"account_{account.status}")
        if not batch and self.accounts[payer].ledger_id != self.accounts[payee].ledger_id:
            codes.add("unit_mismatch")
        if not codes and limits:
            p, q = self.accounts[payer], self.accounts[payee]
            if p.lo is not None and p.balance - amount < p.lo:
                codes.add("insufficient_credit")
            if q.hi is not None and q.balance + amount > q.hi:
                codes.add("ceiling_exceeded")
        return codes

    def move(self, payer: int, payee: int, amount: int) -> None:
        self.accounts[payer].balance -= amount
        self.accounts[payee].balance += amount


amounts = st.one_of(
    st.integers(1, MAX_TRANSFER),
    st.sampled_from([0, 1, 300, 600, MAX_TRANSFER, MAX_TRANSFER + 1]),
)
# New limits, relative to the account's balance: mostly around it, so that some would put the
# balance outside them (refused) and the others leave little room (many limit refusals).
limit_offsets = (
    st.one_of(st.none(), st.integers(-600, 200)),
    st.one_of(st.none(), st.integers(-200, 600)),
)
# An account: 0-4 are this co-op's five (its own account and four members), 5 a foreign one.
account_picks = st.sampled_from([0, 1, 2, 3, 4, 1, 2, 3, 4, 5])
# Who acts: None (most often) is whoever naturally would; a number is any of the five people.
actors = st.sampled_from([*[None] * 12, 0, 1, 2, 3, 4])


def run_machine(engine: Engine) -> None:
    """Build the machine over `engine` and run it (one fresh co-op per Hypothesis example)."""
    with write_transaction(engine) as conn:
        admin_id = create_user(conn, email="admin@sm.example.org", name="Admin", password=None, now=START)
    admin = Actor(user_id=admin_id, is_admin=True)

    def new_coop(conn: Connection, slug: str, names: tuple[str, ...]) -> tuple[Any, list[Person]]:
        coop = create_coop(
            conn,
            actor=admin,
            slug=slug,
            name=slug,
            unit_code="HOUR",
            scale=2,
            default_min_balance=MIN,
            default_max_balance=MAX,
            claim_expiry_days=EXPIRY_DAYS,
            max_transfer_amount=MAX_TRANSFER,
            now=START,
        )
        people = []
        for i, name in enumerate(names):
            role = Role.TREASURER if i == 0 and name == "tess" else Role.MEMBER
            user_id, account_id, _ = add_member(
                conn,
                actor=admin,
                slug=slug,
                email=f"{name}@{slug}.example.org",
                name=name,
                role=role,
                password=None,
                now=START,
            )
            actor = Actor(user_id, False, (CoopRole(coop.id, slug, coop.ledger_id, role, account_id),))
            people.append(Person(name, user_id, account_id, coop.ledger_id, role is Role.TREASURER, actor))
        return coop, people

    with write_transaction(engine) as conn:
        foreign_coop, (foreigner,) = new_coop(conn, "elsewhere", ("fay",))

    class LedgerMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            serial = next(_serial)
            # Each example gets a fresh co-op and starts a year after the last one began, so
            # that claims left pending by earlier examples are swept here and not counted later.
            self.now = START + timedelta(days=365 * (serial + 1))
            with write_transaction(engine) as conn:
                service.expire_claims(conn, now=self.now)
                coop, self.people = new_coop(conn, f"sm-{serial}", MEMBERS)
            self.people.append(foreigner)
            self.tess = self.people[0]
            self.model = Model(coop.ledger_id)
            for c in (coop, foreign_coop):
                self.model.accounts[c.coop_account_id] = MAccount(c.coop_account_id, c.ledger_id, "coop")
            for p in self.people:
                self.model.accounts[p.account_id] = MAccount(p.account_id, p.ledger_id, "member", 0, MIN, MAX)
            self.foreign_account = foreigner.account_id
            self.account_ids = sorted(
                set(self.model.accounts) - {foreign_coop.coop_account_id, foreigner.account_id}
            )
            self.watched = [coop.ledger_id, foreign_coop.ledger_id]

        # --- helpers ---------------------------------------------------------------------

        def holder(self, account_id: int) -> Person:
            """Who naturally acts for an account: its holder; the treasurer for the co-op's own."""
            return next((p for p in self.people if p.account_id == account_id), self.tess)

        def person(self, choice: int | None, default: Person) -> Person:
            return default if choice is None else self.people[choice % len(self.people)]

        def account(self, index: int) -> int:
            return self.foreign_account if index == 5 else self.account_ids[index]

        def pick_transfer(self, index: int, keep: Callable[[MTransfer], bool]) -> MTransfer | None:
            candidates = [tr for _, tr in sorted(self.model.transfers.items()) if keep(tr)]
            return candidates[index % len(candidates)] if candidates else None

        def snapshot(self) -> Any:
            """Every account row, and what any write to the other tables would change."""
            a, tr, p, ik = t.accounts, t.transfers, t.postings, t.idempotency_keys
            with read_transaction(engine) as conn:
                accounts = conn.execute(
                    sa.select(a.c.id, a.c.balance, a.c.version, a.c.debits, a.c.credits)
                    .add_columns(a.c.min_balance, a.c.max_balance, a.c.status)
                    .order_by(a.c.id)
                ).all()
                # Transfers are only ever inserted or resolved (status and resolved_at set).
                transfers = conn.execute(
                    sa.select(tr.c.status, sa.func.count(), sa.func.max(tr.c.id))
                    .add_columns(sa.func.max(tr.c.resolved_at))
                    .group_by(tr.c.status)
                    .order_by(tr.c.status)
                ).all()
                counts = conn.execute(
                    sa.select(
                        sa.select(sa.func.count()).select_from(p).scalar_subquery(),
                        sa.select(sa.func.count()).select_from(ik).scalar_subquery(),
                    )
                ).one()
            return accounts, transfers, tuple(counts)

        def attempt(self, fn: Callable[[Connection], Any]) -> tuple[Any, DomainError | None]:
            """Run one unit of work; a refusal must leave the database exactly as it was."""
            before = self.snapshot()
            try:
                with write_transaction(engine) as conn:
                    return fn(conn), None
            except DomainError as error:
                assert self.snapshot() == before, f"{error.code} changed the database"
                return None, error

        @staticmethod
        def check(error: DomainError | None, expected: set[str]) -> bool:
            """True when the operation succeeded; it must exactly when nothing refuses it."""
            event("outcome", "ok" if error is None else error.code)
            if expected:
                assert error is not None, f"expected one of {sorted(expected)}, but it succeeded"
                assert error.code in expected, f"got {error.code}, expected one of {sorted(expected)}"
                return False
            assert error is None, f"unexpected {error.code}: {error.detail}"
            return True

        def expected_create(self, actor: Person, payer: int, payee: int, amount: int) -> tuple[set[str], str]:
            ledgers = {self.model.accounts[payer].ledger_id, self.model.accounts[payee].ledger_id}
            if actor.account_id == payer or any(self.model.treasurer(actor, lid) for lid in ledgers):
                return self.model.movement_codes(payer, payee, amount, limits=True), "posted"
            if actor.account_id == payee:
                return self.model.movement_codes(payer, payee, amount, limits=False), "pending"
            if actor.ledger_id in ledgers:
                return {"forbidden"}, ""
            # An outsider to both ledgers may be told the accounts do not exist instead.
            return {"forbidden", "account_not_found"}, ""

        # --- rules -----------------------------------------------------------------------

        def _create(self, payer: int, payee: int, amount: int, actor: Person) -> MTransfer | None:
            expected, status = self.expected_create(actor, payer, payee, amount)
            record, error = self.attempt(
                lambda conn: service.create_transfer(
                    conn,
                    actor=actor.actor,
                    request=TransferInput(payer, payee, amount, memo="sm"),
                    now=self.now,
                )
            )
            if not self.check(error, expected):
                return
            assert isinstance(record, TransferRecord)
            assert (record.status, record.payer_id, record.payee_id, record.amount) == (
                status,
                payer,
                payee,
                amount,
            )
            expires = self.now + timedelta(days=EXPIRY_DAYS) if status == "pending" else None
            assert record.expires_at == expires
            tr = MTransfer(record.id, payer, payee, amount, status, actor.user_id, expires)
            self.model.transfers[record.id] = tr
            if status == "posted":
                self.model.move(payer, payee, amount)
            return tr

        @rule(payer=account_picks, payee=account_picks, amount=amounts, who=actors)
        def pay(self, payer: int, payee: int, amount: int, who: int | None) -> None:
            p, q = self.account(payer), self.account(payee)
            self._create(p, q, amount, self.person(who, self.holder(p)))

        @rule(
            payer=account_picks,
            payee=account_picks,
            amount=amounts,
            who=actors,
            then=st.sampled_from([None, "accept", "accept", "reject", "cancel"]),
        )
        def claim(self, payer: int, payee: int, amount: int, who: int | None, then: str | None) -> None:
            """Claim, and often answer at once: limits are checked only when a claim is accepted."""
            p, q = self.account(payer), self.account(payee)
            tr = self._create(p, q, amount, self.person(who, self.holder(q)))
            if tr is not None and tr.status == "pending" and then is not None:
                self._answer(tr, then, None)

        @rule(
            pick=st.integers(0, 100),
            action=st.sampled_from(["accept", "accept", "reject", "cancel"]),
            who=actors,
            pending_only=st.sampled_from([True, True, True, False]),
        )
        def answer(self, pick: int, action: str, who: int | None, pending_only: bool) -> None:
            # Claims are checked against limits only when accepted, so accept often.
            tr = self.pick_transfer(
                pick,
                lambda tr: tr.expires_at is not None and (tr.status == "pending" or not pending_only),
            )
            if tr is not None:
                self._answer(tr, action, who)

        def _answer(self, tr: MTransfer, action: str, who: int | None) -> None:
            if action == "cancel":
                natural = next(p for p in self.people if p.user_id == tr.initiator)
            else:
                natural = self.holder(tr.payer)
            actor = self.person(who, natural)
            allowed = actor.user_id == tr.initiator if action == "cancel" else actor.account_id == tr.payer
            if not allowed:
                expected = {"forbidden" if self.model.visible(actor, tr) else "transfer_not_found"}
            elif tr.status != "pending":
                expected = {"not_pending"}
            elif tr.expires_at is not None and tr.expires_at <= self.now:
                expected = {"claim_expired"}
            elif action == "accept":
                expected = self.model.movement_codes(tr.payer, tr.payee, tr.amount, limits=True)
            else:
                expected = set()
            fn = {
                "accept": service.accept_claim,
                "reject": service.reject_claim,
                "cancel": service.cancel_claim,
            }[action]
            record, error = self.attempt(
                lambda conn: fn(conn, actor=actor.actor, transfer_id=tr.id, now=self.now)
            )
            if not self.check(error, expected):
                return
            outcome = {"accept": "posted", "reject": "rejected", "cancel": "cancelled"}[action]
            assert record.status == outcome
            tr.status = outcome
            if action == "accept":
                self.model.move(tr.payer, tr.payee, tr.amount)

        @rule(pick=st.integers(0, 100), who=actors)
        def reverse(self, pick: int, who: int | None) -> None:
            tr = self.pick_transfer(pick, lambda tr: True)
            if tr is None:
                return
            actor = self.person(who, self.tess)
            if not self.model.treasurer(actor, self.model.ledger_id):
                expected = {"forbidden" if self.model.visible(actor, tr) else "transfer_not_found"}
            elif tr.status != "posted" or tr.reverses is not None:
                expected = {"not_reversible"}
            elif tr.reversed:
                expected = {"already_reversed"}
            else:
                expected = self.model.movement_codes(tr.payee, tr.payer, tr.amount, limits=True)
            record, error = self.attempt(
                lambda conn: service.reverse_transfer(
                    conn, actor=actor.actor, transfer_id=tr.id, reason="oops", now=self.now
                )
            )
            if not self.check(error, expected):
                return
            assert (record.payer_id, record.payee_id, record.reverses_id) == (
                tr.payee,
                tr.payer,
                tr.id,
            )
            tr.reversed = True
            self.model.transfers[record.id] = MTransfer(
                record.id, tr.payee, tr.payer, tr.amount, "posted", actor.user_id, reverses=tr.id
            )
            self.model.move(tr.payee, tr.payer, tr.amount)

        def _update(self, account_id: int, actor: Person, changes: dict[str, Any], codes: set[str]) -> None:
            account = self.model.accounts[account_id]
            if not (actor.account_id == account_id or self.model.treasurer(actor, account.ledger_id)):
                codes = {"account_not_found"}
            elif not self.model.treasurer(actor, account.ledger_id):
                codes = {"forbidden"}
            view, error = self.attempt(
                lambda conn: queries.update_account(
                    conn, actor=actor.actor, account_id=account_id, changes=changes
                )
            )
            if not self.check(error, codes):
                return
            account.lo = changes.get("min_balance", account.lo)
            account.hi = changes.get("max_balance", account.hi)
            account.status = changes.get("status", account.status)
            assert (view.min_balance, view.max_balance, view.status) == (
                account.lo,
                account.hi,
                account.status,
            )

        @rule(
            index=account_picks,
            lo=limit_offsets[0],
            hi=limit_offsets[1],
            which=st.sampled_from(["both", "min", "max"]),
            who=actors,
        )
        def set_limits(self, index: int, lo: int | None, hi: int | None, which: str, who: int | None) -> None:
            account_id = self.account(index)
            account = self.model.accounts[account_id]
            changes = {
                "min_balance": None if lo is None else account.balance + lo,
                "max_balance": None if hi is None else account.balance + hi,
            }
            if which != "both":
                changes = {f"{which}_balance": changes[f"{which}_balance"]}
            new_lo, new_hi = (
                changes.get("min_balance", account.lo),
                changes.get("max_balance", account.hi),
            )
            codes = set()
            if (new_lo is not None and new_lo > 0) or (new_hi is not None and new_hi < 0):
                codes.add("validation_failed")
            elif (new_lo is not None and account.balance < new_lo) or (
                new_hi is not None and account.balance > new_hi
            ):
                codes.add("limit_violated_by_balance")
            self._update(account_id, self.person(who, self.tess), changes, codes)

        @rule(
            index=account_picks,
            status=st.sampled_from(["frozen", "active", "closed"]),
            who=actors,
        )
        def set_status(self, index: int, status: str, who: int | None) -> None:
            account_id = self.account(index)
            account = self.model.accounts[account_id]
            codes = set()
            if status == "closed" and account.kind != "member":
                codes.add("validation_failed")
            elif status == "closed" and account.balance != 0:
                codes.add("account_not_empty")
            self._update(account_id, self.person(who, self.tess), {"status": status}, codes)

        @rule(
            items=st.lists(
                st.tuples(
                    st.sampled_from(["k0", "k1", "k2", "k3", "k4", "k5"]),
                    account_picks,
                    account_picks,
                    amounts,
                    st.sampled_from([False, False, False, False, True]),  # now and then a bad amount
                ),
                min_size=1,
                max_size=6,
            ),
            who=actors,
        )
        def batch(self, items: list[tuple[str, int, int, int, bool]], who: int | None) -> None:
            actor = self.person(who, self.tess)
            entries: list[BatchEntry] = []
            for key, payer, payee, amount, bad in items:
                p, q = self.account(payer), self.account(payee)
                text = "1.234" if bad else format_amount(amount, scale=2)
                request_hash = fingerprint(
                    "POST", "batch", {"id": key, "payer": str(p), "payee": str(q), "amount": text}
                )
                if bad:
                    problem = Problem("invalid_amount", "too many decimals", "amount")
                    entries.append(BatchEntry(key, request_hash, None, problem))
                else:
                    entries.append(BatchEntry(key, request_hash, TransferInput(p, q, amount)))

            # What the model expects, item by item, on running balances.
            model = self.model
            saved = {i: a.balance for i, a in model.accounts.items()}
            expected: list[tuple[str, set[str]]] = []
            seen: set[str] = set()
            for entry in entries:
                if entry.key in seen:
                    expected.append(("refused", {"validation_failed"}))
                    continue
                seen.add(entry.key)
                if entry.key in model.batch_keys:
                    same = model.batch_keys[entry.key][0] == entry.request_hash
                    expected.append(("replayed", set()) if same else ("refused", {"idempotency_key_reused"}))
                elif entry.request is None:
                    expected.append(("refused", {"invalid_amount"}))
                else:
                    r = entry.request
                    codes = model.movement_codes(r.payer_id, r.payee_id, r.amount, limits=True, batch=True)
                    if codes:
                        expected.append(("refused", codes))
                    else:
                        model.move(r.payer_id, r.payee_id, r.amount)
                        expected.append(("posted", set()))
            for i, balance in saved.items():  # applied again below if the batch commits
                model.accounts[i].balance = balance
            forbidden = not model.treasurer(actor, model.ledger_id)

            def render(record: TransferRecord) -> dict[str, Any]:
                return {
                    "id": record.id,
                    "payer": record.payer_id,
                    "payee": record.payee_id,
                    "amount": record.amount,
                }

            results, error = self.attempt(
                lambda conn: post_batch(
                    conn,
                    actor=actor.actor,
                    ledger_id=model.ledger_id,
                    entries=entries,
                    now=self.now,
                    render=render,
                )
            )
            if not self.check(error, {"forbidden"} if forbidden else set()):
                return
            assert [r.key for r in results] == [e.key for e in entries]
            for result, entry, (outcome, codes) in zip(results, entries, expected, strict=True):
                assert result.outcome == outcome, (result, outcome, codes)
                if outcome == "refused":
                    assert result.problem is not None and result.problem.code in codes, (
                        result,
                        codes,
                    )
                elif outcome == "replayed":
                    assert result.body == model.batch_keys[entry.key][1]
                else:
                    r = entry.request
                    assert r is not None
                    body = result.body
                    assert (body["payer"], body["payee"], body["amount"]) == (
                        r.payer_id,
                        r.payee_id,
                        r.amount,
                    )
                    tr = MTransfer(body["id"], r.payer_id, r.payee_id, r.amount, "posted", actor.user_id)
                    model.transfers[tr.id] = tr
                    model.batch_keys[entry.key] = (entry.request_hash, body)
                    model.move(r.payer_id, r.payee_id, r.amount)

        @rule(hours=st.integers(1, 40))
        def advance_clock(self, hours: int) -> None:
            self.now += timedelta(hours=hours)

        @rule()
        def sweep_expired_claims(self) -> None:
            due = [
                tr
                for tr in self.model.transfers.values()
                if tr.status == "pending" and tr.expires_at is not None and tr.expires_at <= self.now
            ]
            count_, error = self.attempt(lambda conn: service.expire_claims(conn, now=self.now))
            assert error is None
            assert count_ == len(due)
            for tr in due:
                tr.status = "expired"

        # --- invariants ------------------------------------------------------------------

        @invariant()
        def ledgers_sum_to_zero(self) -> None:
            a = t.accounts
            with read_transaction(engine) as conn:
                sums = conn.execute(
                    sa.select(a.c.ledger_id, sa.func.sum(a.c.balance)).group_by(a.c.ledger_id)
                ).all()
            assert all(total == 0 for _, total in sums), sums

        @invariant()
        def balances_are_their_postings(self) -> None:
            a, p, lg = t.accounts, t.postings, self.watched
            with read_transaction(engine) as conn:
                accounts = conn.execute(
                    sa.select(a.c.id, a.c.balance, a.c.version, a.c.debits, a.c.credits)
                    .add_columns(a.c.min_balance, a.c.max_balance, a.c.status)
                    .where(a.c.ledger_id.in_(lg))
                ).all()
                postings = conn.execute(
                    sa.select(p.c.account_id, p.c.version, p.c.amount, p.c.balance_after)
                    .join(a, a.c.id == p.c.account_id)
                    .where(a.c.ledger_id.in_(lg))
                    .order_by(p.c.account_id, p.c.version)
                ).all()
            by_account: dict[int, list[Any]] = {}
            for row in postings:
                by_account.setdefault(row.account_id, []).append(row)
            for acc in accounts:
                rows = by_account.get(acc.id, [])
                assert [r.version for r in rows] == list(range(1, len(rows) + 1)), f"gap in {acc.id}"
                assert acc.version == len(rows)
                running = 0
                for r in rows:
                    running += r.amount
                    assert r.balance_after == running, (
                        f"posting {acc.id}/{r.version} has a wrong balance_after"
                    )
                assert acc.balance == running == (rows[-1].balance_after if rows else 0)
                assert acc.balance == acc.credits - acc.debits
                assert acc.min_balance is None or acc.balance >= acc.min_balance, (
                    f"{acc.id} below its minimum"
                )
                assert acc.max_balance is None or acc.balance <= acc.max_balance, (
                    f"{acc.id} above its maximum"
                )
                m = self.model.accounts[acc.id]
                assert (acc.balance, acc.min_balance, acc.max_balance, acc.status) == (
                    m.balance,
                    m.lo,
                    m.hi,
                    m.status,
                )

        @invariant()
        def transfers_match_the_model(self) -> None:
            tr, p = t.transfers, t.postings
            legs = sa.select(sa.func.count()).where(p.c.transfer_id == tr.c.id).scalar_subquery()
            with read_transaction(engine) as conn:
                rows = conn.execute(
                    sa.select(
                        tr.c.id,
                        tr.c.status,
                        tr.c.payer_id,
                        tr.c.payee_id,
                        tr.c.amount,
                        tr.c.reverses_id,
                        legs.label("legs"),
                    )
                    .where(tr.c.ledger_id.in_(self.watched))
                    .order_by(tr.c.id)
                ).all()
            assert [r.id for r in rows] == sorted(self.model.transfers)
            for r in rows:
                m = self.model.transfers[r.id]
                assert (r.status, r.payer_id, r.payee_id, r.amount, r.reverses_id) == (
                    m.status,
                    m.payer,
                    m.payee,
                    m.amount,
                    m.reverses,
                )
                assert r.legs == (2 if r.status == "posted" else 0)

    run_state_machine_as_test(
        LedgerMachine,
        settings=settings(
            max_examples=50,
            stateful_step_count=40,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )


def test_ledger_state_machine(db_url: str) -> None:
    engine = make_engine(db_url, pool_size=2)
    try:
        run_machine(engine)
    finally:
        engine.dispose()
