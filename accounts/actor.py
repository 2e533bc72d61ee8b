"""Who is asking: the authenticated user with their roles, as a value."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    MEMBER = "member"
    TREASURER = "treasurer"


@dataclass(frozen=True, slots=True)
class CoopRole:
    coop_id: int
    slug: str
    ledger_id: int
    role: Role
    account_id: int


@dataclass(frozen=True, slots=True)
class Actor:
    user_id: int
    is_admin: bool
    roles: tuple[CoopRole, ...] = ()

    @property
    def account_ids(self) -> frozenset[int]:
        return frozenset(r.account_id for r in self.roles)

    def holds(self, account_id: int) -> bool:
        return any(r.account_id == account_id for r in self.roles)

    def role_in_coop(self, coop_id: int) -> Role | None:
        for r in self.roles:
            if r.coop_id == coop_id:
                return r.role
        return None

    def is_treasurer_of_ledger(self, ledger_id: int) -> bool:
        return any(r.ledger_id == ledger_id and r.role is Role.TREASURER for r in self.roles)

    def is_treasurer_of_coop(self, coop_id: int) -> bool:
        return self.role_in_coop(coop_id) is Role.TREASURER

    def is_member_of_ledger(self, ledger_id: int) -> bool:
        return any(r.ledger_id == ledger_id for r in self.roles)

    @property
    def treasurer_ledgers(self) -> frozenset[int]:
        return frozenset(r.ledger_id for r in self.roles if r.role is Role.TREASURER)
