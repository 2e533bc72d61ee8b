"""The pure ledger rules: a few values in, the problems (or balances) out."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.core import (
    AccountState,
    AccountStatus,
    Movement,
    ledger_sum,
    limit_problems,
    replay_balances,
    validate_limits,
    validate_movement,
    validate_text,
    within_limits,
)
from ledger.errors import STATUS_BY_CODE, DomainError, Problem

ACTIVE, FROZEN, CLOSED = AccountStatus.ACTIVE, AccountStatus.FROZEN, AccountStatus.CLOSED


def acct(
    id: int,
    balance: int = 0,
    lo: int | None = -2000,
    hi: int | None = 4000,
    *,
    status: AccountStatus = ACTIVE,
    ledger: int = 1,
) -> AccountState:
    return AccountState(id, ledger, status, balance, lo, hi)


def codes(problems: list[Problem]) -> list[str]:
    return [p.code for p in problems]


MOVEMENT_CASES = [
    # (amount, payer, payee, payer state, payee state) -> codes
    pytest.param(Movement(1, 2, 150), acct(1), acct(2), [], id="ok"),
    pytest.param(Movement(1, 2, 1000), acct(1), acct(2), [], id="exactly-the-maximum"),
    pytest.param(Movement(1, 2, 1001), acct(1), acct(2), ["invalid_amount"], id="above-maximum"),
    pytest.param(Movement(1, 2, 0), acct(1), acct(2), ["invalid_amount"], id="zero"),
    pytest.param(Movement(1, 2, -5), acct(1), acct(2), ["invalid_amount"], id="negative"),
    pytest.param(Movement(1, 1, 5), acct(1), acct(1), ["same_account"], id="same-account"),
    pytest.param(Movement(1, 2, 5), None, acct(2), ["account_not_found"], id="no-payer"),
    pytest.param(Movement(1, 2, 5), acct(1), None, ["account_not_found"], id="no-payee"),
    pytest.param(Movement(1, 2, 5), acct(1, status=FROZEN), acct(2), ["account_frozen"], id="payer-frozen"),
    pytest.param(Movement(1, 2, 5), acct(1), acct(2, status=FROZEN), ["account_frozen"], id="payee-frozen"),
    pytest.param(Movement(1, 2, 5), acct(1, status=CLOSED), acct(2), ["account_closed"], id="payer-closed"),
    pytest.param(Movement(1, 2, 5), acct(1), acct(2, status=CLOSED), ["account_closed"], id="payee-closed"),
    pytest.param(Movement(1, 2, 5), acct(1), acct(2, ledger=9), ["unit_mismatch"], id="other-ledger"),
    pytest.param(
        Movement(1, 1, 0),
        acct(1, status=FROZEN),
        acct(1, status=FROZEN),
        ["invalid_amount", "same_account", "account_frozen", "account_frozen"],
        id="everything-wrong-at-once",
    ),
]


@pytest.mark.parametrize(("movement", "payer", "payee", "expected"), MOVEMENT_CASES)
def test_validate_movement(
    movement: Movement,
    payer: AccountState | None,
    payee: AccountState | None,
    expected: list[str],
) -> None:
    assert codes(validate_movement(movement, payer, payee, max_amount=1000)) == expected


def test_validate_movement_names_the_side() -> None:
    problems = validate_movement(Movement(1, 2, 5), acct(1), None, max_amount=10)
    assert problems == [Problem("account_not_found", "the payee account does not exist", "payee")]


def test_validate_movement_does_not_look_at_balances() -> None:
    assert validate_movement(Movement(1, 2, 5), acct(1, -2000), acct(2, 4000), max_amount=10) == []


LIMIT_CASES = [
    # payer balance, payer min, payee balance, payee max, amount -> codes
    pytest.param(0, -2000, 0, 4000, 2000, [], id="down-to-the-credit-limit"),
    pytest.param(0, -2000, 0, 4000, 2001, ["insufficient_credit"], id="one-step-below"),
    pytest.param(-2000, -2000, 0, 4000, 1, ["insufficient_credit"], id="already-at-limit"),
    pytest.param(0, -2000, 3999, 4000, 1, [], id="up-to-the-ceiling"),
    pytest.param(0, -2000, 3999, 4000, 2, ["ceiling_exceeded"], id="one-step-above"),
    pytest.param(0, None, 0, None, 10**15, [], id="no-limits"),
    pytest.param(0, 0, 0, 0, 1, ["insufficient_credit", "ceiling_exceeded"], id="both"),
    pytest.param(-3000, -2000, 5000, 4000, 1, ["insufficient_credit", "ceiling_exceeded"], id="beyond"),
    pytest.param(5000, 0, -3000, 0, 1000, [], id="moving-toward-the-limits"),
]


@pytest.mark.parametrize(("pb", "plo", "qb", "qhi", "amount", "expected"), LIMIT_CASES)
def test_limit_problems(
    pb: int, plo: int | None, qb: int, qhi: int | None, amount: int, expected: list[str]
) -> None:
    payer, payee = acct(1, pb, plo, None), acct(2, qb, None, qhi)
    assert codes(limit_problems(payer, payee, amount)) == expected


def test_limit_problems_ignore_the_other_sides_limits() -> None:
    # The payer's ceiling and the payee's floor do not matter: a payment lowers one, raises
    # the other.
    payer, payee = acct(1, 100, lo=-10, hi=100), acct(2, -10, lo=-10, hi=100)
    assert limit_problems(payer, payee, 50) == []


@pytest.mark.parametrize(
    ("balance", "lo", "hi", "inside"),
    [
        (0, None, None, True),
        (-5, -5, 5, True),
        (5, -5, 5, True),
        (-6, -5, 5, False),
        (6, -5, 5, False),
    ],
)
def test_within_limits(balance: int, lo: int | None, hi: int | None, inside: bool) -> None:
    assert within_limits(balance, lo, hi) is inside


@pytest.mark.parametrize(
    ("lo", "hi", "fields"),
    [
        (None, None, []),
        (0, 0, []),
        (-2000, 4000, []),
        (1, None, ["min_balance"]),
        (None, -1, ["max_balance"]),
        (1, -1, ["min_balance", "max_balance"]),
    ],
)
def test_validate_limits(lo: int | None, hi: int | None, fields: list[str]) -> None:
    problems = validate_limits(lo, hi)
    assert [p.field for p in problems] == fields
    assert all(p.code == "validation_failed" for p in problems)


def test_validate_text() -> None:
    assert validate_text(None, None) == []
    assert validate_text("m" * 500, "c" * 40) == []
    assert [p.field for p in validate_text("m" * 501, "c" * 41)] == ["memo", "category"]


def test_replay_balances_small_ledger() -> None:
    history = [Movement(1, 2, 250), Movement(2, 3, 100), Movement(3, 1, 50)]
    assert replay_balances(history) == {1: -200, 2: 150, 3: 50}
    assert replay_balances([]) == {}


def test_every_code_maps_to_a_status_and_domain_errors_carry_it() -> None:
    error = DomainError.from_problems([Problem("insufficient_credit", "too low", "amount")])
    assert (error.code, error.status, error.problems[0].field) == (
        "insufficient_credit",
        422,
        "amount",
    )
    assert DomainError("something_new", "x").status == 400
    for code in ("insufficient_credit", "ceiling_exceeded", "idempotency_key_reused"):
        assert STATUS_BY_CODE[code] == 422


movements = st.builds(
    Movement,
    payer=st.integers(1, 8),
    payee=st.integers(1, 8),
    amount=st.integers(1, 10**12),
)


@given(st.lists(movements, max_size=60))
def test_replayed_balances_sum_to_zero(history: list[Movement]) -> None:
    balances = replay_balances(history)
    assert ledger_sum(balances) == 0
    touched = {m.payer for m in history} | {m.payee for m in history}
    assert set(balances) == touched


@given(st.lists(movements, max_size=60), st.randoms(use_true_random=False))
def test_replay_does_not_depend_on_order(history: list[Movement], rnd: object) -> None:
    shuffled = list(history)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    assert replay_balances(shuffled) == replay_balances(history)


@given(st.lists(movements, max_size=40), movements)
def test_replay_then_reverse_restores_balances(history: list[Movement], extra: Movement) -> None:
    before = replay_balances(history)
    after = replay_balances([*history, extra, Movement(extra.payee, extra.payer, extra.amount)])
    assert {k: v for k, v in after.items() if v} == {k: v for k, v in before.items() if v}


@given(
    balance=st.integers(-5000, 5000),
    lo=st.none() | st.integers(-5000, 0),
    hi=st.none() | st.integers(0, 5000),
    other=st.integers(-5000, 5000),
    amount=st.integers(1, 5000),
)
def test_movements_that_pass_limit_problems_stay_within_limits(
    balance: int, lo: int | None, hi: int | None, other: int, amount: int
) -> None:
    """If the rules accept a movement between accounts inside their limits, both stay inside."""
    payer, payee = acct(1, balance, lo, hi), acct(2, other, lo, hi)
    if not (within_limits(balance, lo, hi) and within_limits(other, lo, hi)):
        return
    if limit_problems(payer, payee, amount):
        return
    assert within_limits(balance - amount, lo, hi)
    assert within_limits(other + amount, lo, hi)
