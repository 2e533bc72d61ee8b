"""One typed settings object, built from COMMONS_* environment variables and validated at load.

Nothing reads the environment at import time; tests build `Settings` directly.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field

from accounts.tokens import MIN_SECRET_BYTES
from ledger.db import normalise_url

DEFAULT_DATABASE_URL = "sqlite:///./commons.db"


class SettingsError(ValueError):
    """A setting is missing or wrong; the message says which and how to fix it."""


def _int(env: Mapping[str, str], name: str, default: int, *, low: int, high: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be a whole number (got {raw!r})") from exc
    if not low <= value <= high:
        raise SettingsError(f"{name} must be between {low} and {high} (got {value})")
    return value


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    secret_key: str = field(default="", repr=False)
    demo_mode: bool = False
    pool_size: int = 10
    max_body_bytes: int = 64 * 1024
    batch_max_body_bytes: int = 4 * 1024 * 1024
    claim_sweep_seconds: int = 60
    login_attempts_per_account: int = 10
    login_attempts_per_client: int = 50
    login_window_seconds: int = 300
    idempotency_retention_days: int = 30

    def __post_init__(self) -> None:
        normalise_url(self.database_url)  # raises on an unsupported URL
        if len(self.secret_key.encode()) < MIN_SECRET_BYTES:
            raise SettingsError(
                f"COMMONS_SECRET_KEY must be at least {MIN_SECRET_BYTES} bytes of random text; "
                'make one with: python3 -c "import secrets; print(secrets.token_urlsafe(48))"'
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *, demo_mode: bool = False) -> Settings:
        env = os.environ if env is None else env
        secret = env.get("COMMONS_SECRET_KEY", "")
        if not secret and demo_mode:
            # Demo only: a fresh random secret per run (tokens die with the process).
            secret = secrets.token_urlsafe(48)
        return cls(
            database_url=env.get("COMMONS_DATABASE_URL") or DEFAULT_DATABASE_URL,
            secret_key=secret,
            demo_mode=demo_mode,
            pool_size=_int(env, "COMMONS_POOL_SIZE", 10, low=1, high=200),
            claim_sweep_seconds=_int(env, "COMMONS_CLAIM_SWEEP_SECONDS", 60, low=1, high=86400),
            login_attempts_per_account=_int(
                env, "COMMONS_LOGIN_ATTEMPTS_PER_ACCOUNT", 10, low=1, high=10_000
            ),
            login_attempts_per_client=_int(env, "COMMONS_LOGIN_ATTEMPTS_PER_CLIENT", 50, low=1, high=100_000),
            login_window_seconds=_int(env, "COMMONS_LOGIN_WINDOW_SECONDS", 300, low=1, high=86400),
            idempotency_retention_days=idempotency_retention_days(env),
        )


def idempotency_retention_days(env: Mapping[str, str] | None = None) -> int:
    """COMMONS_IDEMPOTENCY_RETENTION_DAYS (default 30), alone: `commons prune-idempotency` needs no
    secret key. See ledger/retention.py for the contract."""
    env = os.environ if env is None else env
    return _int(env, "COMMONS_IDEMPOTENCY_RETENTION_DAYS", 30, low=1, high=36_500)
