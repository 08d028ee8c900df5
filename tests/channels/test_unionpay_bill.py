"""UnionPay ZM 流水 file: layout, rendering and strict parsing (no HTTP)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import pytest

from fulema.channels.unionpay.bill import (
    CONSUME,
    FIELDS,
    LINE_LENGTH,
    REFUND,
    parse_zm,
    render_zm,
    signed_amount,
    zm_file_name,
)
from fulema.core.money import Money

# Widths as listed in UnionPay's 文件接口规范 (SDK parseZMFile), kept here independently.
DOCUMENTED = [3, 11, 11, 6, 10, 19, 12, 4, 2, 21, 2, 32, 2, 6, 10, 13, 13, 4, 15, 2, 2, 6, 2, 4,
              32, 1, 21, 15, 1, 15, 32, 13, 13, 8, 32, 13, 13, 12, 2, 1, 131]

CONSUME_ROW = {"tradeNo": CONSUME, "traceNo": "42", "txnTime": "1125101500",
               "payCardNo": "621600*********1234", "txnAmt": "1250",
               "queryId": "202611251015000000001", "orderId": "ordZ0190abc",
               "merCharge": signed_amount(-8), "settleAmt": signed_amount(1250),
               "txnType": "01", "txnSubType": "06", "bizType": "000000",
               "merId": "777290058110048", "subMerAbbr": "银联测试门店"}


def test_layout_matches_the_documented_widths() -> None:
    assert [w for _, w in FIELDS] == DOCUMENTED
    assert sum(DOCUMENTED) + 40 == LINE_LENGTH
    assert " ".join(n for n, _ in FIELDS) == (
        "tradeNo acqInsCode sendInsCode traceNo txnTime payCardNo txnAmt merCatCode termType "
        "queryId oldPayType orderId payCardType origTradeSysTraceNo origTradeTime merCharge "
        "settleAmt payType groupMerCode txnType txnSubType bizType accType billType billNo "
        "interactMode origQryId merId accountType subMerId subMerAbbr subMerAcccountAmt "
        "settleNetAmt termId merReserved discountAmt invoiceAmt insAdditionCharge "
        "installmentNum tradeMedia reserved")
    assert zm_file_name(date(2026, 11, 25), "777290058110048") == "INN26112588ZM_777290058110048"


def test_render_pads_by_gbk_bytes_and_parse_reads_typed_rows() -> None:
    data = render_zm([CONSUME_ROW, {**CONSUME_ROW, "tradeNo": REFUND, "txnAmt": "50",
                                    "queryId": "202611251016000000002",
                                    "settleAmt": signed_amount(-50),
                                    "origQryId": "202611251015000000001"}])
    line = data.split(b"\r\n")[0]
    assert len(line) == LINE_LENGTH
    assert line[:4] == b"S22 "
    offset = sum(w + 1 for w in DOCUMENTED[:6])  # txnAmt: zero-padded to 12
    assert line[offset:offset + 12] == b"000000001250"
    consume, refund = parse_zm(data)
    assert (consume.trade_code, consume.txn_amt, consume.settle_amt, consume.mer_charge) == (
        CONSUME, Money(1250), Money(1250), Money(-8))
    assert (consume.trace_no, consume.order_id, consume.fields["subMerAbbr"]) == (
        "000042", "ordZ0190abc", "银联测试门店")
    assert (refund.trade_code, refund.txn_amt, refund.settle_amt) == (REFUND, Money(50),
                                                                      Money(-50))
    assert refund.orig_query_id == consume.query_id
    assert parse_zm(data.replace(b"\r\n", b"\n")) == [consume, refund]
    assert parse_zm(b"") == []


def test_a_value_too_long_for_its_field_is_not_written() -> None:
    with pytest.raises(ValueError, match="orderId"):
        render_zm([{**CONSUME_ROW, "orderId": "x" * 33}])
    with pytest.raises(ValueError, match="subMerAbbr"):  # 17 Chinese characters = 34 bytes
        render_zm([{**CONSUME_ROW, "subMerAbbr": "银" * 17}])


@pytest.mark.parametrize(("mangle", "message"), [
    (lambda line: line[:-10], "is 597 bytes, expected 607"),  # truncated
    (lambda line: line + b" ", "is 608 bytes"),
    (lambda line: line[:3] + b"X" + line[4:], "no separator before acqInsCode"),  # shifted
    (lambda line: line.replace(b"000000001250", b"0000000012.5"), "txnAmt '0000000012.5'"),
    (lambda line: line.replace(b"C000000001250", b"+000000001250"), "settleAmt"),
    (lambda line: line.replace("银".encode("gbk"), b"\xff\xff"), "subMerAbbr is not GBK"),
    (lambda line: b" " * len(line[:3]) + line[3:], "not a transaction line"),
])
def test_a_truncated_or_garbled_line_is_refused(mangle: Callable[[bytes], bytes], message: str) -> None:
    good = render_zm([CONSUME_ROW, CONSUME_ROW]).split(b"\r\n")
    bad = b"\r\n".join([good[0], mangle(good[1]), b""])
    with pytest.raises(ValueError, match=message) as err:
        parse_zm(bad)
    assert "line 2" in str(err.value)
