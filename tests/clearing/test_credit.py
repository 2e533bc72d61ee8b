"""Settlement through the federation's mutual credit, beyond set-off."""

from __future__ import annotations

from collections import defaultdict

from hypothesis import given, settings

from clearing.engine import ClearingPolicy, ClearingResult, CreditLine, Obligation, clear
from tests.clearing.oracle import optimum_discharge, optimum_setoff
from tests.clearing.strategies import credit_lines, obligation_lists


def with_credit(credit: dict[str, CreditLine]) -> ClearingPolicy:
    return ClearingPolicy(settle_with_credit=True, credit=credit)


def test_a_chain_is_paid_through_credit() -> None:
    items = [Obligation("1", "A", "B", 10), Obligation("2", "B", "C", 10)]
    result = clear(items, policy=with_credit({"A": CreditLine(10, 0), "C": CreditLine(0, 10)}))
    assert result.setoffs == (0, 0)
    assert result.credit_payments == (10, 10)
    assert result.setoff_only_optimum == 0
    assert result.extra_cleared_by_credit == 20
    change = {p.name: p.credit_balance_change for p in result.participants}
    assert change == {"A": -10, "B": 0, "C": 10}


def test_headroom_limits_what_credit_pays() -> None:
    items = [Obligation("1", "A", "B", 10), Obligation("2", "B", "C", 10)]
    result = clear(items, policy=with_credit({"A": CreditLine(4, 0), "C": CreditLine(0, 100)}))
    assert result.credit_payments == (4, 4)
    assert {p.name: p.credit_balance_change for p in result.participants}["A"] == -4


def test_no_headroom_means_set_off_only() -> None:
    items = [Obligation("1", "A", "B", 7), Obligation("2", "B", "A", 5)]
    plain = clear(items)
    credit = clear(items, policy=with_credit({}))
    assert credit.setoffs == plain.setoffs == (5, 5)
    assert credit.total_credit_paid == 0


def test_set_off_is_preferred_to_credit_when_both_discharge_as_much() -> None:
    # Every debt could also be paid through credit; set-off discharges the same without
    # moving anyone's credit balance, and credit is the scarcer resource.
    items = [
        Obligation("1", "A", "B", 10),
        Obligation("2", "B", "C", 10),
        Obligation("3", "C", "A", 10),
    ]
    lines = {name: CreditLine(10, 10) for name in "ABC"}
    result = clear(items, policy=with_credit(lines))
    assert result.setoffs == (10, 10, 10)
    assert result.total_credit_paid == 0


def test_credit_can_discharge_more_than_the_best_set_off() -> None:
    # X and Y owe each other 1 (set-off alone: 2). Paying P→X→Y→Q through credit uses
    # X→Y instead and discharges 3, so the best joint answer sets off less than the best
    # set-off alone; what is reported is honest about both.
    items = [
        Obligation("px", "P", "X", 1),
        Obligation("xy", "X", "Y", 1),
        Obligation("yx", "Y", "X", 1),
        Obligation("yq", "Y", "Q", 1),
    ]
    result = clear(items, policy=with_credit({"P": CreditLine(1, 0), "Q": CreditLine(0, 1)}))
    assert result.setoff_only_optimum == 2
    assert result.total_discharged == 3
    assert result.total_setoff == 0
    assert result.credit_payments == (1, 1, 0, 1)
    assert result.extra_cleared_by_credit == 1


@settings(max_examples=100, deadline=None)
@given(obligation_lists(), credit_lines())
def test_credit_settlement_invariants(items: list[Obligation], credit: dict[str, CreditLine]) -> None:
    result = clear(items, policy=with_credit(credit))
    check_bounds(items, result)
    check_headroom_and_balance(credit, result)
    check_positions(items, result)
    assert result.setoff_only_optimum == optimum_setoff(items)
    assert result.total_discharged == optimum_discharge(items, credit)
    assert result.total_discharged >= result.setoff_only_optimum
    assert result.extra_cleared_by_credit >= 0
    assert clear(items, policy=with_credit(credit)) == result


def check_bounds(items: list[Obligation], result: ClearingResult) -> None:
    for o, setoff, paid in zip(items, result.setoffs, result.credit_payments, strict=True):
        assert setoff >= 0
        assert paid >= 0
        assert setoff + paid <= o.amount
    assert result.total_setoff == sum(result.setoffs)
    assert result.total_credit_paid == sum(result.credit_payments)


def check_headroom_and_balance(credit: dict[str, CreditLine], result: ClearingResult) -> None:
    no_credit = CreditLine(0, 0)
    for p in result.participants:
        line = credit.get(p.name, no_credit)
        assert -line.pay_headroom <= p.credit_balance_change <= line.receive_headroom
    # The liquidity node is balanced: the federation ledger still sums to zero.
    assert sum(p.credit_balance_change for p in result.participants) == 0
    assert sum(p.credit_paid for p in result.participants) == result.total_credit_paid
    assert sum(p.credit_received for p in result.participants) == result.total_credit_paid


def check_positions(items: list[Obligation], result: ClearingResult) -> None:
    """Set-off keeps net positions on its own; credit swaps claims for balance exactly."""
    setoff_net: dict[str, int] = defaultdict(int)
    for o, setoff in zip(items, result.setoffs, strict=True):
        setoff_net[o.creditor] += setoff
        setoff_net[o.debtor] -= setoff
    assert set(setoff_net.values()) <= {0}
    for p in result.participants:
        obligations_after = p.owed_after - p.owes_after
        assert obligations_after + p.credit_balance_change == p.net_position
