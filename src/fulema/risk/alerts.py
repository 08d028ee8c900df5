"""Alerts: stored, one per subject and day (`dedupe_key`), published as `risk.alert` events in
the same transaction (the message center delivers them to operators), listed and acknowledged
through the operator API."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from fulema.core import audit
from fulema.core.clock import clock
from fulema.core.db import Database
from fulema.core.errors import ErrorCode, FulemaError
from fulema.core.events import publish
from fulema.core.ids import new_id
from fulema.risk.models import RiskAlert


@dataclass(frozen=True)
class AlertView:
    id: str
    kind: str
    merchant_id: str | None
    channel: str | None
    severity: str
    summary: str
    status: str
    handled_by: str | None
    created_at: datetime


def alert_view(a: RiskAlert) -> AlertView:
    return AlertView(id=a.id, kind=a.kind, merchant_id=a.merchant_id, channel=a.channel,
                     severity=a.severity, summary=a.summary, status=a.status,
                     handled_by=a.handled_by, created_at=a.created_at)


async def raise_alert_in(s: AsyncSession, *, kind: str, summary: str, dedupe_key: str,
                         merchant_id: str | None = None, channel: str | None = None,
                         severity: str = "warning") -> str | None:
    """In the caller's transaction; None when this subject already alerted (same key)."""
    if await s.scalar(select(RiskAlert.id).where(RiskAlert.dedupe_key == dedupe_key)):
        return None
    alert = RiskAlert(id=new_id("ral"), kind=kind, merchant_id=merchant_id, channel=channel,
                      severity=severity, summary=summary[:256], status="open",
                      dedupe_key=dedupe_key[:160], handled_by=None, created_at=clock.now())
    s.add(alert)
    publish(s, "risk.alert", {"alert_id": alert.id, "kind": kind, "merchant_id": merchant_id,
                              "severity": severity, "summary": alert.summary})
    return alert.id


async def raise_alert(db: Database, *, kind: str, summary: str, dedupe_key: str,
                      merchant_id: str | None = None, channel: str | None = None,
                      severity: str = "warning") -> str | None:
    try:
        async with db.transaction() as s:
            return await raise_alert_in(s, kind=kind, summary=summary, dedupe_key=dedupe_key,
                                        merchant_id=merchant_id, channel=channel,
                                        severity=severity)
    except IntegrityError:
        return None  # raised by another process at the same moment


async def list_alerts(db: Database, *, status: str | None = None, merchant_id: str | None = None,
                      limit: int = 50) -> list[AlertView]:
    if not 1 <= limit <= 200:
        raise FulemaError(ErrorCode.VALIDATION_ERROR, "limit: 1..200")
    q = select(RiskAlert).order_by(RiskAlert.created_at.desc(), RiskAlert.id.desc()).limit(limit)
    if status:
        q = q.where(RiskAlert.status == status)
    if merchant_id:
        q = q.where(RiskAlert.merchant_id == merchant_id)
    async with db.transaction() as s:
        return [alert_view(a) for a in await s.scalars(q)]


async def acknowledge(db: Database, *, alert_id: str, operator: str) -> AlertView:
    async with db.transaction() as s:
        alert = await s.get(RiskAlert, alert_id, with_for_update=True)
        if alert is None:
            raise FulemaError(ErrorCode.RISK_ALERT_NOT_FOUND)
        if alert.status != "acknowledged":
            alert.status, alert.handled_by = "acknowledged", operator
            await audit.record(s, actor=operator, action="risk.alert.acknowledge",
                               target_type="risk_alert", target_id=alert.id)
        return alert_view(alert)
