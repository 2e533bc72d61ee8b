"""The known answers of shared/datasets/clearing/README.md, and small cases worked by hand."""

from __future__ import annotations

import pytest

from clearing.engine import Cycle, Obligation, clear


def obligations(*edges: tuple[str, str, int]) -> list[Obligation]:
    return [Obligation(f"o{i}", d, c, a) for i, (d, c, a) in enumerate(edges, 1)]


KNOWN = {
    "bilateral": ([("A", "B", 70), ("B", "A", 30)], 60),
    "simple cycle": ([("A", "B", 5), ("B", "C", 9), ("C", "D", 4), ("D", "A", 7)], 16),
    "chain": ([("A", "B", 10), ("B", "C", 10)], 0),
    "set-offs per edge": (
        [("A", "B", 100), ("B", "C", 100), ("C", "A", 200), ("D", "C", 100)],
        300,
    ),
    "greedy trap": ([("A", "B", 1), ("B", "A", 1), ("B", "C", 1), ("C", "A", 1)], 3),
    "overlapping cycles": (
        [
            ("A", "B", 100),
            ("B", "E", 70),
            ("E", "A", 100),
            ("C", "D", 100),
            ("D", "E", 100),
            ("E", "C", 70),
            ("B", "C", 100),
        ],
        570,
    ),
}


@pytest.mark.parametrize("case", sorted(KNOWN))
def test_known_optimum(case: str) -> None:
    edges, optimum = KNOWN[case]
    result = clear(obligations(*edges))
    assert result.total_setoff == optimum
    assert result.setoff_only_optimum == optimum
    assert result.total == sum(a for _, _, a in edges)


def test_setoffs_per_edge() -> None:
    result = clear(obligations(*KNOWN["set-offs per edge"][0]))
    assert result.setoffs == (100, 100, 100, 0)
    assert result.remainders() == (0, 0, 100, 100)


def test_simple_cycle_sets_off_the_smallest_link_everywhere() -> None:
    result = clear(obligations(*KNOWN["simple cycle"][0]))
    assert result.setoffs == (4, 4, 4, 4)
    assert result.cycles == (Cycle(("A", "B", "C", "D"), 4),)
    assert result.cycles[0].describe() == "A → B → C → D → A"


def test_greedy_trap_takes_the_three_cycle_not_the_bilateral_pair() -> None:
    result = clear(obligations(*KNOWN["greedy trap"][0]))
    assert result.setoffs == (1, 0, 1, 1)
    assert result.cycles == (Cycle(("A", "B", "C"), 1),)


def test_bilateral_netting_report() -> None:
    result = clear(obligations(("A", "B", 70), ("B", "A", 30)))
    assert result.setoffs == (30, 30)
    assert result.cycles == (Cycle(("A", "B"), 30),)
    a, b = result.participants
    assert (a.name, a.owes_before, a.owed_before, a.setoff) == ("A", 70, 30, 30)
    assert (a.owes_after, a.owed_after, a.net_position) == (40, 0, -40)
    assert (b.owes_after, b.owed_after, b.net_position) == (0, 40, 40)
    assert result.net_internal_debt == 40
    assert result.total_remainder == 40


def test_chain_needs_no_solver_and_keeps_everything() -> None:
    result = clear(obligations(("A", "B", 10), ("B", "C", 10)))
    assert result.setoffs == (0, 0)
    assert result.cycles == ()
    assert result.stats.pairs == 2
    assert result.stats.pairs_solved == 0  # no pair lies inside a strongly connected component


def test_empty_input() -> None:
    result = clear([])
    assert (result.total, result.total_setoff, result.net_internal_debt) == (0, 0, 0)
    assert result.participants == ()
    assert result.cycles == ()


def test_pair_set_off_goes_to_the_oldest_due_date_first_then_id() -> None:
    # A owes B 10 + 10 + 10 + 10 in four invoices; B owes A 25: 25 of A's 40 is set off.
    items = [
        Obligation("a-late", "A", "B", 10, "2026-03-01"),
        Obligation("a-none", "A", "B", 10, None),
        Obligation("a-early-2", "A", "B", 10, "2026-01-15"),
        Obligation("a-early-1", "A", "B", 10, "2026-01-15"),
        Obligation("b", "B", "A", 25, None),
    ]
    result = clear(items)
    by_id = {o.id: s for o, s in zip(result.obligations, result.setoffs, strict=True)}
    assert by_id == {"a-early-1": 10, "a-early-2": 10, "a-late": 5, "a-none": 0, "b": 25}


def test_cycles_are_reported_largest_first_and_add_up_per_pair() -> None:
    result = clear(obligations(*KNOWN["overlapping cycles"][0]))
    assert result.cycles is not None
    amounts = [c.amount for c in result.cycles]
    assert amounts == sorted(amounts, reverse=True)
    assert sum(c.amount * len(c.participants) for c in result.cycles) == result.total_setoff


def test_cycles_can_be_left_out() -> None:
    result = clear(obligations(*KNOWN["simple cycle"][0]), report_cycles=False)
    assert result.cycles is None
    assert result.total_setoff == 16
