"""Users, co-ops, memberships and sessions. Each function works inside the caller's unit of work."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from accounts import passwords, tokens
from accounts.actor import Actor, CoopRole, Role
from ledger import tables as t
from ledger.amounts import MAX_SCALE
from ledger.core import AccountKind, AccountStatus, validate_limits
from ledger.errors import DomainError, Problem
from ledger.service import utc

SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$")
UNIT_CODE = re.compile(r"^[A-Z][A-Z0-9_]{0,15}$")
EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}$")
MAX_CLAIM_EXPIRY_DAYS = 3650


@dataclass(frozen=True, slots=True)
class CoopRecord:
    id: int
    slug: str
    name: str
    ledger_id: int
    unit_code: str
    scale: int
    default_min_balance: int | None
    default_max_balance: int | None
    claim_expiry_days: int
    max_transfer_amount: int
    coop_account_id: int | None


class RefreshTokenReusedError(DomainError):
    """A rotated refresh token came back. The family's revocation was written in the caller's
    unit of work, which must COMMIT it before answering 401: a rollback would undo it."""


@dataclass(frozen=True, slots=True)
class TokenPair:
    access_token: str
    expires_in: int
    refresh_token: str


def normalise_email(email: str) -> str:
    return email.strip().lower()


def _raise_if(problems: list[Problem]) -> None:
    if problems:
        raise DomainError.from_problems(problems)


# --- actors --------------------------------------------------------------------------------


_u, _m, _c = t.users, t.memberships, t.coops
# Built once: every authenticated request runs it (see ledger.service on statements built once).
_LOAD_ACTOR = (
    sa.select(
        _u.c.token_version, _u.c.is_admin, _m.c.coop_id, _c.c.slug, _c.c.ledger_id, _m.c.role, _m.c.account_id
    )
    .select_from(_u.outerjoin(_m, _m.c.user_id == _u.c.id).outerjoin(_c, _c.c.id == _m.c.coop_id))
    .where(_u.c.id == sa.bindparam("actor_user", type_=sa.BigInteger))
)


def load_actor(conn: Connection, claims: tokens.AccessClaims) -> Actor:
    """The user behind a verified token, with roles; refused when the token was revoked."""
    rows = conn.execute(_LOAD_ACTOR, {"actor_user": claims.user_id}).all()
    if not rows or rows[0].token_version != claims.token_version:
        raise DomainError("unauthenticated", "this token has been revoked; sign in again")
    roles = tuple(
        CoopRole(r.coop_id, r.slug, r.ledger_id, Role(r.role), r.account_id)
        for r in rows
        if r.coop_id is not None
    )
    return Actor(user_id=claims.user_id, is_admin=bool(rows[0].is_admin), roles=roles)


# --- users ---------------------------------------------------------------------------------


def create_user(
    conn: Connection,
    *,
    email: str,
    name: str,
    password: str | None,
    is_admin: bool = False,
    now: datetime,
) -> int:
    email = normalise_email(email)
    problems: list[Problem] = []
    if not EMAIL.match(email):
        problems.append(Problem("validation_failed", "this is not an email address", "email"))
    if not name.strip() or len(name) > 200:
        problems.append(Problem("validation_failed", "a name of 1 to 200 characters is needed", "name"))
    if password is not None:
        problems += [
            Problem("validation_failed", p, "password") for p in passwords.password_problems(password)
        ]
    _raise_if(problems)
    exists = conn.execute(sa.select(t.users.c.id).where(t.users.c.email == email)).first()
    if exists is not None:
        raise DomainError("already_exists", "a user with this email already exists")
    return int(
        conn.execute(
            sa.insert(t.users)
            .values(
                email=email,
                name=name.strip(),
                password_hash=passwords.hash_password(password) if password else None,
                is_admin=is_admin,
                token_version=0,
                created_at=now,
            )
            .returning(t.users.c.id)
        ).scalar_one()
    )


def find_user_id(conn: Connection, email: str) -> int | None:
    row = conn.execute(sa.select(t.users.c.id).where(t.users.c.email == normalise_email(email))).first()
    return None if row is None else int(row.id)


def user_profile(conn: Connection, user_id: int) -> dict[str, object]:
    row = conn.execute(
        sa.select(t.users.c.id, t.users.c.email, t.users.c.name, t.users.c.is_admin).where(
            t.users.c.id == user_id
        )
    ).one()
    return {"id": row.id, "email": row.email, "name": row.name, "is_admin": bool(row.is_admin)}


# --- sessions ------------------------------------------------------------------------------


def _issue_pair(
    conn: Connection, *, user_id: int, token_version: int, family: str, secret: str, now: datetime
) -> TokenPair:
    access, expires_in = tokens.issue_access_token(
        secret=secret, user_id=user_id, token_version=token_version, now=now
    )
    refresh, refresh_hash = tokens.new_refresh_token()
    conn.execute(
        sa.insert(t.refresh_tokens).values(
            user_id=user_id,
            family_id=family,
            token_hash=refresh_hash,
            created_at=now,
            expires_at=now + tokens.REFRESH_TTL,
        )
    )
    return TokenPair(access, expires_in, refresh)


def login(conn: Connection, *, email: str, password: str, secret: str, now: datetime) -> TokenPair:
    row = conn.execute(
        sa.select(t.users.c.id, t.users.c.password_hash, t.users.c.token_version).where(
            t.users.c.email == normalise_email(email)
        )
    ).first()
    # verify_password runs against a dummy hash for an unknown email: equal cost, no oracle.
    if not passwords.verify_password(row.password_hash if row else None, password) or row is None:
        raise DomainError("invalid_credentials", "the email or the password is wrong")
    if passwords.needs_rehash(row.password_hash):
        conn.execute(
            sa.update(t.users)
            .where(t.users.c.id == row.id)
            .values(password_hash=passwords.hash_password(password))
        )
    return _issue_pair(
        conn,
        user_id=row.id,
        token_version=row.token_version,
        family=str(uuid.uuid4()),
        secret=secret,
        now=now,
    )


def refresh(conn: Connection, *, refresh_token: str, secret: str, now: datetime) -> TokenPair:
    rt = t.refresh_tokens
    row = conn.execute(
        sa.select(
            rt.c.id, rt.c.user_id, rt.c.family_id, rt.c.expires_at, rt.c.rotated_at, rt.c.revoked_at
        ).where(rt.c.token_hash == tokens.hash_refresh_token(refresh_token))
    ).first()
    if row is None or row.revoked_at is not None or utc(row.expires_at) <= now:  # type: ignore[operator]
        raise DomainError("invalid_token", "this refresh token is not valid; sign in again")
    if row.rotated_at is not None:
        # A rotated token came back: a copy is in someone else's hands. Burn the family.
        revoke_family(conn, family_id=row.family_id, now=now)
        raise RefreshTokenReusedError("invalid_token", "this refresh token was already used; sign in again")
    rotated = conn.execute(
        sa.update(rt).where(rt.c.id == row.id, rt.c.rotated_at.is_(None)).values(rotated_at=now)
    )
    if rotated.rowcount != 1:
        raise DomainError("invalid_token", "this refresh token was already used; sign in again")
    version = conn.execute(sa.select(t.users.c.token_version).where(t.users.c.id == row.user_id)).scalar_one()
    return _issue_pair(
        conn, user_id=row.user_id, token_version=version, family=row.family_id, secret=secret, now=now
    )


def revoke_family(conn: Connection, *, family_id: str, now: datetime) -> None:
    rt = t.refresh_tokens
    conn.execute(
        sa.update(rt).where(rt.c.family_id == family_id, rt.c.revoked_at.is_(None)).values(revoked_at=now)
    )


def revoke_all_sessions(conn: Connection, *, user_id: int, now: datetime) -> None:
    """Logout everywhere: every access token dies (version bump), every refresh token too."""
    conn.execute(
        sa.update(t.users).where(t.users.c.id == user_id).values(token_version=t.users.c.token_version + 1)
    )
    rt = t.refresh_tokens
    conn.execute(
        sa.update(rt).where(rt.c.user_id == user_id, rt.c.revoked_at.is_(None)).values(revoked_at=now)
    )


def change_password(conn: Connection, *, user_id: int, current: str, new: str, now: datetime) -> None:
    row = conn.execute(sa.select(t.users.c.password_hash).where(t.users.c.id == user_id)).one()
    if not passwords.verify_password(row.password_hash, current):
        raise DomainError("invalid_credentials", "the current password is wrong")
    _raise_if([Problem("validation_failed", p, "new_password") for p in passwords.password_problems(new)])
    conn.execute(
        sa.update(t.users).where(t.users.c.id == user_id).values(password_hash=passwords.hash_password(new))
    )
    revoke_all_sessions(conn, user_id=user_id, now=now)


def set_password(conn: Connection, *, user_id: int, password: str, now: datetime) -> None:
    _raise_if([Problem("validation_failed", p, "password") for p in passwords.password_problems(password)])
    conn.execute(
        sa.update(t.users)
        .where(t.users.c.id == user_id)
        .values(password_hash=passwords.hash_password(password))
    )
    revoke_all_sessions(conn, user_id=user_id, now=now)


# --- co-ops --------------------------------------------------------------------------------


def _coop_select() -> sa.Select[tuple[object, ...]]:
    c, lg, a = t.coops, t.ledgers, t.accounts
    return sa.select(
        c.c.id,
        c.c.slug,
        c.c.name,
        c.c.ledger_id,
        lg.c.unit_code,
        lg.c.scale,
        c.c.default_min_balance,
        c.c.default_max_balance,
        c.c.claim_expiry_days,
        c.c.max_transfer_amount,
        sa.select(sa.func.min(a.c.id))
        .where(a.c.ledger_id == c.c.ledger_id, a.c.kind == AccountKind.COOP.value)
        .scalar_subquery()
        .label("coop_account_id"),
    ).select_from(c.join(lg, lg.c.id == c.c.ledger_id))


def get_coop(conn: Connection, slug: str) -> CoopRecord:
    row = conn.execute(_coop_select().where(t.coops.c.slug == slug)).first()
    if row is None:
        raise DomainError("coop_not_found", f"there is no co-op {slug!r}")
    return CoopRecord(**row._mapping)


def coop_by_ledger(conn: Connection, ledger_id: int) -> CoopRecord | None:
    row = conn.execute(_coop_select().where(t.coops.c.ledger_id == ledger_id)).first()
    return None if row is None else CoopRecord(**row._mapping)


def validate_coop_policy(
    *,
    default_min_balance: int | None,
    default_max_balance: int | None,
    claim_expiry_days: int,
    max_transfer_amount: int,
) -> list[Problem]:
    problems = validate_limits(default_min_balance, default_max_balance)
    if not 1 <= claim_expiry_days <= MAX_CLAIM_EXPIRY_DAYS:
        problems.append(
            Problem(
                "validation_failed",
                f"claim_expiry_days must be 1 to {MAX_CLAIM_EXPIRY_DAYS}",
                "claim_expiry_days",
            )
        )
    if max_transfer_amount <= 0:
        problems.append(
            Problem("validation_failed", "max_transfer_amount must be positive", "max_transfer_amount")
        )
    return problems


def validate_organisation(*, slug: str, name: str, unit_code: str, scale: int) -> list[Problem]:
    """What a co-op and a federation both need: a slug, a name and a unit."""
    problems: list[Problem] = []
    if not SLUG.match(slug):
        problems.append(
            Problem("validation_failed", "slug: lowercase letters, digits and dashes, 1-64", "slug")
        )
    if not name.strip() or len(name) > 200:
        problems.append(Problem("validation_failed", "a name of 1 to 200 characters is needed", "name"))
    if not UNIT_CODE.match(unit_code):
        problems.append(
            Problem("validation_failed", "unit code: capital letters and digits, e.g. HOUR", "unit.code")
        )
    if not 0 <= scale <= MAX_SCALE:
        problems.append(Problem("validation_failed", f"unit scale must be 0 to {MAX_SCALE}", "unit.scale"))
    return problems


def create_coop(
    conn: Connection,
    *,
    actor: Actor,
    slug: str,
    name: str,
    unit_code: str,
    scale: int,
    default_min_balance: int | None,
    default_max_balance: int | None,
    claim_expiry_days: int,
    max_transfer_amount: int,
    now: datetime,
) -> CoopRecord:
    if not actor.is_admin:
        raise DomainError("forbidden", "only an instance admin may create a co-op")
    problems = validate_organisation(slug=slug, name=name, unit_code=unit_code, scale=scale)
    problems += validate_coop_policy(
        default_min_balance=default_min_balance,
        default_max_balance=default_max_balance,
        claim_expiry_days=claim_expiry_days,
        max_transfer_amount=max_transfer_amount,
    )
    _raise_if(problems)
    if conn.execute(sa.select(t.coops.c.id).where(t.coops.c.slug == slug)).first() is not None:
        raise DomainError("already_exists", f"a co-op with slug {slug!r} already exists")
    ledger_id = conn.execute(
        sa.insert(t.ledgers)
        .values(kind="coop", unit_code=unit_code, scale=scale, created_at=now)
        .returning(t.ledgers.c.id)
    ).scalar_one()
    conn.execute(
        sa.insert(t.coops).values(
            slug=slug,
            name=name.strip(),
            ledger_id=ledger_id,
            default_min_balance=default_min_balance,
            default_max_balance=default_max_balance,
            claim_expiry_days=claim_expiry_days,
            max_transfer_amount=max_transfer_amount,
            created_at=now,
        )
    )
    # The co-op's own account (commons fund, fees): no limits unless the treasurer sets some.
    conn.execute(
        sa.insert(t.accounts).values(
            ledger_id=ledger_id,
            kind=AccountKind.COOP.value,
            holder=name.strip(),
            status=AccountStatus.ACTIVE.value,
            created_at=now,
        )
    )
    return get_coop(conn, slug)


def update_coop(
    conn: Connection,
    *,
    actor: Actor,
    slug: str,
    changes: dict[str, object],
) -> CoopRecord:
    coop = get_coop(conn, slug)
    if not (actor.is_treasurer_of_coop(coop.id) or actor.is_admin):
        raise _coop_forbidden(actor, coop)
    merged: dict[str, object] = {
        "default_min_balance": coop.default_min_balance,
        "default_max_balance": coop.default_max_balance,
        "claim_expiry_days": coop.claim_expiry_days,
        "max_transfer_amount": coop.max_transfer_amount,
    }
    merged.update({k: v for k, v in changes.items() if k in merged})
    problems = validate_coop_policy(**merged)  # type: ignore[arg-type]
    name = changes.get("name")
    if name is not None and (not isinstance(name, str) or not name.strip() or len(name) > 200):
        problems.append(Problem("validation_failed", "a name of 1 to 200 characters is needed", "name"))
    _raise_if(problems)
    values = {k: v for k, v in changes.items() if k in merged or k == "name"}
    if values:
        conn.execute(sa.update(t.coops).where(t.coops.c.id == coop.id).values(**values))
    return get_coop(conn, slug)


def _coop_forbidden(actor: Actor, coop: CoopRecord) -> DomainError:
    if actor.role_in_coop(coop.id) is None and not actor.is_admin:
        return DomainError("forbidden", "you are not a member of this co-op")
    return DomainError("forbidden", "only a treasurer of this co-op may do this")


def require_coop_reader(actor: Actor, coop: CoopRecord) -> None:
    if actor.role_in_coop(coop.id) is None and not actor.is_admin:
        raise DomainError("forbidden", "you are not a member of this co-op")


def add_member(
    conn: Connection,
    *,
    actor: Actor,
    slug: str,
    email: str,
    name: str,
    role: Role,
    password: str | None,
    now: datetime,
) -> tuple[int, int, Role]:
    """Add a person to a co-op (creating their user if new) with an account at default limits."""
    coop = get_coop(conn, slug)
    if not (actor.is_treasurer_of_coop(coop.id) or actor.is_admin):
        raise _coop_forbidden(actor, coop)
    user_id = find_user_id(conn, email)
    if user_id is None:
        user_id = create_user(conn, email=email, name=name, password=password, now=now)
    elif password is not None:
        raise DomainError(
            "already_exists",
            "this person already has a login; add them without a password",
            [Problem("already_exists", "user exists", "password")],
        )
    already = conn.execute(
        sa.select(t.memberships.c.id).where(
            t.memberships.c.user_id == user_id, t.memberships.c.coop_id == coop.id
        )
    ).first()
    if already is not None:
        raise DomainError("already_exists", "this person is already a member of the co-op")
    account_id = conn.execute(
        sa.insert(t.accounts)
        .values(
            ledger_id=coop.ledger_id,
            kind=AccountKind.MEMBER.value,
            holder=name.strip(),
            user_id=user_id,
            min_balance=coop.default_min_balance,
            max_balance=coop.default_max_balance,
            status=AccountStatus.ACTIVE.value,
            created_at=now,
        )
        .returning(t.accounts.c.id)
    ).scalar_one()
    conn.execute(
        sa.insert(t.memberships).values(
            user_id=user_id, coop_id=coop.id, role=role.value, account_id=account_id, created_at=now
        )
    )
    return user_id, int(account_id), role
