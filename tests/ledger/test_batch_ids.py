"""The batch's transaction ids: random version 4 UUIDs, drawn from the system in one read."""

from __future__ import annotations

import uuid

import pytest

from ledger.batch import random_uuids


def test_random_uuids_are_distinct_version_4_uuids_as_uuid4_makes_them() -> None:
    ids = list(random_uuids(1000))
    assert len(ids) == len(set(ids)) == 1000
    for text in ids:
        u = uuid.UUID(text)
        assert str(u) == text
        assert u.version == 4 and u.variant == uuid.RFC_4122


def test_random_uuids_of_nothing_is_nothing() -> None:
    assert list(random_uuids(0)) == []


def test_random_uuids_are_what_uuid_makes_of_the_same_random_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    """uuid.uuid4() is UUID(bytes=os.urandom(16), version=4): the same bytes give the same text."""
    random_bytes = bytes(range(256))[:48]
    monkeypatch.setattr("ledger.batch.os.urandom", lambda n: random_bytes[:n])
    expected = [str(uuid.UUID(bytes=random_bytes[i : i + 16], version=4)) for i in (0, 16, 32)]
    assert list(random_uuids(3)) == expected
    monkeypatch.setattr("ledger.batch.os.urandom", lambda n: b"\xff" * n)
    assert list(random_uuids(1)) == [str(uuid.UUID(bytes=b"\xff" * 16, version=4))]
