"""Properties of every set-off (DESIGN.md section 4), on random obligation graphs."""

from __future__ import annotations

import random
from collections import defaultdict
from itertools import pairwise

from hypothesis import given, settings
from hypothesis import strategies as st

from clearing.engine import ClearingResult, Obligation, clear
from tests.clearing.oracle import components, optimum_setoff
from tests.clearing.strategies import obligation_lists

PROPERTY_SETTINGS = settings(max_examples=100, deadline=None)


def net_positions(items: list[Obligation], amounts: tuple[int, ...]) -> dict[str, int]:
    net: dict[str, int] = defaultdict(int)
    for o, amount in zip(items, amounts, strict=True):
        net[o.creditor] += amount
        net[o.debtor] -= amount
    return dict(net)


@PROPERTY_SETTINGS
@given(obligation_lists())
def test_every_result_keeps_the_invariants(items: list[Obligation]) -> None:
    result = clear(items)
    check_bounds(items, result)
    check_net_positions(items, result)
    check_no_setoff_between_components(items, result)
    check_cycles(items, result)
    check_participants(items, result)


@PROPERTY_SETTINGS
@given(obligation_lists())
def test_total_is_the_independent_optimum(items: list[Obligation]) -> None:
    result = clear(items)
    assert result.total_setoff == optimum_setoff(items)
    # Whatever stays owed carries the net positions, so at least this much stays.
    assert result.total_remainder >= result.net_internal_debt


@PROPERTY_SETTINGS
@given(obligation_lists(), st.randoms(use_true_random=False))
def test_deterministic_also_under_shuffling(items: list[Obligation], rng: random.Random) -> None:
    first = clear(items)
    assert clear(list(items)) == first
    shuffled = list(items)
    rng.shuffle(shuffled)
    second = clear(shuffled)
    assert second.total_setoff == first.total_setoff
    # Stronger than the total: pairs, nodes and allocation order never depend on input order.
    assert by_id(second) == by_id(first)
    assert second.cycles == first.cycles


@PROPERTY_SETTINGS
@given(obligation_lists())
def test_clearing_the_remainders_again_sets_off_nothing(items: list[Obligation]) -> None:
    result = clear(items)
    rest = [
        Obligation(o.id, o.debtor, o.creditor, r, o.due_on)
        for o, r in zip(items, result.remainders(), strict=True)
        if r > 0
    ]
    assert clear(rest).total_setoff == 0


def by_id(result: ClearingResult) -> dict[str, int]:
    return {o.id: s for o, s in zip(result.obligations, result.setoffs, strict=True)}


def check_bounds(items: list[Obligation], result: ClearingResult) -> None:
    for o, setoff, remainder in zip(items, result.setoffs, result.remainders(), strict=True):
        assert 0 <= setoff <= o.amount
        assert remainder == o.amount - setoff
    assert result.credit_payments == (0,) * len(items)
    assert result.total_setoff == sum(result.setoffs)
    assert result.total_remainder == sum(result.remainders())


def check_net_positions(items: list[Obligation], result: ClearingResult) -> None:
    before = net_positions(items, tuple(o.amount for o in items))
    after = net_positions(items, result.remainders())
    assert after == before
    for p in result.participants:
        assert p.owed_after - p.owes_after == p.net_position == before[p.name]


def check_no_setoff_between_components(items: list[Obligation], result: ClearingResult) -> None:
    component = components(items)
    for o, setoff in zip(items, result.setoffs, strict=True):
        if component[o.debtor] != component[o.creditor]:
            assert setoff == 0


def check_cycles(items: list[Obligation], result: ClearingResult) -> None:
    """Simple cycles, largest first, distinct, adding up exactly to each pair's set-off."""
    assert result.cycles is not None
    per_pair: dict[tuple[str, str], int] = defaultdict(int)
    for o, setoff in zip(items, result.setoffs, strict=True):
        if setoff:
            per_pair[(o.debtor, o.creditor)] += setoff
    from_cycles: dict[tuple[str, str], int] = defaultdict(int)
    for cycle in result.cycles:
        assert cycle.amount > 0
        assert len(set(cycle.participants)) == len(cycle.participants) >= 2
        assert cycle.participants[0] == min(cycle.participants)
        ring = (*cycle.participants, cycle.participants[0])
        for debtor, creditor in pairwise(ring):
            from_cycles[(debtor, creditor)] += cycle.amount
    assert from_cycles == per_pair
    amounts = [c.amount for c in result.cycles]
    assert amounts == sorted(amounts, reverse=True)
    assert len({c.participants for c in result.cycles}) == len(result.cycles)


def check_participants(items: list[Obligation], result: ClearingResult) -> None:
    names = sorted({o.debtor for o in items} | {o.creditor for o in items})
    assert [p.name for p in result.participants] == names
    assert sum(p.owes_before for p in result.participants) == result.total
    assert sum(p.owed_before for p in result.participants) == result.total
    assert sum(p.setoff for p in result.participants) == result.total_setoff
    assert sum(max(p.net_position, 0) for p in result.participants) == result.net_internal_debt
