"""Which merchant a channel's notification is for, in the partner form.

A channel notifying in its service-provider form names the sub-merchant the payment or refund
belongs to (WeChat `sub_mchid`, ...). Before anything is applied, that must be the sub-merchant
the order was created under (`orders.channel_sub_merchant_id`): a notification naming another
merchant, or naming one for an order sent in the direct form (or none for a partner-form
order), is refused as CALLBACK_INVALID and answered with the channel's failure ack. A
channel whose notifications name no sub-merchant (Alipay's) is matched by order number and
signature alone, as before.

The check runs inside the transaction that applies the result, on the order row it has just
locked (`SubMerchantCheck`), so it costs no read of its own: a callback used to read the order
once for this check and again to apply it. Refusing there rolls the transaction back before
anything is written.
"""

from __future__ import annotations

from collections.abc import Callable

from fulema.channels.base import CallbackResult
from fulema.core.errors import ErrorCode, FulemaError

# Given the order's channel_sub_merchant_id (read under its lock), raises CALLBACK_INVALID when
# the notification is not for it.
SubMerchantCheck = Callable[[str | None], None]


def sub_merchant_check(cb: CallbackResult) -> SubMerchantCheck | None:
    """The check a notification needs, or None for one that names no sub-merchant."""
    if not cb.names_sub_merchant:
        return None

    def check(expected: str | None) -> None:
        if (cb.sub_merchant_id or None) != (expected or None):
            raise FulemaError(ErrorCode.CALLBACK_INVALID,
                              f"the notification is for sub-merchant "
                              f"{cb.sub_merchant_id or '(none)'}, the order was created under "
                              f"{expected or '(none: direct form)'}")

    return check
