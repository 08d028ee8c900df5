"""Cases: what an operator investigates. Opened by a REVIEW decision, by the daily scoring or
by hand; open -> investigating -> closed as fraud / no fraud, each step audited. Closing as
fraud can freeze the merchant, hold its settlement and blacklist it in one request.

A merchant has at most one case in progress in normal operation: a new REVIEW or score joins
the case already open (two REVIEWs racing may each open one; the operator closes the twin).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from fulema.core import audit
from fulema.core.clock import clock
from fulema.core.db import Database
from fulema.core.errors import ErrorCode, FulemaError
from fulema.core.ids import new_id
from fulema.merchants import service as merchants
from fulema.risk.domain import CaseStatus, case_move_allowed
from fulema.risk.models import RiskCase
from fulema.risk.rules import add_to_list_in, install_defaults

IN_PROGRESS = (CaseStatus.OPEN.label, CaseStatus.INVESTIGATING.label)
MERCHANT_BLACKLIST = "merchant-blacklist"


@dataclass(frozen=True)
class CaseView:
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


def case_view(c: RiskCase) -> CaseView:
    return CaseView(id=c.id, merchant_id=c.merchant_id, status=c.status, source=c.source,
                    summary=c.summary, score=c.score, assignee=c.assignee,
                    resolution=c.resolution, opened_at=c.opened_at, updated_at=c.updated_at)


async def open_case_in(s: AsyncSession, *, merchant_id: str, source: str, summary: str,
                       score: int | None = None) -> tuple[str, bool]:
    """The merchant's case in progress, or a new one: (case id, whether it was opened now)."""
    found = (await s.scalars(select(RiskCase).where(
        RiskCase.merchant_id == merchant_id, RiskCase.status.in_(IN_PROGRESS)).limit(1))).first()
    if found is not None:
        if score is not None and (found.score or 0) < score:
            found.score = score
        return found.id, False
    now = clock.now()
    case = RiskCase(id=new_id("rcs"), merchant_id=merchant_id, status=CaseStatus.OPEN.label,
                    source=source, summary=summary[:256], score=score, assignee=None,
                    resolution=None, opened_at=now, updated_at=now)
    s.add(case)
    return case.id, True


async def open_case(db: Database, *, merchant_id: str, summary: str, operator: str) -> CaseView:
    await merchants.check_merchant(db, merchant_id=merchant_id)
    async with db.transaction() as s:
        case_id, opened = await open_case_in(s, merchant_id=merchant_id, source="manual",
                                             summary=summary)
        if opened:
            await audit.record(s, actor=operator, action="risk.case.open", target_type="risk_case",
                               target_id=case_id, detail={"merchant_id": merchant_id})
        await s.flush()
        case = await s.get(RiskCase, case_id)
        assert case is not None
        return case_view(case)


async def get_case(db: Database, *, case_id: str) -> CaseView:
    async with db.transaction() as s:
        case = await s.get(RiskCase, case_id)
        if case is None:
            raise FulemaError(ErrorCode.RISK_CASE_NOT_FOUND)
        return case_view(case)


async def list_cases(db: Database, *, status: str | None = None, merchant_id: str | None = None,
                     limit: int = 50) -> list[CaseView]:
    if not 1 <= limit <= 200:
        raise FulemaError(ErrorCode.VALIDATION_ERROR, "limit: 1..200")
    q = select(RiskCase).order_by(RiskCase.opened_at.desc(), RiskCase.id.desc()).limit(limit)
    if status:
        q = q.where(RiskCase.status == status)
    if merchant_id:
        q = q.where(RiskCase.merchant_id == merchant_id)
    async with db.transaction() as s:
        return [case_view(c) for c in await s.scalars(q)]


async def _move(s: AsyncSession, case_id: str, target: CaseStatus) -> RiskCase:
    case = await s.get(RiskCase, case_id, with_for_update=True)
    if case is None:
        raise FulemaError(ErrorCode.RISK_CASE_NOT_FOUND)
    if not case_move_allowed(CaseStatus.of(case.status), target):
        raise FulemaError(ErrorCode.ILLEGAL_STATE_TRANSITION,
                          f"a case {case.status} cannot become {target.label}")
    case.status, case.updated_at = target.label, clock.now()
    return case


async def investigate(db: Database, *, case_id: str, operator: str) -> CaseView:
    async with db.transaction() as s:
        case = await _move(s, case_id, CaseStatus.INVESTIGATING)
        case.assignee = operator
        await audit.record(s, actor=operator, action="risk.case.investigate",
                           target_type="risk_case", target_id=case_id)
        return case_view(case)


async def close(db: Database, *, case_id: str, fraud: bool, resolution: str, operator: str,
                freeze: bool = False, hold_settlement: bool = False,
                blacklist: bool = False) -> CaseView:
    """Closes the case. As fraud it may also freeze the merchant and hold its settlement
    (through the merchants service, first: if that fails the case stays as it was) and put it
    on the merchant blacklist (with the close, in one transaction)."""
    text = resolution.strip()
    if not text:
        raise FulemaError(ErrorCode.VALIDATION_ERROR, "resolution is required")
    if not fraud and (freeze or hold_settlement or blacklist):
        raise FulemaError(ErrorCode.VALIDATION_ERROR,
                          "freeze, hold_settlement and blacklist go with a fraud verdict")
    current = await get_case(db, case_id=case_id)
    target = CaseStatus.CLOSED_FRAUD if fraud else CaseStatus.CLOSED_NO_FRAUD
    if not case_move_allowed(CaseStatus.of(current.status), target):
        raise FulemaError(ErrorCode.ILLEGAL_STATE_TRANSITION,
                          f"a case {current.status} cannot become {target.label}")
    reason = f"risk case {case_id}: {text}"[:256]
    if blacklist:
        await install_defaults(db)  # the first list change must not stand in for them
    if freeze:
        try:
            await merchants.freeze(db, merchant_id=current.merchant_id, reason=reason,
                                   operator=operator)
        except FulemaError as exc:
            if exc.code != ErrorCode.ILLEGAL_STATE_TRANSITION:
                raise  # already frozen (or closed) is fine; anything else stops here
    if hold_settlement:
        await merchants.hold_settlement(db, merchant_id=current.merchant_id, reason=reason,
                                        operator=operator)
    async with db.transaction() as s:
        case = await _move(s, case_id, target)
        case.resolution = text[:256]
        if blacklist:
            await add_to_list_in(s, list_name=MERCHANT_BLACKLIST, value=case.merchant_id,
                                 reason=reason, operator=operator)
        await audit.record(s, actor=operator, action="risk.case.close", target_type="risk_case",
                           target_id=case_id,
                           detail={"verdict": target.label, "freeze": freeze,
                                   "hold_settlement": hold_settlement, "blacklist": blacklist})
        return case_view(case)
