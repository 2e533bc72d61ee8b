"""Longer runs, outside the default suite (`pytest -m slow`)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from clearing.engine import clear
from clearing.fileio import read_obligations
from tests.clearing.conftest import SHARED
from tests.clearing.oracle import optimum_setoff

REPO = Path(__file__).resolve().parents[2]
GENERATOR = SHARED / "tools" / "gen_obligations.py"


@pytest.fixture(scope="module")
def generator() -> Path:
    if not GENERATOR.exists():
        pytest.skip(f"generator not found at {GENERATOR}")
    return GENERATOR


@pytest.mark.slow
@pytest.mark.parametrize(
    ("shape", "participants", "count"), [("region", 5_000, 50_000), ("trade", 30_000, 100_000)]
)
def test_generated_graphs_match_the_independent_optimum(
    generator: Path, tmp_path: Path, shape: str, participants: int, count: int
) -> None:
    path = tmp_path / f"{shape}.csv"
    subprocess.run(
        [sys.executable, str(generator), shape, str(participants), str(count), "11", str(path)], check=True
    )
    items = read_obligations(path, scale=2)
    result = clear(items)
    assert result.total_setoff == optimum_setoff(items)
    assert result.cycles is not None
    assert sum(c.amount * len(c.participants) for c in result.cycles) == result.total_setoff


@pytest.mark.slow
def test_benchmark_smoke_run_agrees(generator: Path, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "bench.clearing", "--smoke", "--cache-dir", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "same optimum on both sides" in done.stdout
