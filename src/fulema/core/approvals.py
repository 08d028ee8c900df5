"""Four eyes (maker-checker) for dangerous operator actions: one generic mechanism.

An operator asks (`request`): what (a kind and its parameters), on what, and why. Nothing
happens yet. A *different* operator holding one of the action's approver roles approves; the
action then runs in the approver's transaction, together with the request's move to APPROVED
and both audit records, so it runs exactly once (the move is a conditional UPDATE of a PENDING
row: a second, concurrent approval finds no PENDING row and is refused) and never without its
trail. An action that fails when approved (the merchant was closed meanwhile) leaves the
request FAILED with the error's code, and nothing of the action.

The actions themselves belong to their contexts (`merchants.four_eyes`); the composition root
hands the declared ones to the approvals API, as it does with event consumers, so `core`
imports no context.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import JSON, Index, String, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from fulema.core import audit
from fulema.core.clock import clock
from fulema.core.db import Base, Database, UTCDateTime
from fulema.core.errors import ErrorCode, FulemaError
from fulema.core.ids import new_id


class ApprovalStatus(StrEnum):
    PENDING = "PENDING"
    APPROVED = "APPROVED"  # and the action ran, in the same transaction
    REJECTED = "REJECTED"
    FAILED = "FAILED"  # approved, but the action refused (its error code is kept)


# (session, params, approver name) -> a short result for the request's record.
Execute = Callable[[AsyncSession, dict[str, Any], str], Awaitable[dict[str, Any]]]


@dataclass(frozen=True)
class ApprovalAction:
    """A dangerous action a context declares: who may approve it and how it runs."""

    kind: str  # "merchant.set_fee_rate"
    approver_roles: tuple[str, ...]
    execute: Execute
    # (params, approver) -> why this approver may not decide this request, or None: checked
    # before anything moves, so a refused decider leaves the request PENDING.
    conflict: Callable[[dict[str, Any], str], str | None] | None = None


class ApprovalRequest(Base):
    __tablename__ = "approval_requests"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    target_type: Mapped[str] = mapped_column(String(32))
    target_id: Mapped[str] = mapped_column(String(64))
    # What the action needs to run (may hold personal data: never shown, never audited) and
    # what people see of it (masked by the context that asks).
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    summary: Mapped[dict[str, Any]] = mapped_column(JSON)
    reason: Mapped[str] = mapped_column(String(256))
    status: Mapped[str] = mapped_column(String(16))
    requested_by: Mapped[str] = mapped_column(String(64))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime())
    decided_by: Mapped[str | None] = mapped_column(String(64), default=None)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), default=None)
    decision_note: Mapped[str | None] = mapped_column(String(256), default=None)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    error_code: Mapped[str | None] = mapped_column(String(64), default=None)

    __table_args__ = (
        Index("ix_approval_requests_status", "status", "id"),
        Index("ix_approval_requests_target", "target_type", "target_id"),
    )


@dataclass(frozen=True)
class ApprovalView:
    id: str
    kind: str
    target_type: str
    target_id: str
    summary: dict[str, Any]
    reason: str
    status: str
    requested_by: str
    requested_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    decision_note: str | None
    result: dict[str, Any] | None
    error_code: str | None


class ApprovalOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    kind: str = Field(description="merchant.set_fee_rate, merchant.unfreeze, "
                                  "merchant.change_settlement_account")
    target_type: str
    target_id: str
    summary: dict[str, Any] = Field(description="What is asked, personal data masked")
    reason: str
    status: str = Field(description="PENDING, APPROVED (the action ran), REJECTED or FAILED")
    requested_by: str
    requested_at: datetime
    decided_by: str | None
    decided_at: datetime | None
    decision_note: str | None
    result: dict[str, Any] | None
    error_code: str | None = Field(description="Why the approved action failed (FAILED only)")


def _view(row: ApprovalRequest) -> ApprovalView:
    return ApprovalView(
        id=row.id, kind=row.kind, target_type=row.target_type, target_id=row.target_id,
        summary=row.summary, reason=row.reason, status=row.status,
        requested_by=row.requested_by, requested_at=row.requested_at,
        decided_by=row.decided_by, decided_at=row.decided_at, decision_note=row.decision_note,
        result=row.result, error_code=row.error_code)


def _check_text(field: str, text: str | None, *, required: bool) -> str | None:
    value = (text or "").strip() or None
    if required and value is None:
        raise FulemaError(ErrorCode.VALIDATION_ERROR, f"{field}: required")
    if value is not None and len(value) > 256:
        raise FulemaError(ErrorCode.VALIDATION_ERROR, f"{field}: at most 256 characters")
    return value


async def request(db: Database, *, kind: str, target_type: str, target_id: str,
                  params: dict[str, Any], summary: dict[str, Any], reason: str | None,
                  requested_by: str) -> ApprovalView:
    """Records what an operator asks for, and why; nothing else changes until approved."""
    why = _check_text("reason", reason, required=True)
    assert why is not None
    row = ApprovalRequest(id=new_id("apr"), kind=kind, target_type=target_type,
                          target_id=target_id, params=params, summary=summary, reason=why,
                          status=ApprovalStatus.PENDING.value, requested_by=requested_by,
                          requested_at=clock.now())
    async with db.transaction() as s:
        s.add(row)
        await audit.record(s, actor=requested_by, action="approval.request",
                           target_type=target_type, target_id=target_id,
                           detail={"approval_id": row.id, "kind": kind, "summary": summary,
                                   "reason": why})
    return _view(row)


class _ActionRefused(Exception):
    def __init__(self, error: FulemaError) -> None:
        self.error = error


async def approve(db: Database, actions: Mapping[str, ApprovalAction], *, approval_id: str,
                  approver: str, approver_roles: frozenset[str],
                  note: str | None = None) -> ApprovalView:
    """Approves and runs the action in one transaction, exactly once; see the module doc."""
    note = _check_text("note", note, required=False)
    try:
        async with db.transaction() as s:
            row, action = await _decidable(s, actions, approval_id, approver, approver_roles)
            await _claim(s, row.id, ApprovalStatus.APPROVED, approver, note)
            try:
                result = await action.execute(s, dict(row.params), approver)
            except FulemaError as exc:
                raise _ActionRefused(exc) from exc
            row.result = result
            await audit.record(s, actor=approver, action="approval.approve",
                               target_type=row.target_type, target_id=row.target_id,
                               detail={"approval_id": row.id, "kind": row.kind,
                                       "requested_by": row.requested_by, "summary": row.summary})
            await s.flush()
            await s.refresh(row)
            return _view(row)
    except _ActionRefused as refused:
        await _fail(db, approval_id, approver, note, refused.error)
        raise refused.error from None


async def reject(db: Database, actions: Mapping[str, ApprovalAction], *, approval_id: str,
                 approver: str, approver_roles: frozenset[str], reason: str) -> ApprovalView:
    """Refuses the request (a different operator with an approver role); nothing runs."""
    why = _check_text("reason", reason, required=True)
    async with db.transaction() as s:
        row, _ = await _decidable(s, actions, approval_id, approver, approver_roles)
        await _claim(s, row.id, ApprovalStatus.REJECTED, approver, why)
        await audit.record(s, actor=approver, action="approval.reject",
                           target_type=row.target_type, target_id=row.target_id,
                           detail={"approval_id": row.id, "kind": row.kind,
                                   "requested_by": row.requested_by, "reason": why})
        await s.flush()
        await s.refresh(row)
        return _view(row)


async def _decidable(s: AsyncSession, actions: Mapping[str, ApprovalAction], approval_id: str,
                     approver: str, roles: frozenset[str]
                     ) -> tuple[ApprovalRequest, ApprovalAction]:
    row = await s.get(ApprovalRequest, approval_id)
    if row is None:
        raise FulemaError(ErrorCode.APPROVAL_NOT_FOUND)
    if row.status != ApprovalStatus.PENDING.value:
        raise FulemaError(ErrorCode.APPROVAL_NOT_PENDING, f"the request is {row.status}")
    if row.requested_by == approver:
        raise FulemaError(ErrorCode.APPROVAL_OWN_REQUEST)
    action = actions.get(row.kind)
    if action is None:  # a kind no running code declares: leave it for code that does
        raise FulemaError(ErrorCode.APPROVAL_NOT_FOUND, f"no action {row.kind} is declared")
    if not roles.intersection(action.approver_roles):
        raise FulemaError(ErrorCode.OPERATOR_FORBIDDEN,
                          f"approving {row.kind} needs the role "
                          f"{' or '.join(action.approver_roles)}")
    if action.conflict is not None and (why := action.conflict(dict(row.params), approver)):
        raise FulemaError(ErrorCode.OPERATOR_FORBIDDEN, why)
    return row, action


async def _claim(s: AsyncSession, approval_id: str, status: ApprovalStatus, by: str,
                 note: str | None) -> None:
    """PENDING -> `status`, only if still PENDING: of two concurrent deciders, the second waits
    for the first's row lock and then matches no row."""
    result: CursorResult[Any] = await s.execute(  # type: ignore[assignment]
        update(ApprovalRequest)
        .where(ApprovalRequest.id == approval_id,
               ApprovalRequest.status == ApprovalStatus.PENDING.value)
        .values(status=status.value, decided_by=by, decided_at=clock.now(), decision_note=note)
        .execution_options(synchronize_session=False))
    if result.rowcount != 1:
        raise FulemaError(ErrorCode.APPROVAL_NOT_PENDING, "decided meanwhile by someone else")


