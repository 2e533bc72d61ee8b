"""`commons federation clear` and `commons federation apply` on a real database."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from api.cli import app
from clearing import tables as ct
from ledger.db import write_transaction
from tests.federation.conftest import service_federation
from tests.federation.test_clearing_service import add_obligations


def remaining(engine: Engine) -> list[int]:
    o = ct.obligations
    with engine.connect() as conn:
        return list(conn.execute(sa.select(o.c.remaining).order_by(o.c.id)).scalars())


def test_clear_proposes_prints_applies_and_reports(
    fed_engine: Engine, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    federation = service_federation(fed_engine, {"bakery": (0, 0), "farm": (0, 0), "energy": (0, 0)})
    with write_transaction(fed_engine) as conn:
        rows = [("bakery", "farm", 10000), ("farm", "energy", 6000), ("energy", "bakery", 8000)]
        add_obligations(conn, federation, rows)
    monkeypatch.setenv("COMMONS_DATABASE_URL", db_url)
    runner = CliRunner()

    proposed = runner.invoke(app, ["federation", "clear", "--federation", "valley", "--period", "2026-11"])
    assert proposed.exit_code == 0, proposed.output
    assert "set-off" in proposed.output and "180.00 (0.7500)" in proposed.output
    assert "bakery → farm → energy → bakery: 60.00 set off" in proposed.output
    assert "commons federation apply 1" in proposed.output
    assert remaining(fed_engine) == [10000, 6000, 8000]  # proposing changes nothing

    applied = runner.invoke(app, ["federation", "apply", "1"])
    assert applied.exit_code == 0, applied.output
    assert "(applied)" in applied.output
    assert remaining(fed_engine) == [4000, 0, 2000]

    report = tmp_path / "report.csv"
    again = runner.invoke(
        app,
        [
            "federation",
            "clear",
            "--federation",
            "valley",
            "--period",
            "2026-12",
            "--apply",
            "--report",
            str(report),
        ],
    )
    assert again.exit_code == 0, again.output
    assert "(applied)" in again.output
    lines = report.read_text().splitlines()
    assert lines[0].startswith("coop,owes_before,owed_before,net_position,setoff")
    assert len(lines) == 4  # a line per co-op; energy → bakery → farm is no cycle: nothing set off
    assert all(line.split(",")[4] == "0.00" for line in lines[1:])

    missing = runner.invoke(app, ["federation", "clear", "--federation", "nowhere", "--period", "2026-11"])
    assert missing.exit_code == 2
    assert "federation_not_found" in missing.output
