"""Channel notifications (async callbacks) into Fulema.

A callback is only applied after the adapter has verified its signature (and decrypted it).
A bad signature, an unknown order or a different amount is logged and answered with the
channel's failure ack, never applied. A replay is harmless: applying a result is idempotent.
"""

from __future__ import annotations

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import Response

from fulema.channels.base import CallbackKind
from fulema.core.errors import ErrorCode, FulemaError
from fulema.core.web import error_responses
from fulema.payments import refunds
from fulema.payments import service as payments
from fulema.payments.api import deps_of
from fulema.payments.callback_routing import sub_merchant_check

log = structlog.get_logger(__name__)
router = APIRouter(tags=["channel callbacks"])


@router.post("/callbacks/{channel_name}", response_class=Response,
             summary="A channel's asynchronous notification (callback) of a payment or refund",
             responses={**error_responses(ErrorCode.CHANNEL_NOT_ENABLED),
                        200: {"description": "The channel's own acknowledgement, in its format "
                                             "(success or failure ack: a refused callback is "
                                             "answered here, never with an error body)"}})
async def channel_callback(channel_name: str, request: Request) -> Response:
    deps = deps_of(request)
    channel = deps.channels.get(channel_name)
    body = await request.body()
    headers = {k.lower(): v for k, v in request.headers.items()}
    ok = False
    try:
        cb = await channel.parse_callback(headers, body)
        check = sub_merchant_check(cb)  # partner form: the order's sub-merchant only
        if cb.kind == CallbackKind.PAYMENT and cb.trade is not None:
            await payments.apply_trade_result(deps, order_id=cb.order_id, result=cb.trade,
                                              source="callback", check=check)
        elif cb.kind == CallbackKind.REFUND and cb.refund is not None and cb.refund_id:
            await refunds.apply_refund_result(deps, refund_id=cb.refund_id, result=cb.refund,
                                              source="callback", check=check)
        else:
            raise FulemaError(ErrorCode.CALLBACK_INVALID, "callback carries no result")
        ok = True
    except FulemaError as exc:
        log.warning("callback.rejected", channel=channel_name, code=exc.code, reason=exc.message)
    ack = channel.callback_ack(ok)
    return Response(content=ack.body, status_code=ack.status_code, media_type=ack.media_type)
