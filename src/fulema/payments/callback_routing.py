"""Which merchant a channel's notification is for, in the partner form.

A channel notifying in its service-provider form names the sub-merchant the payment or refund
belongs to (WeChat `sub_mchid`, ...). Before anything is applied, that must be the sub-merchant
the order was created under (`orders.channel_sub_merchant_id`): a notification naming another
merchant, or naming one for an order sent in the direct form (or none for a partner-form
order), is refused as CALLBACK_INVALID and answered with the channel's failure ack. A
channel whose notifications name no sub-merchant (Alipay's) is matched by order number and
signature alone, as before.
"""

from __future__ import annotations

from sqlalchemy import select

from fulema.channels.base import CallbackResult
from fulema.core.db import Database
from fulema.core.errors import ErrorCode, FulemaError
from fulema.payments.models import Order


async def check_sub_merchant(db: Database, cb: CallbackResult) -> None:
    """CALLBACK_INVALID unless the notification's sub-merchant is the order's. An unknown order
    passes here: applying the result answers ORDER_NOT_FOUND as before."""
    if not cb.names_sub_merchant:
        return
    async with db.transaction() as s:
        found = (await s.execute(select(Order.channel_sub_merchant_id).where(
            Order.id == cb.order_id))).first()
    if found is None:
        return
    expected = found[0]
    if (cb.sub_merchant_id or None) != (expected or None):
        raise FulemaError(ErrorCode.CALLBACK_INVALID,
                          f"the notification is for sub-merchant {cb.sub_merchant_id or '(none)'}"
                          f", the order was created under {expected or '(none: direct form)'}")
