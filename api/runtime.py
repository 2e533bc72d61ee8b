"""What every handler needs: the engine, the settings, the clock, and the caller."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from litestar import Request
from litestar.datastructures import State
from litestar.exceptions import HTTPException
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


async def require_json_body(request: Request[Any, Any, Any]) -> None:
    """Before a handler that takes a JSON `data` body: any other Content-Type is a 415.

    Litestar would read the body as JSON whatever its Content-Type says; a client sending a form
    or text/plain has made a mistake worth naming. Handlers reading raw bytes (CSV) are exempt.
    Async, though it awaits nothing: Litestar runs a sync hook on a worker thread, a hand-over
    there and back on every request (9% of a PostgreSQL worker's GIL time; docs/benchmarks.md,
    item 23).
    """
    if "data" not in request.route_handler.parsed_fn_signature.parameters:
        return
    if request.headers.get("content-length", "0") == "0" and "transfer-encoding" not in request.headers:
        return  # no body: an optional `data` stays unset
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise HTTPException(status_code=415, detail="send the request body as application/json")


def provide_claims(request: Request[Any, Any, Any], runtime: Runtime) -> tokens.AccessClaims:
    """The verified token alone (no database): for handlers that load the actor inside their
    own write transaction, saving a read transaction per request on the hot write path."""
    token = bearer_token(request)
    try:
        return tokens.decode_access_token(token, secret=runtime.settings.secret_key)
    except tokens.TokenError as exc:
        raise DomainError("unauthenticated", "the access token is not valid; sign in again") from exc


def provide_actor(request: Request[Any, Any, Any], runtime: Runtime) -> Actor:
    claims = provide_claims(request, runtime)
    return runtime.read(lambda conn: load_actor(conn, claims))
