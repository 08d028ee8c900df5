"""Operator endpoints for reconciliation (role finance): import or download a statement,
read runs and their reports, work the discrepancies. Every change is audited by the service."""

from __future__ import annotations

from datetime import date, timedelta, timezone
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request

from fulema.core.clock import clock
from fulema.core.db import Database
from fulema.core.errors import ErrorCode as E
from fulema.core.errors import FulemaError
from fulema.core.vocab import ChannelName
from fulema.core.web import OperatorRoute, error_responses, get_db, require_role
from fulema.gateway.protection import shed_when_degraded
from fulema.payments.service import Deps
from fulema.reconciliation import service
from fulema.reconciliation.domain import DiscrepancyStatus, Result
from fulema.reconciliation.schemas import (
    DiscrepancyOut,
    DiscrepancyPage,
    DownloadBody,
    InvestigateBody,
    ReportOut,
    ResolveBody,
    RunOut,
)

BEIJING = timezone(timedelta(hours=8))

router = APIRouter(prefix="/ops/v1/reconciliation", tags=["operations: reconciliation"],
                   route_class=OperatorRoute)

Finance = Annotated[str, Depends(require_role("finance"))]
Db = Annotated[Database, Depends(get_db)]
_IMPORT = (E.STATEMENT_INVALID, E.STATEMENT_ENCODING, E.STATEMENT_ALREADY_IMPORTED,
           E.VALIDATION_ERROR)


def _deps(request: Request) -> Deps:
    deps: Deps = request.app.state.payments
    return deps


Payments = Annotated[Deps, Depends(_deps)]


@router.post("/runs", status_code=201, summary="Reconcile a statement file given as the body",
             description="The body is the file exactly as the channel serves it (WeChat's CSV "
                         "or its gzip, Alipay's zip, UnionPay's ZM file or archive, the e-CNY "
                         "and bank CSVs), within the platform's body limit (BODY_TOO_LARGE); "
                         "larger files go through /runs/download or `fulema reconcile --file`.",
             responses=error_responses(*_IMPORT, E.BODY_TOO_LARGE))
async def import_statement(request: Request, deps: Payments, operator: Finance,
                           channel: ChannelName, day: Annotated[date, Query(alias="date")]
                           ) -> RunOut:
    data = await request.body()
    return await service.reconcile(deps, channel=channel.value, day=_statement_day(day),
                                   data=data, actor=operator)


@router.post("/runs/download", status_code=201,
             summary="Download a day's statement through the channel's adapter and reconcile it",
             responses=error_responses(*_IMPORT, E.CHANNEL_UNAVAILABLE, E.CHANNEL_NOT_ENABLED))
async def download_statement(body: DownloadBody, deps: Payments, operator: Finance) -> RunOut:
    return await service.reconcile(deps, channel=body.channel.value,
                                   day=_statement_day(body.date), actor=operator)


def _statement_day(day: date) -> date:
    """A day a channel can have a statement for: not before 2000, not after today (Beijing).
    Checked here, so a nonsense date is the caller's error, not the channel's outage."""
    today = clock.now().astimezone(BEIJING).date()
    if not date(2000, 1, 1) <= day <= today:
        raise FulemaError(E.VALIDATION_ERROR, f"date: a statement day from 2000-01-01 to {today}")
    return day


@router.get("/runs", summary="Runs, newest first")
async def list_runs(db: Db, _: Finance, channel: ChannelName | None = None,
                    day: Annotated[date | None, Query(alias="date")] = None,
                    limit: Annotated[int, Query(ge=1, le=100)] = 50) -> list[RunOut]:
    return await service.list_runs(db, channel=channel.value if channel else None,
                                   day=day.isoformat() if day else None, limit=limit)


@router.get("/runs/{run_id}", summary="One run with its summary per result",
            responses=error_responses(E.RECON_RUN_NOT_FOUND))
async def get_run(run_id: str, db: Db, _: Finance) -> RunOut:
    return await service.get_run(db, run_id=run_id)


@router.get("/runs/{run_id}/report", summary="A run's report by channel, merchant or scenario",
            dependencies=[Depends(shed_when_degraded)],
            responses=error_responses(E.RECON_RUN_NOT_FOUND, E.RATE_LIMITED))
async def run_report(run_id: str, db: Db, _: Finance,
                     by: Literal["channel", "merchant", "scenario"] = "channel") -> ReportOut:
    return await service.report(db, run_id=run_id, by=by)


@router.get("/discrepancies", summary="Discrepancies (the by-transaction report), by id "
            "(cursor: starting_after)")
async def list_discrepancies(db: Db, _: Finance, channel: ChannelName | None = None,
                             day: Annotated[date | None, Query(alias="date")] = None,
                             status: DiscrepancyStatus | None = None, kind: Result | None = None,
                             run_id: str | None = None,
                             limit: Annotated[int, Query(ge=1, le=200)] = 50,
                             starting_after: Annotated[str | None, Query(max_length=40)] = None
                             ) -> DiscrepancyPage:
    return await service.list_discrepancies(
        db, channel=channel.value if channel else None, day=day.isoformat() if day else None,
        status=status, kind=kind, run_id=run_id, limit=limit, starting_after=starting_after)


@router.get("/discrepancies/{discrepancy_id}", summary="One discrepancy",
            responses=error_responses(E.DISCREPANCY_NOT_FOUND))
async def get_discrepancy(discrepancy_id: str, db: Db, _: Finance) -> DiscrepancyOut:
    return await service.get(db, discrepancy_id=discrepancy_id)


@router.post("/discrepancies/{discrepancy_id}/investigate", summary="OPEN -> INVESTIGATING",
             responses=error_responses(E.DISCREPANCY_NOT_FOUND, E.DISCREPANCY_ACTION_INVALID))
async def investigate(discrepancy_id: str, body: InvestigateBody, db: Db,
                      operator: Finance) -> DiscrepancyOut:
    return await service.investigate(db, discrepancy_id=discrepancy_id, actor=operator,
                                     note=body.note)


@router.post("/discrepancies/{discrepancy_id}/resolve",
             summary="Resolve with an action: SYNC_ORDER, REFUND, ADJUST or ACCEPT",
             responses=error_responses(E.DISCREPANCY_NOT_FOUND, E.DISCREPANCY_ACTION_INVALID,
                                       E.ORDER_NOT_FOUND, E.ORDER_NOT_PAID,
                                       E.REFUND_EXCEEDS_REFUNDABLE, E.CHANNEL_UNAVAILABLE))
async def resolve(discrepancy_id: str, body: ResolveBody, deps: Payments,
                  operator: Finance) -> DiscrepancyOut:
    return await service.resolve(deps, discrepancy_id=discrepancy_id, actor=operator,
                                 action=body.action, note=body.note, amount=body.amount)
