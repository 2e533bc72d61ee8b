"""The one place where errors become RFC 9457 application/problem+json responses."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

from litestar import Litestar, Request, Response
from litestar.exceptions import HTTPException, SerializationException, ValidationException
from litestar.handlers import HTTPRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from pydantic import BaseModel
from sqlalchemy import exc as sa_exc

from accounts.actor import Actor
from accounts.tokens import AccessClaims
from ledger.errors import STATUS_BY_CODE, DomainError

log = logging.getLogger("commons.api")

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://commons.coop/problems/"

_CODE_BY_STATUS = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_failed",
    429: "rate_limited",
    503: "service_unavailable",
}

_TITLES = {
    "not_found": "Not found",
    "method_not_allowed": "Method not allowed",
    "payload_too_large": "Payload too large",
    "validation_failed": "Validation failed",
    "unauthenticated": "Authentication required",
    "forbidden": "Forbidden",
    "internal_error": "Internal server error",
}


def problem(
    request: Request[Any, Any, Any] | None,
    *,
    status: int,
    code: str,
    detail: str,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[dict[str, Any]]:
    body: dict[str, Any] = {
        "type": TYPE_BASE + code,
        "title": _TITLES.get(code, code.replace("_", " ").capitalize()),
        "status": status,
        "detail": detail,
        "code": code,
    }
    if request is not None:
        body["instance"] = request.url.path
    if errors:
        body["errors"] = errors
    return Response(content=body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _validation_errors(exc: ValidationException) -> list[dict[str, Any]]:
    extra = exc.extra if isinstance(exc.extra, list) else []
    errors = []
    for item in extra:
        if isinstance(item, dict):
            errors.append(
                {
                    "field": str(item.get("key") or item.get("source") or ""),
                    "message": str(item.get("message", "")),
                }
            )
    return errors


def _amount_field(name: str) -> bool:
    leaf = name.rsplit(".", 1)[-1]
    return leaf in {
        "amount",
        "min_balance",
        "max_balance",
        "default_min_balance",
        "default_max_balance",
        "max_transfer_amount",
    }


def handle_exception(request: Request[Any, Any, Any], exc: Exception) -> Response[dict[str, Any]]:
    if isinstance(exc, DomainError):
        errors = [{"field": p.field, "code": p.code, "message": p.detail} for p in exc.problems if p.field]
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        if exc.code == "rate_limited" and "retry_after" in exc.extra:
            headers = {"Retry-After": str(exc.extra["retry_after"])}
        return problem(
            request, status=exc.status, code=exc.code, detail=exc.detail, errors=errors, headers=headers
        )
    if isinstance(exc, ValidationException):
        errors = _validation_errors(exc)
        # A missing amount is a missing field ("Field required"), not a badly written amount.
        if errors and all(_amount_field(e["field"]) and e["message"] != "Field required" for e in errors):
            return problem(
                request,
                status=422,
                code="invalid_amount",
                detail='amounts are decimal strings such as "1.50", with at most the unit\'s decimals',
                errors=errors,
            )
        malformed = any("decode" in e["message"].lower() or "json" in e["message"].lower() for e in errors)
        detail = "the request body is not valid JSON" if malformed else "the request is not valid"
        return problem(
            request, status=400 if malformed else 422, code="validation_failed", detail=detail, errors=errors
        )
    if isinstance(exc, HTTPException) and isinstance(exc.__cause__, SerializationException):
        # Litestar could not decode the body at all (a ClientException wrapping the decode error).
        return problem(
            request, status=400, code="validation_failed", detail="the request body is not valid JSON"
        )
    if isinstance(exc, HTTPException):
        status = exc.status_code
        code = _CODE_BY_STATUS.get(status, "bad_request" if status < 500 else "internal_error")
        detail = exc.detail if status < 500 else "something went wrong on our side"
        headers = dict(exc.headers) if exc.headers else None
        if status == 401:
            headers = {**(headers or {}), "WWW-Authenticate": "Bearer"}
        return problem(request, status=status, code=code, detail=detail, headers=headers)
    if isinstance(exc, sa_exc.DataError) and "NUL (0x00)" in str(exc.orig):
        # PostgreSQL text cannot hold U+0000 and psycopg refuses to send it (a slug in a path, a CSV
        # cell): the input is at fault and the transaction was rolled back, so say so.
        detail = "text must not contain the NUL character (U+0000)"
        return problem(request, status=422, code="validation_failed", detail=detail)
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem(
        request,
        status=HTTP_500_INTERNAL_SERVER_ERROR,
        code="internal_error",
        detail="something went wrong on our side; nothing was changed",
    )


class FieldProblem(BaseModel):
    field: str
    message: str
    code: str | None = None


class ProblemDetails(BaseModel):
    """The body of every error response (RFC 9457), as `problem()` builds it."""

    type: str
    title: str
    status: int
    detail: str
    code: str
    instance: str | None = None
    errors: list[FieldProblem] | None = None


def _problem_description(status: int) -> str:
    codes = {c for c, s in STATUS_BY_CODE.items() if s == status}
    codes |= {c for s, c in _CODE_BY_STATUS.items() if s == status}
    listed = ", ".join(f"`{c}`" for c in sorted(codes))
    return f"{HTTPStatus(status).phrase}: problem+json whose `code` is one of {listed}"


def problem_statuses(handler: HTTPRouteHandler) -> set[int]:
    """The error statuses an operation can answer with: any request can be malformed, too large or
    invalid; a signed-in operation can also be refused or name something that does not exist (and a
    write can conflict); anything else a handler declares with `raises=[...]`."""
    statuses = {400, 413, 422, 500}
    parameters = handler.parsed_fn_signature.parameters
    if "data" in parameters:
        statuses.add(415)  # a JSON body sent as anything but JSON
    if any(p.annotation in (Actor, AccessClaims) for p in parameters.values()):
        statuses |= {401, 403, 404}
        if handler.http_methods - {"GET", "HEAD"}:
            statuses.add(409)
    statuses |= {exc.status_code for exc in handler.raises or ()}
    return statuses


def document_problems(app: Litestar) -> None:
    """Declare each operation's problem+json error responses in the OpenAPI document (replacing
    Litestar's generic `application/json` 400), so clients and schema checks see what is sent."""
    for route in app.routes:
        for handler in getattr(route, "route_handlers", ()):
            if isinstance(handler, HTTPRouteHandler):
                responses = dict(handler.responses or {})
                for status in sorted(problem_statuses(handler)):
                    spec = ResponseSpec(
                        ProblemDetails,
                        description=_problem_description(status),
                        media_type=PROBLEM_JSON,
                        generate_examples=False,
                    )
                    responses.setdefault(status, spec)
                handler.responses = responses


assert all(code in STATUS_BY_CODE or code in _CODE_BY_STATUS.values() for code in _TITLES)
