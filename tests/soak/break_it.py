"""Test the test: break the code on purpose in a private copy of the tree and run the bank test.

    python -m tests.soak.break_it BREAK --engine sqlite|postgres [--minutes 0.7]

The copy (working tree without .git and .venv) lives in a temporary directory and is put first
on PYTHONPATH, so the bank test and the server it starts import the broken code while the
shared tree stays untouched (other people may be running tests from it). The bank test must
FAIL for every break; this command exits 0 when it did ("caught") and 1 when it did not.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# A break: (file, exact text, replacement) edits, applied in order to the copy. The exact text
# may be a tuple of alternatives (the code is rewritten now and then); exactly one must match.
Edit = tuple[str, str | tuple[str, ...], str]

_MIN_CONDITION = (
    "ledger/service.py",
    (
        "condition = sa.or_(a.c.min_balance.is_(None), a.c.balance + delta >= a.c.min_balance)",
        "condition = sa.or_(a.c.min_balance.is_(None), a.c.balance - amount >= a.c.min_balance)",
    ),
    "condition = sa.true()  # BROKEN ON PURPOSE",
)
_MAX_CONDITION = (
    "ledger/service.py",
    (
        "condition = sa.or_(a.c.max_balance.is_(None), a.c.balance + delta <= a.c.max_balance)",
        "condition = sa.or_(a.c.max_balance.is_(None), a.c.balance + amount <= a.c.max_balance)",
    ),
    "condition = sa.true()  # BROKEN ON PURPOSE",
)
_EARLY_CHECK = (
    "ledger/service.py",
    "_raise_if(limit_problems(payer, payee, movement.amount))",
    "pass  # BROKEN ON PURPOSE",
)
_CHECK_CONSTRAINTS = [
    (
        "migrations/versions/0001_core.py",
        '"min_balance IS NULL OR balance >= min_balance"',
        '"1 = 1"',
    ),
    (
        "migrations/versions/0001_core.py",
        '"max_balance IS NULL OR balance <= max_balance"',
        '"1 = 1"',
    ),
]
_LOOKUP = (
    "ledger/idempotency.py",
    (
        """            stored = lookup(conn, user_id=user_id, key=key, request_hash=request_hash)
            if stored is not None:
                return stored
""",
        """        stored = _replay(row, request_hash=request_hash)
        if stored is not None:
            return stored
""",
    ),
    "",
)
_STORE = (
    "ledger/idempotency.py",
    (
        "            store(conn, user_id=user_id, key=key, request_hash=request_hash, "
        "status=status, body=body, now=now)\n",
        "        store(conn, user_id=user_id, key=key, request_hash=request_hash, "
        "status=status, body=body, now=now)\n",
    ),
    "",
)
# PostgreSQL pays in one statement (commons_pay, migration 0005_pg_transfer): the same breaks
# there, in the copy's migration.
_PG = "migrations/versions/0005_pg_transfer.py"
_PG_LIMITS = [
    (
        _PG,
        "AND (min_balance IS NULL OR balance - v_amount >= min_balance)\n"
        "        RETURNING balance, version INTO v_payer_balance, v_payer_version;\n"
        "        IF NOT FOUND THEN\n            o_outcome",
        "\n        RETURNING balance, version INTO v_payer_balance, v_payer_version;\n"
        "        IF NOT FOUND THEN\n            o_outcome",
    ),
    (
        _PG,
        "AND (min_balance IS NULL OR balance - v_amount >= min_balance)\n"
        "        RETURNING balance, version INTO v_payer_balance, v_payer_version;\n"
        "        IF NOT FOUND THEN\n            RAISE",
        "\n        RETURNING balance, version INTO v_payer_balance, v_payer_version;\n"
        "        IF NOT FOUND THEN\n            RAISE",
    ),
    (_PG, "AND (max_balance IS NULL OR balance + v_amount <= max_balance)", ""),
]
_PG_EARLY_CHECK = (
    _PG,
    "    IF (v_payer.min_balance IS NOT NULL",
    "    IF false AND (v_payer.min_balance IS NOT NULL",
)
_PG_LOOKUP = (
    _PG,
    "    IF FOUND THEN\n        IF v_key.request_hash",
    "    IF false THEN\n        IF v_key.request_hash",
)
_PG_STORE = (
    _PG,
    "    INSERT INTO idempotency_keys (user_id, key, request_hash, response_status, response_body, "
    "created_at)\n"
    "    VALUES (p_user, p_key, p_request_hash, 201, o_body, p_now);\n",
    "",
)
# SQLite pays on the driver (ledger/sqlite_transfer.py): the same breaks there. It has no early
# limit check to remove (the UPDATEs' conditions are its only one, under the write lock).
_SQLITE = "ledger/sqlite_transfer.py"
_SQLITE_LIMITS = [
    (_SQLITE, " AND (min_balance IS NULL OR balance - ?1 >= min_balance)", ""),
    (_SQLITE, " AND (max_balance IS NULL OR balance + ?1 <= max_balance)", ""),
]
_SQLITE_LOOKUP = (_SQLITE, "    if caller[1] is not None:\n", "    if False:  # BROKEN ON PURPOSE\n")
_SQLITE_STORE = (
    _SQLITE,
    "    driver.execute(_STORE, (p.user_id, p.key, p.request_hash, body, when))\n",
    "",
)
_COMMIT_AFTER_RESPONSE = (
    "ledger/db.py",
    # PostgreSQL's branch of write_transaction (SQLite's queues on the writers' lock first).
    """        with engine.begin() as conn:
            yield conn
