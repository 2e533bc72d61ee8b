"""The ledger service on a real database: refusals name the limit that really refused them."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine

from accounts.actor import Actor, CoopRole, Role
from accounts.service import add_member, create_coop, create_user
from ledger import queries, service
from ledger import tables as t
from ledger.db import make_engine, write_transaction
from ledger.errors import DomainError
from ledger.service import TransferInput

NOW = datetime(2030, 1, 1, tzinfo=UTC)


class Coop:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        with write_transaction(engine) as conn:
            admin = Actor(create_user(conn, email="a@x.org", name="A", password=None, now=NOW), True)
            coop = create_coop(
                conn,
                actor=admin,
                slug="svc",
                name="svc",
                unit_code="HOUR",
                scale=2,
                default_min_balance=-1000,
                default_max_balance=1000,
                claim_expiry_days=30,
                max_transfer_amount=5000,
                now=NOW,
            )
            self.people: dict[str, Actor] = {}
            self.accounts: dict[str, int] = {}
            for name in ("tess", "ana", "ben"):  # account ids ascend in this order
                role = Role.TREASURER if name == "tess" else Role.MEMBER
                uid, acc, _ = add_member(
                    conn,
                    actor=admin,
                    slug="svc",
                    email=f"{name}@x.org",
                    name=name,
                    role=role,
                    password=None,
                    now=NOW,
                )
                self.people[name] = Actor(uid, False, (CoopRole(coop.id, "svc", coop.ledger_id, role, acc),))
                self.accounts[name] = acc

    def run(self, fn: Any) -> Any:
        with write_transaction(self.engine) as conn:
            return fn(conn)

    def pay(self, who: str, payer: str, payee: str, amount: int) -> service.TransferRecord:
        request = TransferInput(self.accounts[payer], self.accounts[payee], amount)
        return self.run(
            lambda conn: service.create_transfer(conn, actor=self.people[who], request=request, now=NOW)
        )

    def limits(self, name: str, lo: int | None, hi: int | None) -> None:
        self.run(
            lambda conn: queries.update_account(
                conn,
                actor=self.people["tess"],
                account_id=self.accounts[name],
                changes={"min_balance": lo, "max_balance": hi},
            )
        )

    def balances(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = dict(conn.execute(sa.select(t.accounts.c.id, t.accounts.c.balance)).all())
        return {name: rows[acc] for name, acc in self.accounts.items()}


@contextmanager
def engine_rows(coop: Coop) -> Iterator[dict[str, Any]]:
    """The account rows of the co-op's people, by name."""
    with coop.engine.connect() as conn:
        rows = {r.id: r for r in conn.execute(sa.select(t.accounts))}
        yield {name: rows[acc] for name, acc in coop.accounts.items()}


@pytest.fixture
def coop(engine: Engine) -> Iterator[Coop]:
    yield Coop(engine)


def test_accepting_a_claim_over_the_ceiling_says_ceiling(coop: Coop) -> None:
    """ana (lower id) pays ben, who is near his ceiling. ana's row is updated first, inside the
    transaction, before ben's update is refused: the refusal must still be judged on ana's
    balance before the move, so it is `ceiling_exceeded`, not `insufficient_credit`."""
    claim = coop.pay("ben", "ana", "ben", 600)  # ben claims 6.00 from ana
    assert claim.status == "pending"
    coop.pay("tess", "tess", "ben", 500)  # ben at 5.00 of his 10.00 ceiling
    with pytest.raises(DomainError) as refused:
        coop.run(
            lambda conn: service.accept_claim(conn, actor=coop.people["ana"], transfer_id=claim.id, now=NOW)
        )
    assert refused.value.code == "ceiling_exceeded"
    assert [p.code for p in refused.value.problems] == ["ceiling_exceeded"]
    assert coop.balances() == {"tess": -500, "ana": 0, "ben": 500}


def test_reversing_into_a_full_account_says_ceiling(coop: Coop) -> None:
    original = coop.pay("ben", "ben", "ana", 800)  # ana +8.00, ben -8.00
    coop.pay("tess", "tess", "ben", 900)  # ben +1.00
    coop.limits("ana", -500, 1000)  # giving back 8.00 leaves ana at 0, well inside her limits
    coop.limits("ben", -1000, 500)  # but ben would reach 9.00, above his new ceiling of 5.00
    with pytest.raises(DomainError) as refused:
        coop.run(
            lambda conn: service.reverse_transfer(
                conn, actor=coop.people["tess"], transfer_id=original.id, reason=None, now=NOW
            )
        )
    assert refused.value.code == "ceiling_exceeded"
    assert [p.code for p in refused.value.problems] == ["ceiling_exceeded"]


