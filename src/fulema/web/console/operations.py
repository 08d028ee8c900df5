"""Console pages over the platform's other contexts: channel breakers, campaigns, risk cases,
reconciliation discrepancies, settlement batches and the audit trail. Reads and actions go
through each context's service, as its /ops/v1 route does, so the roles and the audit records
are the same whichever way an operator works."""

from __future__ import annotations

from datetime import date
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from fulema.channels.registry import ChannelRegistry
from fulema.channels.routing import GuardedChannel
from fulema.core import audit
from fulema.marketing import service as marketing
from fulema.payments.service import Deps
from fulema.reconciliation import service as reconciliation
from fulema.reconciliation.domain import Action, DiscrepancyStatus
from fulema.risk import cases
from fulema.settlement import service as settlement
from fulema.web.console.common import (
    AUDIT,
    CAMPAIGNS,
    CHANNELS,
    FINANCE,
    RISK,
    ConsoleUser,
    Refused,
    act,
    db_of,
    done,
    guard,
    page,
    view,
)

router = APIRouter()
_TEXT_MAX = 256


@router.get("/console/channels")
async def channels(request: Request) -> Response:
    user = await guard(request, CHANNELS)
    if isinstance(user, Response):
        return user
    registry: ChannelRegistry = request.app.state.channels
    rows: list[dict[str, Any]] = []
    for name, channel in registry.channels.items():
        endpoints = channel.health() if isinstance(channel, GuardedChannel) else []
        for ep in endpoints:  # success rate over the breaker's window
            calls = int(ep.get("window_calls") or 0)
            ep["success_rate"] = (None if calls == 0
                                  else round(100 * (1 - float(ep.get("error_ratio") or 0)), 1))
        rows.append({"channel": name.value, "guarded": isinstance(channel, GuardedChannel),
                     "endpoints": endpoints})
    return page(request, user, "console/channels.html", channels=rows)


@router.get("/console/campaigns")
async def campaigns(request: Request) -> Response:
    user = await guard(request, CAMPAIGNS)
    if isinstance(user, Response):
        return user
    rows = await marketing.list_campaigns(db_of(request))
    return page(request, user, "console/campaigns.html", campaigns=rows)


# --- risk cases ----------------------------------------------------------------------------------


async def _risk(request: Request, user: ConsoleUser, *, error: str = "",
                status_code: int = 200) -> Response:
    text = request.query_params.get("status") or ""
    status: str | None = text or None
    if text and text not in ("open", "investigating", "closed_fraud", "closed_no_fraud"):
        status, error, status_code = None, f"未知状态 Unknown state: {text[:20]}", 400
    rows = await cases.list_cases(db_of(request), status=status, limit=100)
    return page(request, user, "console/risk.html", status_code=status_code, error=error,
                cases=rows, status=status or "")


@router.get("/console/risk")
async def risk_cases(request: Request) -> Response:
    return await view(request, RISK, _risk)


@router.post("/console/risk/{case_id}/{action}")
async def risk_action(request: Request, case_id: str, action: str) -> Response:
    async def change(user: ConsoleUser, fields: dict[str, str]) -> Response | None:
        db = db_of(request)
        if action == "investigate":
            await cases.investigate(db, case_id=case_id, operator=user.name)
            return done("/console/risk", "case_taken")
        if action == "close":
            resolution = fields.get("resolution", "").strip()
            verdict = fields.get("verdict", "")
            if verdict not in ("fraud", "no_fraud") or not resolution \
                    or len(resolution) > _TEXT_MAX:
                raise Refused("结案须选择结论并填写说明 Choose a verdict and write a resolution "
                              "(at most 256 characters)")
            await cases.close(db, case_id=case_id, fraud=verdict == "fraud",
                              resolution=resolution, operator=user.name,
                              freeze=fields.get("freeze") == "on",
                              hold_settlement=fields.get("hold_settlement") == "on")
            return done("/console/risk", "case_closed")
        return None

    return await act(request, RISK, _risk, change)


# --- reconciliation ------------------------------------------------------------------------------

_RESOLVE_BY_HAND = (Action.SYNC_ORDER, Action.REFUND, Action.ADJUST, Action.ACCEPT)


async def _discrepancies(request: Request, user: ConsoleUser, *, error: str = "",
                         status_code: int = 200) -> Response:
    text = request.query_params.get("status") or ""
    status = DiscrepancyStatus(text) if text in DiscrepancyStatus.__members__ else None
    if text and status is None:
        error, status_code = f"未知状态 Unknown state: {text[:20]}", 400
    found = await reconciliation.list_discrepancies(db_of(request), status=status, limit=100)
    return page(request, user, "console/reconciliation.html", status_code=status_code,
                error=error, discrepancies=found.data, status=text,
                actions=[a.value for a in _RESOLVE_BY_HAND])


@router.get("/console/reconciliation")
async def discrepancies(request: Request) -> Response:
    return await view(request, FINANCE, _discrepancies)


@router.post("/console/reconciliation/{discrepancy_id}/resolve")
async def resolve(request: Request, discrepancy_id: str) -> Response:
    async def action(user: ConsoleUser, fields: dict[str, str]) -> Response:
        action_text, note = fields.get("action", ""), fields.get("note", "").strip()
        if action_text not in {a.value for a in _RESOLVE_BY_HAND} or len(note) > 1000:
            raise Refused("请选择处理方式 Choose how to resolve it")
        deps: Deps = request.app.state.payments
        await reconciliation.resolve(deps, discrepancy_id=discrepancy_id, actor=user.name,
                                     action=Action(action_text), note=note, amount=None)
        return done("/console/reconciliation", "resolved")

    return await act(request, FINANCE, _discrepancies, action)


# --- settlement and the audit trail --------------------------------------------------------------


@router.get("/console/settlement")
async def batches(request: Request) -> Response:
    user = await guard(request, FINANCE)
    if isinstance(user, Response):
        return user
    text, error, status_code, day = request.query_params.get("date") or "", "", 200, None
    if text:
        try:
            day = date.fromisoformat(text)
        except ValueError:
            error, status_code = f"日期格式应为 YYYY-MM-DD Date must be YYYY-MM-DD: {text[:20]}", 400
    rows = await settlement.list_batches(db_of(request), settle_date=day)
    return page(request, user, "console/settlement.html", status_code=status_code, error=error,
                batches=rows, day=text[:10])


@router.get("/console/audit")
async def audit_log(request: Request) -> Response:
    user = await guard(request, AUDIT)
    if isinstance(user, Response):
        return user
    actor = (request.query_params.get("actor") or "").strip()[:64] or None
    action = (request.query_params.get("action") or "").strip()[:64] or None
    db = db_of(request)
    rows = await audit.search(db, actor=actor, action=action, limit=100)
    await audit.record_alone(db, actor=user.name, action="audit.search", target_type="audit",
                             target_id="-", detail={k: v for k, v in {
                                 "actor": actor, "action": action}.items() if v is not None})
    return page(request, user, "console/audit.html", records=rows, actor=actor or "",
                action=action or "")
