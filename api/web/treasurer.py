"""A treasurer's pages (filled in below the member flow)."""

from __future__ import annotations

from litestar import Controller


class TreasurerController(Controller):
    path = "/treasurer"
