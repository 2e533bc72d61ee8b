"""Rates and conversions between a co-op's unit and its federation's: exact, half-even."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clearing.rates import (
    Rate,
    RateError,
    convert_payment,
    divide_half_even,
    from_federation,
    parse_rate,
    to_federation,
)


@pytest.mark.parametrize(
    ("text", "rate", "shown"),
    [
        ("1", Rate(1, 1), "1"),
        ("0.25", Rate(25, 100), "0.25"),
        ("1.50", Rate(150, 100), "1.50"),
        ("123456789.000000001", Rate(123456789000000001, 10**9), "123456789.000000001"),
    ],
)
def test_parse_rate(text: str, rate: Rate, shown: str) -> None:
    assert parse_rate(text) == rate
    assert str(rate) == shown


@pytest.mark.parametrize(
    "text",
    ["0", "0.000", "-1", "1e3", "1.", ".5", " 1", "1,5", "NaN", "1234567890", "0.1234567890", "١"],  # noqa: RUF001
)
def test_bad_rates(text: str) -> None:
    with pytest.raises(RateError):
        parse_rate(text)


def test_a_rate_is_a_string() -> None:
    with pytest.raises(RateError):
        parse_rate(1.5)


@pytest.mark.parametrize(
    ("n", "d", "q"),
    [
        (5, 2, 2),
        (7, 2, 4),
        (15, 10, 2),
        (25, 10, 2),
        (35, 10, 4),
        (26, 10, 3),
        (24, 10, 2),
        (0, 3, 0),
        (1, 3, 0),
        (2, 3, 1),
    ],
)
def test_divide_half_even(n: int, d: int, q: int) -> None:
    assert divide_half_even(n, d) == q


@given(st.integers(0, 10**30), st.integers(1, 10**20))
def test_divide_half_even_matches_decimal(n: int, d: int) -> None:
    expected = (
        (Decimal(n) / Decimal(d)).quantize(Decimal(1), rounding=ROUND_HALF_EVEN) if n < 10**25 else None
    )
    if expected is not None and len(str(n)) + len(str(d)) < 27:  # within Decimal's 28 digits
        assert divide_half_even(n, d) == int(expected)
    q = divide_half_even(n, d)
    assert abs(2 * (n - q * d)) <= d


def test_conversions_round_half_even_at_each_target_scale() -> None:
    quarter = parse_rate("4")  # one co-op unit is worth 4 federation units
    assert from_federation(10, rate=quarter, coop_scale=2, federation_scale=2) == 2  # 0.025 → 0.02
    assert from_federation(30, rate=quarter, coop_scale=2, federation_scale=2) == 8  # 0.075 → 0.08
    half = parse_rate("0.5")
    assert to_federation(1, rate=half, coop_scale=2, federation_scale=2) == 0  # 0.005 → 0.00
    assert to_federation(3, rate=half, coop_scale=2, federation_scale=2) == 2  # 0.015 → 0.02
    assert to_federation(150, rate=parse_rate("1"), coop_scale=2, federation_scale=0) == 2  # 1.50 → 2
    assert to_federation(250, rate=parse_rate("1"), coop_scale=2, federation_scale=0) == 2  # 2.50 → 2
    assert to_federation(7, rate=parse_rate("1"), coop_scale=0, federation_scale=3) == 7000
    conversion = convert_payment(
        1000,
        payer_rate=parse_rate("1.5"),
        payer_scale=2,
        payee_rate=parse_rate("0.7"),
        payee_scale=1,
        federation_scale=3,
    )
    # 10.00 * 1.5 = 15.000 federation; 15.000 / 0.7 = 21.428… → 21.4
    assert (conversion.payer_amount, conversion.federation_amount, conversion.payee_amount) == (
        1000,
        15000,
        214,
    )


@given(
    st.integers(1, 10**9),
    st.integers(0, 6),
    st.integers(0, 6),
    st.integers(1, 10**6),
    st.integers(0, 4),
)
def test_conversion_is_the_exact_value_rounded(
    amount: int, coop_scale: int, fed_scale: int, num: int, decimals: int
) -> None:
    rate = Rate(num, 10**decimals)
    exact = Decimal(amount).scaleb(-coop_scale) * Decimal(num).scaleb(-decimals)
    expected = exact.scaleb(fed_scale).quantize(Decimal(1), rounding=ROUND_HALF_EVEN)
    assert to_federation(amount, rate=rate, coop_scale=coop_scale, federation_scale=fed_scale) == int(
        expected
    )
