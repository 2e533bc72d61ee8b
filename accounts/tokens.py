"""Access tokens (JWT via python-jose) and opaque refresh tokens.

Hardening (DESIGN §3): exactly one algorithm, HS256, passed as a list when decoding so a token
naming `none` or another algorithm is refused; a secret of at least 32 bytes; required `exp`,
`iat`, `sub`, `iss`, `aud`, `typ` = "access" and `ver` (the user's token version, bumped on
logout and password change so every outstanding token dies at once).
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from jose import JWTError, jwt

ALGORITHM = "HS256"
ISSUER = "commons"
AUDIENCE = "commons-api"
ACCESS_TTL = timedelta(minutes=15)
REFRESH_TTL = timedelta(days=30)
MIN_SECRET_BYTES = 32
REQUIRED_CLAIMS = ("exp", "iat", "sub", "iss", "aud", "typ", "ver")


class TokenError(Exception):
    """The token cannot be trusted; the message says why (never shown verbatim to attackers)."""


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: int
    token_version: int
    expires_at: datetime


def check_secret(secret: str) -> None:
    if len(secret.encode()) < MIN_SECRET_BYTES:
        raise ValueError(f"the signing secret must be at least {MIN_SECRET_BYTES} bytes long")


def issue_access_token(
    *, secret: str, user_id: int, token_version: int, now: datetime | None = None
) -> tuple[str, int]:
    """Return (token, seconds until expiry)."""
    check_secret(secret)
    issued = now or datetime.now(UTC)
    claims: dict[str, Any] = {
        "sub": str(user_id),
        "iss": ISSUER,
        "aud": AUDIENCE,
        "iat": int(issued.timestamp()),
        "exp": int((issued + ACCESS_TTL).timestamp()),
        "typ": "access",
        "ver": token_version,
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM), int(ACCESS_TTL.total_seconds())


# Tokens that passed every check below, by (secret, exact token string). Each request of a signed
# in client sends the same token for up to 15 minutes; verifying it again (python-jose: header,
# base64, HMAC, JSON, claims) cost 75 us, about 5% of a transfer's server CPU. Everything the
# verification decides is a function of the token string and the secret except the expiry, so a
# hit is honoured only while `exp` is ahead of the clock; after it the token is verified afresh
# (and refused). Failures are never cached. Revocation (`ver`) is checked against the database on
# every request either way (accounts.service.load_actor).
_VERIFIED: dict[tuple[str, str], AccessClaims] = {}
_VERIFIED_MAX = 10_000


def decode_access_token(token: str, *, secret: str) -> AccessClaims:
    cached = _VERIFIED.get((secret, token))
    if cached is not None and time.time() < cached.expires_at.timestamp():
        return cached
    claims = _verify_access_token(token, secret=secret)
    if len(_VERIFIED) >= _VERIFIED_MAX:
        _VERIFIED.clear()  # a crude bound: refilled by the next request of each client
    _VERIFIED[(secret, token)] = claims
    return claims


def _verify_access_token(token: str, *, secret: str) -> AccessClaims:
    try:
        header = jwt.get_unverified_header(token)
    except JWTError as exc:
        raise TokenError("malformed token") from exc
    if header.get("alg") != ALGORITHM:
        raise TokenError("unexpected algorithm")
    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            issuer=ISSUER,
            options={
                "require_exp": True,
                "require_iat": True,
                "require_sub": True,
                "require_iss": True,
                "require_aud": True,
                "verify_exp": True,
                "verify_iat": True,
                "verify_aud": True,
                "verify_iss": True,
                "verify_signature": True,
                "leeway": 0,
            },
        )
    except JWTError as exc:
        raise TokenError(str(exc)) from exc
    missing = [claim for claim in REQUIRED_CLAIMS if claim not in claims]
    if missing:
        raise TokenError(f"missing claims: {', '.join(missing)}")
    if claims["typ"] != "access":
        raise TokenError("not an access token")
    try:
        user_id = int(claims["sub"])
        version = int(claims["ver"])
    except (TypeError, ValueError) as exc:
        raise TokenError("malformed subject or version") from exc
    return AccessClaims(user_id, version, datetime.fromtimestamp(int(claims["exp"]), UTC))


def new_refresh_token() -> tuple[str, str]:
    """Return (token for the client, hash to store)."""
    token = secrets.token_urlsafe(32)
    return token, hash_refresh_token(token)


def hash_refresh_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
