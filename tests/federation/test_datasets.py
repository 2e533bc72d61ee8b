"""The two shared clearing datasets through the federation: every participant a member co-op,
the file imported through POST .../obligations/import, a clearing run proposed through the API;
the run must find exactly the optimum the dataset README lists (two independent solvers agree
on it). Slow (thousands of co-ops, tens of thousands of obligations): `pytest -m slow`."""

from __future__ import annotations

import csv
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from accounts.service import get_coop
from clearing import tables as ct
from clearing.rates import parse_rate
from clearing.service import create_federation, get_member
from ledger import tables as t
from ledger.amounts import format_amount
from ledger.db import write_transaction
from tests.api.conftest import Api
from tests.federation.conftest import ADMIN_ACTOR, OFFICER, add_user

DATASETS = Path(
    os.environ.get("COMMONS_CLEARING_DATASETS")
    or Path(__file__).resolve().parents[3] / "shared" / "datasets" / "clearing"
)
NOW = datetime(2026, 11, 30, tzinfo=UTC)

# From the dataset README, in cents: (obligations, total, net internal debt, optimum set-off).
KNOWN = {
    "region-2k-20k.csv": (20_000, 929_821_068, 292_470_538, 536_184_900),
    "trade-20k-60k.csv": (60_000, 18_712_784_272, 16_237_508_238, 140_969_956),
}


def members_of(path: Path) -> list[str]:
    with path.open(newline="") as f:
        return sorted({name for row in csv.DictReader(f) for name in (row["debtor"], row["creditor"])})


def build_federation(engine: Engine, names: list[str]) -> None:
    """The federation and one member co-op per name, at rate 1, without limits.

    Loaded with a few multi-row statements: thousands of co-ops one service call at a time
    would take minutes; the rows are the ones `create_coop` and `join_federation` write
    (checked on one co-op against the services' own reading of them below)."""
    with write_transaction(engine) as conn:
        federation = create_federation(
            conn, actor=ADMIN_ACTOR, slug="valley", name="Valley", unit_code="EUR", scale=2, now=NOW
        )

        def insert(table: sa.Table, rows: list[dict[str, Any]]) -> list[int]:
            result = conn.execute(sa.insert(table).returning(table.c.id, sort_by_parameter_order=True), rows)
            return list(result.scalars())

        ledgers = insert(
            t.ledgers,
            [{"kind": "coop", "unit_code": "EUR", "scale": 2, "created_at": NOW} for _ in names],
        )
        coops = insert(
            t.coops,
            [
                {
                    "slug": name,
                    "name": name,
                    "ledger_id": ledger,
                    "claim_expiry_days": 30,
                    "max_transfer_amount": 10**12,
                    "created_at": NOW,
                }
                for name, ledger in zip(names, ledgers, strict=True)
            ],
        )

        def account(ledger: int, kind: str, holder: str) -> dict[str, Any]:
            return {
                "ledger_id": ledger,
                "kind": kind,
                "holder": holder,
                "status": "active",
                "created_at": NOW,
            }

        insert(
            t.accounts,
            [account(ledger, "coop", n) for n, ledger in zip(names, ledgers, strict=True)],
        )
        in_federation = insert(t.accounts, [account(federation.ledger_id, "coop", n) for n in names])
        mirrors = insert(t.accounts, [account(ledger, "federation", "Valley") for ledger in ledgers])
        conn.execute(
            sa.insert(ct.federation_members),
            [
                {
                    "federation_id": federation.id,
                    "coop_id": coop,
                    "rate_num": 1,
                    "rate_den": 1,
                    "account_id": fed_account,
                    "mirror_account_id": mirror,
                    "joined_at": NOW,
                }
                for coop, fed_account, mirror in zip(coops, in_federation, mirrors, strict=True)
            ],
        )
        member = get_member(conn, federation, names[0])
        assert (member.rate, member.balance, member.min_balance, member.max_balance) == (
            parse_rate("1"),
            0,
            None,
            None,
        )
        assert get_coop(conn, names[0]).coop_account_id is not None


@pytest.mark.slow
@pytest.mark.parametrize("name", list(KNOWN))
def test_dataset_optimum_through_a_clearing_run(api: Api, db_url: str, engine: Engine, name: str) -> None:
    path = DATASETS / name
    if not path.exists():
        pytest.skip(f"{path} is not there (set COMMONS_CLEARING_DATASETS)")
    count, total, net, optimum = KNOWN[name]
    build_federation(engine, members_of(path))
    add_user(db_url, OFFICER)
    assert (
        api.post("/federations/valley/officers", "admin@example.org", {"email": OFFICER}).status_code == 201
    )
    api.login(OFFICER)

    r = api.client.post(
        "/api/v1/federations/valley/obligations/import",
        content=path.read_bytes(),
        headers={**api.h(OFFICER), "Content-Type": "text/csv"},
    )
    assert r.status_code == 200, r.text
    assert (r.json()["created"], r.json()["refused"]) == (count, 0)

    run = api.post("/federations/valley/clearing-runs", OFFICER, {"period": "2026-11"})
    assert run.status_code == 201, run.text
    totals = run.json()["totals"]
    assert totals["obligations"] == count
    assert totals["total"] == format_amount(total, scale=2)
    assert totals["net_internal_debt"] == format_amount(net, scale=2)
    assert totals["setoff"] == format_amount(optimum, scale=2)

    applied = api.post(f"/clearing-runs/{run.json()['id']}/apply", OFFICER)
    assert applied.status_code == 200, applied.text
    again = api.post("/federations/valley/clearing-runs", OFFICER, {"period": "2026-11"}).json()
    assert again["totals"]["setoff"] == "0.00"  # clearing the remainders again sets off nothing
