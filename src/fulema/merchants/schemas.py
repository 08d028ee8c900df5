"""Operator API shapes. Requests forbid unknown fields and strip surrounding blanks, so a typo
in a field name is an error rather than a silently ignored correction."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator

from fulema.core.masking import mask_account, mask_phone
from fulema.merchants.domain import (
    ACCOUNT_PATTERN,
    LICENCE_PATTERN,
    MAX_FEE_BPS,
    MAX_REASON,
    MCC_PATTERN,
    PHONE_PATTERN,
    TerminalKind,
)

_SERIAL = r"^[A-Za-z0-9_.:\-]{1,64}$"


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ApplyBody(_Request):
    name: str = Field(min_length=1, max_length=64, description="Registered name (商户名称)")
    short_name: str = Field(min_length=1, max_length=20,
                            description="What the cloud speaker and the cashier show")
    licence_no: str = Field(pattern=LICENCE_PATTERN,
                            description="统一社会信用代码, 18 characters, check digit verified")
    legal_person: str = Field(min_length=1, max_length=32)
    settlement_account: str = Field(pattern=ACCOUNT_PATTERN, description="8-32 digits")
    settlement_account_name: str = Field(min_length=1, max_length=64)
    contact_name: str = Field(min_length=1, max_length=32)
    contact_phone: str = Field(pattern=PHONE_PATTERN, description="Mainland mobile, 11 digits")
    mcc: str = Field(pattern=MCC_PATTERN, description="Merchant category code, 4 digits")


class ResubmitBody(_Request):
    """Corrections to a rejected application; fields left out keep their value."""

    name: str | None = Field(default=None, min_length=1, max_length=64)
    short_name: str | None = Field(default=None, min_length=1, max_length=20)
    licence_no: str | None = Field(default=None, pattern=LICENCE_PATTERN)
    legal_person: str | None = Field(default=None, min_length=1, max_length=32)
    settlement_account: str | None = Field(default=None, pattern=ACCOUNT_PATTERN)
    settlement_account_name: str | None = Field(default=None, min_length=1, max_length=64)
    contact_name: str | None = Field(default=None, min_length=1, max_length=32)
    contact_phone: str | None = Field(default=None, pattern=PHONE_PATTERN)
    mcc: str | None = Field(default=None, pattern=MCC_PATTERN)


class ReasonBody(_Request):
    """reject and freeze: the reason is required and kept in the audit log."""

    reason: str = Field(min_length=1, max_length=MAX_REASON)


class NoteBody(_Request):
    """approve, activate, unfreeze, close: an optional note for the audit log."""

    reason: str | None = Field(default=None, max_length=MAX_REASON)


class StoreBody(_Request):
    name: str = Field(min_length=1, max_length=64)
    address: str = Field(min_length=1, max_length=256)


class TerminalBody(_Request):
    kind: TerminalKind
    serial_no: str = Field(pattern=_SERIAL)
    speaker_id: str | None = Field(default=None, pattern=_SERIAL,
                                   description="Required for SPEAKER, refused otherwise")


class AppBody(_Request):
    name: str = Field(default="default", min_length=1, max_length=64)
    rsa_public_key_pem: str | None = Field(default=None, max_length=4096)
    notify_url: str | None = Field(default=None, max_length=512, pattern=r"^https?://\S+$")


class FeeRateBody(_Request):
    bps: StrictInt = Field(ge=0, le=MAX_FEE_BPS, description="Basis points: 38 is 0.38%")
    reason: str | None = Field(default=None, max_length=MAX_REASON,
                               description="Why: required of a named operator, whose change "
                                           "waits for a second operator (four eyes)")


class SettlementAccountBody(_Request):
    """A new settlement account: runs when a second operator (finance) approves."""

    settlement_account: str = Field(pattern=ACCOUNT_PATTERN, description="8-32 digits")
    settlement_account_name: str = Field(min_length=1, max_length=64)
    reason: str = Field(min_length=1, max_length=MAX_REASON)


class SearchBody(_Request):
    """Find merchants by a whole identifier (in the body, not the URL: URLs reach logs)."""

    contact_phone: str = Field(pattern=PHONE_PATTERN)
    limit: int = Field(default=20, ge=1, le=100)
    starting_after: str | None = Field(default=None, max_length=40)


class RevealBody(_Request):
    """What to show whole, and why (kept in the audit trail)."""

    fields: list[Literal["settlement_account", "contact_phone"]] = Field(min_length=1,
                                                                         max_length=2)
    reason: str = Field(min_length=1, max_length=256)


class PlateBody(_Request):
    store_id: str = Field(min_length=1, max_length=40)


# --- responses ------------------------------------------------------------------------------


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class MerchantOut(_Out):
    """Every answer masks the settlement account and the phone (docs/security.md, "Masking");
    `POST /ops/v1/merchants/{id}/reveal` shows them whole to finance, audited."""

    id: str
    name: str
    short_name: str
    licence_no: str
    legal_person: str
    settlement_account: str = Field(description="Masked: 6222****1234")
    settlement_account_name: str
    contact_name: str
    contact_phone: str = Field(description="Masked: 138****5678")
    mcc: str
    status: str
    reject_reason: str | None
    freeze_reason: str | None
    settlement_hold_reason: str | None
    created_at: datetime
    updated_at: datetime


    @field_validator("settlement_account")
    @classmethod
    def _mask_account(cls, value: str) -> str:
        return mask_account(value) or ""

    @field_validator("contact_phone")
    @classmethod
    def _mask_phone(cls, value: str) -> str:
        return mask_phone(value) or ""


class MerchantListOut(_Out):
    data: list[MerchantOut]
    has_more: bool


class StoreOut(_Out):
    id: str
    merchant_id: str
    name: str
    address: str
    active: bool


class TerminalOut(_Out):
    id: str
    merchant_id: str
    store_id: str
    kind: str
    serial_no: str
    speaker_id: str | None
    active: bool


class AppOut(_Out):
    app_id: str
    merchant_id: str
    name: str
    rsa_public_key_pem: str | None
    notify_url: str | None
    active: bool
    secret_rotated_at: datetime
    created_at: datetime


class AppSecretOut(AppOut):
    secret: str = Field(description="Shown once: store it now; it cannot be read back")


class RevealOut(_Out):
    """The fields asked for, whole (the others null), and the audit record of this read."""

    merchant_id: str
    settlement_account: str | None
    contact_phone: str | None
    audit_id: str


class FeeRateOut(_Out):
    channel: str
    bps: int
    is_default: bool


class PlateOut(_Out):
    code: str
    merchant_id: str
    store_id: str
    status: str
    created_at: datetime
    url: str
    png_url: str


class MerchantDetailOut(MerchantOut):
    stores: list[StoreOut]
    terminals: list[TerminalOut]
    apps: list[AppOut]
    fee_rates: list[FeeRateOut]
    plates: list[PlateOut]


class EventOut(_Out):
    seq: int
    action: str
    from_status: str | None
    to_status: str
    reason: str | None
    operator: str
    at: datetime


class EventListOut(_Out):
    data: list[EventOut]


class MerchantUserBody(_Request):
    """A portal user; the password is set here once and never returned."""

    login_name: str = Field(min_length=3, max_length=32, pattern=r"^[a-z0-9][a-z0-9._-]+$")
    display_name: str = Field(min_length=1, max_length=32)
    role: str = Field(default="owner", description="owner | cashier | accountant")
    password: str = Field(min_length=10, max_length=128,
                          description="10+ characters with letters and digits")


class MerchantUserOut(_Out):
    user_id: str
    merchant_id: str
    login_name: str
    display_name: str
    role: str
    status: str
    locked_until: datetime | None
    last_login_at: datetime | None
    created_at: datetime


class MerchantUserListOut(BaseModel):
    data: list[MerchantUserOut]
