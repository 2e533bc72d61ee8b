"""A batch sent again while the first is still being written (a client's retry after a timeout)
is answered with the first one's outcome, on both engines."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from accounts.actor import Actor
from ledger import idempotency
from ledger import tables as t
from ledger.batch import BatchEntry, BatchResult, post_batch
from ledger.db import write_transaction
from ledger.errors import DomainError
from ledger.service import TransferInput, TransferRecord
from tests.ledger.test_service import Coop


@pytest.fixture
def coop(engine: Engine) -> Iterator[Coop]:
    yield Coop(engine)


def _render(record: TransferRecord) -> dict[str, Any]:
    return {"id": str(record.id)}


@pytest.mark.parametrize("importer", ["tess", "another treasurer"])
def test_a_batch_sent_again_while_the_first_is_written_replays_it(coop: Coop, importer: str) -> None:
    """The second request waits for the accounts the first holds; it must then look up the keys
    the first stored, not decide from a lookup made before it waited. (On PostgreSQL it looked the
    keys up first, posted every item again after the wait, and failed on the unique key.) The CSV
    import replays what any treasurer stored: a second treasurer importing the same file at the
    same moment must not post it twice."""
    tess = coop.people["tess"]
    ledger_id = tess.roles[0].ledger_id
    second_actor = tess
    if importer != "tess":
        ana = coop.people["ana"]
        second_actor = Actor(ana.user_id, False, (replace(tess.roles[0], account_id=coop.accounts["ana"]),))
    anyone = importer != "tess"
    ana_id, ben_id = coop.accounts["ana"], coop.accounts["ben"]
    entries = [
        BatchEntry("i1", "h1", TransferInput(ana_id, ben_id, 100)),
        BatchEntry("i2", "h2", TransferInput(ben_id, ana_id, 30)),
    ]

    def post(conn: sa.Connection, actor: Actor) -> list[BatchResult]:
        return post_batch(
            conn,
            actor=actor,
            ledger_id=ledger_id,
            entries=entries,
            now=datetime.now(UTC),
            render=_render,
            stored_by_anyone=anyone,
        )

    second: list[list[BatchResult] | BaseException] = []

    def retry() -> None:
        try:
            with write_transaction(coop.engine) as conn:
                second.append(post(conn, second_actor))
        except BaseException as exc:  # reported below
            second.append(exc)

    with write_transaction(coop.engine) as conn:
        first = post(conn, tess)
        racer = threading.Thread(target=retry)
        racer.start()
        _until_waiting(coop.engine, racer)
    racer.join(timeout=30)

    assert [r.outcome for r in first] == ["posted", "posted"]
    assert len(second) == 1 and not isinstance(second[0], BaseException), second
    assert [(r.outcome, r.body) for r in second[0]] == [("replayed", r.body) for r in first]
    with coop.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(t.transfers)).scalar_one() == 2
    assert coop.balances() == {"tess": 0, "ana": -70, "ben": 70}


def _until_waiting(engine: Engine, racer: threading.Thread) -> None:
    """Until the retry waits for the first request's locks. PostgreSQL shows it (a row lock);
    SQLite's writers queue on a lock in this process: give the retry time to reach it."""
    if engine.dialect.name != "postgresql":
        time.sleep(0.3)
        return
    deadline = time.monotonic() + 20
    while True:
        assert racer.is_alive() and time.monotonic() < deadline, "the retry never waited"
        with engine.connect() as conn:
            waiting = conn.execute(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND datname = current_database()"
                )
            ).scalar()
        if waiting:
            return
        time.sleep(0.01)


def test_a_key_stored_twice_is_told_to_retry_not_an_internal_error(coop: Coop) -> None:
    """Two batches racing on one item id with no account in common do not wait for each other;
    the unique key stops the second, which must answer 409 (retry, and get the first's outcome)."""
    row = {
        "user_id": coop.people["tess"].user_id,
        "key": "batch:1:i1",
        "request_hash": "h",
        "response_status": 201,
        "response_body": "{}",
        "created_at": datetime.now(UTC),
    }
    coop.run(lambda conn: conn.execute(sa.insert(t.idempotency_keys), row))
    with pytest.raises(DomainError) as raced, idempotency.racing_writers("send it again"):
        coop.run(lambda conn: conn.execute(sa.insert(t.idempotency_keys), row))
    assert (raced.value.code, raced.value.status, raced.value.detail) == (
        "idempotency_request_in_progress",
        409,
        "send it again",
    )
    with pytest.raises(sa.exc.IntegrityError), idempotency.racing_writers("not this one"):
        coop.run(lambda conn: conn.execute(sa.insert(t.transfers), {"id": 1}))  # another table's
