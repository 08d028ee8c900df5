"""The daily reconciliation: yesterday's statement of every enabled channel, once it is out.

Channels publish a day's statement the next morning (WeChat from 10:00, Alipay from 09:00
Beijing time), so from `READY_HOUR` on each round reconciles every channel that has no run for
yesterday yet. A channel that cannot be reached is tried again next round. Several workers may
run it at once: the statement's hash is unique per channel and day, so the slower one gets
STATEMENT_ALREADY_IMPORTED and nothing is recorded twice.
"""

from __future__ import annotations

from datetime import timedelta

import structlog
from sqlalchemy import select

from fulema.core.clock import clock
from fulema.core.errors import ErrorCode, FulemaError
from fulema.payments.service import Deps
from fulema.reconciliation.models import ReconRun
from fulema.reconciliation.runs import CST, reconcile

log = structlog.get_logger(__name__)
READY_HOUR = 10


async def reconcile_due(deps: Deps) -> int:
    """Reconcile yesterday (Beijing) for every enabled channel without a run; runs made."""
    now = clock.now().astimezone(CST)
    if now.hour < READY_HOUR:
        return 0
    day = (now - timedelta(days=1)).date()
    async with deps.db.transaction() as session:
        done = set((await session.scalars(select(ReconRun.channel).where(
            ReconRun.day == day.isoformat()))).all())
    made = 0
    for name in deps.channels.channels:
        channel = str(getattr(name, "value", name))
        if channel in done:
            continue
        try:
            run = await reconcile(deps, channel=channel, day=day, actor="scheduler")
        except FulemaError as exc:
            if exc.code != ErrorCode.STATEMENT_ALREADY_IMPORTED:
                log.error("reconciliation.failed", channel=channel, day=day.isoformat(),
                          code=exc.code.value, error=exc.message)
            continue
        log.info("reconciliation.done", channel=channel, day=day.isoformat(), run_id=run.run_id,
                 discrepancies=run.discrepancies)
        made += 1
    return made
