"""Hand-made JWTs for tests: any header, any claims, any key, signed or not.

Written with hmac and base64 directly rather than with python-jose, so a test can build exactly
the token an attacker would (alg `none`, a missing `exp`, another HMAC algorithm) without the
library under test smoothing anything over.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from accounts import tokens

_DIGESTS = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def good_claims(*, user_id: int, token_version: int = 0, now: datetime | None = None) -> dict[str, Any]:
    """The claims `issue_access_token` writes, as a dict a test can bend one field of."""
    issued = now or datetime.now(UTC)
    return {
        "sub": str(user_id),
        "iss": tokens.ISSUER,
        "aud": tokens.AUDIENCE,
        "iat": int(issued.timestamp()),
        "exp": int((issued + timedelta(minutes=15)).timestamp()),
        "typ": "access",
        "ver": token_version,
    }


def craft(
    claims: dict[str, Any], *, key: str, alg: str = "HS256", header: dict[str, Any] | None = None
) -> str:
    """Encode and sign (HS256/384/512) or leave unsigned (alg `none` and anything unknown)."""
    head = {"alg": alg, "typ": "JWT", **(header or {})}
    signing_input = f"{b64(json.dumps(head).encode())}.{b64(json.dumps(claims).encode())}"
    digest = _DIGESTS.get(alg)
    signature = b"" if digest is None else hmac.new(key.encode(), signing_input.encode(), digest).digest()
    return f"{signing_input}.{b64(signature)}"


def without(claims: dict[str, Any], name: str) -> dict[str, Any]:
    return {k: v for k, v in claims.items() if k != name}


def hostile_tokens(*, user_id: int, key: str, token_version: int = 0) -> dict[str, str]:
    """Every access token the API must refuse with 401, by the reason it must refuse it."""
    claims = good_claims(user_id=user_id, token_version=token_version)
    hour_ago = datetime.now(UTC) - timedelta(hours=1)
    return {
        "alg none": craft(claims, key=key, alg="none"),
        "alg None": craft(claims, key=key, alg="None"),
        "alg none with a valid HS256 signature": _swap_alg(craft(claims, key=key), "none"),
        "HS384 with the right key": craft(claims, key=key, alg="HS384"),
        "HS512 with the right key": craft(claims, key=key, alg="HS512"),
        "RS256 header over an HMAC signature": _swap_alg(craft(claims, key=key), "RS256"),
        "signed with another key": craft(claims, key="another-secret-" + "y" * 40),
        "expired": craft(good_claims(user_id=user_id, token_version=token_version, now=hour_ago), key=key),
        "without exp": craft(without(claims, "exp"), key=key),
        "without iat": craft(without(claims, "iat"), key=key),
        "without sub": craft(without(claims, "sub"), key=key),
        "without ver": craft(without(claims, "ver"), key=key),
        "without typ": craft(without(claims, "typ"), key=key),
        "without aud": craft(without(claims, "aud"), key=key),
        "without iss": craft(without(claims, "iss"), key=key),
        "wrong aud": craft({**claims, "aud": "some-other-api"}, key=key),
        "wrong iss": craft({**claims, "iss": "evil"}, key=key),
        "typ refresh": craft({**claims, "typ": "refresh"}, key=key),
        "sub not a number": craft({**claims, "sub": "admin"}, key=key),
        "tampered payload": _tamper(craft(claims, key=key), {**claims, "sub": str(user_id + 1)}),
        "garbage": "not.a.jwt",
    }


def _swap_alg(token: str, alg: str) -> str:
    _, payload, signature = token.split(".")
    return f"{b64(json.dumps({'alg': alg, 'typ': 'JWT'}).encode())}.{payload}.{signature}"


def _tamper(token: str, claims: dict[str, Any]) -> str:
    header, _, signature = token.split(".")
    return f"{header}.{b64(json.dumps(claims).encode())}.{signature}"
