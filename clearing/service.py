"""Federations: creation, officers, member co-ops with their rates and federation accounts,
and who may do what inside a federation.

Every function works inside the caller's unit of work (an open connection) and raises
`DomainError`. Obligations, clearing runs and cross-co-op payments build on this module
(clearing/obligations.py, clearing/runs.py, clearing/crosspay.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from accounts.actor import Actor, Role
from accounts.service import find_user_id, get_coop, validate_organisation
from clearing import tables as ct
from clearing.rates import Rate
from ledger import tables as t
from ledger.core import AccountKind, AccountStatus, validate_limits
from ledger.db import is_sqlite
from ledger.errors import DomainError, Problem
from ledger.service import utc


@dataclass(frozen=True, slots=True)
class CommandLine:
    """The operator at the `commons` command line. They already hold the database, so they
    act with an officer's rights in every federation; what they do is recorded without a
    user (created_by NULL)."""


Requester = Actor | CommandLine


@dataclass(frozen=True, slots=True)
class FederationRecord:
    id: int
    slug: str
    name: str
    unit_code: str
    scale: int
    ledger_id: int
    clearing_account_id: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class MemberRecord:
    member_id: int
    federation_id: int
    coop_id: int
    slug: str
    name: str
    coop_ledger_id: int
    coop_unit_code: str
    coop_scale: int
    rate: Rate
    account_id: int
    mirror_account_id: int
    balance: int
    min_balance: int | None
    max_balance: int | None
    status: str
    joined_at: datetime


@dataclass(frozen=True, slots=True)
class Access:
    """What a requester may see and do in one federation."""

    officer: bool
    admin: bool
    treasurer_of: frozenset[int]  # member co-ops (ids) whose treasurer the requester is
    member_of: frozenset[int]  # member co-ops (ids) where the requester has any role

    def sees_coop(self, coop_id: int) -> bool:
        return self.officer or coop_id in self.treasurer_of


def _raise_if(problems: list[Problem]) -> None:
    if problems:
        raise DomainError.from_problems(problems)


def user_of(requester: Requester) -> int | None:
    return requester.user_id if isinstance(requester, Actor) else None


# --- reading ------------------------------------------------------------------------------


def _federation_select() -> sa.Select[Any]:
    f, fl = t.federations, ct.federation_ledgers
    return sa.select(
        f.c.id,
        f.c.slug,
        f.c.name,
        f.c.unit_code,
        f.c.unit_scale.label("scale"),
        fl.c.ledger_id,
        fl.c.clearing_account_id,
        f.c.created_at,
    ).select_from(f.join(fl, fl.c.federation_id == f.c.id))


def get_federation(conn: Connection, slug: str) -> FederationRecord:
    row = conn.execute(_federation_select().where(t.federations.c.slug == slug)).first()
    if row is None:
        raise DomainError("federation_not_found", f"there is no federation {slug!r}")
    return _federation(row)


def federation_by_id(conn: Connection, federation_id: int) -> FederationRecord:
    row = conn.execute(_federation_select().where(t.federations.c.id == federation_id)).one()
    return _federation(row)


def _federation(row: Any) -> FederationRecord:
    return FederationRecord(**{**row._mapping, "created_at": utc(row.created_at)})


def is_officer(conn: Connection, *, user_id: int, federation_id: int) -> bool:
    fo = ct.federation_officers
    row = conn.execute(
        sa.select(fo.c.user_id).where(fo.c.federation_id == federation_id, fo.c.user_id == user_id)
    ).first()
    return row is not None


def access(conn: Connection, requester: Requester, federation: FederationRecord) -> Access:
    if isinstance(requester, CommandLine):
        return Access(officer=True, admin=True, treasurer_of=frozenset(), member_of=frozenset())
    coop_ids = sorted({r.coop_id for r in requester.roles})
    member_coops: set[int] = set()
    if coop_ids:
        fm = ct.federation_members
        member_coops = set(
            conn.execute(
                sa.select(fm.c.coop_id).where(fm.c.federation_id == federation.id, fm.c.coop_id.in_(coop_ids))
            ).scalars()
        )
    return Access(
        officer=is_officer(conn, user_id=requester.user_id, federation_id=federation.id),
        admin=requester.is_admin,
        treasurer_of=frozenset(
            r.coop_id for r in requester.roles if r.role is Role.TREASURER and r.coop_id in member_coops
        ),
        member_of=frozenset(member_coops),
    )


def require_officer(conn: Connection, requester: Requester, federation: FederationRecord) -> Access:
    found = access(conn, requester, federation)
    if not found.officer:
        raise DomainError("forbidden", "only an officer of this federation may do this")
    return found


def require_reader(conn: Connection, requester: Requester, federation: FederationRecord) -> Access:
    """Officers, admins and anyone with a role in a member co-op may read the federation."""
    found = access(conn, requester, federation)
    if not (found.officer or found.admin or found.member_of):
        raise DomainError("forbidden", "you have no part in this federation")
    return found


def _member_select() -> sa.Select[Any]:
    fm, c, a, lg = ct.federation_members, t.coops, t.accounts, t.ledgers
    return (
        sa.select(
            fm.c.id.label("member_id"),
            fm.c.federation_id,
            fm.c.coop_id,
            c.c.slug,
            c.c.name,
            c.c.ledger_id.label("coop_ledger_id"),
            lg.c.unit_code.label("coop_unit_code"),
            lg.c.scale.label("coop_scale"),
            fm.c.rate_num,
            fm.c.rate_den,
            fm.c.account_id,
            fm.c.mirror_account_id,
            a.c.balance,
            a.c.min_balance,
            a.c.max_balance,
            a.c.status,
            fm.c.joined_at,
        )
        .select_from(
            fm.join(c, c.c.id == fm.c.coop_id)
            .join(lg, lg.c.id == c.c.ledger_id)
            .join(a, a.c.id == fm.c.account_id)
        )
        .order_by(fm.c.id)
    )


def _member(row: Any) -> MemberRecord:
    values = dict(row._mapping)
    rate = Rate(values.pop("rate_num"), values.pop("rate_den"))
    values["joined_at"] = utc(values["joined_at"])
    return MemberRecord(rate=rate, **values)


def list_members(
    conn: Connection,
    federation: FederationRecord,
    *,
    cursor: int | None = None,
    limit: int | None = None,
) -> list[MemberRecord]:
    """Members in the order they joined; a page of `limit` after `cursor` (a member_id)."""
    fm = ct.federation_members
    query = _member_select().where(fm.c.federation_id == federation.id)
    if cursor is not None:
        query = query.where(fm.c.id > cursor)
    if limit is not None:
        query = query.limit(limit)
    return [_member(r) for r in conn.execute(query)]


def get_member(conn: Connection, federation: FederationRecord, coop_slug: str) -> MemberRecord:
    fm = ct.federation_members
    row = conn.execute(
        _member_select().where(fm.c.federation_id == federation.id, t.coops.c.slug == coop_slug)
    ).first()
    if row is None:
        raise DomainError("coop_not_found", f"the co-op {coop_slug!r} is not a member of this federation")
    return _member(row)


def members_by_ledger(conn: Connection, ledger_ids: list[int]) -> dict[int, MemberRecord]:
    """Federation memberships of the co-ops owning these ledgers, by co-op ledger id."""
    rows = conn.execute(_member_select().where(t.coops.c.ledger_id.in_(ledger_ids)))
    return {r.coop_ledger_id: _member(r) for r in rows}


def coop_ids_by_slug(conn: Connection, federation: FederationRecord) -> dict[str, int]:
    fm, c = ct.federation_members, t.coops
    rows = conn.execute(
        sa.select(c.c.slug, c.c.id)
        .join(fm, fm.c.coop_id == c.c.id)
        .where(fm.c.federation_id == federation.id)
    )
    return {r.slug: r.id for r in rows}


def coop_slugs(conn: Connection, coop_ids: set[int]) -> dict[int, str]:
    if not coop_ids:
        return {}
    c = t.coops
    rows = conn.execute(sa.select(c.c.id, c.c.slug).where(c.c.id.in_(sorted(coop_ids))))
    return {r.id: r.slug for r in rows}


# --- writing ------------------------------------------------------------------------------


def create_federation(
    conn: Connection,
    *,
    actor: Actor,
    slug: str,
    name: str,
    unit_code: str,
    scale: int,
    now: datetime,
) -> FederationRecord:
    """A federation with its own ledger and, in it, the clearing account runs settle through."""
    if not actor.is_admin:
        raise DomainError("forbidden", "only an instance admin may create a federation")
    problems = validate_organisation(slug=slug, name=name, unit_code=unit_code, scale=scale)
    _raise_if(problems)
    f = t.federations
    if conn.execute(sa.select(f.c.id).where(f.c.slug == slug)).first() is not None:
        raise DomainError("already_exists", f"a federation with slug {slug!r} already exists")
    federation_id = conn.execute(
        sa.insert(f)
        .values(slug=slug, name=name.strip(), unit_code=unit_code, unit_scale=scale, created_at=now)
        .returning(f.c.id)
    ).scalar_one()
    ledger_id = conn.execute(
        sa.insert(t.ledgers)
        .values(kind="federation", unit_code=unit_code, scale=scale, created_at=now)
        .returning(t.ledgers.c.id)
    ).scalar_one()
    # No limits: it only passes credit from paying co-ops to receiving ones inside one apply.
    clearing_account_id = conn.execute(
        sa.insert(t.accounts)
        .values(
            ledger_id=ledger_id,
            kind=AccountKind.FEDERATION.value,
            holder=f"{name.strip()} clearing"[:200],
            status=AccountStatus.ACTIVE.value,
            created_at=now,
        )
        .returning(t.accounts.c.id)
    ).scalar_one()
    conn.execute(
        sa.insert(ct.federation_ledgers).values(
            federation_id=federation_id,
            ledger_id=ledger_id,
            clearing_account_id=clearing_account_id,
        )
    )
    return get_federation(conn, slug)


def appoint_officer(
    conn: Connection, *, actor: Actor, federation: FederationRecord, email: str, now: datetime
) -> int:
    if not actor.is_admin:
        raise DomainError("forbidden", "only an instance admin may appoint federation officers")
    user_id = find_user_id(conn, email)
    if user_id is None:
        raise DomainError(
            "user_not_found",
            "no user has this email; add them to a co-op or create them first",
            [Problem("user_not_found", "unknown email", "email")],
        )
    if is_officer(conn, user_id=user_id, federation_id=federation.id):
        raise DomainError("already_exists", "this person is already an officer of the federation")
    conn.execute(
        sa.insert(ct.federation_officers).values(
            federation_id=federation.id, user_id=user_id, appointed_at=now
        )
    )
    return user_id


def list_officers(conn: Connection, federation: FederationRecord) -> list[tuple[int, str, str]]:
    fo, u = ct.federation_officers, t.users
    rows = conn.execute(
        sa.select(u.c.id, u.c.email, u.c.name)
        .join(fo, fo.c.user_id == u.c.id)
        .where(fo.c.federation_id == federation.id)
        .order_by(u.c.email)
    )
    return [(r.id, r.email, r.name) for r in rows]


def join_federation(
    conn: Connection,
    *,
    requester: Requester,
    federation: FederationRecord,
    coop_slug: str,
    rate: Rate,
    min_balance: int | None,
    max_balance: int | None,
    now: datetime,
) -> MemberRecord:
    """A co-op joins: its account in the federation ledger (kind 'coop', with the limits an
    officer sets; by default no credit, min_balance 0) and the federation's account in the
    co-op's ledger (kind 'federation', no limits: it mirrors the position at the federation)."""
    found = access(conn, requester, federation)
    if not (found.officer or found.admin):
        raise DomainError("forbidden", "only an admin or an officer of the federation may add co-ops")
    coop = get_coop(conn, coop_slug)
    _raise_if(validate_limits(min_balance, max_balance))
    fm = ct.federation_members
    existing = conn.execute(sa.select(fm.c.federation_id).where(fm.c.coop_id == coop.id)).first()
    if existing is not None:
        where = "this" if existing.federation_id == federation.id else "another"
        raise DomainError("already_exists", f"the co-op is already a member of {where} federation")
    a = t.accounts
    account_id = conn.execute(
        sa.insert(a)
        .values(
            ledger_id=federation.ledger_id,
            kind=AccountKind.COOP.value,
            holder=coop.name,
            min_balance=min_balance,
            max_balance=max_balance,
            status=AccountStatus.ACTIVE.value,
            created_at=now,
        )
        .returning(a.c.id)
    ).scalar_one()
    mirror_id = conn.execute(
        sa.insert(a)
        .values(
            ledger_id=coop.ledger_id,
            kind=AccountKind.FEDERATION.value,
            holder=federation.name,
            status=AccountStatus.ACTIVE.value,
            created_at=now,
        )
        .returning(a.c.id)
    ).scalar_one()
    conn.execute(
        sa.insert(fm).values(
            federation_id=federation.id,
            coop_id=coop.id,
            rate_num=rate.numerator,
            rate_den=rate.denominator,
            account_id=account_id,
            mirror_account_id=mirror_id,
            joined_at=now,
        )
    )
    return get_member(conn, federation, coop_slug)


