# ruff: noqa: E501  (SQL written by hand reads best on one line)
"""The reconciliation report's federation check: a co-op's federation (mirror) account against
the federation ledger's account for it, with the cumulative rounding of unit conversions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from fractions import Fraction

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from accounts import service as accounts
from accounts.actor import Actor, CoopRole, Role
from api.routes.treasurer import reconciliation_out
from clearing import tables as ct
from clearing.crosspay import pay_across_coops
from clearing.obligation_csv import ObligationInput, ParsedRow
from clearing.obligations import import_obligations
from clearing.rates import parse_rate
from clearing.runs import apply_run, propose_run
from clearing.service import CommandLine, create_federation, get_federation, join_federation
from ledger.db import read_transaction, write_transaction
from ledger.reconcile import (
    FederationPosition,
    exact_decimal,
    reconciliation_report,
    snapshot,
    verify,
)
from ledger.service import TransferInput, load_account_states
from tests.treasurer.conftest import triggers_off

NOW = datetime(2026, 11, 10, tzinfo=UTC)
ADMIN = Actor(user_id=0, is_admin=True)
OPERATOR = CommandLine()
# (slug, unit, scale, rate): hillside counts loaves to three decimals, worth 0.333 FED each.
COOPS = [("riverside", "HOUR", 2, "1"), ("hillside", "LOAF", 3, "0.333")]


@pytest.fixture
def valley(engine: Engine) -> dict[str, tuple[Actor, int]]:
    """A federation of two co-ops with one member each; returns slug → (member actor, account)."""
    members: dict[str, tuple[Actor, int]] = {}
    with write_transaction(engine) as conn:
        admin_id = accounts.create_user(
            conn,
            email="admin@valley.example.org",
            name="Admin",
            password=None,
            is_admin=True,
            now=NOW,
        )
        admin = Actor(admin_id, True)
        federation = create_federation(
            conn, actor=admin, slug="valley", name="Valley", unit_code="FED", scale=2, now=NOW
        )
        for slug, unit, scale, rate in COOPS:
            coop = accounts.create_coop(
                conn, actor=admin, slug=slug, name=slug.title(), unit_code=unit, scale=scale,
                default_min_balance=None, default_max_balance=None, claim_expiry_days=30,
                max_transfer_amount=10**9, now=NOW,
            )  # fmt: skip
            join_federation(
                conn, requester=OPERATOR, federation=get_federation(conn, "valley"), coop_slug=slug,
                rate=parse_rate(rate), min_balance=-100_000, max_balance=100_000, now=NOW,
            )  # fmt: skip
            user_id, account_id, _ = accounts.add_member(
                conn, actor=admin, slug=slug, email=f"m@{slug}.example.org", name=f"Member of {slug}",
                role=Role.MEMBER, password=None, now=NOW,
            )  # fmt: skip
            members[slug] = (
                Actor(
                    user_id,
                    False,
                    (CoopRole(coop.id, slug, coop.ledger_id, Role.MEMBER, account_id),),
                ),
                account_id,
            )
        assert federation.slug == "valley"
    return members


def pay(
    engine: Engine,
    members: dict[str, tuple[Actor, int]],
    payer: str,
    payee: str,
    amount: int,
    now: datetime,
) -> None:
    actor, source = members[payer]
    _, target = members[payee]
    with write_transaction(engine) as conn:
        states = load_account_states(conn, [source, target])
        record = pay_across_coops(
            conn,
            actor=actor,
            request=TransferInput(source, target, amount),
            payer=states[source],
            payee=states[target],
            now=now,
        )
        assert record is not None


def positions(engine: Engine) -> dict[str, FederationPosition]:
    with snapshot(engine) as conn:
        out = {}
        for slug, *_ in COOPS:
            report = reconciliation_report(conn, actor=None, slug=slug, now=NOW)
            assert report.federation is not None
            out[slug] = report.federation
        return out


def expected_rounding(engine: Engine, coop: str) -> Fraction:
    """Exact minus posted, payment by payment, straight from the records (the oracle)."""
    scale = {slug: s for slug, _, s, _ in COOPS}[coop]
    shift = Fraction(10) ** (2 - scale)
    total = Fraction(0)
    with read_transaction(engine) as conn:
        cp = ct.cross_coop_payments
        coop_of = dict(
            conn.execute(
                sa.text("SELECT a.id, c.slug FROM accounts a JOIN coops c ON c.ledger_id = a.ledger_id")
            ).all()
        )
        for r in conn.execute(sa.select(cp)):
            if coop_of[r.payer_account_id] == coop:  # the members here paid: the position falls
                total -= (
                    Fraction(r.payer_amount * r.payer_rate_num, r.payer_rate_den) * shift
                    - r.federation_amount
                )
            if coop_of[r.payee_account_id] == coop:
                total += (
                    Fraction(r.payee_amount * r.payee_rate_num, r.payee_rate_den) * shift
                    - r.federation_amount
                )
    return total


def test_both_views_of_the_position_agree_up_to_the_rounding(
    engine: Engine, valley: dict[str, tuple[Actor, int]]
) -> None:
    moments = (NOW + timedelta(hours=n) for n in range(100))
    for amount in (100, 37, 1, 250):  # riverside pays hillside, in hours
        pay(engine, valley, "riverside", "hillside", amount, next(moments))
    for amount in (1001, 77, 3333):  # hillside pays riverside, in loaves
        pay(engine, valley, "hillside", "riverside", amount, next(moments))
    found = positions(engine)
    river, hill = found["riverside"], found["hillside"]
    assert river.ok and hill.ok
    assert river.from_payments == -hill.from_payments  # the federation ledger sums to zero
    assert river.mirror_balance == 100 + 37 + 1 + 250 - sum(r for r in _payee_amounts(engine, "riverside"))
    assert river.rounding_difference == expected_rounding(engine, "riverside")
    assert hill.rounding_difference == expected_rounding(engine, "hillside") != 0
    # Every conversion rounds by at most half a step of its target unit.
    bound = 7 * Fraction(1, 2) * max(Fraction(1), Fraction(333, 1000) * Fraction(10) ** (2 - 3))
    assert abs(hill.rounding_difference) <= bound
    assert exact_decimal(Fraction(-1, 1000), 2) == "-0.00001"
    with snapshot(engine) as conn:
        assert verify(conn)[1] == []
        shown = reconciliation_out(
            reconciliation_report(conn, actor=None, slug="hillside", now=NOW)
        ).federation
    assert shown is not None and shown.ok and shown.rate == "0.333"
    assert Fraction(shown.rounding_difference) * 100 == hill.rounding_difference
    assert shown.federation_unit.code == "FED" and shown.unexplained_federation == "0.00"


def _payee_amounts(engine: Engine, coop: str) -> list[int]:
    with read_transaction(engine) as conn:
        return list(
            conn.execute(
                sa.text(
                    "SELECT p.payee_amount FROM cross_coop_payments p JOIN accounts a ON a.id = p.payee_account_id "
                    "JOIN coops c ON c.ledger_id = a.ledger_id WHERE c.slug = :slug"
                ),
                {"slug": coop},
            ).scalars()
        )


def test_clearing_settlements_explain_the_rest(engine: Engine, valley: dict[str, tuple[Actor, int]]) -> None:
    pay(engine, valley, "riverside", "hillside", 100, NOW)
    with write_transaction(engine) as conn:
        federation = get_federation(conn, "valley")
        rows = [ParsedRow(2, ObligationInput("inv-1", "riverside", "hillside", 500))]
        result = import_obligations(
            conn, requester=OPERATOR, federation=federation, rows=rows, problems=[], now=NOW
        )
        assert result.created == 1
        run = propose_run(
            conn,
            requester=OPERATOR,
            federation=federation,
            period="2026-11",
            settle_with_credit=True,
            now=NOW,
        )
        apply_run(conn, requester=OPERATOR, run_id=run.id, now=NOW)
    found = positions(engine)
    assert (found["riverside"].from_clearing, found["hillside"].from_clearing) == (-500, 500)
    assert found["riverside"].federation_balance == -100 - 500
    assert found["riverside"].ok and found["hillside"].ok


def test_a_forged_federation_balance_is_named(engine: Engine, valley: dict[str, tuple[Actor, int]]) -> None:
    """A consistent forgery in the federation ledger (transfer, postings and cached balances all
    agree) passes every balance check; the position check names it."""
    pay(engine, valley, "riverside", "hillside", 100, NOW)
    with read_transaction(engine) as conn:
        fm = ct.federation_members
        member = conn.execute(
            sa.select(fm).join(
                ct.federation_ledgers, ct.federation_ledgers.c.federation_id == fm.c.federation_id
            )
        ).first()
        assert member is not None
        account = member.account_id
        federation = get_federation(conn, "valley")
        version, balance = conn.execute(
            sa.text("SELECT version, balance FROM accounts WHERE id = :a"), {"a": account}
        ).one()
        cversion, cbalance = conn.execute(
            sa.text("SELECT version, balance FROM accounts WHERE id = :a"),
            {"a": federation.clearing_account_id},
        ).one()
    with triggers_off(engine) as conn:
        conn.execute(
            sa.text(
                "INSERT INTO transfers (id, ledger_id, transaction_id, payer_id, payee_id, amount, occurred_on, status, created_at) "
                "VALUES (9990, :ledger, 'forged', :clearing, :account, 7700, '2026-11-10', 'posted', :at)"
            ),
            {
                "ledger": federation.ledger_id,
                "clearing": federation.clearing_account_id,
                "account": account,
                "at": NOW,
            },
        )
        conn.execute(
            sa.text(
                "INSERT INTO postings (account_id, version, transfer_id, amount, balance_after, posted_at) VALUES "
                "(:c, :cv, 9990, -7700, :cb, :at), (:a, :v, 9990, 7700, :b, :at)"
            ),
            {
                "c": federation.clearing_account_id,
                "cv": cversion + 1,
                "cb": cbalance - 7700,
                "a": account,
                "v": version + 1,
                "b": balance + 7700,
                "at": NOW,
            },
        )
        conn.execute(
            sa.text(
                "UPDATE accounts SET balance = balance - 7700, debits = debits + 7700, version = version + 1 WHERE id = :c"
            ),
            {"c": federation.clearing_account_id},
        )
        conn.execute(
            sa.text(
                "UPDATE accounts SET balance = balance + 7700, credits = credits + 7700, version = version + 1 WHERE id = :a"
            ),
            {"a": account},
        )
    slug = "riverside" if account == positions_account(engine, "riverside") else "hillside"
    with snapshot(engine) as conn:
        report = reconciliation_report(conn, actor=None, slug=slug, now=NOW)
        _, verified = verify(conn)
    assert not report.ok
    assert [(f.code, f.subject) for f in report.findings] == [
        ("federation_position_differs", f"{slug} position at valley")
    ]
    assert "77.00 FED unexplained" in report.findings[0].detail
    assert ("federation_position_differs", f"{slug} position at valley") in [
        (f.code, f.subject) for f in verified
    ]


def positions_account(engine: Engine, slug: str) -> int:
    with read_transaction(engine) as conn:
        return int(
            conn.execute(
                sa.select(ct.federation_members.c.account_id)
                .join(
                    sa.table("coops", sa.column("id"), sa.column("slug")),
                    sa.text("coops.id = federation_members.coop_id"),
                )
                .where(sa.text("coops.slug = :slug")),
                {"slug": slug},
            ).scalar_one()
        )
