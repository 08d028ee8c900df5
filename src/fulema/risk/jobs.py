"""The risk context's consumers and scheduled jobs, wired by the composition root
(`app.declared_consumers`) and the scheduler (`ops.worker`)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError

from fulema.core.clock import clock
from fulema.core.db import Database
from fulema.core.events import Consumer
from fulema.risk import monitor
from fulema.risk.analysis import ScoringRun, run_daily_scoring
from fulema.risk.models import RiskState

SCORED_KEY = "scored_day"
SCORING_HOUR = 2  # Beijing time: after the day's traffic, before the morning's reviews


def consumers() -> list[Consumer]:
    return monitor.consumers()


async def score_daily_if_due(db: Database) -> ScoringRun | None:
    """Runs the daily scoring once per Beijing day after SCORING_HOUR, in one process of many:
    the process whose conditional UPDATE moves `scored_day` forward runs it."""
    local = clock.now() + timedelta(hours=8)
    if local.hour < SCORING_HOUR:
        return None
    today = int(local.strftime("%Y%m%d"))
    async with db.transaction() as s:
        moved = await s.execute(update(RiskState).where(
            RiskState.key == SCORED_KEY, RiskState.version < today).values(version=today))
        claimed = moved.rowcount == 1  # type: ignore[attr-defined]
        if not claimed:
            existing = await s.get(RiskState, SCORED_KEY)
            if existing is not None:
                return None
    if not claimed:
        try:
            async with db.transaction() as s:
                s.add(RiskState(key=SCORED_KEY, version=today))
        except IntegrityError:
            return None
    return await run_daily_scoring(db)
