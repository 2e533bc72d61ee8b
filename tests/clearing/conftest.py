"""Shared material for the clearing tests: the read-only datasets beside the repository."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# CI checks the repository out next to `shared/` (datasets, generator).
SHARED = Path(__file__).resolve().parents[2].parent / "shared"
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.fixture(scope="session")
def clearing_datasets() -> Path:
    """The directory of the clearing datasets; skips (fails under CI) when it is missing."""
    directory = SHARED / "datasets" / "clearing"
    if not directory.is_dir():
        message = f"clearing datasets not found at {directory} (a sibling of the repository)"
        if IN_CI:
            pytest.fail(message + "; under CI they must be present", pytrace=False)
        pytest.skip(message)
    return directory
