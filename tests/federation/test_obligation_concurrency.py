"""Several requests recording the same obligation (same external_id) at the same moment: exactly
one row results and every caller gets the same answer, on both engines (issue 3 left this open).

PostgreSQL lets every thread's "is this external_id new?" look pass before any insert commits;
the unique key (federation_id, external_id) then decides, and the service must turn the losers'
collision into the winner's obligation, not an error. SQLite serialises writers (BEGIN
IMMEDIATE), so there the test guards against a regression rather than a live race.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from accounts.actor import Actor, CoopRole, Role
from accounts.service import add_member, get_coop
from clearing import obligations as ob
from clearing import tables as ct
from clearing.obligation_csv import ObligationInput, ParsedRow
from clearing.service import FederationRecord
from ledger.db import make_engine, write_transaction
from ledger.errors import DomainError
from tests.federation.conftest import ADMIN_ACTOR, NOW, service_federation

THREADS = 8
ROUNDS = 5  # distinct external ids, each raced by every thread


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url, pool_size=THREADS)
    yield eng
    eng.dispose()


def treasurers(engine: Engine) -> tuple[FederationRecord, dict[str, Actor]]:
    federation = service_federation(engine, {"east": (None, None), "west": (None, None)})
    actors: dict[str, Actor] = {}
    with write_transaction(engine) as conn:
        for slug in ("east", "west"):
            coop = get_coop(conn, slug)
            user_id, account, _ = add_member(
                conn,
                actor=ADMIN_ACTOR,
                slug=slug,
                email=f"tess@{slug}.example.org",
                name="Tess",
                role=Role.TREASURER,
                password=None,
                now=NOW,
            )
            actors[slug] = Actor(
                user_id, False, (CoopRole(coop.id, slug, coop.ledger_id, Role.TREASURER, account),)
            )
    return federation, actors


def race(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run the calls in threads released together; each result or the exception it raised."""
    results: list[Any] = [None] * len(calls)
    start = threading.Barrier(len(calls))

    def run(i: int) -> None:
        start.wait()
        try:
            results[i] = calls[i]()
        except Exception as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=60)
    assert not any(th.is_alive() for th in threads)
    return results


def record(engine: Engine, actor: Actor, federation: FederationRecord, data: ObligationInput) -> Any:
    def call() -> tuple[ob.ObligationRecord, bool]:
        with write_transaction(engine) as conn:
            return ob.record_obligation(conn, requester=actor, federation=federation, data=data, now=NOW)

    return call


def rows(engine: Engine, external_id: str) -> int:
    o = ct.obligations
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).where(o.c.external_id == external_id)).scalar_one()


def test_the_same_obligation_recorded_at_once_gives_one_row_and_one_answer(engine: Engine) -> None:
    federation, actors = treasurers(engine)
    for n in range(ROUNDS):
        data = ObligationInput(f"inv-{n}", "east", "west", 1250 + n, None, "bread")
        # The debtor's and the creditor's treasurers both record it, in the same instant.
        calls = [
            record(engine, actors["east" if i % 2 else "west"], federation, data) for i in range(THREADS)
        ]

        results = race(calls)

        errors = [r for r in results if isinstance(r, Exception)]
        assert errors == [], f"round {n}: {errors[:3]}"
        assert sum(created for _, created in results) == 1, f"round {n}: {results}"
        assert len({record.id for record, _ in results}) == 1
        assert len({record for record, _ in results}) == 1  # the very same answer, field for field
        assert rows(engine, f"inv-{n}") == 1


def test_a_different_obligation_under_the_same_id_is_refused_to_every_loser(engine: Engine) -> None:
    """Half the callers send another amount under the same external_id: one row results; every
    caller whose content matches it gets it, every other one `external_id_conflict`."""
    federation, actors = treasurers(engine)
    for n in range(ROUNDS):
        a = ObligationInput(f"dup-{n}", "east", "west", 500, None, None)
        b = ObligationInput(f"dup-{n}", "east", "west", 700, None, None)
        contents = [a if i % 2 else b for i in range(THREADS)]

        results = race([record(engine, actors["east"], federation, data) for data in contents])

        assert rows(engine, f"dup-{n}") == 1
        with engine.connect() as conn:
            stored = conn.execute(
                sa.select(ct.obligations.c.amount).where(ct.obligations.c.external_id == f"dup-{n}")
            ).scalar_one()
        for data, result in zip(contents, results, strict=True):
            if data.amount == stored:
                assert not isinstance(result, Exception), result
                assert result[0].amount == stored
            else:
                assert isinstance(result, DomainError) and result.code == "external_id_conflict", result


def test_the_same_file_imported_at_once_gives_one_row_per_id(engine: Engine) -> None:
    """Imports racing over the same external_ids: every row exists once, and each import reports
    every row as created or unchanged (one with a changed amount: that row refused), no error."""
    federation, actors = treasurers(engine)
    lines = [ParsedRow(i + 2, ObligationInput(f"imp-{i}", "east", "west", 100 + i)) for i in range(300)]
    changed = [*lines[:-1], ParsedRow(301, ObligationInput("imp-299", "east", "west", 1))]
    files = [changed if i == 0 else lines for i in range(4)]

    def importer(rows: list[ParsedRow]) -> Callable[[], ob.ImportResult]:
        def call() -> ob.ImportResult:
            with write_transaction(engine) as conn:
                return ob.import_obligations(
                    conn, requester=actors["east"], federation=federation, rows=rows, problems=[], now=NOW
                )

        return call

    results = race([importer(rows) for rows in files])

    errors = [r for r in results if isinstance(r, Exception)]
    assert errors == [], errors[:2]
    assert sum(r.created for r in results) == 300
    with engine.connect() as conn:
        stored = dict(
            conn.execute(
                sa.select(ct.obligations.c.external_id, ct.obligations.c.amount).where(
                    ct.obligations.c.external_id.like("imp-%")
                )
            ).all()
        )
    assert len(stored) == 300
    for rows, result in zip(files, results, strict=True):
        agree = [r for r in rows if stored[r.obligation.external_id] == r.obligation.amount]
        assert (result.created + result.unchanged, result.refused) == (len(agree), len(rows) - len(agree))
        assert all(p.code == "external_id_conflict" for p in result.problems)
