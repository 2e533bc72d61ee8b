"""The browser session: an encrypted, signed cookie (AES-GCM, Litestar's client-side sessions),
Secure, HttpOnly and SameSite=Lax; a CSRF token per session checked on every POST.

The session holds the user id and their token version, the same version the API's access
tokens carry: signing out everywhere or changing the password bumps it and ends every web
session too. Nothing else about the user lives in the cookie; roles are loaded per request.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from typing import Any

from litestar import Request
from litestar.middleware.session.base import SessionMiddleware
from litestar.middleware.session.client_side import ClientSideSessionBackend, CookieBackendConfig
from litestar.types import ASGIApp

from accounts.actor import Actor
from accounts.service import load_actor
from accounts.tokens import AccessClaims
from api.runtime import Runtime
from ledger.errors import DomainError

COOKIE = "commons_session"
# Sliding: every response re-seals the cookie; a session idle this long is gone.
IDLE_SECONDS = 12 * 3600
# Absolute: a signed-in session ends this long after sign-in, however busy.
MAX_SECONDS = 7 * 24 * 3600
CSRF_FIELD = "csrf"


class SignInRequired(Exception):  # noqa: N818 — a signal, handled by a redirect
    """No valid session: the handler redirects to the sign-in page."""


class CsrfRefused(Exception):  # noqa: N818
    """A POST without this session's CSRF token."""


def session_config(secret_key: str) -> CookieBackendConfig:
    key = hashlib.sha256(b"commons-web-session\x00" + secret_key.encode()).digest()
    return CookieBackendConfig(
        secret=key,
        key=COOKIE,
        max_age=IDLE_SECONDS,
        secure=True,
        httponly=True,
        samesite="lax",
        path="/",
    )


def session_data(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """A copy of the session (empty when there is none); write it back with set_session."""
    value = request.scope.get("session")
    return dict(value) if isinstance(value, dict) else {}


data = session_data


def session_middleware(secret_key: str) -> Callable[[ASGIApp], ASGIApp]:
    """The middleware, built when the app is (a router is deep-copied on registration and
    the cipher inside the backend cannot be)."""

    def build(app: ASGIApp) -> ASGIApp:
        config = session_config(secret_key)
        return SessionMiddleware(app=app, backend=ClientSideSessionBackend(config=config))

    return build


def csrf_token(request: Request[Any, Any, Any]) -> str:
    """This session's CSRF token, made on first use (an anonymous session gets one too, so the
    sign-in form is protected against login CSRF)."""
    token = session_data(request).get(CSRF_FIELD)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session = session_data(request)
        session[CSRF_FIELD] = token
        request.set_session(session)
    return token


async def check_csrf(request: Request[Any, Any, Any]) -> None:
    """before_request of every web route: a POST must carry the session's token."""
    if request.method != "POST":
        return
    form = await request.form()
    sent = form.get(CSRF_FIELD)
    expected = session_data(request).get(CSRF_FIELD)
    if not (isinstance(sent, str) and isinstance(expected, str) and hmac.compare_digest(sent, expected)):
        raise CsrfRefused


def start(request: Request[Any, Any, Any], *, user_id: int, token_version: int) -> None:
    """A fresh session after sign-in: new CSRF token, nothing carried over from before."""
    request.set_session(
        {
            "uid": user_id,
            "ver": token_version,
            "since": int(time.time()),
            CSRF_FIELD: secrets.token_urlsafe(32),
        }
    )


def end(request: Request[Any, Any, Any]) -> None:
    request.set_session({CSRF_FIELD: secrets.token_urlsafe(32)})


def flash(request: Request[Any, Any, Any], message: str) -> None:
    session = session_data(request)
    session["flash"] = message[:300]
    request.set_session(session)


def pop_flash(request: Request[Any, Any, Any]) -> str | None:
    session = session_data(request)
    message = session.pop("flash", None)
    if message is not None:
        request.set_session(session)
    return message if isinstance(message, str) else None


def provide_web_actor(request: Request[Any, Any, Any], runtime: Runtime) -> Actor:
    """The signed-in user with their roles, or SignInRequired."""
    session = session_data(request)
    uid, ver, since = session.get("uid"), session.get("ver"), session.get("since")
    if not (isinstance(uid, int) and isinstance(ver, int) and isinstance(since, int)):
        raise SignInRequired
    if time.time() - since > MAX_SECONDS:
        end(request)
        raise SignInRequired
    claims = AccessClaims(user_id=uid, token_version=ver, expires_at=None)  # type: ignore[arg-type]
    try:
        return runtime.read(lambda conn: load_actor(conn, claims))
    except DomainError as exc:
        if exc.code == "unauthenticated":  # signed out elsewhere, or the password changed
            end(request)
            raise SignInRequired from exc
        raise
