"""Hypothesis strategies: small random obligation graphs and credit lines."""

from __future__ import annotations

from hypothesis import strategies as st

from clearing.engine import CreditLine, Obligation

NAMES = ("ana", "ben", "coop-c", "dora", "eli", "fab", "gus")
DUE_DATES = (None, "2025-12-31", "2026-01-15", "2026-02-01")

amounts = st.one_of(st.integers(1, 100), st.integers(1, 10**12))


@st.composite
def obligation_lists(draw: st.DrawFn, max_size: int = 24) -> list[Obligation]:
    participants = draw(st.integers(2, len(NAMES)))
    names = st.sampled_from(NAMES[:participants])
    edges = draw(
        st.lists(
            st.tuples(names, names, amounts, st.sampled_from(DUE_DATES)).filter(lambda e: e[0] != e[1]),
            max_size=max_size,
        )
    )
    return [
        Obligation(f"ob-{i:03d}", debtor, creditor, amount, due)
        for i, (debtor, creditor, amount, due) in enumerate(edges)
    ]


@st.composite
def credit_lines(draw: st.DrawFn) -> dict[str, CreditLine]:
    headroom = st.one_of(st.just(0), st.integers(0, 150), st.integers(0, 10**12))
    chosen = draw(st.lists(st.sampled_from(NAMES), unique=True))
    return {name: CreditLine(draw(headroom), draw(headroom)) for name in chosen}