def test_both_limits_are_named_when_both_refuse(coop: Coop) -> None:
    claim = coop.pay("ben", "ana", "ben", 1500)  # claims are not checked against limits
    coop.limits("ana", -1000, 1000)
    with pytest.raises(DomainError) as refused:
        coop.run(
            lambda conn: service.accept_claim(conn, actor=coop.people["ana"], transfer_id=claim.id, now=NOW)
        )
    assert [p.code for p in refused.value.problems] == ["insufficient_credit", "ceiling_exceeded"]


# PostgreSQL only: SQLite's BEGIN IMMEDIATE serialises writers, so no other writer can run between.
@pytest.mark.parametrize("db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_a_refused_row_that_changed_back_is_not_a_conflict(coop: Coop, db_url: str) -> None:
    """PostgreSQL, READ COMMITTED: a conditional UPDATE that matches no row takes no lock, so
    the row can change again before the refusal is explained. Here ana is at her credit limit
    when her UPDATE is refused, and ben pays her back before the service reads her row. Either
    answer is serialisable (posted now that it fits, or refused by the limit the UPDATE saw);
    a 409 "conflict", which tells the client nothing it can act on, is not."""
    coop.pay("ana", "ana", "ben", 1000)  # ana at -10.00, her limit
    claim = coop.pay("ben", "ana", "ben", 500)
    other = make_engine(db_url, pool_size=1)
    fired: list[bool] = []

    def interfere(_conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        if statement.startswith("UPDATE accounts") and cursor.rowcount == 0 and not fired:
            fired.append(True)
            with write_transaction(other) as conn:
                service.create_transfer(
                    conn,
                    actor=coop.people["ben"],
                    request=TransferInput(coop.accounts["ben"], coop.accounts["ana"], 1000),
                    now=NOW,
                )

    event.listen(coop.engine, "after_cursor_execute", interfere)
    try:
        coop.run(
            lambda conn: service.accept_claim(conn, actor=coop.people["ana"], transfer_id=claim.id, now=NOW)
        )
    except DomainError as refused:
        assert refused.code == "insufficient_credit", refused
        assert coop.balances() == {"tess": 0, "ana": 0, "ben": 0}  # ben's payment only
    else:
        assert coop.balances() == {"tess": 0, "ana": -500, "ben": 500}
    finally:
        event.remove(coop.engine, "after_cursor_execute", interfere)
        other.dispose()
    assert fired, "the interfering payment did not run"


def test_new_limits_the_balance_breaks_are_refused(coop: Coop) -> None:
    coop.pay("ana", "ana", "ben", 300)  # ana -3.00, ben +3.00
    for name, lo, hi in (("ana", -200, 1000), ("ben", -1000, 200)):
        with pytest.raises(DomainError) as refused:
            coop.limits(name, lo, hi)
        assert refused.value.code == "limit_violated_by_balance"
    coop.limits("ana", -300, 0)  # exactly at the balance is allowed
    with engine_rows(coop) as rows:
        assert (rows["ana"].min_balance, rows["ana"].max_balance) == (-300, 0)
        assert (rows["ben"].min_balance, rows["ben"].max_balance) == (-1000, 1000)


def test_only_an_empty_account_can_be_closed(coop: Coop) -> None:
    coop.pay("ana", "ana", "ben", 100)

    def close(name: str) -> Any:
        return coop.run(
            lambda conn: queries.update_account(
                conn,
                actor=coop.people["tess"],
                account_id=coop.accounts[name],
                changes={"status": "closed"},
            )
        )

    with pytest.raises(DomainError) as refused:
        close("ana")
    assert refused.value.code == "account_not_empty"
    coop.pay("ben", "ben", "ana", 100)
    assert close("ana").status == "closed"
    with pytest.raises(DomainError) as refused:
        coop.pay("ben", "ben", "ana", 100)
    assert refused.value.code == "account_closed"
