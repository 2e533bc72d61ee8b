"""Access and refresh tokens through the API: every forged, stale or revoked token gets a 401.

The hostile tokens are the ones tests/accounts/test_tokens.py refuses at the unit level; here
each is sent to a real endpoint on both databases and must come back as problem+json with code
`unauthenticated` and a `WWW-Authenticate: Bearer` challenge.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from accounts import tokens
from api.runtime import Runtime
from ledger import tables as t
from ledger.db import make_engine
from tests.accounts.jwt_craft import craft, good_claims, hostile_tokens
from tests.accounts.test_passwords import assert_strong_argon2id
from tests.api.conftest import PASSWORD, SECRET, Api

ADMIN = "admin@example.org"
NEW_PASSWORD = "a brand new passphrase"


def me(api: Api, token: str) -> Any:
    return api.client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})


def token_pair(api: Api, email: str = ADMIN, password: str = PASSWORD) -> dict[str, Any]:
    r = api.client.post("/api/v1/auth/token", json={"email": email, "password": password})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 15 * 60
    return body


def refresh(api: Api, refresh_token: str) -> Any:
    return api.client.post("/api/v1/auth/refresh", json={"refresh_token": refresh_token})


def assert_problem(r: Any, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers
    body: dict[str, Any] = r.json()
    assert body["code"] == code, body
    assert body["status"] == status
    return body


def assert_unauthenticated(r: Any) -> None:
    assert_problem(r, 401, "unauthenticated")
    assert r.headers.get("www-authenticate", "").lower().startswith("bearer")


def admin_id(api: Api) -> int:
    return int(api.get("/me", ADMIN).json()["id"])


def runtime(api: Api) -> Runtime:
    rt = api.client.app.state.runtime
    assert isinstance(rt, Runtime)
    return rt


def test_every_hostile_access_token_is_refused(api: Api) -> None:
    uid = admin_id(api)
    valid = craft(good_claims(user_id=uid), key=SECRET)
    assert me(api, valid).status_code == 200  # the crafting is right: only the flaw is refused
    outcomes = {}
    for reason, token in hostile_tokens(user_id=uid, key=SECRET).items():
        r = me(api, token)
        ok = (
            r.status_code == 401
            and r.headers["content-type"].startswith("application/problem+json")
            and r.json().get("code") == "unauthenticated"
        )
        outcomes[reason] = "refused" if ok else f"{r.status_code} {r.text[:120]}"
    assert outcomes == dict.fromkeys(outcomes, "refused")


def test_missing_or_malformed_authorization_headers_are_refused(api: Api) -> None:
    token = api.tokens[ADMIN]
    for header in ["", "Bearer", "Bearer ", f"Basic {token}", f"Token {token}", token]:
        r = api.client.get("/api/v1/me", headers={"Authorization": header} if header else {})
        assert_unauthenticated(r)


def test_a_token_of_an_older_token_version_is_refused(api: Api) -> None:
    uid = admin_id(api)
    assert me(api, craft(good_claims(user_id=uid, token_version=0), key=SECRET)).status_code == 200
    assert_unauthenticated(me(api, craft(good_claims(user_id=uid, token_version=1), key=SECRET)))


def test_a_refresh_token_is_not_an_access_token(api: Api) -> None:
    pair = token_pair(api)
    assert_unauthenticated(me(api, pair["refresh_token"]))
    # Nor is an access token a refresh token (too long to be one: refused before any lookup).
    assert_problem(refresh(api, pair["access_token"]), 422, "validation_failed")
    assert_problem(refresh(api, pair["access_token"][:200]), 401, "invalid_token")


def test_logout_revokes_the_access_token_and_every_refresh_token(api: Api) -> None:
    other_device = token_pair(api)
    pair = token_pair(api)
    assert me(api, pair["access_token"]).status_code == 200
    r = api.client.post("/api/v1/auth/logout", headers={"Authorization": f"Bearer {pair['access_token']}"})
    assert r.status_code == 204, r.text
    assert_unauthenticated(me(api, pair["access_token"]))
    assert_unauthenticated(me(api, other_device["access_token"]))
    assert_problem(refresh(api, pair["refresh_token"]), 401, "invalid_token")
    assert_problem(refresh(api, other_device["refresh_token"]), 401, "invalid_token")
    assert me(api, token_pair(api)["access_token"]).status_code == 200  # signing in again works


def test_a_password_change_revokes_tokens_and_the_old_password(api: Api) -> None:
    pair = token_pair(api)
    auth = {"Authorization": f"Bearer {pair['access_token']}"}
    wrong = api.client.post(
        "/api/v1/auth/password",
        json={"current_password": "not my password", "new_password": NEW_PASSWORD},
        headers=auth,
    )
    assert_problem(wrong, 401, "invalid_credentials")
    short = api.client.post(
        "/api/v1/auth/password",
        json={"current_password": PASSWORD, "new_password": "short"},
        headers=auth,
    )
    assert_problem(short, 422, "validation_failed")
    assert me(api, pair["access_token"]).status_code == 200  # the refusals changed nothing
    r = api.client.post(
        "/api/v1/auth/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=auth,
    )
    assert r.status_code == 204, r.text
    assert_unauthenticated(me(api, pair["access_token"]))
    assert_problem(refresh(api, pair["refresh_token"]), 401, "invalid_token")
    bad = api.client.post("/api/v1/auth/token", json={"email": ADMIN, "password": PASSWORD})
    assert_problem(bad, 401, "invalid_credentials")
    assert me(api, token_pair(api, password=NEW_PASSWORD)["access_token"]).status_code == 200


def test_refresh_rotates_and_the_new_pair_works(api: Api) -> None:
    first = token_pair(api)
    r = refresh(api, first["refresh_token"])
    assert r.status_code == 200, r.text
    second = r.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert me(api, second["access_token"]).status_code == 200
    third = refresh(api, second["refresh_token"])
    assert third.status_code == 200, third.text


def test_reusing_a_rotated_refresh_token_burns_its_family(api: Api) -> None:
    other_session = token_pair(api)
    first = token_pair(api)
    second = refresh(api, first["refresh_token"]).json()
    assert_problem(refresh(api, first["refresh_token"]), 401, "invalid_token")
    # The thief or the owner, whoever holds the newer token, must sign in again.
    assert_problem(refresh(api, second["refresh_token"]), 401, "invalid_token")
    assert refresh(api, other_session["refresh_token"]).status_code == 200


def test_an_expired_refresh_token_is_refused(api: Api) -> None:
    pair = token_pair(api)
    rt = runtime(api)
    real_clock = rt.clock
    rt.clock = lambda: real_clock() + tokens.REFRESH_TTL + timedelta(seconds=1)
    assert_problem(refresh(api, pair["refresh_token"]), 401, "invalid_token")
    rt.clock = real_clock
    assert refresh(api, pair["refresh_token"]).status_code == 200  # it was the age, nothing else


def test_wrong_password_and_unknown_email_are_indistinguishable(api: Api) -> None:
    wrong = api.client.post("/api/v1/auth/token", json={"email": ADMIN, "password": "wrong password"})
    unknown = api.client.post(
        "/api/v1/auth/token", json={"email": "nobody@example.org", "password": PASSWORD}
    )
    a, b = (
        assert_problem(wrong, 401, "invalid_credentials"),
        assert_problem(unknown, 401, "invalid_credentials"),
    )
    assert {k: v for k, v in a.items() if k != "instance"} == {k: v for k, v in b.items() if k != "instance"}
    assert wrong.headers.get("www-authenticate") == unknown.headers.get("www-authenticate")


def test_passwords_are_stored_as_strong_argon2id(api: Api, db_url: str) -> None:
    engine = make_engine(db_url, pool_size=1)
    with engine.connect() as conn:
        stored = conn.execute(sa.select(t.users.c.password_hash).where(t.users.c.email == ADMIN)).scalar_one()
    engine.dispose()
    assert_strong_argon2id(stored)
    assert PASSWORD not in stored
