"""Public request and response shapes. Amounts are decimal strings; ids are strings."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from litestar.plugins.pydantic import PydanticSchemaPlugin
from litestar.typing import FieldDefinition
from pydantic import BaseModel, ConfigDict, Field, field_validator

Id = str
Amount = str


class Input(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @field_validator("*")
    @classmethod
    def _no_nul(cls, value: Any) -> Any:
        # PostgreSQL text cannot hold U+0000 (a 500 there, silently stored by SQLite): refuse it
        # at the edge, the same on both engines.
        if isinstance(value, str) and "\x00" in value:
            raise ValueError("text must not contain the NUL character (U+0000)")
        return value


class ClosedModelSchemaPlugin(PydanticSchemaPlugin):
    """Litestar leaves `extra="forbid"` out of the OpenAPI document; state it there
    (`additionalProperties: false`), so the document says that unknown members are refused."""

    def to_openapi_schema(self, field_definition: FieldDefinition, schema_creator: Any) -> Any:
        schema = super().to_openapi_schema(field_definition, schema_creator)
        model = field_definition.annotation
        closed = isinstance(model, type) and issubclass(model, BaseModel)
        if closed and model.model_config.get("extra") == "forbid":
            schema.additional_properties = False
        return schema


class TokenRequest(Input):
    email: str = Field(max_length=320)
    password: str = Field(max_length=256)


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 (OAuth token type)
    expires_in: int
    refresh_token: str


class RefreshRequest(Input):
    refresh_token: str = Field(max_length=200)


class PasswordChange(Input):
    current_password: str = Field(max_length=256)
    new_password: str = Field(max_length=256)


class UnitOut(BaseModel):
    code: str
    scale: int


class UnitIn(Input):
    code: str = Field(max_length=16)
    scale: int = Field(ge=0, le=6)


class CoopCreate(Input):
    slug: str = Field(max_length=64)
    name: str = Field(max_length=200)
    unit: UnitIn
    default_min_balance: Amount | None = Field(default=None, max_length=40)
    default_max_balance: Amount | None = Field(default=None, max_length=40)
    claim_expiry_days: int = Field(default=30, ge=1, le=3650)
    max_transfer_amount: Amount | None = Field(default=None, max_length=40)


class CoopUpdate(Input):
    name: str | None = Field(default=None, max_length=200)
    default_min_balance: Amount | None = Field(default=None, max_length=40)
    default_max_balance: Amount | None = Field(default=None, max_length=40)
    claim_expiry_days: int | None = Field(default=None, ge=1, le=3650)
    max_transfer_amount: Amount | None = Field(default=None, max_length=40)


class CoopOut(BaseModel):
    slug: str
    name: str
    unit: UnitOut
    default_min_balance: Amount | None
    default_max_balance: Amount | None
    claim_expiry_days: int
    max_transfer_amount: Amount
    coop_account: Id | None


class MemberCreate(Input):
    email: str = Field(max_length=320)
    name: str = Field(max_length=200)
    role: Literal["member", "treasurer"] = "member"
    password: str | None = Field(default=None, max_length=256)


class MemberOut(BaseModel):
    user_id: Id
    account_id: Id
    role: Literal["member", "treasurer"]


class MembershipOut(BaseModel):
    coop: str
    role: Literal["member", "treasurer"]
    account_id: Id


class MeOut(BaseModel):
    id: Id
    email: str
    name: str
    is_admin: bool
    memberships: list[MembershipOut]


class AccountOut(BaseModel):
    id: Id
    coop: str | None
    kind: Literal["member", "coop", "federation"]
    holder: str
    balance: Amount
    min_balance: Amount | None
    max_balance: Amount | None
    status: Literal["active", "frozen", "closed"]
    total_given: Amount
    total_received: Amount
    unit: UnitOut


class DirectoryEntry(BaseModel):
    # Closed (additionalProperties: false): a full AccountOut must not also match it in AccountPage.
    model_config = ConfigDict(extra="forbid")

    id: Id
    holder: str
    kind: Literal["member", "coop", "federation"]
    status: Literal["active", "frozen", "closed"]


class AccountPage(BaseModel):
    items: list[AccountOut | DirectoryEntry]
    next_cursor: str | None


class AccountPatch(Input):
    min_balance: Amount | None = Field(default=None, max_length=40)
    max_balance: Amount | None = Field(default=None, max_length=40)
    status: Literal["active", "frozen", "closed"] | None = None


class PostingOut(BaseModel):
    account: Id
    version: int
    transfer: Id
    amount: Amount
    balance_after: Amount
    posted_at: datetime
    counterparty: Id
    memo: str | None
    category: str | None
    occurred_on: date


class PostingPage(BaseModel):
    items: list[PostingOut]
    next_cursor: str | None


class BalanceOut(BaseModel):
    account: Id
    at: datetime
    balance: Amount


class TransferCreate(Input):
    payer: Id = Field(max_length=20)
    payee: Id = Field(max_length=20)
    amount: Amount = Field(max_length=40)
    memo: str | None = Field(default=None, max_length=500)
    category: str | None = Field(default=None, max_length=40)
    occurred_on: date | None = None


class TransferOut(BaseModel):
    id: Id
    status: Literal["posted", "pending", "rejected", "cancelled", "expired"]
    payer: Id
    payee: Id
    amount: Amount
    memo: str | None
    category: str | None
    occurred_on: date
    initiator: Id | None
    transaction_id: str
    reverses: Id | None
    created_at: datetime
    expires_at: datetime | None
    resolved_at: datetime | None
    unit: UnitOut


class TransferPage(BaseModel):
    items: list[TransferOut]
    next_cursor: str | None


class ReverseIn(Input):
    reason: str | None = Field(default=None, max_length=400)


class BatchItem(Input):
    id: str = Field(min_length=1, max_length=200)
    payer: Id = Field(max_length=20)
    payee: Id = Field(max_length=20)
    amount: Amount = Field(max_length=40)
    memo: str | None = Field(default=None, max_length=500)
    category: str | None = Field(default=None, max_length=40)
    occurred_on: date | None = None


class BatchIn(Input):
    transfers: list[BatchItem] = Field(min_length=1, max_length=5000)


class BatchOutcome(BaseModel):
    id: str
    outcome: Literal["posted", "replayed", "refused"]
    transfer: TransferOut | None = None
    code: str | None = None
    detail: str | None = None


class BatchOut(BaseModel):
    posted: int
    replayed: int
    refused: int
    items: list[BatchOutcome]


class Health(BaseModel):
    status: Literal["ok"]
    database: str
