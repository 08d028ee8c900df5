"""One entry point for every channel's statement: `parse_statement(channel, data)`."""

from __future__ import annotations

from fulema.reconciliation import parse_alipay, parse_fen_csv, parse_unionpay, parse_wechat
from fulema.reconciliation.statement import Statement, StatementError, digest

CHANNELS = ("wechat", "alipay", "unionpay", "ecny", "bankpay")


def parse_statement(channel: str, data: bytes) -> Statement:
    """The statement's normalized lines and hash; StatementError for a malformed file."""
    if not data and channel != "unionpay":  # a day without transactions has an empty ZM file
        raise StatementError(0, "the file is empty")
    if channel == "wechat":
        lines = parse_wechat.parse(data)
    elif channel == "alipay":
        lines = parse_alipay.parse(data)
    elif channel == "unionpay":
        lines = parse_unionpay.parse(data)
    elif channel in ("ecny", "bankpay"):
        lines = parse_fen_csv.parse(data, channel)
    else:
        raise StatementError(0, f"no statement format for channel {channel!r}")
    return Statement(channel=channel, lines=lines, sha256=digest(data))
