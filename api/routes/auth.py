"""Sign in, refresh, sign out, change password, and who am I."""

from __future__ import annotations

from litestar import Controller, get, post
from litestar.di import Provide

from accounts import service as accounts
from accounts.actor import Actor
from api import schemas as s
from api.runtime import Runtime, provide_actor


def _pair(pair: accounts.TokenPair) -> s.TokenResponse:
    return s.TokenResponse(access_token=pair.access_token, expires_in=pair.expires_in, refresh_token=pair.refresh_token)


class AuthController(Controller):
    path = "/auth"
    tags = ["auth"]

    @post("/token", sync_to_thread=True, status_code=200)
    def token(self, data: s.TokenRequest, runtime: Runtime) -> s.TokenResponse:
        now = runtime.clock()
        pair = runtime.write(
            lambda conn: accounts.login(conn, email=data.email, password=data.password, secret=runtime.settings.secret_key, now=now)
        )
        return _pair(pair)

    @post("/refresh", sync_to_thread=True, status_code=200)
    def refresh(self, data: s.RefreshRequest, runtime: Runtime) -> s.TokenResponse:
        now = runtime.clock()
        pair = runtime.write(
            lambda conn: accounts.refresh(conn, refresh_token=data.refresh_token, secret=runtime.settings.secret_key, now=now)
        )
        return _pair(pair)

    @post("/logout", sync_to_thread=True, status_code=204, dependencies={"actor": Provide(provide_actor, sync_to_thread=True)})
    def logout(self, actor: Actor, runtime: Runtime) -> None:
        now = runtime.clock()
        runtime.write(lambda conn: accounts.revoke_all_sessions(conn, user_id=actor.user_id, now=now))

    @post("/password", sync_to_thread=True, status_code=204, dependencies={"actor": Provide(provide_actor, sync_to_thread=True)})
    def change_password(self, data: s.PasswordChange, actor: Actor, runtime: Runtime) -> None:
        now = runtime.clock()
        runtime.write(
            lambda conn: accounts.change_password(conn, user_id=actor.user_id, current=data.current_password, new=data.new_password, now=now)
        )


@get("/me", sync_to_thread=True, tags=["auth"], dependencies={"actor": Provide(provide_actor, sync_to_thread=True)})
def me(actor: Actor, runtime: Runtime) -> s.MeOut:
    profile = runtime.read(lambda conn: accounts.user_profile(conn, actor.user_id))
    return s.MeOut(
        id=str(profile["id"]),
        email=str(profile["email"]),
        name=str(profile["name"]),
        is_admin=bool(profile["is_admin"]),
        memberships=[s.MembershipOut(coop=r.slug, role=r.role.value, account_id=str(r.account_id)) for r in actor.roles],  # type: ignore[arg-type]
    )
