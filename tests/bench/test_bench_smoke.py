"""The ledger benchmark runs end to end at tiny sizes (what `python -m bench.ledger --smoke` does).

It checks that every path works and reports sane figures; it never asserts a timing. The
django-hordak peer is left out (it needs the bench's own virtualenv).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import IN_CI, _pg_reachable

REPO = Path(__file__).resolve().parents[2]


def _engines() -> list[str]:
    problem = _pg_reachable()
    if problem is None:
        return ["sqlite", "postgres"]
    if IN_CI:
        pytest.fail(
            f"PostgreSQL is not reachable ({problem}); under CI the bench smoke run needs it",
            pytrace=False,
        )
    return ["sqlite"]


@pytest.mark.parametrize("engine", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_bench_smoke(engine: str, tmp_path: Path) -> None:
    if engine not in _engines():
        pytest.skip("PostgreSQL is not reachable")
    out = tmp_path / "bench.json"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    if engine == "postgres":
        admin = os.environ.get("COMMONS_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
        env["COMMONS_BENCH_PG_URL"] = admin.rsplit("/", 1)[0] + "/postgres"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.ledger", "--smoke", "--engine", engine, "--json", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(out.read_text())
    result = data["engines"][engine]

    writes = result["writes"]
    assert set(writes) == {"raw", "service", "api"}  # no peer in a smoke run
    for name, fig in writes.items():
        assert fig["count"] > 0, name
        assert fig["rate"] > 0, name
        assert 0 < fig["p50_ms"] <= fig["p99_ms"], name
        assert len(fig["per_round"]) == 2, name

    batch = result["batch"]
    assert {"raw batch", "batch"} <= set(batch)
    assert all(fig["count"] > 0 for fig in batch.values())

    reads = {r["read"] for r in result["reads"]}
    assert {"statement first page (50)", "balance at a moment", "account list page (200)"} <= reads
    assert all(r["api_p50_ms"] > 0 and r["sql_p50_ms"] > 0 for r in result["reads"])

    # The report names every figure with its ratio to raw and the targets.
    assert "x base" in proc.stdout
    assert "targets (issue 6):" in proc.stdout
    assert any(c["ratio"] == "api/raw" for c in data["targets"] if "ratio" in c)