async def _fail(db: Database, approval_id: str, approver: str, note: str | None,
                error: FulemaError) -> None:
    async with db.transaction() as s:
        result: CursorResult[Any] = await s.execute(  # type: ignore[assignment]
            update(ApprovalRequest)
            .where(ApprovalRequest.id == approval_id,
                   ApprovalRequest.status == ApprovalStatus.PENDING.value)
            .values(status=ApprovalStatus.FAILED.value, decided_by=approver,
                    decided_at=clock.now(), decision_note=note, error_code=error.code.value))
        if result.rowcount == 1:
            row = await s.get(ApprovalRequest, approval_id)
            assert row is not None
            await audit.record(s, actor=approver, action="approval.failed",
                               target_type=row.target_type, target_id=row.target_id,
                               detail={"approval_id": approval_id, "kind": row.kind,
                                       "error": error.code.value})


async def get(db: Database, *, approval_id: str) -> ApprovalView:
    async with db.transaction() as s:
        row = await s.get(ApprovalRequest, approval_id)
        if row is None:
            raise FulemaError(ErrorCode.APPROVAL_NOT_FOUND)
        return _view(row)


async def list_requests(db: Database, *, status: ApprovalStatus | None, limit: int,
                        starting_after: str | None) -> list[ApprovalView]:
    """Oldest first (the queue an approver works through); cursor: the last id seen."""
    stmt = select(ApprovalRequest).order_by(ApprovalRequest.id).limit(limit)
    if status is not None:
        stmt = stmt.where(ApprovalRequest.status == status.value)
    if starting_after:
        stmt = stmt.where(ApprovalRequest.id > starting_after)
    async with db.transaction() as s:
        return [_view(r) for r in (await s.scalars(stmt))]
