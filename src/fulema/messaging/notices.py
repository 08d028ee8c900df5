"""In-portal notices for operators: risk alerts, delivered once per event.

The risk context publishes `risk.alert` {alert_id, kind, merchant_id, severity, summary}; each
becomes one unread notice, listed under /ops/v1/messages/notices until an operator marks it read.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from fulema.core.clock import clock
from fulema.core.db import Database
from fulema.core.errors import ErrorCode, FulemaError
from fulema.core.events import Event
from fulema.core.ids import new_id
from fulema.messaging import templates
from fulema.messaging.models import Notice

CONSUMER = "messaging.notices"


@dataclass(frozen=True)
class NoticeView:
    id: str
    kind: str
    severity: str
    merchant_id: str | None
    summary: str
    created_at: datetime
    read_at: datetime | None
    read_by: str | None


def _view(n: Notice) -> NoticeView:
    return NoticeView(id=n.id, kind=n.kind, severity=n.severity, merchant_id=n.merchant_id,
                      summary=n.summary, created_at=n.created_at, read_at=n.read_at,
                      read_by=n.read_by)


async def notice_from_alert(db: Database, event: Event) -> None:
    """risk.alert -> one notice; a second delivery of the event hits the unique event id."""
    p = event.payload
    fields = {"kind": str(p.get("kind", "alert")), "severity": str(p.get("severity", "info")),
              "summary": str(p.get("summary", ""))}
    try:
        async with db.transaction() as s:
            s.add(Notice(id=new_id("ntc"), event_id=event.id, kind=fields["kind"][:32],
                         severity=fields["severity"][:16],
                         merchant_id=p.get("merchant_id") or None,
                         summary=templates.render("risk.alert", "notice", fields)[:512],
                         created_at=clock.now(), read_at=None, read_by=None))
    except IntegrityError:
        return  # already delivered


async def list_notices(db: Database, *, unread_only: bool, limit: int) -> list[NoticeView]:
    async with db.transaction() as s:
        q = select(Notice).order_by(Notice.created_at.desc(), Notice.id.desc()).limit(limit)
        if unread_only:
            q = q.where(Notice.read_at.is_(None))
        return [_view(n) for n in await s.scalars(q)]


async def mark_read(db: Database, *, notice_id: str, operator: str) -> NoticeView:
    async with db.transaction() as s:
        await s.execute(update(Notice).where(Notice.id == notice_id, Notice.read_at.is_(None))
                        .values(read_at=clock.now(), read_by=operator))
        n = await s.get(Notice, notice_id)
        if n is None:
            raise FulemaError(ErrorCode.NOT_FOUND, f"no notice {notice_id}")
        return _view(n)
