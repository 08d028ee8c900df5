"""Marketing over HTTP: the merchant's signed API (quote, coupon claim, a payer's coupons) and
the operator's (`/ops/v1/marketing`: campaigns with their per-day figures, coupon templates,
grants, revocations; every action audited). Budgets are money: the finance role runs them."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from fulema.core.db import Database
from fulema.core.errors import ErrorCode, FulemaError
from fulema.core.money import Money
from fulema.core.web import (
    OperatorRoute,
    error_responses,
    get_db,
    json_body,
    json_response,
    require_role,
)
from fulema.gateway.protection import degraded
from fulema.gateway.signed import SIGNED, Signed, parse_body, signed_request
from fulema.marketing import service as marketing
from fulema.marketing.schemas import (
    CampaignIn,
    CampaignListOut,
    CampaignOut,
    CampaignStatsOut,
    ClaimBody,
    CouponListOut,
    CouponOut,
    CouponTemplateIn,
    CouponTemplateOut,
    GrantBody,
    QuoteBody,
    QuoteOut,
)

E = ErrorCode
router = APIRouter(prefix="/api/v1/marketing", tags=["merchant API: marketing"])
ops_router = APIRouter(prefix="/ops/v1/marketing", tags=["operations: marketing"],
                       route_class=OperatorRoute)
Db = Annotated[Database, Depends(get_db)]
Finance = Annotated[str, Depends(require_role("finance", "admin"))]
Marketer = Annotated[str, Depends(require_role("risk", "finance", "admin"))]


@router.post("/quote", summary="Quote the best discount for an order", response_model=QuoteOut,
             openapi_extra=json_body(QuoteBody), responses=error_responses(
                 *SIGNED, E.INVALID_AMOUNT, E.AMOUNT_OUT_OF_RANGE, E.MERCHANT_NOT_ACTIVE,
                 E.MERCHANT_FROZEN, E.MERCHANT_CLOSED, E.STORE_NOT_FOUND, E.CAMPAIGN_NOT_FOUND,
                 E.CAMPAIGN_NOT_ACTIVE, E.CAMPAIGN_NOT_APPLICABLE, E.BUDGET_EXHAUSTED,
                 E.THRESHOLD_NOT_MET, E.DISCOUNTS_NOT_STACKABLE, E.COUPON_NOT_FOUND,
                 E.COUPON_NOT_OWNED, E.COUPON_NOT_APPLICABLE, E.COUPON_EXPIRED,
                 E.COUPON_NOT_AVAILABLE, E.PAYER_REQUIRED_FOR_DISCOUNT, E.INVALID_POINTS,
                 E.POINTS_INSUFFICIENT))
async def quote(request: Request, signed: Signed) -> Response:
    cred = signed.cred
    body = parse_body(QuoteBody, signed.body)
    if degraded(request):  # marketing is shed first: the full amount, nothing looked up
        return json_response(marketing.no_discount_quote(
            request.app.state.settings, merchant_id=cred.merchant_id,
            amount=Money.of(body.amount), channel=body.channel.value, payer_id=body.payer_id,
            store_id=body.store_id))
    view = await marketing.quote(
        request.app.state.db, request.app.state.settings, merchant_id=cred.merchant_id,
        amount=Money.of(body.amount), channel=body.channel.value, payer_id=body.payer_id,
        store_id=body.store_id, campaign_id=body.campaign_id, coupon_id=body.coupon_id,
        points=body.points, max_points=body.max_points)
    return json_response(view)


@router.post("/coupons/claim", summary="A payer claims a coupon (through the merchant)",
             response_model=CouponOut, openapi_extra=json_body(ClaimBody),
             responses=error_responses(*SIGNED, E.COUPON_TEMPLATE_NOT_FOUND,
                                       E.COUPON_NOT_APPLICABLE, E.COUPON_LIMIT_REACHED))
async def claim(request: Request, signed: Signed) -> Response:
    cred = signed.cred
    body = parse_body(ClaimBody, signed.body)
    key = marketing.key_of(body.channel.value, body.payer_id)
    assert key is not None
    view = await marketing.issue(request.app.state.db, template_id=body.template_id,
                                 payer_key=key, via="CLAIM", merchant_id=cred.merchant_id)
    return json_response(view)


@router.get("/coupons", summary="A payer's coupons", response_model=CouponListOut,
            responses=error_responses(*SIGNED, E.VALIDATION_ERROR),
            dependencies=[Depends(signed_request)])  # the signature before the query
async def payer_coupons(request: Request, channel: str, payer_id: str) -> Response:
    key = marketing.key_of(channel, payer_id)
    if key is None:  # an empty channel or payer id names nobody
        raise FulemaError(E.VALIDATION_ERROR, "channel and payer_id: both required")
    views = await marketing.list_for_payer(request.app.state.db, payer_key=key)
    return json_response(CouponListOut(data=views))


# ------------------------------------------------------------------------- operators


@ops_router.post("/campaigns", status_code=201, summary="Create a campaign",
                 responses=error_responses(E.VALIDATION_ERROR))
async def create_campaign(body: CampaignIn, db: Db, actor: Finance) -> CampaignOut:
    return await marketing.create_campaign(db, actor=actor, body=body)


@ops_router.get("/campaigns", summary="Every campaign, oldest first")
async def list_campaigns(db: Db, _: Marketer) -> CampaignListOut:
    return CampaignListOut(data=await marketing.list_campaigns(db))


@ops_router.get("/campaigns/{campaign_id}", summary="A campaign with spend, redemptions and "
                "remaining budget, in total and per day",
                responses=error_responses(E.CAMPAIGN_NOT_FOUND))
async def campaign_stats(campaign_id: str, db: Db, _: Marketer) -> CampaignStatsOut:
    return await marketing.stats(db, campaign_id=campaign_id)


def _mover(action: str) -> Callable[[str, Database, str], Awaitable[CampaignOut]]:
    async def move(campaign_id: str, db: Db, actor: Finance) -> CampaignOut:
        return await marketing.move_campaign(db, actor=actor, campaign_id=campaign_id,
                                             action=action)
    return move


for _action in ("pause", "resume", "end"):
    ops_router.add_api_route(
        f"/campaigns/{{campaign_id}}/{_action}", _mover(_action), methods=["POST"],
        summary=f"{_action.capitalize()} a campaign", response_model=CampaignOut,
        responses=error_responses(E.CAMPAIGN_NOT_FOUND, E.ILLEGAL_STATE_TRANSITION),
        name=f"campaign_{_action}")


@ops_router.post("/coupon-templates", status_code=201, summary="Create a coupon template",
                 responses=error_responses(E.VALIDATION_ERROR))
async def create_template(body: CouponTemplateIn, request: Request, db: Db, actor: Finance
                          ) -> CouponTemplateOut:
    return await marketing.create_template(
        db, actor=actor, body=body, max_order_fen=request.app.state.settings.max_order_fen)


@ops_router.post("/coupon-templates/{template_id}/grant", status_code=201,
                 summary="Grant a coupon to a payer", responses=error_responses(
                     E.COUPON_TEMPLATE_NOT_FOUND, E.COUPON_LIMIT_REACHED))
async def grant(template_id: str, body: GrantBody, db: Db, actor: Marketer) -> CouponOut:
    key = marketing.key_of(body.channel.value, body.payer_id)
    assert key is not None
    return await marketing.issue(db, template_id=template_id, payer_key=key, via="GRANT",
                                 actor=actor)


@ops_router.post("/coupons/{coupon_id}/revoke", summary="Revoke an unused coupon",
                 responses=error_responses(E.COUPON_NOT_FOUND, E.ILLEGAL_STATE_TRANSITION))
async def revoke(coupon_id: str, db: Db, actor: Marketer) -> CouponOut:
    return await marketing.revoke(db, actor=actor, coupon_id=coupon_id)
