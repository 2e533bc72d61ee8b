"""Seed data for `commons demo`: Riverside Time Bank, about 30 members and a month of exchanges."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from accounts import service as accounts
from accounts.actor import Actor, CoopRole, Role
from ledger import service
from ledger import tables as t
from ledger.db import write_transaction
from ledger.errors import DomainError
from ledger.service import TransferInput

SLUG = "riverside"
DEMO_PASSWORD = "riverside-demo"  # noqa: S105 (published demo login)
ADMIN_EMAIL = "admin@riverside.example"
TREASURER_EMAIL = "treasurer@riverside.example"

MEMBERS = [
    "Ana Souza",
    "Ben Okafor",
    "Cleo Martin",
    "Dev Patel",
    "Elif Yılmaz",  # noqa: RUF001 (a Turkish name)
    "Farah Haddad",
    "Gus Lindqvist",
    "Hana Kobayashi",
    "Ivan Petrov",
    "Jade Nguyen",
    "Kofi Mensah",
    "Lena Fischer",
    "Mateo García",
    "Nora O'Brien",
    "Omar Farouk",
    "Priya Raman",
    "Quinn Murphy",
    "Rosa Delgado",
    "Sami Laine",
    "Tara Walsh",
    "Uma Iyer",
    "Victor Dubois",
    "Wren Ellis",
    "Xiu Chen",
    "Yara Haddad",
    "Zeke Adler",
    "Maya Cohen",
    "Luis Moreno",
    "Ines Costa",
]

CATEGORIES = {
    "childcare": ["after-school pickup", "babysitting Friday evening", "homework club"],
    "repairs": ["fixed a bike puncture", "mended a fence", "repaired a leaking tap", "sewing repairs"],
    "rides": ["lift to the hospital", "airport run", "market shopping trip"],
    "tutoring": ["maths tutoring", "English conversation", "guitar lesson", "CV help"],
    "cooking": ["batch-cooked meals", "birthday cake", "soup for the sick"],
    "gardening": ["weeding the allotment", "pruned fruit trees"],
}


@dataclass(frozen=True)
class DemoLogins:
    admin: str
    treasurer: str
    members: list[str]
    password: str


def _email(name: str) -> str:
    first = name.split()[0].lower().replace("ı", "i")  # noqa: RUF001
    return f"{first}@riverside.example"


def demo_exists(engine: Engine) -> bool:
    with engine.connect() as conn:
        return conn.execute(sa.select(t.coops.c.id).where(t.coops.c.slug == SLUG)).first() is not None


def seed(engine: Engine, *, seed_value: int = 2026, now: datetime | None = None) -> DemoLogins:
    """Create the demo co-op unless it exists. Deterministic for a seed."""
    rng = random.Random(seed_value)
    end = now or datetime.now(UTC)
    start = end - timedelta(days=30)
    emails = [_email(n) for n in MEMBERS]
    logins = DemoLogins(ADMIN_EMAIL, TREASURER_EMAIL, emails[:3], DEMO_PASSWORD)
    if demo_exists(engine):
        return logins
    with write_transaction(engine) as conn:
        admin_id = accounts.create_user(
            conn, email=ADMIN_EMAIL, name="Instance Admin", password=DEMO_PASSWORD, is_admin=True, now=start
        )
        admin = Actor(admin_id, True)
        coop = accounts.create_coop(
            conn,
            actor=admin,
            slug=SLUG,
            name="Riverside Time Bank",
            unit_code="HOUR",
            scale=2,
            default_min_balance=-2000,
            default_max_balance=4000,
            claim_expiry_days=14,
            max_transfer_amount=2400,
            now=start,
        )
        treasurer_user, treasurer_account, _ = accounts.add_member(
            conn,
            actor=admin,
            slug=SLUG,
            email=TREASURER_EMAIL,
            name="Tess Okoye",
            role=Role.TREASURER,
            password=DEMO_PASSWORD,
            now=start,
        )
        members: list[tuple[int, int]] = []
        for name, email in zip(MEMBERS, emails, strict=True):
            user_id, account_id, _ = accounts.add_member(
                conn,
                actor=admin,
                slug=SLUG,
                email=email,
                name=name,
                role=Role.MEMBER,
                password=DEMO_PASSWORD,
                now=start,
            )
            members.append((user_id, account_id))
    treasurer = Actor(
        treasurer_user, False, (CoopRole(coop.id, SLUG, coop.ledger_id, Role.TREASURER, treasurer_account),)
    )

    def member_actor(i: int) -> Actor:
        user_id, account_id = members[i]
        return Actor(user_id, False, (CoopRole(coop.id, SLUG, coop.ledger_id, Role.MEMBER, account_id),))

    posted = []
    moment = start
    for _ in range(160):
        moment += timedelta(minutes=rng.randint(60, 480))
        if moment >= end - timedelta(hours=6):
            break
        payer_i, payee_i = rng.sample(range(len(members)), 2)
        category = rng.choice(sorted(CATEGORIES))
        amount = rng.choice([50, 100, 100, 150, 200, 200, 250, 300, 400])
        request = TransferInput(
            members[payer_i][1],
            members[payee_i][1],
            amount,
            rng.choice(CATEGORIES[category]),
            category,
            moment.date(),
        )
        with write_transaction(engine) as conn:
            try:
                posted.append(
                    service.create_transfer(conn, actor=member_actor(payer_i), request=request, now=moment)
                )
            except DomainError:
                continue  # a limit said no, as it would for a real member
    with write_transaction(engine) as conn:
        # A treasurer correction: the wrong member was credited.
        service.reverse_transfer(
            conn, actor=treasurer, transfer_id=posted[5].id, reason="credited the wrong member", now=moment
        )
        # Claims waiting for an answer: "I gave 2 hours to ..."
        for payer_i, payee_i, amount, category in [
            (0, 1, 200, "childcare"),
            (2, 0, 150, "repairs"),
            (3, 0, 100, "rides"),
            (1, 4, 300, "tutoring"),
        ]:
            request = TransferInput(
                members[payer_i][1],
                members[payee_i][1],
                amount,
                rng.choice(CATEGORIES[category]),
                category,
                end.date(),
            )
            service.create_transfer(
                conn, actor=member_actor(payee_i), request=request, now=end - timedelta(hours=2)
            )
    return logins
