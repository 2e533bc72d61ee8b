"""Soak tests: the HTTP bank test with crashes (`python -m tests.soak.bank`).

See docs/reliability.md.
"""
