"""Sign-in, refresh rotation and revocation in the accounts service, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher, Type
from sqlalchemy.engine import Connection, Engine

from accounts import service, tokens
from ledger import tables as t
from ledger.db import write_transaction
from ledger.errors import DomainError
from tests.accounts.test_passwords import assert_strong_argon2id

SECRET = "session-test-secret-" + "s" * 40
PASSWORD = "correct horse battery"
NOW = datetime.now(UTC).replace(microsecond=0)  # access tokens are checked against the real clock
T = TypeVar("T")


def run(engine: Engine, fn: Callable[[Connection], T]) -> T:
    with write_transaction(engine) as conn:
        return fn(conn)


def refused(engine: Engine, fn: Callable[[Connection], object], code: str) -> DomainError:
    with pytest.raises(DomainError) as info:
        run(engine, fn)
    assert info.value.code == code, info.value
    return info.value


@pytest.fixture
def user(engine: Engine) -> int:
    return run(
        engine,
        lambda c: service.create_user(c, email="Ana@Example.org ", name="Ana", password=PASSWORD, now=NOW),
    )


def login(
    engine: Engine, email: str = "ana@example.org", password: str = PASSWORD, now: datetime = NOW
) -> service.TokenPair:
    return run(engine, lambda c: service.login(c, email=email, password=password, secret=SECRET, now=now))


def refresh(engine: Engine, token: str, now: datetime = NOW) -> service.TokenPair:
    """Like the API: a reused token's family revocation is committed, then the refusal raised."""

    def fn(c: Connection) -> service.TokenPair | DomainError:
        try:
            return service.refresh(c, refresh_token=token, secret=SECRET, now=now)
        except service.RefreshTokenReusedError as reused:
            return reused

    outcome = run(engine, fn)
    if isinstance(outcome, DomainError):
        raise outcome
    return outcome


def actor_for(engine: Engine, access_token: str) -> object:
    claims = tokens.decode_access_token(access_token, secret=SECRET)
    return run(engine, lambda c: service.load_actor(c, claims))


def stored_hash(engine: Engine, user_id: int) -> str:
    with engine.connect() as conn:
        return str(
            conn.execute(sa.select(t.users.c.password_hash).where(t.users.c.id == user_id)).scalar_one()
        )


def test_the_stored_password_hash_is_strong_argon2id(engine: Engine, user: int) -> None:
    assert_strong_argon2id(stored_hash(engine, user))


def test_login_is_case_and_space_insensitive_on_the_email(engine: Engine, user: int) -> None:
    pair = login(engine, email="  ANA@example.ORG")
    assert tokens.decode_access_token(pair.access_token, secret=SECRET).user_id == user


def test_wrong_password_and_unknown_email_fail_the_same_way(engine: Engine, user: int) -> None:
    wrong = refused(
        engine,
        lambda c: service.login(
            c, email="ana@example.org", password="wrong password!", secret=SECRET, now=NOW
        ),
        "invalid_credentials",
    )
    unknown = refused(
        engine,
        lambda c: service.login(c, email="nobody@example.org", password=PASSWORD, secret=SECRET, now=NOW),
        "invalid_credentials",
    )
    assert (wrong.code, wrong.detail, wrong.status) == (
        unknown.code,
        unknown.detail,
        unknown.status,
    )


def test_a_user_without_a_password_cannot_log_in(engine: Engine) -> None:
    run(
        engine,
        lambda c: service.create_user(
            c, email="nopw@example.org", name="No Password", password=None, now=NOW
        ),
    )
    refused(
        engine,
        lambda c: service.login(c, email="nopw@example.org", password="", secret=SECRET, now=NOW),
        "invalid_credentials",
    )


def test_a_weak_hash_is_upgraded_at_the_next_login(engine: Engine, user: int) -> None:
    weak = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1, type=Type.ID).hash(PASSWORD)
    run(
        engine,
        lambda c: c.execute(sa.update(t.users).where(t.users.c.id == user).values(password_hash=weak)),
    )
    login(engine)
    assert stored_hash(engine, user) != weak
    assert_strong_argon2id(stored_hash(engine, user))


