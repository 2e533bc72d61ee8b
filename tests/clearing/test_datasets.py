"""The shared datasets give exactly the optimum listed in their README, in file mode."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.clearing.test_file_mode import commons

# shared/datasets/clearing/README.md, in cents: total debt, net internal debt, optimum set-off.
LISTED = {
    "region-2k-20k.csv": (20_000, 929_821_068, 292_470_538, 536_184_900),
    "trade-20k-60k.csv": (60_000, 18_712_784_272, 16_237_508_238, 140_969_956),
}


def cents(text: str) -> int:
    whole, _, fraction = text.partition(".")
    assert len(fraction) == 2
    return int(whole + fraction)


@pytest.mark.parametrize("name", sorted(LISTED))
def test_dataset_optimum_in_file_mode(clearing_datasets: Path, tmp_path: Path, name: str) -> None:
    count, total, net_internal_debt, optimum = LISTED[name]
    output, summary = tmp_path / "out.csv", tmp_path / "summary.json"
    args = ["clear", str(clearing_datasets / name), "-o", str(output), "--summary", str(summary)]
    result = CliRunner().invoke(commons(), args)
    assert result.exit_code == 0, result.output
    figures = json.loads(summary.read_text())
    assert figures["obligations"] == count
    assert cents(figures["total"]) == total
    assert cents(figures["net_internal_debt"]) == net_internal_debt
    assert cents(figures["setoff"]) == optimum
    assert cents(figures["remainder"]) == total - optimum
    with output.open(newline="") as stream:
        out = list(csv.DictReader(stream))
    assert len(out) == count
    assert sum(cents(r["setoff"]) for r in out) == optimum
    assert all(cents(r["setoff"]) + cents(r["remainder"]) == cents(r["amount"]) for r in out)
