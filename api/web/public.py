"""The pages anyone may see: the welcome page, sign in and sign out."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get, post
from litestar.di import Provide

from accounts import service as accounts
from accounts import tokens
from accounts.actor import Actor
from api.runtime import Runtime
from api.web import session
from api.web.common import Form, layout, safe_next, see_other
from api.web.forms import FormErrors, explain, text
from api.web.officer import federations_of
from api.web.render import render
from ledger.errors import DomainError


def _maybe_actor(request: Request[Any, Any, Any], runtime: Runtime) -> Actor | None:
    try:
        return session.provide_web_actor(request, runtime)
    except session.SignInRequired:
        return None


class PublicController(Controller):
    path = "/"
    dependencies = {"maybe_actor": Provide(_maybe_actor, sync_to_thread=True)}

    @get("/", sync_to_thread=False)
    def welcome(
        self, request: Request[Any, Any, Any], runtime: Runtime, maybe_actor: Actor | None
    ) -> Response[Any]:
        if maybe_actor is not None:
            return see_other("/home")
        return render("welcome.html", **layout(request, None, demo=runtime.settings.demo_mode))

    @get("/sign-in", sync_to_thread=False)
    def sign_in_form(
        self,
        request: Request[Any, Any, Any],
        runtime: Runtime,
        next: str | None = None,
    ) -> Response[Any]:
        return render(
            "sign_in.html",
            **layout(
                request,
                None,
                errors=FormErrors(),
                email="",
                next=safe_next(next),
                demo=runtime.settings.demo_mode,
            ),
        )

    @post("/sign-in", sync_to_thread=True, status_code=303)
    def sign_in(self, request: Request[Any, Any, Any], data: Form, runtime: Runtime) -> Response[Any]:
        email = accounts.normalise_email(text(data, "email", limit=320))
        password = text(data, "password", limit=1024)
        target = safe_next(text(data, "next", limit=500))
        errors = FormErrors()
        if not email:
            errors.add("email", "Enter the email address you signed up with")
        if not password:
            errors.add("password", "Enter your password")
        client = request.client.host if request.client else "unknown"
        if not errors:
            wait = runtime.login_limiter.check(email=email, client=client)
            if wait is not None:
                minutes = max(1, round(wait / 60))
                errors.add(None, f"Too many sign-in attempts; wait {minutes} minute(s) and try again.")
        if not errors:
            now = runtime.clock()
            try:
                pair = runtime.write(
                    lambda conn: accounts.login(
                        conn,
                        email=email,
                        password=password,
                        secret=runtime.settings.secret_key,
                        now=now,
                    )
                )
            except DomainError as exc:
                runtime.login_limiter.record(email=email, client=client, success=False)
                explain(exc, errors)
            else:
                runtime.login_limiter.record(email=email, client=client, success=True)
                claims = tokens.decode_access_token(pair.access_token, secret=runtime.settings.secret_key)
                profile, officer_of = runtime.read(
                    lambda conn: (
                        accounts.user_profile(conn, claims.user_id),
                        federations_of(conn, claims.user_id),
                    )
                )
                session.start(request, user_id=claims.user_id, token_version=claims.token_version)
                s = session.data(request)
                s["name"] = str(profile["name"])
                s["officer"] = bool(officer_of)
                request.set_session(s)
                return see_other(target)
        return render(
            "sign_in.html",
            status=401 if errors.general else 422,
            **layout(
                request,
                None,
                errors=errors,
                email=email,
                next=target,
                demo=runtime.settings.demo_mode,
            ),
        )

    @post("/sign-out", sync_to_thread=False, status_code=303)
    def sign_out(self, request: Request[Any, Any, Any]) -> Response[Any]:
        session.end(request)
        session.flash(request, "You are signed out.")
        return see_other("/sign-in")
