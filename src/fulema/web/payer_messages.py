"""What a payer reads when the cashier cannot go on: Chinese first, English second, amounts in
yuan.

The services speak to developers ("amount 99999900 fen is above the per-order limit 5000000");
a payer at a shop counter needs "单笔金额不能超过 ¥50000.00". The cashier turns each error code
it can meet into one sentence here, so no service message (fen, parameter names, a channel's
raw code) reaches a page. A code without a sentence of its own gets a generic one; its code
stays in the log, not on the page.
"""

from __future__ import annotations

from fulema.core.config import Settings
from fulema.core.errors import ErrorCode, FulemaError
from fulema.core.money import Money

ENTER_AMOUNT = "请输入正确的金额，如 12.50 · Enter the amount in yuan, like 12.50"
ABOVE_ZERO = "请输入大于 0 的金额 · Enter an amount above 0"
GENERIC = "暂时无法付款，请稍后再试 · The payment cannot be made right now; please try again"

_FIXED: dict[ErrorCode, str] = {
    ErrorCode.INVALID_AMOUNT: ENTER_AMOUNT,
    ErrorCode.MERCHANT_NOT_ACTIVE: "该商户暂不能收款 · This shop cannot take payments yet",
    ErrorCode.MERCHANT_FROZEN: "该商户暂停收款 · This shop's payments are suspended",
    ErrorCode.PLATE_NOT_FOUND: "收款码不存在或已停用 · This payment code does not exist or is "
                               "disabled",
    ErrorCode.CHANNEL_UNAVAILABLE: "支付通道繁忙，请稍后再试或换一个应用付款 · The payment "
                                   "channel is busy; try again later or pay with another app",
    ErrorCode.CHANNEL_ERROR: "支付通道未能受理，请稍后再试 · The payment channel did not accept "
                             "the payment; please try again",
    ErrorCode.RISK_REJECTED: "该笔付款未通过安全检查 · This payment did not pass the security "
                             "check",
    ErrorCode.RATE_LIMITED: "操作太频繁，请稍后再试 · Too many attempts; please wait a moment",
    ErrorCode.QUOTE_INVALID: "优惠已失效，请重新输入金额 · The offer is no longer valid; enter "
                             "the amount again",
    ErrorCode.QUOTE_EXPIRED: "优惠已过期，请重新输入金额 · The offer has expired; enter the "
                             "amount again",
    ErrorCode.QUOTE_MISMATCH: "优惠已变化，请重新输入金额 · The offer has changed; enter the "
                              "amount again",
    ErrorCode.POINTS_INSUFFICIENT: "积分不足 · Not enough points",
}


def over_limit(settings: Settings) -> str:
    limit = Money(settings.max_order_fen).to_yuan()
    return f"单笔金额不能超过 ¥{limit} · A single payment cannot exceed ¥{limit}"


def payer_message(exc: FulemaError, settings: Settings) -> str:
    """The sentence the payer sees for `exc` (never the service's own message)."""
    if exc.code == ErrorCode.AMOUNT_OUT_OF_RANGE:
        return over_limit(settings)
    return _FIXED.get(exc.code, GENERIC)
