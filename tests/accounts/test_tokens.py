"""Access tokens, pure: what `decode_access_token` accepts and everything it must refuse.

No database here; the same hostile tokens are sent through the API in tests/api/test_tokens.py.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from jose import jwt

from accounts import tokens
from tests.accounts.jwt_craft import b64, craft, good_claims, hostile_tokens

KEY = "unit-test-secret-" + "k" * 40
USER = 7


def test_an_issued_token_has_every_required_claim_and_decodes() -> None:
    now = datetime.now(UTC)
    token, expires_in = tokens.issue_access_token(secret=KEY, user_id=USER, token_version=3, now=now)
    assert expires_in == 15 * 60
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    claims = jwt.get_unverified_claims(token)
    assert set(tokens.REQUIRED_CLAIMS) <= set(claims)
    assert claims["typ"] == "access"
    assert claims["exp"] - claims["iat"] == 15 * 60
    decoded = tokens.decode_access_token(token, secret=KEY)
    assert (decoded.user_id, decoded.token_version) == (USER, 3)
    assert decoded.expires_at == datetime.fromtimestamp(claims["exp"], UTC)


def test_a_hand_crafted_token_with_good_claims_is_accepted() -> None:
    """The crafting helper itself makes valid tokens, so the refusals below are meaningful."""
    decoded = tokens.decode_access_token(
        craft(good_claims(user_id=USER, token_version=2), key=KEY), secret=KEY
    )
    assert (decoded.user_id, decoded.token_version) == (USER, 2)


@pytest.mark.parametrize("reason", sorted(hostile_tokens(user_id=USER, key=KEY)))
def test_a_hostile_token_is_refused(reason: str) -> None:
    token = hostile_tokens(user_id=USER, key=KEY)[reason]
    with pytest.raises(tokens.TokenError):
        tokens.decode_access_token(token, secret=KEY)


def test_a_token_expired_by_one_second_is_refused_without_leeway() -> None:
    claims = good_claims(user_id=USER)
    claims["exp"] = int(datetime.now(UTC).timestamp()) - 1
    with pytest.raises(tokens.TokenError):
        tokens.decode_access_token(craft(claims, key=KEY), secret=KEY)


def test_a_token_signed_with_an_empty_key_is_refused() -> None:
    with pytest.raises(tokens.TokenError):
        tokens.decode_access_token(craft(good_claims(user_id=USER), key=""), secret=KEY)


@pytest.mark.parametrize("secret", ["", "short", "x" * 31])
def test_a_secret_shorter_than_32_bytes_is_refused(secret: str) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        tokens.issue_access_token(secret=secret, user_id=USER, token_version=0)


def test_a_32_byte_secret_is_enough() -> None:
    token, _ = tokens.issue_access_token(secret="x" * 32, user_id=USER, token_version=0)
    assert tokens.decode_access_token(token, secret="x" * 32).user_id == USER


def test_the_header_is_checked_before_the_library_sees_the_token() -> None:
    """A header that is not JSON is a malformed token, not a crash."""
    token = f"{b64(b'not json')}.{b64(json.dumps(good_claims(user_id=USER)).encode())}.sig"
    with pytest.raises(tokens.TokenError):
        tokens.decode_access_token(token, secret=KEY)


def test_refresh_tokens_are_random_and_stored_only_as_a_hash() -> None:
    first, first_hash = tokens.new_refresh_token()
    second, _ = tokens.new_refresh_token()
    assert first != second
    assert len(first) >= 40  # 32 random bytes, base64url
    assert first_hash == tokens.hash_refresh_token(first) != first
    assert len(first_hash) == 64


def test_access_tokens_live_fifteen_minutes() -> None:
    assert timedelta(minutes=15) == tokens.ACCESS_TTL


def test_a_verified_token_is_remembered_only_until_it_expires() -> None:
    """The verified-token cache (accounts.tokens) keeps the expiry: a token that passed while it
    was valid is verified afresh, and refused, once `exp` is behind the clock."""
    claims = good_claims(user_id=USER)
    claims["exp"] = int(datetime.now(UTC).timestamp()) + 2
    token = craft(claims, key=KEY)
    first = tokens.decode_access_token(token, secret=KEY)
    assert tokens.decode_access_token(token, secret=KEY) is first  # the second answer is remembered
    while int(datetime.now(UTC).timestamp()) <= claims["exp"]:  # python-jose counts whole seconds
        time.sleep(0.1)
    with pytest.raises(tokens.TokenError):
        tokens.decode_access_token(token, secret=KEY)


def test_a_remembered_token_is_not_accepted_under_another_secret_or_with_another_signature() -> None:
    token = craft(good_claims(user_id=USER), key=KEY)
    tokens.decode_access_token(token, secret=KEY)
    with pytest.raises(tokens.TokenError):
        tokens.decode_access_token(token, secret=KEY + "-rotated")
    head, body, signature = token.split(".")
    forged = ".".join((head, body, ("A" if signature[0] != "A" else "B") + signature[1:]))
    with pytest.raises(tokens.TokenError):
        tokens.decode_access_token(forged, secret=KEY)


@pytest.mark.parametrize("reason", sorted(hostile_tokens(user_id=USER, key=KEY)))
def test_a_hostile_token_is_refused_while_a_good_one_is_remembered(reason: str) -> None:
    tokens.decode_access_token(craft(good_claims(user_id=USER), key=KEY), secret=KEY)
    with pytest.raises(tokens.TokenError):
        tokens.decode_access_token(hostile_tokens(user_id=USER, key=KEY)[reason], secret=KEY)