def update_member_account(
    conn: Connection,
    *,
    requester: Requester,
    federation: FederationRecord,
    coop_slug: str,
    changes: dict[str, Any],
) -> MemberRecord:
    """An officer sets a member co-op's limits (or freezes its account) in the federation
    ledger. Refused when the current balance lies outside the new limits."""
    require_officer(conn, requester, federation)
    member = get_member(conn, federation, coop_slug)
    min_balance = changes.get("min_balance", member.min_balance)
    max_balance = changes.get("max_balance", member.max_balance)
    status = changes.get("status", member.status)
    problems = validate_limits(min_balance, max_balance)
    if status not in (AccountStatus.ACTIVE.value, AccountStatus.FROZEN.value):
        problems.append(Problem("validation_failed", "status is active or frozen", "status"))
    _raise_if(problems)
    a = t.accounts
    guard = [a.c.id == member.account_id]
    if min_balance is not None:
        guard.append(a.c.balance >= min_balance)
    if max_balance is not None:
        guard.append(a.c.balance <= max_balance)
    result = conn.execute(
        sa.update(a).where(*guard).values(min_balance=min_balance, max_balance=max_balance, status=status)
    )
    if result.rowcount != 1:
        raise DomainError(
            "limit_violated_by_balance",
            "the co-op's current federation balance is outside these limits",
        )
    return get_member(conn, federation, coop_slug)


def lock_accounts(conn: Connection, account_ids: list[int]) -> None:
    """Lock account rows in ascending id order before a multi-account write (PostgreSQL;
    SQLite's BEGIN IMMEDIATE already holds the write lock), so two writers touching the same
    accounts in different orders cannot deadlock."""
    if is_sqlite(conn) or not account_ids:
        return
    a = t.accounts
    conn.execute(
        sa.select(a.c.id).where(a.c.id.in_(sorted(set(account_ids)))).order_by(a.c.id).with_for_update()
    ).all()
