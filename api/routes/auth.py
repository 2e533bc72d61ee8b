"""Sign in, refresh, sign out, change password, and who am I."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, get, post
from litestar.di import Provide
from litestar.exceptions import NotAuthorizedException, TooManyRequestsException
from sqlalchemy.engine import Connection

from accounts import service as accounts
from accounts.actor import Actor
from api import schemas as s
from api.runtime import Runtime, provide_actor
from ledger.errors import DomainError


def _pair(pair: accounts.TokenPair) -> s.TokenResponse:
    return s.TokenResponse(
        access_token=pair.access_token, expires_in=pair.expires_in, refresh_token=pair.refresh_token
    )


class AuthController(Controller):
    path = "/auth"
    tags = ["auth"]

    @post(
        "/token",
        sync_to_thread=True,
        status_code=200,
        raises=[NotAuthorizedException, TooManyRequestsException],
    )
    def token(
        self, request: Request[Any, Any, Any], data: s.TokenRequest, runtime: Runtime
    ) -> s.TokenResponse:
        """Sign in. Repeated failures for one account, or many attempts from one address, get 429."""
        email = accounts.normalise_email(data.email)
        client = request.client.host if request.client else "unknown"
        wait = runtime.login_limiter.check(email=email, client=client)
        if wait is not None:
            raise DomainError(
                "rate_limited", "too many sign-in attempts; wait and try again", extra={"retry_after": wait}
            )
        now = runtime.clock()
        try:
            pair = runtime.write(
                lambda conn: accounts.login(
                    conn, email=email, password=data.password, secret=runtime.settings.secret_key, now=now
                )
            )
        except DomainError:
            runtime.login_limiter.record(email=email, client=client, success=False)
            raise
        runtime.login_limiter.record(email=email, client=client, success=True)
        return _pair(pair)

    @post("/refresh", sync_to_thread=True, status_code=200, raises=[NotAuthorizedException])
    def refresh(self, data: s.RefreshRequest, runtime: Runtime) -> s.TokenResponse:
        now = runtime.clock()

        def fn(conn: Connection) -> accounts.TokenPair | DomainError:
            try:
                return accounts.refresh(
                    conn, refresh_token=data.refresh_token, secret=runtime.settings.secret_key, now=now
                )
            except accounts.RefreshTokenReusedError as reused:
                return reused  # commit the family's revocation first, then refuse

        outcome = runtime.write(fn)
        if isinstance(outcome, DomainError):
            raise outcome
        return _pair(outcome)

    @post(
        "/logout",
        sync_to_thread=True,
        status_code=204,
        dependencies={"actor": Provide(provide_actor, sync_to_thread=True)},
    )
    def logout(self, actor: Actor, runtime: Runtime) -> None:
        now = runtime.clock()
        runtime.write(lambda conn: accounts.revoke_all_sessions(conn, user_id=actor.user_id, now=now))

    @post(
        "/password",
        sync_to_thread=True,
        status_code=204,
        dependencies={"actor": Provide(provide_actor, sync_to_thread=True)},
        raises=[TooManyRequestsException],
    )
    def change_password(
        self, request: Request[Any, Any, Any], data: s.PasswordChange, actor: Actor, runtime: Runtime
    ) -> None:
        """Wrong current passwords count against the account's sign-in limit: with a stolen access
        token this is otherwise an unthrottled password oracle, each guess an argon2 verification."""
        email = str(runtime.read(lambda conn: accounts.user_profile(conn, actor.user_id))["email"])
        client = request.client.host if request.client else "unknown"
        wait = runtime.login_limiter.check(email=email, client=client)
        if wait is not None:
            raise DomainError(
                "rate_limited", "too many password attempts; wait and try again", extra={"retry_after": wait}
            )
        now = runtime.clock()
        try:
            runtime.write(
                lambda conn: accounts.change_password(
                    conn, user_id=actor.user_id, current=data.current_password, new=data.new_password, now=now
                )
            )
        except DomainError as exc:
            if exc.code == "invalid_credentials":
                runtime.login_limiter.record(email=email, client=client, success=False)
            raise


@get(
    "/me",
    sync_to_thread=True,
    tags=["auth"],
    dependencies={"actor": Provide(provide_actor, sync_to_thread=True)},
)
def me(actor: Actor, runtime: Runtime) -> s.MeOut:
    profile = runtime.read(lambda conn: accounts.user_profile(conn, actor.user_id))
    return s.MeOut(
        id=str(profile["id"]),
        email=str(profile["email"]),
        name=str(profile["name"]),
        is_admin=bool(profile["is_admin"]),
        memberships=[
            s.MembershipOut(coop=r.slug, role=r.role.value, account_id=str(r.account_id)) for r in actor.roles
        ],
    )