def test_refresh_rotates_the_pair(engine: Engine, user: int) -> None:
    first = login(engine)
    second = refresh(engine, first.refresh_token, now=NOW + timedelta(minutes=1))
    assert second.refresh_token != first.refresh_token
    assert second.access_token != first.access_token
    assert tokens.decode_access_token(second.access_token, secret=SECRET).user_id == user


def test_reusing_a_rotated_refresh_token_revokes_the_whole_family(engine: Engine, user: int) -> None:
    other_session = login(engine)
    first = login(engine)
    second = refresh(engine, first.refresh_token)
    with pytest.raises(service.RefreshTokenReusedError) as reuse:
        refresh(engine, first.refresh_token)
    assert (reuse.value.code, reuse.value.status) == ("invalid_token", 401)
    # The newer token of the same family died with it...
    with pytest.raises(DomainError, match="invalid_token"):
        refresh(engine, second.refresh_token)
    # ...while another sign-in (another family) is untouched.
    refresh(engine, other_session.refresh_token)


def test_an_expired_refresh_token_is_refused(engine: Engine, user: int) -> None:
    pair = login(engine)
    with pytest.raises(DomainError, match="invalid_token"):
        refresh(engine, pair.refresh_token, now=NOW + tokens.REFRESH_TTL)
    # One second earlier it was still good.
    refresh(engine, pair.refresh_token, now=NOW + tokens.REFRESH_TTL - timedelta(seconds=1))


def test_an_unknown_refresh_token_is_refused(engine: Engine, user: int) -> None:
    with pytest.raises(DomainError, match="invalid_token"):
        refresh(engine, "made-up-token")


def test_revoking_all_sessions_kills_access_and_refresh_tokens(engine: Engine, user: int) -> None:
    pair = login(engine)
    actor_for(engine, pair.access_token)
    run(engine, lambda c: service.revoke_all_sessions(c, user_id=user, now=NOW))
    refused(
        engine,
        lambda c: service.load_actor(c, tokens.decode_access_token(pair.access_token, secret=SECRET)),
        "unauthenticated",
    )
    with pytest.raises(DomainError, match="invalid_token"):
        refresh(engine, pair.refresh_token)
    actor_for(engine, login(engine).access_token)  # a fresh sign-in works again


def test_changing_the_password_revokes_and_needs_the_current_one(engine: Engine, user: int) -> None:
    pair = login(engine)
    refused(
        engine,
        lambda c: service.change_password(
            c, user_id=user, current="not it at all", new="a new long password", now=NOW
        ),
        "invalid_credentials",
    )
    refused(
        engine,
        lambda c: service.change_password(c, user_id=user, current=PASSWORD, new="short", now=NOW),
        "validation_failed",
    )
    actor_for(engine, pair.access_token)  # refusals changed nothing
    run(
        engine,
        lambda c: service.change_password(
            c, user_id=user, current=PASSWORD, new="a new long password", now=NOW
        ),
    )
    refused(
        engine,
        lambda c: service.load_actor(c, tokens.decode_access_token(pair.access_token, secret=SECRET)),
        "unauthenticated",
    )
    refused(
        engine,
        lambda c: service.login(c, email="ana@example.org", password=PASSWORD, secret=SECRET, now=NOW),
        "invalid_credentials",
    )
    login(engine, password="a new long password")
    assert_strong_argon2id(stored_hash(engine, user))


def test_a_token_for_a_deleted_or_unknown_user_is_refused(engine: Engine, user: int) -> None:
    token, _ = tokens.issue_access_token(secret=SECRET, user_id=user + 1000, token_version=0)
    refused(
        engine,
        lambda c: service.load_actor(c, tokens.decode_access_token(token, secret=SECRET)),
        "unauthenticated",
    )
