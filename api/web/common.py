"""What every web page shares: the layout's context, form bodies, redirects."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from litestar import Request
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Redirect

from accounts.actor import Actor, CoopRole
from api.runtime import Runtime
from api.web import session
from api.web.views import current_role, is_treasurer
from ledger import idempotency, service
from ledger.service import TransferInput

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


def post_exchange(
    runtime: Runtime,
    *,
    actor: Actor,
    request: TransferInput,
    values: dict[str, str],
    path: str,
    now: datetime,
) -> idempotency.StoredResponse:
    """Create the transfer a form describes, once per rendered form: the form's hidden key is
    the idempotency key, exactly as the API's Idempotency-Key header is."""

    def command(conn: Any) -> tuple[int, Any]:
        record = service.create_transfer(conn, actor=actor, request=request, now=now)
        return 201, {"id": record.id, "status": record.status}

    body = {k: v for k, v in values.items() if k != "key"}
    return idempotency.run_idempotent(
        runtime.engine,
        user_id=actor.user_id,
        key=values["key"],
        request_hash=idempotency.fingerprint("POST", path, body),
        now=now,
        command=command,
    )
