"""Settlement over HTTP: the operators' calendar, cycles, runs, batches, payouts and statements
(role finance, each change audited), and the merchants' signed bill download
`GET /api/v1/bills?date=YYYY-MM-DD` (the day's transactions as CSV, like a channel's bill)."""

from __future__ import annotations

import re
from dataclasses import asdict
from datetime import date, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from fulema.core import audit
from fulema.core.clock import clock
from fulema.core.config import Settings
from fulema.core.db import Database
from fulema.core.errors import ErrorCode, FulemaError
from fulema.core.web import OperatorRoute, error_responses, get_db, get_settings, require_role
from fulema.gateway.protection import shed_when_degraded
from fulema.gateway.signed import SIGNED, Signed, signed_request
from fulema.ledger import service as ledger
from fulema.merchants import service as merchants
from fulema.settlement import service

router = APIRouter(prefix="/ops/v1/settlement", tags=["settlement"], route_class=OperatorRoute)
bills_router = APIRouter(prefix="/api/v1", tags=["merchant API"])
Finance = Annotated[str, Depends(require_role("finance"))]
Db = Annotated[Database, Depends(get_db)]
Conf = Annotated[Settings, Depends(get_settings)]
E = ErrorCode
AUTH = (E.UNAUTHORIZED,)
CSV = "text/csv; charset=utf-8"


class CalendarDayBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["HOLIDAY", "WORKDAY", "NORMAL"] = Field(
        description="HOLIDAY: a weekday off; WORKDAY: a weekend day worked (调休); NORMAL: "
                    "remove the exception")
    note: str = Field(default="", max_length=64)


class CalendarDayOut(BaseModel):
    day: date
    kind: str
    note: str
    updated_by: str


class CalendarOut(BaseModel):
    days: list[CalendarDayOut]


class CycleBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cycle: Literal["T+0", "T+1", "D+0", "D+1"]


class CycleOut(BaseModel):
    merchant_id: str
    cycle: str


class RunBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    date: date


class RunOut(BaseModel):
    settle_date: date
    already_done: bool = Field(description="true: the date was settled before; nothing changed")
    batches: int
    settled: int
    held: int
    carried: int
    net_settled: int = Field(description="fen")


class BatchOut(BaseModel):
    batch_id: str
    merchant_id: str
    settle_date: date
    cycle: str
    status: str = Field(description="SETTLED | HELD | CARRIED")
    gross: int
    refunds: int
    fees: int
    discounts: int
    other: int
    net: int
    hold_reason: str | None


class BatchesOut(BaseModel):
    batches: list[BatchOut]


class PayoutOut(BaseModel):
    payout_id: str
    batch_id: str
    merchant_id: str
    amount: int
    status: str = Field(description="PENDING | UNKNOWN | SUCCEEDED | RETURNED")
    attempt: int
    account_masked: str | None
    bank_ref: str | None
    last_error: str | None
    updated_at: datetime


class PayoutsOut(BaseModel):
    payouts: list[PayoutOut]


@router.get("/calendar", summary="The calendar's exceptions in a year", response_model=CalendarOut,
            responses=error_responses(*AUTH, E.VALIDATION_ERROR))
async def get_calendar(db: Db, _: Finance, year: Annotated[int, Query(ge=2000, le=2100)]
                       ) -> CalendarOut:
    days = await service.list_calendar(db, year=year)
    return CalendarOut(days=[CalendarDayOut(**asdict(d)) for d in days])


@router.put("/calendar/{day}", summary="Mark a holiday or a make-up working day",
            response_model=CalendarDayOut, responses=error_responses(*AUTH, E.VALIDATION_ERROR))
async def put_calendar_day(day: date, body: CalendarDayBody, db: Db,
                           operator: Finance) -> CalendarDayOut:
    view = await service.set_calendar_day(db, day=day, kind=body.kind, note=body.note,
                                          operator=operator)
    async with db.transaction() as s:
        await audit.record(s, actor=operator, action="settlement.calendar_set",
                           target_type="calendar_day", target_id=day.isoformat(),
                           detail={"kind": body.kind, "note": body.note})
    return CalendarDayOut(**asdict(view))


@router.put("/merchants/{merchant_id}/cycle", summary="Set a merchant's settlement cycle",
            response_model=CycleOut,
            responses=error_responses(*AUTH, E.VALIDATION_ERROR, E.MERCHANT_NOT_FOUND))
