"""Alipay OpenAPI's wire protocol as the sandbox (playing Alipay's gateway) implements it.

Written from Alipay's documentation (签名与验签, 自行实现验签, 异步通知验签, 网关返回码,
对账单格式), not imported from `fulema.channels.alipay`: the sandbox is a second, independent
implementation, so a signing or format mistake in our adapter is refused here rather than
shared. The duplicated constants are intended.

* A request's ``sign`` covers every parameter but ``sign`` with a non-empty value, sorted by
  name, joined ``k=v&k=v`` with raw (not URL-encoded) values: SHA256withRSA (RSA2), base64.
* An answer is ``{"<method_with_underscores>_response": {...}, "sign": "..."}``; the sign
  covers the node's exact text. A request the gateway cannot tie to a method or to an app it
  knows is answered in ``error_response``, or in the method's node, without ``sign``: Alipay
  cannot sign for an app it does not know.
* An asynchronous notification is a form POST; its sign covers the fields but ``sign`` and
  ``sign_type``, sorted, ``k=v&...``.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from fulema.core import crypto

BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
SIGN_TYPE = "RSA2"
VERSION = "1.0"
ERROR_NODE = "error_response"

SUCCESS = "10000"
PAYING = "10003"  # alipay.trade.pay: the payer must still confirm (password) in the app
MISSING_ARGUMENTS = "40001"
INVALID_ARGUMENTS = "40002"
BUSINESS_FAILED = "40004"
MESSAGES = {
    SUCCESS: "Success",
    PAYING: "order success pay inprocess",
    "20000": "Service Currently Unavailable",
    MISSING_ARGUMENTS: "Missing Required Arguments",
    INVALID_ARGUMENTS: "Invalid Arguments",
    "40006": "Insufficient Permissions",
    BUSINESS_FAILED: "Business Failed",
}

# 对账单 (trade bill) columns, as in the 业务明细 and 业务明细(汇总) files.
BILL_COLUMNS = ("支付宝交易号", "商户订单号", "业务类型", "商品名称", "创建时间", "完成时间",
                "门店编号", "门店名称", "操作员", "终端号", "对方账户", "订单金额（元）",
                "商家实收（元）", "支付宝红包（元）", "集分宝（元）", "支付宝优惠（元）",
                "商家优惠（元）", "券核销金额（元）", "券名称", "商家红包消费金额（元）",
                "卡消费金额（元）", "退款批次号/请求号", "服务费（元）", "分润（元）", "备注")
BILL_SUMMARY_COLUMNS = ("门店编号", "门店名称", "交易订单总笔数", "退款订单总笔数",
                        "订单金额（元）", "商家实收（元）", "支付宝优惠（元）", "商家优惠（元）",
                        "卡消费金额（元）", "服务费（元）", "分润（元）", "实收净额（元）")
BILL_DETAIL_SUFFIX = "_业务明细.csv"
BILL_SUMMARY_SUFFIX = "_业务明细(汇总).csv"
BILL_REFUND = "退款"  # 业务类型 of a refund row (a payment's is 交易)


def beijing_time(when: datetime) -> str:
    return when.astimezone(BEIJING).strftime(TIME_FORMAT)


def parse_beijing(text: str) -> datetime:
    return datetime.strptime(text, TIME_FORMAT).replace(tzinfo=BEIJING)


def sign_content(params: dict[str, str], exclude: tuple[str, ...] = ("sign",)) -> str:
    """The string a signature covers: sorted ``k=v`` over the non-empty values, ``&``-joined."""
    return "&".join(f"{k}={params[k]}" for k in sorted(params)
                    if k not in exclude and params[k] not in ("", None))


def request_verifies(params: dict[str, str], key: rsa.RSAPublicKey) -> bool:
    sign = params.get("sign", "")
    return bool(sign) and crypto.rsa_sha256_verify(key, sign_content(params), sign)


def notify_sign(fields: dict[str, str], key: rsa.RSAPrivateKey) -> str:
    return crypto.rsa_sha256_sign(key, sign_content(fields, exclude=("sign", "sign_type")))


def encode_answer(method: str, node: dict[str, Any], key: rsa.RSAPrivateKey | None) -> str:
    """Compact JSON with ``/`` escaped as ``\\/`` (as Alipay writes it), signed over the node's
    exact text; ``key=None`` leaves it unsigned. `method` may already be ``error_response``."""
    name = method if method == ERROR_NODE else method.replace(".", "_") + "_response"
    text = json.dumps(node, ensure_ascii=False, separators=(",", ":")).replace("/", "\\/")
    body = f'{{"{name}":{text}'
    if key is not None:
        body += f',"sign":"{crypto.rsa_sha256_sign(key, text)}"'
    return body + "}"
