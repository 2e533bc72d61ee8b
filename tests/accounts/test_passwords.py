"""Password hashing: argon2id at or above the OWASP minimum (m=19 MiB, t=2, p=1)."""

from __future__ import annotations

import re

import pytest
from argon2 import PasswordHasher, Type

from accounts import passwords

ARGON2 = re.compile(
    r"^\$(?P<variant>argon2(?:id|i|d))\$v=(?P<v>\d+)\$m=(?P<m>\d+),t=(?P<t>\d+),p=(?P<p>\d+)\$[^$]+\$[^$]+$"
)
MIN_MEMORY_KIB = 19 * 1024


def argon2_parameters(encoded: str) -> dict[str, str | int]:
    match = ARGON2.match(encoded)
    assert match is not None, f"not an argon2 PHC string: {encoded[:40]}"
    return {
        "variant": match["variant"],
        "version": int(match["v"]),
        "memory_kib": int(match["m"]),
        "time_cost": int(match["t"]),
        "parallelism": int(match["p"]),
    }


def assert_strong_argon2id(encoded: str) -> None:
    params = argon2_parameters(encoded)
    assert params["variant"] == "argon2id"
    assert params["version"] == 19
    assert int(params["memory_kib"]) >= MIN_MEMORY_KIB
    assert int(params["time_cost"]) >= 2
    assert params["parallelism"] == 1


def test_hashes_are_argon2id_with_at_least_the_owasp_parameters() -> None:
    assert_strong_argon2id(passwords.hash_password("correct horse battery"))


def test_a_hash_verifies_its_password_and_nothing_else() -> None:
    encoded = passwords.hash_password("correct horse battery")
    assert passwords.verify_password(encoded, "correct horse battery")
    assert not passwords.verify_password(encoded, "correct horse batterY")
    assert not passwords.verify_password(encoded, "")


def test_the_same_password_hashes_differently_each_time() -> None:
    assert passwords.hash_password("correct horse battery") != passwords.hash_password(
        "correct horse battery"
    )


def test_an_unknown_user_never_verifies_even_with_the_dummy_password() -> None:
    assert not passwords.verify_password(None, "commons-timing-equaliser")
    assert not passwords.verify_password(None, "correct horse battery")


@pytest.mark.parametrize("stored", ["", "plaintext", "$argon2id$v=19$m=1,t=1,p=1$bad$bad"])
def test_a_corrupt_stored_hash_is_a_failed_login_not_a_crash(stored: str) -> None:
    assert not passwords.verify_password(stored, "correct horse battery")


def test_an_overlong_password_is_refused_before_hashing() -> None:
    encoded = passwords.hash_password("a" * passwords.MAX_PASSWORD_LENGTH)
    assert passwords.verify_password(encoded, "a" * passwords.MAX_PASSWORD_LENGTH)
    assert not passwords.verify_password(encoded, "a" * (passwords.MAX_PASSWORD_LENGTH + 1))


def test_weaker_hashes_are_marked_for_rehash() -> None:
    weak = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1, type=Type.ID).hash(
        "correct horse battery"
    )
    assert passwords.needs_rehash(weak)
    assert not passwords.needs_rehash(passwords.hash_password("correct horse battery"))


@pytest.mark.parametrize(
    ("password", "ok"),
    [("123456789", False), ("1234567890", True), ("x" * 256, True), ("x" * 257, False)],
)
def test_password_length_rules(password: str, ok: bool) -> None:
    assert (passwords.password_problems(password) == []) is ok
