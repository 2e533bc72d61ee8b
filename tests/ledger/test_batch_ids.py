"""The batch's transaction ids: random version 4 UUIDs, drawn from the system in one read."""

from __future__ import annotations

import uuid

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
