"""Operator API shapes for reconciliation. Amounts are integer fen on the wire."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from fulema.core.vocab import ChannelName
from fulema.reconciliation.domain import Action, DiscrepancyStatus, Result


class RunOut(BaseModel):
    run_id: str
    channel: str
    day: str
    sha256: str
    source: str
    lines: int = Field(description="statement lines")
    ours: int = Field(description="our payments and refunds confirmed on the day")
    matched: int
    discrepancies: int = Field(description="discrepancies opened by this run")
    auto_resolved: int = Field(description="cross-day discrepancies of other days this run closed")
    summary: dict[str, Any] = Field(description="per result: count, our_amount, channel_amount")
    created_by: str
    created_at: datetime


class DownloadBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: ChannelName
    date: date


class DiscrepancyOut(BaseModel):
    discrepancy_id: str
    run_id: str
    channel: str
    day: str
    kind: Result
    record_kind: str
    ref: str
    order_id: str | None
    merchant_id: str | None
    way_code: str | None
    txn_id: str | None
    our_amount: int | None
    channel_amount: int | None
    our_status: str | None
    channel_status: str | None
    line: int | None
    status: DiscrepancyStatus
    action: Action | None
    note: str | None
    resolved_by: str | None
    resolved_at: datetime | None
    created_at: datetime


class DiscrepancyPage(BaseModel):
    data: list[DiscrepancyOut]
    has_more: bool


class InvestigateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str = Field(default="", max_length=1000)


class ResolveBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Action = Field(description="SYNC_ORDER, REFUND, ADJUST or ACCEPT")
    note: str = Field(default="", max_length=1000)
    amount: StrictInt | None = Field(default=None, description=(
        "REFUND: fen to refund (default: what the channel holds above our record); ADJUST: "
        "signed fen (default: channel minus ours)"))


class ReportRow(BaseModel):
    key: str | None = Field(description="merchant id, way code/kind, or result")
    result: Result
    count: int
    our_amount: int
    channel_amount: int


class ReportOut(BaseModel):
    run_id: str
    by: str
    rows: list[ReportRow]
