"""The spoken amount, the signature and the device's duplicate filter: pure, no I/O."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fulema.messaging.domain import (
    MalformedAck,
    SeenIds,
    amount_words,
    device_key,
    device_password,
    integer_words,
    parse_ack,
    sign,
    speaker_message,
    verify,
)
from fulema.messaging.templates import render

_DIGIT = {c: i for i, c in enumerate("零一二三四五六七八九")}
_SMALL = {"十": 10, "百": 100, "千": 1000}


def read_integer(words: str) -> int:
    """An independent reader of Chinese numerals (below 万亿), to check integer_words by."""
    total = big = section = digit = 0
    for ch in words:
        if ch in _DIGIT:
            digit = _DIGIT[ch]
        elif ch in _SMALL:
            section += (digit or 1) * _SMALL[ch]
            digit = 0
        elif ch == "万":
            big += (section + digit) * 10_000
            section = digit = 0
        elif ch == "亿":
            total += (big + section + digit) * 100_000_000
            big = section = digit = 0
        else:
            raise AssertionError(f"unexpected {ch!r} in {words}")
    return total + big + section + digit


def read_amount(words: str) -> int:
    fen = 0
    rest = words
    if "元" in rest:
        yuan, rest = rest.split("元", 1)
        fen += read_integer(yuan) * 100
    rest = rest.removeprefix("零")
    if "角" in rest:
        jiao, rest = rest.split("角", 1)
        fen += _DIGIT[jiao] * 10
    if "分" in rest:
        cents, rest = rest.split("分", 1)
        fen += _DIGIT[cents]
    assert rest == "", words
    return fen


@pytest.mark.parametrize(("fen", "spoken"), [
    (1250, "十二元五角"), (5, "五分"), (10000, "一百元"), (1010, "十元一角"),
    (100101, "一千零一元零一分"), (0, "零元"), (10, "一角"), (100, "一元"), (1000, "十元"),
    (1001, "十元零一分"), (11000, "一百一十元"), (1_000_000, "一万元"),
    (1_001_000, "一万零一十元"), (10_000_000, "十万元"), (5_000_000, "五万元"),
    (10_000_000_000, "一亿元"), (10_005_000_000, "一亿零五万元"),
    (101_010_101, "一百零一万零一百零一元零一分"),
    (99_999_999, "九十九万九千九百九十九元九角九分"),
])
def test_amounts_are_spoken_as_a_cashier_would(fen: int, spoken: str) -> None:
    assert amount_words(fen) == spoken


@given(st.integers(min_value=0, max_value=10**12 - 1))
def test_every_amount_reads_back_to_the_same_fen(fen: int) -> None:
    words = amount_words(fen)
    assert read_amount(words) == fen
    assert "零零" not in words
    assert not words.endswith("零")


@given(st.integers(min_value=1, max_value=10**11))
def test_integers_read_back_and_never_start_with_yi_shi(n: int) -> None:
    words = integer_words(n)
    assert read_integer(words) == n
    assert not words.startswith("一十")


def test_negative_or_huge_amounts_are_refused() -> None:
    with pytest.raises(ValueError, match="out of range"):
        amount_words(-1)
    with pytest.raises(ValueError, match="out of range"):
        amount_words(10**16)


def test_the_speaker_template_says_the_brand_and_the_amount() -> None:
    assert render("payment.succeeded", "speaker", {"amount": 1250}) == "付了码收款十二元五角"


def test_a_message_verifies_only_with_its_own_device_key() -> None:
    key_a, key_b = device_key("s3cret", "spk_a"), device_key("s3cret", "spk_b")
    body = speaker_message(key=key_a, message_id="spm_1", speaker_id="spk_a", amount_fen=1250,
                           channel="wechat", text="付了码收款十二元五角", ts_ms=1, order_id="ord_1")
    assert verify(key_a, body)
    assert not verify(key_b, body)
    assert not verify(key_a, {**body, "amount": 125000})  # tampered amount
    assert not verify(key_a, {k: v for k, v in body.items() if k != "sig"})
    assert body["sig"] == sign(key_a, body)
    assert device_key("other", "spk_a") != key_a
    assert device_password("s3cret", "spk_a") != device_password("s3cret", "spk_b")


def test_the_device_plays_a_message_id_once_and_forgets_the_oldest() -> None:
    seen = SeenIds(capacity=2)
    assert seen.first_time("a")
    assert seen.first_time("b")
    assert not seen.first_time("a")
    assert seen.first_time("c")  # evicts b (a was refreshed)
    assert not seen.first_time("a")
    assert seen.first_time("b")


@pytest.mark.parametrize("raw", [b"", b"not json", b"[]", b'"spm_1"', b"{}",
                                 b'{"message_id": 7}', b'{"message_id": ""}',
                                 b'{"message_id": "' + b"x" * 41 + b'"}', b"\xff\xfe"])
def test_malformed_acks_are_refused(raw: bytes) -> None:
    with pytest.raises(MalformedAck):
        parse_ack(raw)


def test_a_well_formed_ack_names_its_message() -> None:
    assert parse_ack(b'{"message_id": "spm_1", "extra": true}') == "spm_1"
