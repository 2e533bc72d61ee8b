"""Exact conversion between a co-op's unit and its federation's unit (standard library only).

A member co-op joins with a fixed rate: how many federation units one co-op unit is worth,
given as a decimal string ("1", "0.25", "1.5") and kept as an exact fraction whose
denominator is the power of ten of its decimals. Converting an amount rounds half to even at
the target unit's scale, with integer arithmetic only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# At most 9 digits on each side of the point: numerator and denominator stay below 10**18,
# inside BIGINT, and a conversion's intermediate products stay exact Python integers anyway.
MAX_RATE_DIGITS = 9
_RATE = re.compile(r"([0-9]{1,9})(?:\.([0-9]{1,9}))?")


class RateError(ValueError):
    """A rate that is not a positive decimal string with at most 9 digits each side."""


@dataclass(frozen=True, slots=True)
class Rate:
    """`numerator / denominator` federation units per co-op unit; denominator a power of ten."""

    numerator: int
    denominator: int

    def __str__(self) -> str:
        decimals = len(str(self.denominator)) - 1
        whole, frac = divmod(self.numerator, self.denominator)
        return f"{whole}.{frac:0{decimals}d}" if decimals else str(whole)


def parse_rate(text: object) -> Rate:
    if not isinstance(text, str):
        raise RateError('a rate is a decimal string such as "1" or "0.25", not a JSON number')
    match = _RATE.fullmatch(text)
    if match is None:
        raise RateError(
            f"{text[:40]!r} is not a rate: a positive decimal with at most "
            f"{MAX_RATE_DIGITS} digits before and after the point"
        )
    frac = match[2] or ""
    rate = Rate(int(match[1] + frac), 10 ** len(frac))
    if rate.numerator == 0:
        raise RateError("the rate must be greater than zero")
    return rate


def divide_half_even(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded to the nearest integer, ties to the even one."""
    if denominator <= 0:
        raise ValueError("the denominator must be positive")
    quotient, remainder = divmod(numerator, denominator)
    twice = 2 * remainder
    if twice > denominator or (twice == denominator and quotient % 2 == 1):
        quotient += 1
    return quotient


def to_federation(amount: int, *, rate: Rate, coop_scale: int, federation_scale: int) -> int:
    """Smallest co-op units → smallest federation units: amount · rate, rounded half-even."""
    return divide_half_even(amount * rate.numerator * 10**federation_scale, rate.denominator * 10**coop_scale)


def from_federation(amount: int, *, rate: Rate, coop_scale: int, federation_scale: int) -> int:
    """Smallest federation units → smallest co-op units: amount / rate, rounded half-even."""
    return divide_half_even(amount * rate.denominator * 10**coop_scale, rate.numerator * 10**federation_scale)


@dataclass(frozen=True, slots=True)
class Conversion:
    """The three amounts of a cross-co-op payment, each in its own ledger's smallest unit."""

    payer_amount: int
    federation_amount: int
    payee_amount: int


def convert_payment(
    amount: int,
    *,
    payer_rate: Rate,
    payer_scale: int,
    payee_rate: Rate,
    payee_scale: int,
    federation_scale: int,
) -> Conversion:
    """An amount in the payer's unit, carried to the federation unit and on to the payee's,
    rounding half-even at each target scale. Either result may round to 0; the caller
    refuses such a payment."""
    federation_amount = to_federation(
        amount, rate=payer_rate, coop_scale=payer_scale, federation_scale=federation_scale
    )
    payee_amount = from_federation(
        federation_amount,
        rate=payee_rate,
        coop_scale=payee_scale,
        federation_scale=federation_scale,
    )
    return Conversion(amount, federation_amount, payee_amount)
