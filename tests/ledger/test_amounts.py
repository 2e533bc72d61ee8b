"""Exact amounts: decimal strings in, integers of the smallest step out, and back."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.amounts import (
    ABSOLUTE_MAX_AMOUNT,
    MAX_SCALE,
    AmountError,
    Unit,
    format_amount,
    format_optional,
    parse_amount,
)

ACCEPTED = [
    # text, scale, allow_negative, value
    ("1.50", 2, False, 150),
    ("1.5", 2, False, 150),
    ("1", 2, False, 100),
    ("0.01", 2, False, 1),
    ("0", 2, False, 0),
    ("007.10", 2, False, 710),
    ("12", 0, False, 12),
    ("1.000001", 6, False, 1_000_001),
    ("-1", 2, True, -100),
    ("-0.05", 2, True, -5),
    ("-20.00", 2, True, -2000),
    ("10000000000000.00", 2, False, ABSOLUTE_MAX_AMOUNT),
    ("1000000000000000", 0, False, ABSOLUTE_MAX_AMOUNT),
    ("-1000000000.000000", 6, True, -ABSOLUTE_MAX_AMOUNT),
]

REFUSED = [
    # text, scale, allow_negative
    (1.5, 2, False),  # a JSON number is already inexact
    (150, 2, False),
    (True, 2, False),
    (None, 2, False),
    (b"1.50", 2, False),
    ("", 2, False),
    ("1e3", 2, False),
    ("1E3", 2, False),
    ("NaN", 2, False),
    ("nan", 2, False),
    ("inf", 2, False),
    ("-Infinity", 2, True),
    (" 1", 2, False),
    ("1 ", 2, False),
    ("1\n", 2, False),  # `$` would match before a trailing newline
    ("\n1", 2, False),
    ("1.234", 2, False),
    ("0.5", 0, False),
    ("1.0", 0, False),
    ("-1", 2, False),
    ("-0.01", 2, False),
    ("+1", 2, False),
    ("1.", 2, False),
    (".5", 2, False),
    ("1,000", 2, False),
    ("1_000", 2, False),
    ("0x10", 2, False),
    ("1.5.0", 2, False),
    ("--1", 2, True),
    ("\u0661", 2, False),  # ARABIC-INDIC DIGIT ONE: int() accepts it, an amount must not
    ("\uff11.50", 2, False),  # FULLWIDTH DIGIT ONE
    ("1.\u0665\u0660", 2, False),
    ("10000000000000.01", 2, False),  # one step above the absolute maximum
    ("1000000000000001", 0, False),
    ("-10000000000000.01", 2, True),
    ("9" * 17, 0, False),
    ("9" * 40, 2, False),
    ("1." + "0" * 5000, 2, False),
]


@pytest.mark.parametrize(("text", "scale", "allow_negative", "value"), ACCEPTED)
def test_parse_accepts(text: str, scale: int, allow_negative: bool, value: int) -> None:
    assert parse_amount(text, scale=scale, allow_negative=allow_negative) == value


@pytest.mark.parametrize(("text", "scale", "allow_negative"), REFUSED)
def test_parse_refuses(text: object, scale: int, allow_negative: bool) -> None:
    with pytest.raises(AmountError):
        parse_amount(text, scale=scale, allow_negative=allow_negative)


def test_refusals_say_why() -> None:
    with pytest.raises(AmountError, match="not JSON numbers"):
        parse_amount(1.5, scale=2)
    with pytest.raises(AmountError, match="3 decimals; this unit allows at most 2"):
        parse_amount("1.234", scale=2)
    with pytest.raises(AmountError, match="negative"):
        parse_amount("-1", scale=2)
    with pytest.raises(AmountError, match="larger than any amount"):
        parse_amount("10000000000000.01", scale=2)


def test_error_message_of_a_huge_input_is_bounded() -> None:
    with pytest.raises(AmountError) as caught:
        parse_amount("x" * 100_000, scale=2)
    assert len(str(caught.value)) < 200


FORMATTED = [
    (150, 2, "1.50"),
    (0, 2, "0.00"),
    (5, 2, "0.05"),
    (-5, 2, "-0.05"),
    (-2000, 2, "-20.00"),
    (12, 0, "12"),
    (-12, 0, "-12"),
    (1, 6, "0.000001"),
    (ABSOLUTE_MAX_AMOUNT, 2, "10000000000000.00"),
]


@pytest.mark.parametrize(("amount", "scale", "text"), FORMATTED)
def test_format(amount: int, scale: int, text: str) -> None:
    assert format_amount(amount, scale=scale) == text


def test_format_optional_and_unit() -> None:
    assert format_optional(None, scale=2) is None
    assert format_optional(-1, scale=2) == "-0.01"
    hour = Unit("HOUR", 2)
    assert hour.parse("2.5") == 250
    assert hour.parse("-2.5", allow_negative=True) == -250
    assert hour.format(250) == "2.50"
    with pytest.raises(AmountError):
        hour.parse("-2.5")


scales = st.integers(0, MAX_SCALE)
amounts = st.integers(-ABSOLUTE_MAX_AMOUNT, ABSOLUTE_MAX_AMOUNT)


@given(amount=amounts, scale=scales)
def test_format_then_parse_is_identity(amount: int, scale: int) -> None:
    text = format_amount(amount, scale=scale)
    assert parse_amount(text, scale=scale, allow_negative=True) == amount
    if amount >= 0:
        assert parse_amount(text, scale=scale) == amount
    else:
        with pytest.raises(AmountError):
            parse_amount(text, scale=scale)


@given(amount=st.integers(0, ABSOLUTE_MAX_AMOUNT), scale=scales, extra=st.integers(1, 3))
def test_more_decimals_than_the_unit_has_are_refused(amount: int, scale: int, extra: int) -> None:
    # Written at a finer scale, the same value has `extra` decimals too many, even when they are 0.
    text = format_amount(amount * 10**extra, scale=scale + extra)
    assert "." in text
    with pytest.raises(AmountError):
        parse_amount(text, scale=scale)


@given(text=st.text(max_size=30), scale=scales)
def test_parse_is_exact_or_refuses(text: str, scale: int) -> None:
    """Any string either parses to a value whose canonical form means the same, or is refused."""
    try:
        value = parse_amount(text, scale=scale, allow_negative=True)
    except AmountError:
        return
    assert abs(value) <= ABSOLUTE_MAX_AMOUNT
    assert text.isascii()
    canonical = format_amount(value, scale=scale)
    assert parse_amount(canonical, scale=scale, allow_negative=True) == value
