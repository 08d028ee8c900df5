"""The operator's business-day calendar and merchants' settlement cycles."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import select

from fulema.core.clock import clock
from fulema.core.db import Database
from fulema.core.errors import ErrorCode, FulemaError
from fulema.settlement.domain import Calendar, Cycle, DayKind
from fulema.settlement.models import CalendarDay, SettlementProfile


@dataclass(frozen=True)
class CalendarDayView:
    day: date
    kind: str
    note: str
    updated_by: str


async def load_calendar(db: Database) -> Calendar:
    async with db.transaction() as s:
        rows = (await s.scalars(select(CalendarDay))).all()
    return Calendar({r.day: DayKind(r.kind) for r in rows})


async def list_calendar(db: Database, *, year: int) -> list[CalendarDayView]:
    if not 2000 <= year <= 2100:
        raise FulemaError(ErrorCode.VALIDATION_ERROR, "year: 2000..2100")
    async with db.transaction() as s:
        rows = (await s.scalars(select(CalendarDay).where(
            CalendarDay.day >= date(year, 1, 1), CalendarDay.day <= date(year, 12, 31))
            .order_by(CalendarDay.day))).all()
    return [CalendarDayView(day=r.day, kind=r.kind, note=r.note, updated_by=r.updated_by)
            for r in rows]


async def set_calendar_day(db: Database, *, day: date, kind: str, note: str,
                           operator: str) -> CalendarDayView:
    """Mark a weekday a holiday or a weekend day a make-up working day (and back: `kind`
    NORMAL removes the exception). Marking what the day already is, is refused as a mistake."""
    if kind not in {"HOLIDAY", "WORKDAY", "NORMAL"}:
        raise FulemaError(ErrorCode.VALIDATION_ERROR, "kind: HOLIDAY, WORKDAY or NORMAL")
    weekend = day.weekday() >= 5
    if (kind == "HOLIDAY" and weekend) or (kind == "WORKDAY" and not weekend):
        raise FulemaError(ErrorCode.VALIDATION_ERROR,
                          f"{day} is a {'weekend' if weekend else 'week'} day already "
                          f"{'off' if weekend else 'worked'}")
    async with db.transaction() as s:
        row = await s.get(CalendarDay, day, with_for_update=True)
        if kind == "NORMAL":
            if row is not None:
                await s.delete(row)
            return CalendarDayView(day=day, kind="NORMAL", note=note, updated_by=operator)
        if row is None:
            row = CalendarDay(day=day, kind=kind, note=note, updated_by=operator,
                              updated_at=clock.now())
            s.add(row)
        else:
            row.kind, row.note, row.updated_by, row.updated_at = kind, note, operator, clock.now()
        return CalendarDayView(day=day, kind=kind, note=note, updated_by=operator)


async def merchant_cycle(db: Database, *, merchant_id: str, default: str) -> Cycle:
    async with db.transaction() as s:
        row = await s.get(SettlementProfile, merchant_id)
    return Cycle.parse(row.cycle if row is not None else default)


async def cycles_of(db: Database, merchant_ids: list[str]) -> dict[str, str]:
    if not merchant_ids:
        return {}
    async with db.transaction() as s:
        rows = (await s.scalars(select(SettlementProfile).where(
            SettlementProfile.merchant_id.in_(merchant_ids)))).all()
    return {r.merchant_id: r.cycle for r in rows}


async def set_merchant_cycle(db: Database, *, merchant_id: str, cycle: str,
                             operator: str) -> str:
    Cycle.parse(cycle)
    async with db.transaction() as s:
        row = await s.get(SettlementProfile, merchant_id, with_for_update=True)
        if row is None:
            s.add(SettlementProfile(merchant_id=merchant_id, cycle=cycle, updated_by=operator,
                                    updated_at=clock.now()))
        else:
            row.cycle, row.updated_by, row.updated_at = cycle, operator, clock.now()
    return cycle
