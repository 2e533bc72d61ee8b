"""What cannot be cleared comes back as error values naming the obligation concerned."""

from __future__ import annotations

import dataclasses

import pytest

from clearing.engine import (
    MAX_TOTAL,
    ClearingInputError,
    ClearingPolicy,
    CreditLine,
    Obligation,
    clear,
    validate_obligations,
    validate_policy,
)


def codes(items: list[Obligation]) -> list[tuple[int, str]]:
    return [(e.index, e.code) for e in validate_obligations(items)]


def test_valid_input_has_no_errors() -> None:
    items = [Obligation("1", "A", "B", 1, "2026-01-31"), Obligation("2", "B", "A", 5)]
    assert validate_obligations(items) == []


@pytest.mark.parametrize(
    ("obligation", "code"),
    [
        (Obligation("1", "A", "B", 0), "non_positive_amount"),
        (Obligation("1", "A", "B", -5), "non_positive_amount"),
        (Obligation("1", "A", "B", 1.5), "amount_not_integer"),  # type: ignore[arg-type]
        (Obligation("1", "A", "B", True), "amount_not_integer"),
        (Obligation("1", "A", "A", 5), "self_obligation"),
        (Obligation("1", "", "B", 5), "empty_name"),
        (Obligation("1", "A", "  ", 5), "empty_name"),
        (Obligation("", "A", "B", 5), "empty_id"),
        (Obligation(["1"], "A", "B", 5), "empty_id"),  # type: ignore[arg-type]
        (Obligation("1", "A", "B", 5, "31/01/2026"), "bad_due_on"),
        (Obligation("1", "A", "B", 5, "2026-13-01"), "bad_due_on"),
    ],
)
def test_each_rule(obligation: Obligation, code: str) -> None:
    errors = validate_obligations([Obligation("ok", "X", "Y", 1), obligation])
    assert [(e.index, e.code) for e in errors] == [(1, code)]
    assert errors[0].obligation is obligation
    assert errors[0].message


def test_duplicate_ids_name_the_first_use() -> None:
    items = [
        Obligation("a", "A", "B", 1),
        Obligation("b", "B", "C", 1),
        Obligation("a", "C", "A", 1),
    ]
    errors = validate_obligations(items)
    assert [(e.index, e.code) for e in errors] == [(2, "duplicate_id")]
    assert "position 0" in errors[0].message


def test_every_error_is_reported_in_input_order() -> None:
    items = [Obligation("1", "A", "A", 0), Obligation("1", "", "B", 3)]
    assert codes(items) == [
        (0, "self_obligation"),
        (0, "non_positive_amount"),
        (1, "empty_name"),
        (1, "duplicate_id"),
    ]


def test_total_beyond_the_exact_solver_range_is_refused_once() -> None:
    half = MAX_TOTAL // 2 + 1
    items = [Obligation(str(i), "A", "B", half) for i in range(4)]
    assert codes(items) == [(1, "total_too_large")]


def test_clear_refuses_invalid_input_with_every_error() -> None:
    items = [Obligation("1", "A", "A", 5), Obligation("2", "A", "B", 0)]
    with pytest.raises(ClearingInputError) as caught:
        clear(items)
    assert [e.code for e in caught.value.errors] == ["self_obligation", "non_positive_amount"]


def test_negative_headroom_is_a_policy_error() -> None:
    credit = {"A": CreditLine(-1, 0), "B": CreditLine(0, 3)}
    errors = validate_policy(credit)
    assert [(e.participant, e.code) for e in errors] == [("A", "bad_headroom")]
    with pytest.raises(ClearingInputError):
        clear([Obligation("1", "A", "B", 1)], policy=ClearingPolicy(True, credit))


def test_obligation_is_a_frozen_value() -> None:
    o = Obligation("1", "A", "B", 5)
    assert o == Obligation("1", "A", "B", 5, None)
    assert hash(o) == hash(Obligation("1", "A", "B", 5))
    assert dataclasses.replace(o, amount=7) == Obligation("1", "A", "B", 7)
    assert [f.name for f in dataclasses.fields(o)] == [
        "id",
        "debtor",
        "creditor",
        "amount",
        "due_on",
    ]
    assert repr(o) == "Obligation(id='1', debtor='A', creditor='B', amount=5, due_on=None)"
    with pytest.raises(dataclasses.FrozenInstanceError):
        o.amount = 6  # type: ignore[misc]
