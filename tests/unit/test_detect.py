from __future__ import annotations

import pytest

from fulema.channels.detect import detect_app, detect_payer_code
from fulema.core.config import Settings
from fulema.core.errors import ErrorCode, FulemaError
from fulema.core.vocab import ChannelName

S = Settings(environment="test")


@pytest.mark.parametrize(("code", "channel"), [
    ("134567890123456789", ChannelName.WECHAT),
    ("101234567890123456", ChannelName.WECHAT),
    ("151234567890123456", ChannelName.WECHAT),
    ("2812345678901234", ChannelName.ALIPAY),
    ("281234567890123456", ChannelName.ALIPAY),
    ("301234567890123456789012", ChannelName.ALIPAY),
    ("6212345678901234567", ChannelName.UNIONPAY),
    ("0112345678901234567", ChannelName.ECNY),
    ("881234567890123456", ChannelName.BANKPAY),
])
def test_payer_codes_are_detected_by_prefix_and_length(code: str, channel: ChannelName) -> None:
    assert detect_payer_code(code, S) == channel


@pytest.mark.parametrize("code", [
    "16123456789012345",      # 16 prefix is no one's
    "1312345678901234567",    # WeChat prefix, 19 digits
    "62123456789012345678",   # UnionPay prefix, 20 digits
    "13456789012345678a",     # not digits
    "",
    "311234567890123456",
])
def test_unknown_payer_codes_are_refused(code: str) -> None:
    with pytest.raises(FulemaError) as err:
        detect_payer_code(code, S)
    assert err.value.code == ErrorCode.UNRECOGNISED_PAYER_CODE


@pytest.mark.parametrize(("ua", "channel"), [
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0) AppleWebKit/605.1.15 MicroMessenger/8.0.47",
     ChannelName.WECHAT),
    ("Mozilla/5.0 (Linux; Android 14) AlipayClient/10.5.96.8000 Language/zh-Hans",
     ChannelName.ALIPAY),
    ("Mozilla/5.0 (iPhone) AppleWebKit UnionPay/1.0 CloudPay", ChannelName.UNIONPAY),
    ("Mozilla/5.0 (Linux; Android 14) DCEP/1.2.0", ChannelName.ECNY),
    ("Mozilla/5.0 (Linux; Android 14) FulemaBank/3.1", ChannelName.BANKPAY),
])
def test_scanning_app_is_detected_from_user_agent(ua: str, channel: ChannelName) -> None:
    assert detect_app(ua, S) == channel


def test_plain_browser_is_not_a_payment_app() -> None:
    ua = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36"
    assert detect_app(ua, S) is None


def test_bank_can_add_its_own_app_marker_without_code() -> None:
    custom = Settings(environment="test", ua_markers={"bankpay": ["ZJGRCB"]})
    assert detect_app("Mozilla/5.0 ZJGRCB/5.0", custom) == ChannelName.BANKPAY
