"""Console pages for merchants: the applications queue (approve / reject with a reason), the
merchant search with freeze / unfreeze, and the four-eyes approvals a second operator decides.
Each calls the service the /ops/v1 route calls (merchants/api.py, operators/api.py)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from fulema.core import approvals, audit
from fulema.core.approvals import ApprovalAction, ApprovalStatus
from fulema.core.errors import FulemaError
from fulema.core.masking import mask_account, mask_phone
from fulema.merchants import domain, four_eyes, service
from fulema.merchants.domain import MerchantStatus
from fulema.merchants.service import MerchantView
from fulema.web.console.common import (
    APPROVALS,
    FREEZE,
    READ_MERCHANTS,
    REVIEW,
    ConsoleUser,
    Refused,
    act,
    db_of,
    done,
    page,
    view,
)

router = APIRouter()
_REASON_MAX = 256


def _row(m: MerchantView) -> dict[str, Any]:
    """What a page shows of a merchant: identifiers masked (core/masking.py)."""
    return {"id": m.id, "name": m.name, "short_name": m.short_name, "status": m.status,
            "licence_no": mask_account(m.licence_no), "contact_name": m.contact_name,
            "contact_phone": mask_phone(m.contact_phone),
            "settlement_account": mask_account(m.settlement_account), "mcc": m.mcc,
            "reject_reason": m.reject_reason, "freeze_reason": m.freeze_reason,
            "created_at": m.created_at}


async def _applications(request: Request, user: ConsoleUser, *, error: str = "",
                        status_code: int = 200) -> Response:
    db = db_of(request)
    listing = await service.list_merchants(db, limit=100, status=MerchantStatus.APPLIED)
    await audit.record_alone(db, actor=user.name, action="merchant.read_list",
                             target_type="merchant", target_id="-",
                             detail={"merchant_ids": [m.id for m in listing.data]})
    return page(request, user, "console/applications.html", status_code=status_code,
                error=error, merchants=[_row(m) for m in listing.data],
                can_review=user.holds(REVIEW))


@router.get("/console/applications")
async def applications(request: Request) -> Response:
    return await view(request, READ_MERCHANTS, _applications)


@router.post("/console/applications/{merchant_id}/{decision}")
async def decide_application(request: Request, merchant_id: str, decision: str) -> Response:
    async def action(user: ConsoleUser, fields: dict[str, str]) -> Response | None:
        reason = fields.get("reason", "").strip()
        if decision == "approve":
            await service.approve(db_of(request), merchant_id=merchant_id,
                                  reason=reason or None, operator=user.name)
            return done("/console/applications", "approved")
        if decision == "reject":
            if not reason or len(reason) > _REASON_MAX:
                raise Refused("驳回须填写原因（256 字以内） A reason is required to reject (at "
                              "most 256 characters)")
            await service.reject(db_of(request), merchant_id=merchant_id, reason=reason,
                                 operator=user.name)
            return done("/console/applications", "rejected")
        return None

    return await act(request, REVIEW, _applications, action)


# --- merchant search, freeze / unfreeze -------------------------------------------------------


async def _merchants(request: Request, user: ConsoleUser, *, error: str = "",
                     status_code: int = 200) -> Response:
    q = request.query_params
    text = (q.get("q") or "").strip()[:64]
    status_text = (q.get("status") or "").strip()
    status = MerchantStatus(status_text) if status_text in MerchantStatus.__members__ else None
    if status_text and status is None:
        error = error or f"未知状态 Unknown state: {status_text[:20]}"
        status_code = 400 if status_code == 200 else status_code
    db = db_of(request)
    rows: list[MerchantView] = []
    if text.startswith("mch_"):  # an id: that merchant alone
        try:
            rows = [(await service.get_merchant(db, merchant_id=text)).merchant]
        except FulemaError:
            rows = []
    else:
        rows = list((await service.list_merchants(db, limit=100, status=status,
                                                  name_contains=text or None)).data)
    await audit.record_alone(db, actor=user.name, action="merchant.search",
                             target_type="merchant", target_id="-",
                             detail={"merchant_ids": [m.id for m in rows], "q": text,
                                     "status": status_text})
    return page(request, user, "console/merchants.html", status_code=status_code, error=error,
                merchants=[_row(m) for m in rows], q=text, status=status_text,
                statuses=[s.value for s in MerchantStatus], can_freeze=user.holds(FREEZE))


@router.get("/console/merchants")
async def merchants(request: Request) -> Response:
    return await view(request, READ_MERCHANTS, _merchants)


@router.post("/console/merchants/{merchant_id}/{action}")
async def freeze_or_unfreeze(request: Request, merchant_id: str, action: str) -> Response:
    async def change(user: ConsoleUser, fields: dict[str, str]) -> Response | None:
        reason = fields.get("reason", "").strip()
        if not reason or len(reason) > _REASON_MAX:
            raise Refused("冻结和解冻须填写原因（256 字以内） A reason is required (at most 256 "
                          "characters)")
        db = db_of(request)
        if action == "freeze":
            await service.freeze(db, merchant_id=merchant_id, reason=reason, operator=user.name)
            return done(f"/console/merchants?q={merchant_id}", "frozen")
        if action == "unfreeze":  # four eyes, as POST /ops/v1/merchants/{id}/unfreeze
            current = await service.get_merchant_status(db, merchant_id=merchant_id)
            domain.next_status(current, domain.MerchantAction.UNFREEZE)
            await approvals.request(db, kind=four_eyes.UNFREEZE, target_type="merchant",
                                    target_id=merchant_id,
                                    params={"merchant_id": merchant_id, "reason": reason},
                                    summary={"unfreeze": merchant_id}, reason=reason,
                                    requested_by=user.name)
            return done("/console/approvals", "unfreeze_asked")
        return None

    return await act(request, FREEZE, _merchants, change)


# --- four eyes -----------------------------------------------------------------------------------


def _actions(request: Request) -> dict[str, ApprovalAction]:
    declared: dict[str, ApprovalAction] = request.app.state.approval_actions
    return declared


async def _approvals(request: Request, user: ConsoleUser, *, error: str = "",
                     status_code: int = 200) -> Response:
    rows = await approvals.list_requests(db_of(request), status=ApprovalStatus.PENDING,
                                         limit=100, starting_after=None)
    return page(request, user, "console/approvals.html", status_code=status_code, error=error,
                approvals=rows)


@router.get("/console/approvals")
async def approvals_page(request: Request) -> Response:
    return await view(request, APPROVALS, _approvals)


@router.post("/console/approvals/{approval_id}/{decision}")
async def decide_approval(request: Request, approval_id: str, decision: str) -> Response:
    async def action(user: ConsoleUser, fields: dict[str, str]) -> Response | None:
        note = fields.get("note", "").strip()[:_REASON_MAX]
        if decision == "approve":
            decided = await approvals.approve(db_of(request), _actions(request),
                                              approval_id=approval_id, approver=user.name,
                                              approver_roles=user.roles, note=note or None)
            if decided.status != ApprovalStatus.APPROVED.value:  # the action itself was refused
                raise Refused(f"复核已记录，但操作未能执行 Approved, but the action failed: "
                              f"{decided.error_code or decided.status}", status_code=409)
            return done("/console/approvals", "approval_approved")
        if decision == "reject":
            if not note:
                raise Refused("拒绝须填写原因 A reason is required to reject")
            await approvals.reject(db_of(request), _actions(request), approval_id=approval_id,
                                   approver=user.name, approver_roles=user.roles, reason=note)
            return done("/console/approvals", "approval_rejected")
        return None

    return await act(request, APPROVALS, _approvals, action)
