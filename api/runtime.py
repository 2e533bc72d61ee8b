"""What every handler needs: the engine, the settings, the clock, and the caller."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from litestar import Request
from litestar.datastructures import State
from sqlalchemy.engine import Connection, Engine

from accounts import tokens
from accounts.actor import Actor
from accounts.ratelimit import LoginLimiter
from accounts.service import load_actor
from api.settings import Settings
from ledger.db import read_transaction, write_transaction
from ledger.errors import DomainError

T = TypeVar("T")


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    clock: Callable[[], datetime] = field(default=utc_now)
    login_limiter: LoginLimiter = field(init=False)

    def __post_init__(self) -> None:
        self.login_limiter = LoginLimiter(
            per_account=self.settings.login_attempts_per_account,
            per_client=self.settings.login_attempts_per_client,
            window_seconds=self.settings.login_window_seconds,
        )

    def read(self, fn: Callable[[Connection], T]) -> T:
        with read_transaction(self.engine) as conn:
            return fn(conn)

    def write(self, fn: Callable[[Connection], T]) -> T:
        """One unit of work, committed before the caller builds its response."""
        with write_transaction(self.engine) as conn:
            return fn(conn)


def provide_runtime(state: State) -> Runtime:
    runtime = state.runtime
    assert isinstance(runtime, Runtime)
    return runtime


def bearer_token(request: Request[Any, Any, Any]) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise DomainError("unauthenticated", "send an access token: Authorization: Bearer <token>")
    return token.strip()


def provide_actor(request: Request[Any, Any, Any], runtime: Runtime) -> Actor:
    token = bearer_token(request)
    try:
        claims = tokens.decode_access_token(token, secret=runtime.settings.secret_key)
    except tokens.TokenError as exc:
        raise DomainError("unauthenticated", "the access token is not valid; sign in again") from exc
    return runtime.read(lambda conn: load_actor(conn, claims))
