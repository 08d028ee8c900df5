"""Request and response bodies of the risk operator API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class RuleBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rule: dict[str, Any] = Field(description="The rule (docs/risk.md: the rule language)")
    enabled: bool = True
    expected_version: int | None = Field(
        default=None, ge=0, description="The version you edited (0 for a new rule); refused "
                                        "with RISK_RULE_CONFLICT if it moved on")


class RuleOut(_Out):
    id: str
    version: int
    enabled: bool
    body: dict[str, Any]
    updated_by: str
    updated_at: datetime


class RuleListOut(BaseModel):
    ruleset_version: int
    data: list[RuleOut]


class ValidateOut(BaseModel):
    valid: bool
    id: str


class ListEntryBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value: str = Field(min_length=1, max_length=128,
                       description="A payer id, merchant id, device id, IP or CIDR range")
    reason: str = Field(min_length=1, max_length=256)


class ListEntryOut(_Out):
    list_name: str
    value: str
    reason: str
    added_by: str
    added_at: datetime


class ChangedOut(BaseModel):
    changed: bool


class DecisionOut(_Out):
    id: str
    action: str
    merchant_id: str
    out_no: str
    outcome: str
    reason: str
    fired: list[str]
    errors: list[str]
    amount_fen: int
    channel: str
    way_code: str
    ruleset_version: int
    case_id: str | None
    created_at: datetime


class AlertOut(_Out):
    id: str
    kind: str
    merchant_id: str | None
    channel: str | None
    severity: str
    summary: str
    status: str
    handled_by: str | None
    created_at: datetime


class ReasonBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=256)


class CaseOpenBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    merchant_id: str = Field(min_length=1, max_length=40)
    summary: str = Field(min_length=1, max_length=256)


class CaseCloseBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    verdict: str = Field(pattern="^(fraud|no_fraud)$")
    resolution: str = Field(min_length=1, max_length=256)
    freeze: bool = False
    hold_settlement: bool = False
    blacklist: bool = False


class CaseOut(_Out):
    id: str
    merchant_id: str
    status: str
    source: str
    summary: str
    score: int | None
    assignee: str | None
    resolution: str | None
    opened_at: datetime
    updated_at: datetime


class ScoringOut(BaseModel):
    day: str
    scored: int
    cases_opened: int
    top: list[tuple[str, int]]
