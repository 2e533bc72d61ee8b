"""Cross-co-op payments in both directions at once: the six accounts of each payment are
locked in ascending id order, so opposite payments cannot deadlock (PostgreSQL) and every
ledger still sums to zero with every limit kept."""

from __future__ import annotations

import random
import threading
from collections import Counter

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from accounts.actor import Actor, CoopRole, Role
from accounts.service import add_member, get_coop
from ledger import tables as t
from ledger.db import write_transaction
from ledger.errors import DomainError
from ledger.service import TransferInput, create_transfer
from tests.federation.conftest import ADMIN_ACTOR, NOW, service_federation

THREADS = 4
PER_THREAD = 15


def test_opposite_payments_do_not_deadlock_and_keep_every_invariant(fed_engine: Engine) -> None:
    service_federation(fed_engine, {"east": (-3000, 3000), "west": (-3000, 3000)})
    actors: dict[str, Actor] = {}
    with write_transaction(fed_engine) as conn:
        for slug in ("east", "west"):
            coop = get_coop(conn, slug)
            user_id, account, _ = add_member(
                conn,
                actor=ADMIN_ACTOR,
                slug=slug,
                email=f"m@{slug}.example.org",
                name="M",
                role=Role.MEMBER,
                password=None,
                now=NOW,
            )
            conn.execute(
                sa.update(t.accounts)
                .where(t.accounts.c.id == account)
                .values(min_balance=-5000, max_balance=5000)
            )
            actors[slug] = Actor(
                user_id, False, (CoopRole(coop.id, slug, coop.ledger_id, Role.MEMBER, account),)
            )
    account = {slug: a.roles[0].account_id for slug, a in actors.items()}
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()
    start = threading.Barrier(THREADS)

    def client(n: int) -> None:
        rnd = random.Random(n)
        start.wait()
        for _ in range(PER_THREAD):
            payer, payee = ("east", "west") if rnd.random() < 0.5 else ("west", "east")
            request = TransferInput(account[payer], account[payee], rnd.choice((100, 250, 700)))
            try:
                with write_transaction(fed_engine) as conn:
                    create_transfer(conn, actor=actors[payer], request=request, now=NOW)
                outcome = "posted"
            except DomainError as exc:
                outcome = exc.code
            except Exception as exc:  # a deadlock or a lost update would land here
                outcome = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
            with lock:
                outcomes[outcome] += 1

    threads = [threading.Thread(target=client, args=(n,)) for n in range(THREADS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=120)
    assert not any(th.is_alive() for th in threads)
    assert set(outcomes) <= {"posted", "insufficient_credit", "ceiling_exceeded"}, outcomes
    assert outcomes["posted"] > 0

    a = t.accounts
    with fed_engine.connect() as conn:
        sums = conn.execute(sa.select(a.c.ledger_id, sa.func.sum(a.c.balance)).group_by(a.c.ledger_id)).all()
        assert all(total == 0 for _, total in sums), sums
        bad = conn.execute(
            sa.select(a.c.id).where(
                sa.or_(
                    sa.and_(a.c.min_balance.is_not(None), a.c.balance < a.c.min_balance),
                    sa.and_(a.c.max_balance.is_not(None), a.c.balance > a.c.max_balance),
                )
            )
        ).all()
        assert bad == []
        legs = conn.execute(sa.select(sa.func.count()).select_from(t.transfers)).scalar_one()
        payments = conn.execute(
            sa.select(sa.func.count()).select_from(sa.table("cross_coop_payments"))
        ).scalar_one()
    assert (legs, payments) == (3 * outcomes["posted"], outcomes["posted"])