async def put_cycle(merchant_id: str, body: CycleBody, db: Db, operator: Finance) -> CycleOut:
    await merchants.check_merchant(db, merchant_id=merchant_id)
    cycle = await service.set_merchant_cycle(db, merchant_id=merchant_id, cycle=body.cycle,
                                             operator=operator)
    async with db.transaction() as s:
        await audit.record(s, actor=operator, action="settlement.cycle_set",
                           target_type="merchant", target_id=merchant_id,
                           detail={"cycle": cycle})
    return CycleOut(merchant_id=merchant_id, cycle=cycle)


@router.post("/runs", summary="Settle a date (a date already settled is a no-op)",
             response_model=RunOut, responses=error_responses(*AUTH, E.VALIDATION_ERROR))
async def post_run(body: RunBody, db: Db, settings: Conf, operator: Finance) -> RunOut:
    summary = await service.run_settlement(db, settings, settle_date=body.date)
    async with db.transaction() as s:
        await audit.record(s, actor=operator, action="settlement.run",
                           target_type="settlement_date", target_id=body.date.isoformat(),
                           detail={"batches": summary.batches,
                                   "already_done": summary.already_done})
    return RunOut(**asdict(summary))


@router.get("/batches", summary="Settlement batches of a date or a merchant",
            response_model=BatchesOut, responses=error_responses(*AUTH))
async def get_batches(db: Db, _: Finance, settle_date: Annotated[date | None, Query(alias="date")]
                      = None, merchant_id: str | None = None) -> BatchesOut:
    rows = await service.list_batches(db, settle_date=settle_date, merchant_id=merchant_id)
    return BatchesOut(batches=[BatchOut(**asdict(b)) for b in rows])


@router.get("/batches/{batch_id}/statement.csv", summary="What a batch settled, as CSV",
            response_class=Response, dependencies=[Depends(shed_when_degraded)],
            responses=error_responses(*AUTH, E.SETTLEMENT_BATCH_NOT_FOUND, E.RATE_LIMITED))
async def get_batch_statement(batch_id: str, db: Db, _: Finance) -> Response:
    return Response(await service.batch_statement(db, batch_id=batch_id), media_type=CSV)


@router.get("/merchants/{merchant_id}/statement.csv", summary="A merchant's trade day, as CSV",
            response_class=Response, dependencies=[Depends(shed_when_degraded)],
            responses=error_responses(*AUTH, E.RATE_LIMITED))
async def get_day_statement(merchant_id: str, db: Db, _: Finance,
                            day: Annotated[date, Query(alias="date")]) -> Response:
    return Response(await service.day_statement(db, merchant_id=merchant_id, day=day),
                    media_type=CSV)


@router.get("/payouts", summary="Payouts, newest first", response_model=PayoutsOut,
            responses=error_responses(*AUTH, E.VALIDATION_ERROR))
async def get_payouts(db: Db, _: Finance, merchant_id: str | None = None,
                      status: str | None = None,
                      limit: Annotated[int, Query(ge=1, le=200)] = 50) -> PayoutsOut:
    views = await service.list_payouts(db, merchant_id=merchant_id, status=status, limit=limit)
    return PayoutsOut(payouts=[PayoutOut(**asdict(v)) for v in views])


_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


@bills_router.get("/bills", summary="The day's transactions as CSV (对账单下载)",
                  response_class=Response,  # signed first: its app's degrade counts too
                  dependencies=[Depends(signed_request), Depends(shed_when_degraded)],
                  responses={200: {"description": "the trade day's transactions",
                                   "content": {"text/csv": {"schema": {"type": "string"}}}},
                             **error_responses(*SIGNED, E.BILL_DATE_INVALID)})
async def get_bill(request: Request, signed: Signed,
                   date_: Annotated[str, Query(alias="date")] = "") -> Response:
    """Signed like every merchant call (the query string is part of the signed path). The
    trade date's payments and refunds with their fees and discounts, read from the ledger."""
    db: Database = request.app.state.db
    settings: Settings = request.app.state.settings
    cred = signed.cred
    try:
        if not _DATE.match(date_):
            raise ValueError(date_)
        day = date.fromisoformat(date_)
    except ValueError as exc:
        raise FulemaError(E.BILL_DATE_INVALID, "date: YYYY-MM-DD") from exc
    if day > ledger.business_date(clock.now(), settings.settlement_cutoff):
        raise FulemaError(E.BILL_DATE_INVALID, "date: not a future trade date")
    body = await service.day_statement(db, merchant_id=cred.merchant_id, day=day)
    return Response(body, media_type=CSV, headers={
        "Content-Disposition": f'attachment; filename="bill-{day.isoformat()}.csv"'})
