"""Every error is RFC 9457 problem+json with a stable `code`; the API describes itself.

Covers what no single endpoint owns: unknown paths, wrong methods, crashes, the database being
down, the shape every problem body shares, the OpenAPI document and the health check.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient

from accounts import service as accounts
from api.errors import TYPE_BASE
from api.runtime import Runtime
from ledger.errors import STATUS_BY_CODE
from tests.api.test_authorization import World, open_world, shared_client

PROBLEM_JSON = "application/problem+json"
CODE = re.compile(r"^[a-z][a-z_]*[a-z]$")


@pytest.fixture(scope="module")
def client(sqlite_template: Path) -> Iterator[TestClient[Any]]:
    with shared_client(sqlite_template) as c:
        yield c


@pytest.fixture
def world(db_url: str, client: TestClient[Any]) -> Iterator[World]:
    with open_world(db_url, client) as w:
        yield w


def assert_problem(r: Any, status: int, code: str) -> dict[str, Any]:
    """The RFC 9457 members plus our `code`, consistent with the HTTP response itself."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].split(";")[0] == PROBLEM_JSON, r.headers
    body: dict[str, Any] = r.json()
    assert {"type", "title", "status", "detail", "code"} <= set(body), body
    assert body["status"] == status
    assert body["code"] == code, body
    assert CODE.match(body["code"])
    assert body["type"] == TYPE_BASE + body["code"]
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    assert "Traceback" not in r.text
    return body


def test_an_unknown_path_is_a_problem_404(world: World) -> None:
    for path in ["/nope", "/api/v1/nope", "/api/v2/health", "/api/v1/coops/riverside/nope"]:
        assert_problem(world.client.get(path, headers=world.headers("tess")), 404, "not_found")


WRONG_METHODS = [
    ("DELETE", "/api/v1/health", {"GET"}),
    ("PUT", "/api/v1/transfers", {"GET", "POST"}),
    ("GET", "/api/v1/transfers/1/accept", {"POST"}),
    ("DELETE", "/api/v1/accounts/1", {"GET", "PATCH"}),
    ("POST", "/api/v1/me", {"GET"}),
]


def test_a_wrong_method_is_a_problem_405_with_allow(world: World) -> None:
    for method, path, allowed in WRONG_METHODS:
        r = world.client.request(method, path, headers=world.headers("tess"))
        assert_problem(r, 405, "method_not_allowed")
        assert allowed <= {m.strip() for m in r.headers["allow"].split(",")}, (method, path)


def test_every_kind_of_error_has_the_same_shape(world: World) -> None:
    """One request per error status the API sends; each body is a complete problem."""
    ana, ben = world.accounts["ana"], world.accounts["ben"]
    paid = world.call("POST", "/transfers", "ana", {"payer": ana, "payee": ben, "amount": "1.00"}).json()
    reversed_once = world.call("POST", f"/transfers/{paid['id']}/reverse", "tess")
    assert reversed_once.status_code == 201, reversed_once.text
    transfers = "/api/v1/transfers"
    json_headers = {**world.headers("ana", key=True), "Content-Type": "application/json"}
    cases = [
        (
            world.client.post(transfers, content=b"{", headers=json_headers),
            400,
            "validation_failed",
        ),
        (
            world.client.post(
                transfers,
                json={"payer": ana, "payee": ben, "amount": "1.00"},
                headers=world.headers("ana"),
            ),
            400,
            "idempotency_key_required",
        ),
        (world.client.get("/api/v1/me"), 401, "unauthenticated"),
        (
            world.client.post("/api/v1/auth/token", json={"email": "x@y.org", "password": "p"}),
            401,
            "invalid_credentials",
        ),
        (
            world.client.post("/api/v1/auth/refresh", json={"refresh_token": "nope"}),
            401,
            "invalid_token",
        ),
        (world.call("PATCH", "/coops/riverside", "ana", {"name": "Mine"}), 403, "forbidden"),
        (world.call("GET", "/coops/nowhere", "ana"), 404, "coop_not_found"),
        (world.call("GET", "/accounts/999999", "ana"), 404, "account_not_found"),
        (world.call("GET", "/transfers/999999", "ana"), 404, "transfer_not_found"),
        (world.client.delete("/api/v1/health"), 405, "method_not_allowed"),
        (world.call("POST", f"/transfers/{paid['id']}/reverse", "tess"), 409, "already_reversed"),
        (world.call("POST", f"/transfers/{paid['id']}/accept", "ana"), 409, "not_pending"),
        (
            world.call(
                "POST",
                "/coops/riverside/members",
                "tess",
                {"email": "ana@riverside.example.org", "name": "Ana"},
            ),
            409,
            "already_exists",
        ),
        (
            world.client.post(transfers, content=b"[" + b" " * 70_000 + b"]", headers=json_headers),
            413,
            "payload_too_large",
        ),
        (
            world.client.post(
                transfers, content=b"{}", headers={**json_headers, "Content-Type": "text/plain"}
            ),
            415,
            "unsupported_media_type",
        ),
        (
            world.call("POST", "/transfers", "ana", {"payer": ana, "payee": ben, "amount": 1.5}),
            422,
            "invalid_amount",
        ),
        (
            world.call("POST", "/transfers", "ana", {"payer": ana, "payee": ana, "amount": "1.00"}),
            422,
            "same_account",
        ),
        (
            world.call("POST", "/transfers", "ana", {"payer": ana, "payee": ben, "amount": "30.00"}),
            422,
            "insufficient_credit",
        ),
        (world.call("POST", "/coops", "admin", {"slug": "x"}), 422, "validation_failed"),
    ]
    for response, status, code in cases:
        assert_problem(response, status, code)
    seen = {code for _, _, code in cases}
    assert seen <= set(STATUS_BY_CODE) | {
        "not_found",
        "method_not_allowed",
        "unsupported_media_type",
    }


