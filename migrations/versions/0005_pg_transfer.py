"""PostgreSQL: a posted transfer in one statement, `commons_pay(...)` (issue 6).

Revision ID: 0005_pg_transfer
Revises: 0004_seal_guard
Create Date: 2026-11-25

`POST /transfers` cost 13 round trips on PostgreSQL (BEGIN, the key's advisory lock, the key
lookup, the caller, units, account states, policy, two conditional UPDATEs, the transfer, the
postings, the stored response, COMMIT). `commons_pay` does all of it inside one statement, run
in autocommit as its own transaction (ledger/pg_transfer.py calls it), for the common case
only: a member paying from their own account, or a treasurer recording, between two active
non-federation accounts of one co-op ledger, posted at once.

It never refuses anything itself. For anything it does not handle, and for every refusal
(revoked token, key reused with another body, unknown or frozen account, another ledger, not
the payer's holder nor a treasurer, too many decimals, above the co-op's maximum, a limit), it
writes nothing and answers `fallback:<why>`; the Python path then runs as before and gives the
precise problem+json. A conditional UPDATE refused after the other account moved raises
SQLSTATE CM001, which rolls the statement back (nothing written) and means the same fallback.
So the rules stay with Python: the function only has to be no more permissive, and every
refusal test of the suite, run on PostgreSQL, shows the Python answer.

The response it stores is the Python rendering: the caller renders the transfer with
`api.present.transfer` with four holes (id, amount, unit code, scale) and passes the JSON text
split at the holes (`p_parts`, `p_holes`); the function fills them in.

The Python path gets `commons_idempotency_lookup(lock, user, key)`: the key's advisory lock and
then its stored response, one round trip instead of two. The lookup is a statement of its own
inside the function, so under READ COMMITTED it sees a response committed by whoever held the
lock just before (one `SELECT pg_try_advisory_xact_lock(…), …` would read with a snapshot taken
before it got the lock, and run the command again; the unique key would then turn that into a
409).

Nothing on SQLite (the Python path stays). The downgrade drops both functions.
"""

import textwrap
from collections.abc import Sequence

from alembic import op

revision: str = "0005_pg_transfer"
down_revision: str | Sequence[str] | None = "0004_seal_guard"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SIGNATURES = (
    "commons_pay(bigint, bigint, text, text, bigint, bigint, bigint, bigint, integer, text, text, "
    "date, text, timestamptz, text[], text[])",
    "commons_idempotency_lookup(bigint, bigint, text)",
)

LOOKUP = """
CREATE FUNCTION commons_idempotency_lookup(
    p_lock bigint,
    p_user bigint,
    p_key text,
    OUT o_locked boolean,
    OUT o_request_hash text,
    OUT o_status integer,
    OUT o_body text
) RETURNS record LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    o_locked := pg_try_advisory_xact_lock(p_lock);
    IF o_locked THEN
        SELECT k.request_hash, k.response_status, k.response_body INTO o_request_hash, o_status, o_body
          FROM idempotency_keys k WHERE k.user_id = p_user AND k.key = p_key;
    END IF;
END
$$
"""

