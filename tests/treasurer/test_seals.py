# ruff: noqa: E501  (SQL written by hand reads best on one line)
"""Sealing months of a co-op's ledger on both engines: the rules, the chain, and that sealing
never holds up ordinary writes."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa

from ledger import seals
from ledger.db import read_transaction
from ledger.errors import DomainError
from ledger.reconcile import snapshot, verify
from ledger.seal_core import GENESIS, Period
from tests.treasurer.conftest import Book, standard_history

SEP, OCT, NOV, DEC = Period(2026, 9), Period(2026, 10), Period(2026, 11), Period(2026, 12)
MID_NOV = datetime(2026, 11, 15, tzinfo=UTC)
JAN = datetime(2027, 1, 10, tzinfo=UTC)


def seal(book: Book, period: Period, now: datetime = MID_NOV) -> seals.SealView:
    return seals.seal_period(book.engine, actor=book.treasurer, slug=book.coop.slug, period=period, now=now)


def refused(book: Book, period: Period, code: str, now: datetime = MID_NOV) -> DomainError:
    with pytest.raises(DomainError) as caught:
        seal(book, period, now)
    assert caught.value.code == code, caught.value
    return caught.value


def verified(book: Book) -> list[str]:
    with snapshot(book.engine) as conn:
        _, findings = verify(conn)
    return [str(f) for f in findings]


def test_months_are_sealed_in_order_over_final_facts_only(book: Book) -> None:
    ids = standard_history(book)
    refused(book, NOV, "period_not_over")
    refused(book, OCT, "seal_out_of_order")  # September holds transfers and is not sealed
    september = seal(book, SEP)
    # Two payments and the claim rejected in September; the claim made in September but
    # accepted in October belongs to October, with its postings.
    assert (september.transfer_count, september.posting_count) == (3, 4)
    assert september.previous_digest == GENESIS
    october = seal(book, OCT)
    assert (october.transfer_count, october.posting_count) == (
        3,
        6,
    )  # accepted claim, payment, reversal
    assert october.previous_digest == september.digest
    refused(book, OCT, "already_sealed")
    refused(book, SEP, "already_sealed")
    refused(book, Period(2026, 8), "validation_failed")
    assert verified(book) == []

    # The claim still pending at the end of October is in no seal: answering it in November
    # changes nothing sealed, and makes November a month that must be sealed before December.
    book.accept(0, ids["pending"], datetime(2026, 11, 20, tzinfo=UTC))
    assert verified(book) == []
    error = refused(book, DEC, "seal_out_of_order", now=JAN)
    assert "2026-11" in error.detail
    november = seal(book, NOV, now=JAN)
    assert (november.transfer_count, november.previous_digest) == (1, october.digest)
    december = seal(book, DEC, now=JAN)  # empty, still chained
    assert (december.transfer_count, december.previous_digest) == (0, november.digest)
    assert verified(book) == []
    with read_transaction(book.engine) as conn:
        listed = seals.list_seals(conn, actor=book.actor(0), slug=book.coop.slug)
    assert [s.period for s in listed] == ["2026-09", "2026-10", "2026-11", "2026-12"]


def test_an_empty_month_may_be_skipped_and_stays_checked(book: Book) -> None:
    book.pay(0, 1, 100, datetime(2026, 9, 3, tzinfo=UTC))
    book.pay(1, 2, 100, datetime(2026, 11, 3, tzinfo=UTC))
    seal(book, SEP, now=JAN)
    november = seal(book, NOV, now=JAN)  # October had nothing
    assert november.transfer_count == 1
    assert verified(book) == []


def test_only_a_treasurer_seals(book: Book) -> None:
    with pytest.raises(DomainError) as caught:
        seals.seal_period(book.engine, actor=book.actor(0), slug=book.coop.slug, period=SEP, now=MID_NOV)
    assert caught.value.code == "forbidden"


def test_a_seal_recomputes_identically(book: Book) -> None:
    standard_history(book)
    stored = seal(book, SEP)
    with read_transaction(book.engine) as conn:
        again = seals.compute_seal(conn, coop=book.coop, period=SEP, previous_digest=GENESIS)
    assert again.digest == stored.digest


def test_sealing_does_not_hold_up_a_transfer(book: Book, monkeypatch: pytest.MonkeyPatch) -> None:
    """While a seal is being computed, a member's payment commits at once."""
    standard_history(book)
    original = seals.compute_seal
    committed = threading.Event()

    def pay_meanwhile() -> None:
        book.pay(1, 2, 25, datetime(2026, 11, 14, tzinfo=UTC))
        committed.set()

    def computing(*args: Any, **kwargs: Any) -> Any:
        writer = threading.Thread(target=pay_meanwhile)
        writer.start()
        writer.join(timeout=5)
        assert committed.is_set(), "the payment waited for the seal"
        return original(*args, **kwargs)

    monkeypatch.setattr(seals, "compute_seal", computing)
    assert seal(book, SEP).transfer_count == 3
    assert committed.is_set()


def test_a_seal_made_meanwhile_is_a_conflict(book: Book, monkeypatch: pytest.MonkeyPatch) -> None:
    standard_history(book)
    original = seals.compute_seal
    calls = []

    def racing(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 1:  # another treasurer seals the same month first
            seal(book, SEP)
        return original(*args, **kwargs)

    monkeypatch.setattr(seals, "compute_seal", racing)
    refused(book, SEP, "conflict")
    with read_transaction(book.engine) as conn:
        assert len(seals.stored_seals(conn, book.coop.id)) == 1


def test_the_database_refuses_a_fork_of_the_chain(book: Book) -> None:
    first = seal(book, SEP)
    with pytest.raises(sa.exc.IntegrityError), book.engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO seals (coop_id, period, period_start, period_end, digest, previous_digest, "
                "transfer_count, posting_count, created_at) VALUES (:coop, '2026-10', :s, :e, :d, :p, 0, 0, :s)"
            ),
            {
                "coop": book.coop.id,
                "s": OCT.start,
                "e": OCT.end,
                "d": "f" * 64,
                "p": first.previous_digest,
            },
        )
