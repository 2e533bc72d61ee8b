"""The clearing benchmark runs end to end at tiny sizes (what `python -m bench.clearing --smoke`
does): file mode and the bare baseline agree on the optimum, the engine and networkx agree,
and every figure is reported. It never asserts a timing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.clearing.conftest import IN_CI, SHARED

REPO = Path(__file__).resolve().parents[2]
GENERATOR = SHARED / "tools" / "gen_obligations.py"


def test_clearing_bench_smoke(tmp_path: Path) -> None:
    if not GENERATOR.exists():
        message = f"obligation generator not found at {GENERATOR}"
        if IN_CI:
            pytest.fail(message + "; under CI it must be present", pytrace=False)
        pytest.skip(message)
    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.clearing", "--smoke", "--cache-dir", str(tmp_path), "--json", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "same optimum on both sides" in proc.stdout
    figures = json.loads(out.read_text())
    e2e, nx = figures["end_to_end"], figures["networkx"]
    assert e2e["obligations"] == 20_000
    assert e2e["setoff_cents"] > 0
    for side in ("file_mode", "baseline"):
        assert e2e[side]["wall"] > 0 and e2e[side]["cpu"] > 0 and e2e[side]["peak_mib"] > 0
    assert set(figures["stages"]) == {"read", "clear", "write"}
    assert nx["obligations"] == 5_000
    for part in ("engine", "engine_solve", "engine_scc", "networkx", "networkx_solve"):
        assert nx[part]["wall"] > 0, part
    assert "speed-up:" in proc.stdout and "SCC + solve alone take" in proc.stdout
