"""Words every context shares: channels and way codes (how the payer pays)."""

from __future__ import annotations

from enum import StrEnum


class ChannelName(StrEnum):
    WECHAT = "wechat"
    ALIPAY = "alipay"
    UNIONPAY = "unionpay"
    ECNY = "ecny"
    BANKPAY = "bankpay"


class WayCode(StrEnum):
    QR_DYNAMIC = "QR_DYNAMIC"  # the order's QR code, scanned by the payer
    BARCODE = "BARCODE"  # the merchant scans the payer's code (付款码)
    JSAPI = "JSAPI"  # inside WeChat / Alipay / a mini-program, with the payer's id
    H5 = "H5"  # a mobile browser outside the app
    APP = "APP"  # the merchant's own app
    QR_STATIC = "QR_STATIC"  # the store's printed plate, through the cashier page
