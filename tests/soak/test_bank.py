"""The bank test with crashes, on SQLite and on PostgreSQL.

The short run (about 40 s per engine, at least 5 SIGKILLs) is part of the default suite; the
10-minute run is marked slow (`pytest -m slow tests/soak`). PostgreSQL skips with a message when
no server answers, except under CI=true where it fails instead (the rule of tests/conftest.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import IN_CI, PG_ADMIN_URL, _pg_reachable
from tests.soak.bank import Config, run
from tests.soak.verify import (
    AccountRow,
    Ledger,
    Snapshot,
    StoredAccount,
    StoredKey,
    StoredPosting,
    StoredTransfer,
    check_books,
    check_outcomes,
    snapshot_problems,
)
from tests.soak.workload import Outcome

ENGINES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def _require_engine(engine: str) -> None:
    if engine != "postgres":
        return
    problem = _pg_reachable()
    if problem is not None:
        message = f"PostgreSQL is not reachable at {PG_ADMIN_URL} ({problem})"
        if IN_CI:
            pytest.fail(message + "; under CI the PostgreSQL tests must run", pytrace=False)
        pytest.skip(message + "; start it to run the PostgreSQL half of the suite")


def _run_bank(config: Config) -> None:
    _require_engine(config.engine)
    report = run(config)
    print(report.summary())
    assert report.ok, report.summary() + "\n" + report.details()
    assert report.kills >= report.config.min_kills
    assert report.acknowledged > 0 and report.refused > 0, "the workload must post and be refused"


@pytest.mark.parametrize("engine", ENGINES)
def test_bank_short(engine: str, tmp_path: Path) -> None:
    # About 40 s: a kill every 5-7 s, and the run goes on until at least 5 kills happened.
    _run_bank(Config(engine=engine, workdir=tmp_path, minutes=0.6, kill_interval=(5.0, 7.0), min_kills=5))


@pytest.mark.slow
@pytest.mark.parametrize("engine", ENGINES)
def test_bank_long(engine: str, tmp_path: Path) -> None:
    _run_bank(Config(engine=engine, workdir=tmp_path, minutes=10.0))


def test_snapshot_check_sees_what_it_must() -> None:
    """The reader's check itself: a sum off zero, a limit passed, a partial page."""
    good = Snapshot((AccountRow(1, -500, -500, 500), AccountRow(2, 500, -500, 500)), complete=True)
    assert snapshot_problems(good, expected_accounts=[1, 2]) == []
    skewed = Snapshot((AccountRow(1, -400, -500, 500), AccountRow(2, 500, -500, 500)), complete=True)
    assert any("sum to 100" in p for p in snapshot_problems(skewed, expected_accounts=[1, 2]))
    breached = Snapshot((AccountRow(1, -501, -500, 500), AccountRow(2, 501, -500, 500)), complete=True)
    assert len(snapshot_problems(breached, expected_accounts=[1, 2])) == 2
    partial = Snapshot((AccountRow(1, 0, None, None),), complete=False)
    assert len(snapshot_problems(partial, expected_accounts=[1, 2])) == 2


def _ledger(transfers: list[StoredTransfer], keys: list[StoredKey]) -> Ledger:
    balances = {1: 0, 2: 0}
    postings = []
    versions = {1: 0, 2: 0}
    for tr in transfers:
        for account, delta in ((tr.payer_id, -tr.amount), (tr.payee_id, tr.amount)):
            balances[account] += delta
            versions[account] += 1
            postings.append(StoredPosting(account, versions[account], tr.id, delta, balances[account]))
    accounts = tuple(
        StoredAccount(a, balances[a], -500, 500, max(0, -balances[a]), max(0, balances[a]), versions[a])
        for a in (1, 2)
    )
    return Ledger(accounts, tuple(transfers), tuple(postings), tuple(keys))


def test_final_check_sees_lost_and_duplicated_transfers() -> None:
    """The end-of-run check itself, on hand-made tables."""
    acked = Outcome("k1", 1, 2, 100, memo="k1", status="acknowledged", transfer_id=7)
    refused = Outcome("k2", 1, 2, 900, memo="k2", status="refused", code="insufficient_credit")
    stored = StoredTransfer(7, 1, 2, 100, "posted", "k1")
    ledger = _ledger([stored], [StoredKey("k1", 201, 7)])
    assert check_outcomes([acked, refused], ledger).ok
    assert check_books(ledger, [acked, refused]) == []

    lost = check_outcomes([acked], _ledger([], []))
    assert len(lost.lost) == 1 and not lost.duplicated
    assert any("idempotency record None" in v for v in lost.violations)

    twice = _ledger([stored, StoredTransfer(8, 1, 2, 100, "posted", "k1")], [StoredKey("k1", 201, 7)])
    found = check_outcomes([acked], twice)
    assert len(found.duplicated) == 1
    assert any("acknowledged transfers add up to" in p for p in check_books(twice, [acked]))

    stored_refusal = check_outcomes([refused], _ledger([StoredTransfer(9, 1, 2, 900, "posted", "k2")], []))
    assert any("refused" in v for v in stored_refusal.violations)
