"""What every web page shares: the layout's context, form bodies, redirects."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Redirect

from accounts.actor import Actor, CoopRole
from api.web import session
from api.web.views import current_role, is_treasurer

Form = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.URL_ENCODED)]
Upload = Annotated[dict[str, Any], Body(media_type=RequestEncodingType.MULTI_PART)]


def role_of(request: Request[Any, Any, Any], actor: Actor) -> CoopRole | None:
    return current_role(actor, session.data(request).get("coop"))


def layout(request: Request[Any, Any, Any], actor: Actor | None, **context: Any) -> dict[str, Any]:
    role = role_of(request, actor) if actor is not None else None
    return {
        "csrf": session.csrf_token(request),
        "flash": session.pop_flash(request),
        "user_name": session.data(request).get("name") if actor else None,
        "actor": actor,
        "role": role,
        "treasurer": is_treasurer(role),
        "officer": bool(session.data(request).get("officer")) if actor else False,
        "path": request.url.path,
        **context,
    }


def see_other(path: str) -> Redirect:
    return Redirect(path=path, status_code=303)


def safe_next(value: str | None) -> str:
    """Only a path on this site: never `//evil.example` or a full URL."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/home"
