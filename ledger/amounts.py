"""Exact money: integers in the unit's smallest step, decimal strings at the edges.

Nothing here ever touches a float. `parse_amount("1.50", scale=2) == 150`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_SCALE = 6
# Largest amount any single value may carry; far below 2**63 so sums of many stay in BIGINT.
ABSOLUTE_MAX_AMOUNT = 10**15

# ASCII digits only (`\d` also matches other scripts' digits, which int() accepts);
# fullmatch, because `$` also matches before a final "\n".
_DECIMAL = re.compile(r"(?P<sign>-)?(?P<int>[0-9]{1,16})(?:\.(?P<frac>[0-9]+))?")


class AmountError(ValueError):
    """A decimal string that is not an exact amount of the unit."""


@dataclass(frozen=True, slots=True)
class Unit:
    code: str
    scale: int

    def parse(self, text: object, *, allow_negative: bool = False) -> int:
        return parse_amount(text, scale=self.scale, allow_negative=allow_negative)

    def format(self, amount: int) -> str:
        return format_amount(amount, scale=self.scale)


def parse_amount(text: object, *, scale: int, allow_negative: bool = False) -> int:
    """Parse a decimal string with at most `scale` decimals into smallest units.

    Refuses floats and other JSON numbers (their value is already inexact), exponents, NaN,
    infinities, thousands separators, surrounding spaces and more decimals than the unit has.
    """
    if not isinstance(text, str):
        raise AmountError('amounts are decimal strings such as "1.50", not JSON numbers')
    match = _DECIMAL.fullmatch(text)
    if match is None:
        raise AmountError(f'{text[:40]!r} is not a decimal amount such as "1.50"')
    frac = match["frac"] or ""
    if len(frac) > scale:
        raise AmountError(f"{text!r} has {len(frac)} decimals; this unit allows at most {scale}")
    value = int(match["int"]) * 10**scale + (int(frac.ljust(scale, "0")) if scale else 0)
    if match["sign"]:
        if not allow_negative:
            raise AmountError(f"{text!r} is negative; amounts must be positive")
        value = -value
    if abs(value) > ABSOLUTE_MAX_AMOUNT:
        raise AmountError(f"{text!r} is larger than any amount Commons accepts")
    return value


def format_amount(amount: int, *, scale: int) -> str:
    """Format smallest units as a decimal string with exactly `scale` decimals."""
    sign = "-" if amount < 0 else ""
    whole, frac = divmod(abs(amount), 10**scale)
    if scale == 0:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{frac:0{scale}d}"


def format_optional(amount: int | None, *, scale: int) -> str | None:
    return None if amount is None else format_amount(amount, scale=scale)