def test_a_401_challenges_for_a_bearer_token(world: World) -> None:
    r = world.client.get("/api/v1/me")
    assert_problem(r, 401, "unauthenticated")
    assert r.headers["www-authenticate"].lower().startswith("bearer")


def test_a_crash_is_a_500_problem_that_reveals_nothing(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret internals: password=hunter2")

    monkeypatch.setattr(accounts, "user_profile", boom)
    r = world.call("GET", "/me", "ana")
    body = assert_problem(r, 500, "internal_error")
    assert "hunter2" not in r.text and "RuntimeError" not in r.text
    assert body["detail"]


def test_health_is_public_and_names_the_database(world: World, db_url: str) -> None:
    r = world.client.get("/api/v1/health")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    expected = "sqlite" if db_url.startswith("sqlite") else "postgresql"
    assert r.json() == {"status": "ok", "database": expected}


def test_health_is_a_503_problem_when_the_database_does_not_answer(world: World) -> None:
    runtime = world.client.app.state.runtime
    assert isinstance(runtime, Runtime)

    def unreachable(fn: Any) -> Any:
        raise ConnectionError("database unreachable")

    runtime.read = unreachable  # type: ignore[method-assign]
    assert_problem(world.client.get("/api/v1/health"), 503, "service_unavailable")


OPERATIONS = {
    ("post", "/api/v1/auth/token"),
    ("post", "/api/v1/auth/refresh"),
    ("post", "/api/v1/auth/logout"),
    ("post", "/api/v1/auth/password"),
    ("get", "/api/v1/me"),
    ("post", "/api/v1/coops"),
    ("get", "/api/v1/coops/{slug}"),
    ("patch", "/api/v1/coops/{slug}"),
    ("post", "/api/v1/coops/{slug}/members"),
    ("get", "/api/v1/coops/{slug}/accounts"),
    ("post", "/api/v1/coops/{slug}/transfers/batch"),
    ("get", "/api/v1/accounts/{account_id}"),
    ("patch", "/api/v1/accounts/{account_id}"),
    ("get", "/api/v1/accounts/{account_id}/postings"),
    ("get", "/api/v1/accounts/{account_id}/balance"),
    ("post", "/api/v1/transfers"),
    ("get", "/api/v1/transfers"),
    ("get", "/api/v1/transfers/{transfer_id}"),
    ("post", "/api/v1/transfers/{transfer_id}/accept"),
    ("post", "/api/v1/transfers/{transfer_id}/reject"),
    ("post", "/api/v1/transfers/{transfer_id}/cancel"),
    ("post", "/api/v1/transfers/{transfer_id}/reverse"),
    ("get", "/api/v1/health"),
}


def test_the_openapi_document_is_served_and_lists_the_endpoints(world: World) -> None:
    r = world.client.get("/schema/openapi.json")
    assert r.status_code == 200, r.text
    doc = json.loads(r.content)
    assert doc["openapi"].startswith("3.1")
    assert doc["info"]["title"] == "Commons"
    served = {
        (method, path) for path, item in doc["paths"].items() for method in item if method != "parameters"
    }
    assert sorted(OPERATIONS - served) == []
    # Amounts are documented as strings, never numbers.
    transfer_out = doc["components"]["schemas"]["TransferOut"]["properties"]["amount"]
    assert transfer_out["type"] == "string"
