"""The web app: server-rendered pages for members and treasurers, on the same services as
the API. `web_router(settings)` is mounted beside the API by `api.app.create_app`."""

from __future__ import annotations

import logging
from typing import Any

from litestar import Request, Response, Router
from litestar.di import Provide
from litestar.exceptions import HTTPException
from litestar.static_files import create_static_files_router

from api.settings import Settings
from api.web import session
from api.web.common import see_other
from api.web.member import MemberController
from api.web.officer import OfficerController
from api.web.public import PublicController
from api.web.render import STATIC, render
from api.web.treasurer import TreasurerController
from api.web.treasurer_obligations import TreasurerObligationController
from ledger.errors import DomainError

log = logging.getLogger("commons.web")

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}

PLAIN = {
    400: ("This request was not understood", "Go back and try again."),
    403: ("You cannot open this page", "Your role in the co-op does not allow it."),
    404: ("There is no such page", "The link may be old, or the item was removed."),
    405: ("This page cannot be used that way", "Go back and use the buttons on the page."),
    409: ("This changed in the meantime", "Reload the page and try again."),
    413: ("That was too much to send at once", "Send a smaller file or a shorter text."),
    422: ("Some of what was sent is not right", "Go back, check the form and try again."),
    429: ("Too many attempts", "Wait a few minutes and try again."),
}


def _page(request: Request[Any, Any, Any], status: int, title: str, advice: str) -> Response[Any]:
    return render(
        "error.html",
        status=status,
        title=title,
        advice=advice,
        csrf=None,
        flash=None,
        user_name=None,
        actor=None,
        role=None,
        treasurer=False,
        officer=False,
        path=request.url.path,
    )


def handle_sign_in_required(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.method != "GET":
        target = "/home"
    from urllib.parse import quote

    return see_other(f"/sign-in?next={quote(target, safe='/')}")


def handle_csrf(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    return _page(
        request,
        403,
        "This form has expired",
        "It was open for too long, or it did not come from this site. "
        "Go back, reload the page and send it again.",
    )


def handle_domain(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    assert isinstance(exc, DomainError)
    status = exc.status if exc.status in PLAIN else 400
    title, advice = PLAIN[status]
    if exc.code.endswith("_not_found"):
        title, advice = PLAIN[404]
        status = 404
    return _page(request, status, title, advice)


def handle_http(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    assert isinstance(exc, HTTPException)
    status = exc.status_code
    title, advice = PLAIN.get(status, ("Something went wrong", "Try again in a moment."))
    return _page(request, status if status >= 400 else 400, title, advice)


def handle_other(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("web page failed: %s %s", request.method, request.url.path, exc_info=exc)
    return _page(
        request,
        500,
        "Something went wrong on our side",
        "Nothing you did caused this. Try again in a moment; if it keeps happening, tell your treasurer.",
    )


async def security_headers(response: Response[Any]) -> Response[Any]:
    # Async though it awaits nothing: Litestar runs a sync hook on a worker thread.
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def web_router(settings: Settings) -> Router:
    return Router(
        path="/",
        route_handlers=[
            PublicController,
            MemberController,
            TreasurerController,
            TreasurerObligationController,
            OfficerController,
            create_static_files_router(path="/static", directories=[STATIC], include_in_schema=False),
        ],
        middleware=[session.session_middleware(settings.secret_key)],
        before_request=session.check_csrf,
        after_request=security_headers,
        dependencies={"actor": Provide(session.provide_web_actor, sync_to_thread=True)},
        exception_handlers={
            session.SignInRequired: handle_sign_in_required,
            session.CsrfRefused: handle_csrf,
            DomainError: handle_domain,
            HTTPException: handle_http,
            Exception: handle_other,
        },
        include_in_schema=False,
    )
