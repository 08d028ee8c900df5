"""SMS and push endpoints: the merchant's own subscriptions (signed /api/v1), the operator's
view of any merchant's subscriptions, and the delivery log (search, resend) under
/ops/v1/messages."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from fulema.core.db import Database
from fulema.core.errors import ErrorCode as E
from fulema.core.web import (
    OperatorRoute,
    error_responses,
    get_db,
    json_body,
    json_response,
    require_role,
)
from fulema.gateway.signed import SIGNED, Signed, parse_body
from fulema.messaging import fanout, subscriptions
from fulema.messaging.schemas import DeliveryOut, DeliveryStatus

ops_router = APIRouter(prefix="/ops/v1/messages", tags=["operations: messages"],
                       route_class=OperatorRoute)
merchant_router = APIRouter(prefix="/api/v1", tags=["merchant API"])

Db = Annotated[Database, Depends(get_db)]
Reader = Annotated[str, Depends(require_role("admin", "reviewer"))]
Admin = Annotated[str, Depends(require_role("admin"))]
SUBSCRIPTION_ERRORS = (E.UNKNOWN_MESSAGE_EVENT, E.UNKNOWN_MESSAGE_CHANNEL, E.INVALID_PHONE,
                       E.MESSAGE_RECIPIENT_MISSING)


class SwitchIn(BaseModel):
    event: str = Field(max_length=64, description="payment.succeeded, refund.succeeded, "
                                                  "risk.alert, settlement.paid")
    channel: str = Field(max_length=32, description="speaker, webhook, sms, push, notice")
    enabled: bool


class SubscriptionsIn(BaseModel):
    """Only what is given changes; `sms_phone` / `push_target` null removes the recipient."""

    subscriptions: list[SwitchIn] = Field(default_factory=list, max_length=50)
    sms_phone: str | None = Field(default=None, max_length=32,
                                  description="Mainland mobile number for SMS (stored sealed)")
    push_target: str | None = Field(default=None, max_length=128,
                                    description="The app's push registration id")


class SwitchOut(BaseModel):
    event: str
    channel: str
    enabled: bool


class SubscriptionsOut(BaseModel):
    merchant_id: str
    sms_phone: str | None = Field(description="Masked: 138****0000")
    push_target: str | None = Field(description="Masked")
    subscriptions: list[SwitchOut] = Field(description="Every event and channel, as it applies")
    updated_at: datetime | None
    updated_by: str | None


class DeliveryListOut(BaseModel):
    data: list[DeliveryOut] = Field(description="Newest first")


def _out(view: subscriptions.SubscriptionsView) -> SubscriptionsOut:
    return SubscriptionsOut(**{**asdict(view), "subscriptions": [
        SwitchOut(**asdict(sw)) for sw in view.subscriptions]})


async def _update(db: Database, merchant_id: str, body: SubscriptionsIn,
                  actor: str) -> SubscriptionsOut:
    given: dict[str, Any] = {k: getattr(body, k) for k in ("sms_phone", "push_target")
                             if k in body.model_fields_set}
    view = await subscriptions.update_subscriptions(
        db, merchant_id=merchant_id, actor=actor,
        switches=[subscriptions.Switch(event=s.event, channel=s.channel, enabled=s.enabled)
                  for s in body.subscriptions], **given)
    return _out(view)


# --- the merchant's own (signed) ---------------------------------------------------------


@merchant_router.get("/message-subscriptions", summary="Which events reach you on which channels",
                     response_model=SubscriptionsOut, responses=error_responses(*SIGNED))
async def my_subscriptions(db: Db, signed: Signed) -> Response:
    return json_response(_out(await subscriptions.get_subscriptions(
        db, merchant_id=signed.cred.merchant_id)))


@merchant_router.put("/message-subscriptions", summary="Change your message subscriptions",
                     response_model=SubscriptionsOut, openapi_extra=json_body(SubscriptionsIn),
                     responses=error_responses(*SIGNED, *SUBSCRIPTION_ERRORS))
async def change_my_subscriptions(db: Db, signed: Signed) -> Response:
    body = parse_body(SubscriptionsIn, signed.body)
    cred = signed.cred
    return json_response(await _update(db, cred.merchant_id, body, f"app:{cred.app_id}"))


# --- operators ---------------------------------------------------------------------------


@ops_router.get("/subscriptions/{merchant_id}", summary="A merchant's message subscriptions",
                responses=error_responses(E.MERCHANT_NOT_FOUND))
async def merchant_subscriptions(merchant_id: str, db: Db, _: Reader) -> SubscriptionsOut:
    return _out(await subscriptions.get_subscriptions(db, merchant_id=merchant_id))


@ops_router.put("/subscriptions/{merchant_id}", summary="Change a merchant's subscriptions",
                responses=error_responses(E.MERCHANT_NOT_FOUND, *SUBSCRIPTION_ERRORS))
async def change_merchant_subscriptions(merchant_id: str, db: Db, operator: Admin,
                                        body: Annotated[SubscriptionsIn, Body()]
                                        ) -> SubscriptionsOut:
    return await _update(db, merchant_id, body, operator)


@ops_router.get("/deliveries", summary="Search the SMS and push delivery log, newest first")
async def search_deliveries(
        db: Db, _: Reader,
        merchant_id: Annotated[str | None, Query(max_length=40)] = None,
        channel: Literal["sms", "push"] | None = None,
        status: DeliveryStatus | None = None,
        event_id: Annotated[str | None, Query(max_length=40)] = None,
        since: datetime | None = None, until: datetime | None = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        starting_after: Annotated[str | None, Query(max_length=40)] = None,
) -> DeliveryListOut:
    found = await fanout.search(db, merchant_id=merchant_id, channel=channel, status=status,
                                event_id=event_id, since=since, until=until, limit=limit,
                                starting_after=starting_after)
    return DeliveryListOut(data=found)


@ops_router.post("/deliveries/{delivery_id}/resend", summary="Queue an SMS or push again now",
                 responses=error_responses(E.MESSAGE_DELIVERY_NOT_FOUND))
async def resend_delivery(delivery_id: str, db: Db, operator: Admin) -> DeliveryOut:
    return await fanout.resend(db, delivery_id=delivery_id, operator=operator)
