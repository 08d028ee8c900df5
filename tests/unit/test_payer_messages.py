"""What a payer reads for each error the cashier can meet: Chinese first, English second,
yuan, and never the service's own message."""

from __future__ import annotations

import re

import pytest

from fulema.core.config import Settings
from fulema.core.errors import ErrorCode, FulemaError
from fulema.web.payer_messages import GENERIC, over_limit, payer_message

CHINESE = re.compile(r"[\u4e00-\u9fff]")


@pytest.mark.parametrize("code", list(ErrorCode))
def test_every_code_reads_chinese_first_then_english(code: ErrorCode) -> None:
    secret = "internal detail 99999900 fen"
    text = payer_message(FulemaError(code, secret), Settings())
    assert secret not in text
    chinese, english = text.split(" · ", 1)
    assert CHINESE.search(chinese)
    assert re.search(r"[A-Za-z]", english)
    assert "fen" not in text


def test_the_limit_is_said_in_yuan_from_the_settings() -> None:
    settings = Settings(max_order_fen=123_456)
    assert over_limit(settings) == "单笔金额不能超过 ¥1234.56 · A single payment cannot exceed ¥1234.56"
    assert payer_message(FulemaError(ErrorCode.AMOUNT_OUT_OF_RANGE), settings) == over_limit(settings)


def test_a_code_without_a_sentence_gets_the_generic_one() -> None:
    assert payer_message(FulemaError(ErrorCode.INTERNAL_ERROR), Settings()) == GENERIC