""",
    """    # BROKEN ON PURPOSE: the caller answers first, the commit happens a moment later.
    import threading
    import time

    conn = engine.connect()
    transaction = conn.begin()
    try:
        yield conn
    except BaseException:
        transaction.rollback()
        conn.close()
        raise

    def commit_later() -> None:
        time.sleep(0.1)
        transaction.commit()
        conn.close()

    threading.Thread(target=commit_later, daemon=True).start()
""".replace("\n    ", "\n        ").replace("    # BROKEN", "        # BROKEN", 1),
)

BREAKS: dict[str, tuple[str, list[Edit]]] = {
    "limit": (
        "remove the limit condition of the conditional UPDATE in _move (and in commons_pay, sqlite_transfer)",
        [_MIN_CONDITION, _MAX_CONDITION, *_PG_LIMITS, *_SQLITE_LIMITS],
    ),
    "limit-and-early-check": (
        "also remove the early limit check in create_transfer and commons_pay (the CHECK constraints remain)",
        [_MIN_CONDITION, _MAX_CONDITION, _EARLY_CHECK, *_PG_LIMITS, _PG_EARLY_CHECK, *_SQLITE_LIMITS],
    ),
    "no-limits-at-all": (
        "remove the limit condition, the early check and the CHECK constraints",
        [
            _MIN_CONDITION,
            _MAX_CONDITION,
            _EARLY_CHECK,
            *_PG_LIMITS,
            _PG_EARLY_CHECK,
            *_SQLITE_LIMITS,
            *_CHECK_CONSTRAINTS,
        ],
    ),
    "idempotency-lookup": (
        "drop the idempotency lookup in run_idempotent (and in commons_pay, sqlite_transfer)",
        [_LOOKUP, _PG_LOOKUP, _SQLITE_LOOKUP],
    ),
    "idempotency-lookup-and-store": (
        "drop the idempotency lookup and the stored key (no unique key to back it up)",
        [_LOOKUP, _STORE, _PG_LOOKUP, _PG_STORE, _SQLITE_LOOKUP, _SQLITE_STORE],
    ),
    "commit-after-response": (
        "write_transaction commits 0.1 s after the handler returned (the response goes first)",
        [_COMMIT_AFTER_RESPONSE],
    ),
}


def make_broken_copy(name: str, dest: Path) -> None:
    ignore = shutil.ignore_patterns(
        ".git", ".venv", "*.db", "*.db-*", ".hypothesis", ".*_cache", "__pycache__"
    )
    shutil.copytree(ROOT, dest, ignore=ignore, dirs_exist_ok=True)
    for relative, targets, new in BREAKS[name][1]:
        path = dest / relative
        text = path.read_text()
        found = [old for old in ((targets,) if isinstance(targets, str) else targets) if old in text]
        if len(found) != 1 or text.count(found[0]) != 1:
            raise SystemExit(f"break {name!r} no longer applies: {relative} does not contain its target once")
        path.write_text(text.replace(found[0], new))


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.soak.break_it", description=__doc__.split("\n\n")[0])
    p.add_argument("name", choices=sorted(BREAKS))
    p.add_argument("--engine", choices=["sqlite", "postgres"], default="sqlite")
    p.add_argument("--minutes", type=float, default=0.7)
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix=f"commons-break-{a.name}-") as tmp:
        copy = Path(tmp) / "tree"
        make_broken_copy(a.name, copy)
        env = {**os.environ, "PYTHONPATH": str(copy), "PYTHONDONTWRITEBYTECODE": "1"}
        print(f"break {a.name}: {BREAKS[a.name][0]}", flush=True)
        command = [
            sys.executable,
            "-m",
            "tests.soak.bank",
            "--engine",
            a.engine,
            "--minutes",
            str(a.minutes),
        ]
        command += ["--kill-every", "5", "8", "--min-kills", "3"]
        result = subprocess.run(command, cwd=copy, env=env, check=False, timeout=1800)
    caught = result.returncode != 0
    print(
        f"break {a.name} on {a.engine}: the bank test "
        + ("FAILED (caught)" if caught else "PASSED (not caught)")
    )
    return 0 if caught else 1


if __name__ == "__main__":
    sys.exit(main())