# Each check below only ever answers "not here" (fallback): the Python path owns the refusals.
PAY = """
CREATE FUNCTION commons_pay(
    p_user bigint,
    p_token_version bigint,
    p_key text,
    p_request_hash text,
    p_lock bigint,
    p_payer bigint,
    p_payee bigint,
    p_amount bigint,
    p_decimals integer,
    p_memo text,
    p_category text,
    p_occurred_on date,
    p_transaction_id text,
    p_now timestamptz,
    p_parts text[],
    p_holes text[],
    OUT o_outcome text,
    OUT o_status integer,
    OUT o_body text
) RETURNS record LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    v_token_version bigint;
    v_key record;
    v_payer record;
    v_payee record;
    v_ledger record;
    v_amount bigint;
    v_step bigint;
    v_payer_balance bigint;
    v_payer_version bigint;
    v_payee_balance bigint;
    v_payee_version bigint;
    v_id bigint;
    v_amount_text text;
    i integer;
BEGIN
    -- The same lock as ledger.idempotency (same id), so the two paths exclude each other.
    IF NOT pg_try_advisory_xact_lock(p_lock) THEN
        o_outcome := 'fallback:in_progress';
        RETURN;
    END IF;
    -- accounts.service.load_actor: a revoked token is refused before anything is replayed.
    SELECT u.token_version INTO v_token_version FROM users u WHERE u.id = p_user;
    IF NOT FOUND OR v_token_version <> p_token_version THEN
        o_outcome := 'fallback:token';
        RETURN;
    END IF;
    -- ledger.idempotency.lookup (a statement of its own: it sees what committed before the lock).
    SELECT k.request_hash, k.response_status, k.response_body INTO v_key
      FROM idempotency_keys k WHERE k.user_id = p_user AND k.key = p_key;
    IF FOUND THEN
        IF v_key.request_hash = p_request_hash THEN
            o_outcome := 'replayed';
            o_status := v_key.response_status;
            o_body := v_key.response_body;
        ELSE
            o_outcome := 'fallback:key_reused';
        END IF;
        RETURN;
    END IF;
    IF p_payer = p_payee THEN
        o_outcome := 'fallback:same_account';
        RETURN;
    END IF;
    SELECT a.ledger_id, a.kind, a.status, a.balance, a.min_balance, a.max_balance INTO v_payer
      FROM accounts a WHERE a.id = p_payer;
    IF NOT FOUND THEN
        o_outcome := 'fallback:account';
        RETURN;
    END IF;
    SELECT a.ledger_id, a.kind, a.status, a.balance, a.min_balance, a.max_balance INTO v_payee
      FROM accounts a WHERE a.id = p_payee;
    IF NOT FOUND OR v_payee.ledger_id <> v_payer.ledger_id THEN
        o_outcome := 'fallback:account';
        RETURN;
    END IF;
    IF v_payer.status <> 'active' OR v_payee.status <> 'active'
       OR v_payer.kind = 'federation' OR v_payee.kind = 'federation' THEN
        o_outcome := 'fallback:account_state';
        RETURN;
    END IF;
    -- A co-op ledger (federation ledgers have no coops row), its unit and policy, and whether
    -- the caller's membership of that co-op holds the payer account or is a treasurer's.
    SELECT l.unit_code, l.scale, c.max_transfer_amount,
           EXISTS (
               SELECT 1 FROM memberships m
                WHERE m.coop_id = c.id AND m.user_id = p_user
                  AND (m.account_id = p_payer OR m.role = 'treasurer')
           ) AS allowed
      INTO v_ledger
      FROM ledgers l JOIN coops c ON c.ledger_id = l.id
     WHERE l.id = v_payer.ledger_id;
    IF NOT FOUND OR NOT v_ledger.allowed THEN
        o_outcome := 'fallback:caller';
        RETURN;
    END IF;
    IF v_ledger.unit_code !~ '^[A-Z0-9_]+$' THEN  -- written into the JSON unescaped
        o_outcome := 'fallback:unit';
        RETURN;
    END IF;
    v_step := power(10::numeric, v_ledger.scale)::bigint;
    IF p_decimals IS NULL THEN
        v_amount := p_amount;  -- already in the unit's smallest step
    ELSIF p_decimals > v_ledger.scale THEN
        o_outcome := 'fallback:decimals';
        RETURN;
    ELSE
        v_amount := p_amount * power(10::numeric, v_ledger.scale - p_decimals)::bigint;
    END IF;
    IF v_amount <= 0 OR v_amount > v_ledger.max_transfer_amount THEN
        o_outcome := 'fallback:amount';
        RETURN;
    END IF;
    IF (v_payer.min_balance IS NOT NULL AND v_payer.balance - v_amount < v_payer.min_balance)
       OR (v_payee.max_balance IS NOT NULL AND v_payee.balance + v_amount > v_payee.max_balance) THEN
        o_outcome := 'fallback:limit';
        RETURN;
    END IF;
    -- The conditional UPDATEs of ledger.service._move, in ascending account id order: the WHERE
    -- clause is the limit, decided by the database under the row lock.
    IF p_payer < p_payee THEN
        UPDATE accounts
           SET balance = balance - v_amount, debits = debits + v_amount, version = version + 1
         WHERE id = p_payer AND status = 'active'
           AND (min_balance IS NULL OR balance - v_amount >= min_balance)
        RETURNING balance, version INTO v_payer_balance, v_payer_version;
        IF NOT FOUND THEN
            o_outcome := 'fallback:limit';  -- nothing written yet
            RETURN;
        END IF;
    END IF;
    UPDATE accounts
       SET balance = balance + v_amount, credits = credits + v_amount, version = version + 1
     WHERE id = p_payee AND status = 'active'
       AND (max_balance IS NULL OR balance + v_amount <= max_balance)
    RETURNING balance, version INTO v_payee_balance, v_payee_version;
    IF NOT FOUND THEN
        IF p_payer < p_payee THEN
            RAISE EXCEPTION 'commons_pay: the payee''s limit refused; the Python path explains it'
                USING ERRCODE = 'CM001';
        END IF;
        o_outcome := 'fallback:limit';
        RETURN;
    END IF;
    IF p_payer > p_payee THEN
        UPDATE accounts
           SET balance = balance - v_amount, debits = debits + v_amount, version = version + 1
         WHERE id = p_payer AND status = 'active'
           AND (min_balance IS NULL OR balance - v_amount >= min_balance)
        RETURNING balance, version INTO v_payer_balance, v_payer_version;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'commons_pay: the payer''s limit refused; the Python path explains it'
                USING ERRCODE = 'CM001';
        END IF;
    END IF;
    INSERT INTO transfers (
        ledger_id, transaction_id, payer_id, payee_id, amount, memo, category, occurred_on,
        initiator_id, status, created_at
    ) VALUES (
        v_payer.ledger_id, p_transaction_id, p_payer, p_payee, v_amount, p_memo, p_category,
        p_occurred_on, p_user, 'posted', p_now
    ) RETURNING id INTO v_id;
    INSERT INTO postings (account_id, version, transfer_id, amount, balance_after, posted_at)
    VALUES (p_payer, v_payer_version, v_id, -v_amount, v_payer_balance, p_now),
           (p_payee, v_payee_version, v_id, v_amount, v_payee_balance, p_now);
    -- ledger.amounts.format_amount: exactly `scale` decimals.
    v_amount_text := CASE
        WHEN v_ledger.scale = 0 THEN v_amount::text
        ELSE (v_amount / v_step)::text || '.' || lpad((v_amount % v_step)::text, v_ledger.scale, '0')
    END;
    o_body := p_parts[1];
    FOR i IN 1 .. coalesce(array_length(p_holes, 1), 0) LOOP
        o_body := o_body || CASE p_holes[i]
            WHEN 'id' THEN '"' || v_id::text || '"'
            WHEN 'amount' THEN '"' || v_amount_text || '"'
            WHEN 'unit_code' THEN '"' || v_ledger.unit_code || '"'
            WHEN 'scale' THEN v_ledger.scale::text
        END || p_parts[i + 1];
    END LOOP;
    IF o_body IS NULL THEN
        RAISE EXCEPTION 'commons_pay: a body template with an unknown hole or a missing part';
    END IF;
    INSERT INTO idempotency_keys (user_id, key, request_hash, response_status, response_body, created_at)
    VALUES (p_user, p_key, p_request_hash, 201, o_body, p_now);
    o_outcome := 'posted';
    o_status := 201;
END
$$
"""


def upgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.execute(textwrap.dedent(LOOKUP).strip())
        op.execute(textwrap.dedent(PAY).strip())


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        for signature in SIGNATURES:
            op.execute(f"DROP FUNCTION {signature}")
