"""Property-based fuzzing of the whole HTTP API against its own OpenAPI document (schemathesis).

The app is driven in-process through ASGI, signed in as the treasurer of a seeded co-op (members,
transfers and a pending claim exist, so generated requests can reach real accounts and transfers).
Every response must: not be a 5xx; use a status code, content type, headers and body the OpenAPI
declares for that operation; and, when it is an error, be RFC 9457 problem+json with a `code`.
Generated requests that violate the schema must be refused (4xx).

Bounded and reproducible: a few examples per operation, `derandomize=True`, no example database.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from litestar.testing import TestClient
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from accounts.service import create_user
from api.app import create_app
from ledger.db import make_engine, write_transaction
from tests.api.conftest import PASSWORD, Api, make_coop, make_settings
from tests.conftest import _truncate_all

MAX_EXAMPLES = 15  # per operation and engine: about 30 s for both engines on a laptop
PROBLEM_JSON = "application/problem+json"
TREASURER = "tess@riverside.example.org"


@schemathesis.check
def errors_are_problem_json(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case
) -> bool | None:
    """Every 4xx/5xx is RFC 9457 problem+json carrying the stable machine `code` (DESIGN §6)."""
    if response.status_code < 400:
        return None
    content_type = response.headers.get("content-type", [""])[0]
    assert content_type.split(";")[0].strip() == PROBLEM_JSON, f"error with content type {content_type!r}"
    body = json.loads(response.content)
    assert isinstance(body, dict) and isinstance(body.get("code"), str) and body["code"], (
        f"no `code` in {body!r}"
    )
    assert body.get("status") == response.status_code, (
        f"`status` {body.get('status')!r} != {response.status_code}"
    )
    return None


# Not `positive_data_acceptance`: a schema-valid request is routinely and rightly refused by a
# ledger rule with 422 (an amount with too many decimals, a payment beyond the credit limit),
# which that check counts as a failure. Checks that need extra requests or links
# (`ignored_auth`, `use_after_free`, ...) are covered by tests/api/test_authorization.py.
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
    errors_are_problem_json,
]


@dataclass
class Seeded:
    api: Api
    slug: str
    accounts: list[str]
    transfers: list[str]
    requests: Counter[str] = field(default_factory=Counter)  # per operation, for the summary line
    statuses: Counter[int] = field(default_factory=Counter)

    @property
    def app(self) -> Any:
        return self.api.client.app

    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api.tokens[TREASURER]}"}


def _seed(api: Api) -> Seeded:
    coop = make_coop(api)
    ana, ben, cleo = (coop.accounts[f"{m}@riverside.example.org"] for m in ("ana", "ben", "cleo"))
    transfers = []
    for who, payer, payee, amount in [
        ("ana@riverside.example.org", ana, ben, "2.00"),  # a payment, posted
        ("ben@riverside.example.org", cleo, ben, "1.25"),  # a claim, pending
        (TREASURER, cleo, ana, "3.50"),  # recorded by the treasurer, posted
    ]:
        r = api.pay(who, payer, payee, amount)
        assert r.status_code == 201, r.text
        transfers.append(r.json()["id"])
    return Seeded(api, coop.slug, [*coop.accounts.values(), coop.coop_account], transfers)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def seeded(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Seeded]:
    """One seeded app per engine for the whole module: the operations share it, as clients would."""
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("fuzz") / "commons.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        url = f"sqlite:///{path}"
    else:
        url = request.getfixturevalue("postgres_url")
        engine = make_engine(url, pool_size=1)
        _truncate_all(engine)
        engine.dispose()
    engine = make_engine(url, pool_size=1)
    with write_transaction(engine) as conn:
        create_user(
            conn,
            email="admin@example.org",
            name="Admin",
            password=PASSWORD,
            is_admin=True,
            now=datetime.now(UTC),
        )
    engine.dispose()
    # Sign-in limits have their own tests (test_limits.py); here the fuzzer's guesses at
    # /auth/token and /auth/password must not lock the treasurer out of the rest of the run.
    settings = replace(make_settings(url), login_attempts_per_account=10**4, login_attempts_per_client=10**5)
    with TestClient(app=create_app(settings, sweep_claims=False)) as client:
        api = Api(client)
        api.login("admin@example.org")
        target = _seed(api)
        yield target
    # Shown with `pytest -s`: how much was exercised, and how much of it got past validation.
    statuses = ", ".join(f"{code}: {n}" for code, n in sorted(target.statuses.items()))
    done = f"{len(target.requests)} operations, {target.requests.total()} requests"
    print(f"\nfuzz[{request.param}]: {done} ({statuses})")


def _openapi_document() -> dict[str, Any]:
    """The document the app serves at /schema/openapi.json, built without touching a database."""
    app = create_app(
        make_settings("sqlite:////nonexistent/openapi-only.db"),
        check_migrations=False,
        sweep_claims=False,
    )
    return app.openapi_schema.to_schema()


schema = schemathesis.openapi.from_dict(_openapi_document())

# Names of generated values that can point at something real, so valid requests get past lookups.
_REAL_AMOUNTS = ["0.25", "1.00", "2.50", "25.00"]  # the last one is beyond the seeded limits


def steer(case: schemathesis.Case, data: st.DataObject, seeded: Seeded) -> None:
    """In about half of the valid cases, point identifiers at the seeded co-op, its accounts and
    transfers, give amounts a plausible value and send an Idempotency-Key, so the fuzzer reaches
    the ledger rules and not only the lookups. Invalid (negative) cases are left as generated:
    steering must not make a deliberately invalid request valid."""
    meta = case.meta
    if meta is None or meta.generation.mode.is_negative or not data.draw(st.booleans(), label="steer"):
        return
    pools = {
        "account_id": seeded.accounts,
        "transfer_id": seeded.transfers,
        "slug": [seeded.slug],
        "account": seeded.accounts,
    }
    for container in (case.path_parameters, case.query):
        for name, pool in pools.items():
            if container and name in container:
                container[name] = data.draw(st.sampled_from(pool), label=name)
    if any(p.name == "Idempotency-Key" for p in case.operation.headers):
        case.headers["Idempotency-Key"] = f"fuzz-{data.draw(st.integers(0, 10**9), label='key')}"
    body = case.body
    items = body.get("transfers") if isinstance(body, dict) else None
    for obj in [body, *(items if isinstance(items, list) else [])]:
        if not isinstance(obj, dict):
            continue
        for name in ("payer", "payee"):
            if name in obj:
                obj[name] = data.draw(st.sampled_from(seeded.accounts), label=name)
        if "amount" in obj:
            obj["amount"] = data.draw(st.sampled_from(_REAL_AMOUNTS), label="amount")
        if "email" in obj:
            obj["email"] = f"fuzz{data.draw(st.integers(0, 10**6))}@riverside.example.org"


@schema.parametrize()
@schema.given(data=st.data())
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    # Each example is a real request against a real database, and negative generation filters a
    # lot: Hypothesis's speed and filtering health checks are not about the API under test.
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
    ],
)
def test_every_response_conforms_to_the_openapi(
    case: schemathesis.Case, data: st.DataObject, seeded: Seeded
) -> None:
    steer(case, data, seeded)
    response = case.call_and_validate(headers=seeded.auth(), checks=CHECKS, app=seeded.app)
    seeded.requests[case.operation.label] += 1
    seeded.statuses[response.status_code] += 1
    if (
        case.operation.path in {"/api/v1/auth/logout", "/api/v1/auth/password"}
        and response.status_code == 204
    ):
        seeded.api.login(TREASURER)  # the treasurer's tokens were just revoked; sign in again to keep going
