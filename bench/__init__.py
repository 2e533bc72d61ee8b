"""Benchmarks (`python -m bench.ledger`, `python -m bench.clearing`); see docs/benchmarks.md."""
