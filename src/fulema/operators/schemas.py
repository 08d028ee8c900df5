"""Request and response bodies of the operators' API (operators, approvals, audit trail)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from fulema.core.approvals import ApprovalOut
from fulema.operators.domain import NAME_PATTERN

Role = Literal["reviewer", "risk", "finance", "admin"]


class OperatorBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN, description="Login-style name, never reused")
    display_name: str = Field(default="", max_length=64)
    roles: list[Role] = Field(min_length=1, max_length=4)
    reason: str | None = Field(default=None, max_length=256,
                               description="Why the roles are granted: required of a named "
                                           "admin (the grant waits for a second admin)")


class RolesBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    roles: list[Role] = Field(min_length=1, max_length=4)
    reason: str | None = Field(default=None, max_length=256,
                               description="Why: required when the change grants a role")


class OperatorOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    display_name: str
    roles: list[str]
    status: str
    created_by: str
    created_at: datetime
    updated_at: datetime
    pending_approval_id: str | None = Field(
        default=None, description="On create by a named admin: the request for its roles")


class OperatorListOut(BaseModel):
    data: list[OperatorOut]


class PasswordBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    password: str = Field(min_length=10, max_length=128,
                          description="The console password: 10+ characters, letters and digits")


class TokenBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: str = Field(default="api", max_length=64)
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)


class TokenOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    token_id: str
    operator: str
    label: str
    created_by: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    revoked_by: str | None


class IssuedTokenOut(TokenOut):
    token: str = Field(description="Shown in this answer only; only its digest is stored")


class TokenListOut(BaseModel):
    data: list[TokenOut]


class ApprovalListOut(BaseModel):
    data: list[ApprovalOut]


class ApproveBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str | None = Field(default=None, max_length=256)


class RejectBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=256)


class AuditRecordOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    chain: str
    seq: int
    at: datetime
    actor: str
    action: str
    target_type: str
    target_id: str
    detail: dict[str, Any]
    hash: str


class AuditPageOut(BaseModel):
    data: list[AuditRecordOut]
    has_more: bool
