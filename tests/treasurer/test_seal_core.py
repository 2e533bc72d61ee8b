"""The pure seal core: periods, the canonical encoding, the chain, and the sealing rules."""

from __future__ import annotations

import ast
import hashlib
import sys
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from ledger import seal_core
from ledger.seal_core import (
    GENESIS,
    SEAL_GRACE,
    Period,
    SealHeader,
    SealPosting,
    SealTransfer,
    StoredSeal,
    chain_findings,
    compute_digest,
    encode_header,
    encode_transfer,
    seal_findings,
    sealing_problems,
)

NOV = Period(2026, 11)
T0 = datetime(2026, 11, 3, 10, 15, 0, 123456, tzinfo=UTC)


def transfer(id: int = 7, amount: int = 150, memo: str | None = "childcare", **kw: object) -> SealTransfer:
    base = SealTransfer(
        id=id,
        ledger_id=1,
        transaction_id="tx",
        payer_id=3,
        payee_id=4,
        amount=amount,
        memo=memo,
        category=None,
        occurred_on=date(2026, 11, 3),
        initiator_id=5,
        status="posted",
        reverses_id=None,
        created_at=T0,
        expires_at=None,
        resolved_at=None,
        resolved_by_id=None,
        postings=(SealPosting(4, 2, id, amount, 400, T0), SealPosting(3, 9, id, -amount, -150, T0)),
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def test_periods_parse_and_bound_months() -> None:
    assert Period.parse("2026-11") == NOV
    assert NOV.start == datetime(2026, 11, 1, tzinfo=UTC)
    assert NOV.end == datetime(2026, 12, 1, tzinfo=UTC)
    assert Period.parse("2026-12").next() == Period(2027, 1)
    assert Period(2027, 1).previous() == Period(2026, 12)
    assert NOV.last_day == date(2026, 11, 30)
    assert Period.of(datetime(2026, 11, 30, 23, 59, tzinfo=UTC)) == NOV
    assert str(Period(2026, 3)) == "2026-03"
    for bad in ["2026-13", "2026-00", "26-11", "2026-1", "2026/11", "", "1969-12"]:
        with pytest.raises(ValueError):
            Period.parse(bad)


def test_a_period_is_over_only_after_its_grace() -> None:
    assert not NOV.is_over(NOV.end)
    assert not NOV.is_over(NOV.end + SEAL_GRACE - timedelta(microseconds=1))
    assert NOV.is_over(NOV.end + SEAL_GRACE)


def test_the_canonical_encoding_is_fixed() -> None:
    """A golden vector: changing the encoding changes every digest ever published."""
    header = encode_header(SealHeader("riverside", NOV, "HOUR", 2))
    assert header == b'["commons-seal/1","riverside","2026-11","HOUR",2]\n'
    encoded = encode_transfer(transfer(memo='café ☕ "quoted"\n'))
    assert (
        encoded
        == (
            '["T",7,1,"tx",3,4,150,"café ☕ \\"quoted\\"\\n",null,"2026-11-03",5,"posted",null,'
            '"2026-11-03T10:15:00.123456Z",null,null,null]\n'
            '["P",3,9,7,-150,-150,"2026-11-03T10:15:00.123456Z"]\n'
            '["P",4,2,7,150,400,"2026-11-03T10:15:00.123456Z"]\n'
        ).encode()
    )
    digest = compute_digest(SealHeader("riverside", NOV, "HOUR", 2), GENESIS, [transfer()])
    expected = hashlib.sha256(bytes(32) + header + encode_transfer(transfer())).hexdigest()
    assert digest.digest == expected
    assert (digest.transfer_count, digest.posting_count) == (1, 2)


def test_naive_and_aware_datetimes_encode_alike() -> None:
    naive = transfer(created_at=T0.replace(tzinfo=None))
    assert encode_transfer(naive) == encode_transfer(transfer())


@pytest.mark.parametrize(
    "change",
    [
        {"amount": 151},
        {"memo": "childcare "},
        {"status": "rejected"},
        {"payee_id": 5},
        {"occurred_on": date(2026, 11, 4)},
        {"resolved_by_id": 9},
        {"postings": ()},
        {"postings": (SealPosting(3, 9, 7, -150, -151, T0), SealPosting(4, 2, 7, 150, 400, T0))},
    ],
)
def test_every_field_is_in_the_digest(change: dict[str, object]) -> None:
    header = SealHeader("riverside", NOV, "HOUR", 2)
    original = compute_digest(header, GENESIS, [transfer()]).digest
    assert compute_digest(header, GENESIS, [replace(transfer(), **change)]).digest != original  # type: ignore[arg-type]


def test_the_chain_binds_period_coop_and_previous() -> None:
    header = SealHeader("riverside", NOV, "HOUR", 2)
    empty = compute_digest(header, GENESIS, []).digest
    assert compute_digest(replace(header, period=Period(2026, 12)), GENESIS, []).digest != empty
    assert compute_digest(replace(header, coop="elsewhere"), GENESIS, []).digest != empty
    assert compute_digest(header, "1" * 64, []).digest != empty
    with pytest.raises(ValueError, match="ascending"):
        compute_digest(header, GENESIS, [transfer(id=8), transfer(id=7)])
    with pytest.raises(ValueError):
        compute_digest(header, "xyz", [])


def test_sealing_rules() -> None:
    now = datetime(2026, 12, 10, tzinfo=UTC)
    opened = Period(2026, 9)

    def codes(
        period: Period, sealed: list[Period], gap: Period | None = None, when: datetime = now
    ) -> list[str]:
        return [
            p.code
            for p in sealing_problems(
                period, now=when, opened=opened, sealed=sealed, earliest_unsealed_with_facts=gap
            )
        ]

    assert codes(NOV, []) == []
    assert codes(Period(2026, 12), []) == ["period_not_over"]
    assert codes(NOV, [], when=NOV.end + timedelta(minutes=1)) == ["period_not_over"]
    assert codes(NOV, [NOV]) == ["already_sealed"]
    assert codes(Period(2026, 10), [NOV]) == ["seal_out_of_order"]
    assert codes(NOV, [], gap=Period(2026, 10)) == ["seal_out_of_order"]
    assert codes(NOV, [Period(2026, 9)]) == []  # empty October may be skipped
    assert codes(Period(2026, 8), []) == ["validation_failed"]


def test_chain_and_seal_findings_name_the_month() -> None:
    one = StoredSeal(Period(2026, 9), GENESIS, "a" * 64, 3, 6, T0)
    two = StoredSeal(Period(2026, 10), "a" * 64, "b" * 64, 1, 2, T0)
    assert chain_findings("riverside", [one, two]) == []
    broken = chain_findings("riverside", [one, replace(two, previous_digest="c" * 64)])
    assert [(f.code, f.subject) for f in broken] == [("seal_chain_broken", "riverside seal 2026-10")]
    recomputed = seal_core.SealDigest(Period(2026, 10), "a" * 64, "d" * 64, 2, 4)
    found = seal_findings("riverside", two, recomputed)
    assert {f.code for f in found} == {"seal_count_differs", "seal_digest_differs"}
    assert all(f.subject == "riverside seal 2026-10" for f in found)


def test_the_seal_core_imports_only_the_standard_library() -> None:
    source = Path(seal_core.__file__).read_text()
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module)
    allowed = set(sys.stdlib_module_names) | {"__future__", "ledger.errors"}
    assert {name for name in imported if name.split(".")[0] not in allowed and name not in allowed} == set()
