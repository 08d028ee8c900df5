"""Quote tokens: what a quote promised, signed by the platform, so that order creation can
check it without a database read and a payer or merchant cannot alter a discount on the way.

A token is `base64url(json) "." base64url(hmac-sha256)` with a key derived from
FULEMA_PLATFORM_SECRET for this purpose only. It binds the merchant, amount, channel, payer,
store and expiry; the discount lines carry their amounts, the random seed of a 随机减 draw
(stored with the redemption for audit) and the points used.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson

from fulema.core.config import Settings
from fulema.core.errors import ErrorCode, FulemaError
from fulema.core.money import Money
from fulema.marketing.domain import Funder, Kind, Line


@dataclass(frozen=True)
class QuotedLine:
    line: Line
    seed: str | None = None
    points: int | None = None


@dataclass(frozen=True)
class Quote:
    merchant_id: str
    amount: Money
    channel: str
    payer_id: str | None
    store_id: str | None
    expires_at: datetime
    lines: tuple[QuotedLine, ...]

    @property
    def discount(self) -> Money:
        return Money(sum(q.line.amount.fen for q in self.lines))

    @property
    def payable(self) -> Money:
        return self.amount - self.discount


def _key(settings: Settings) -> bytes:
    return hmac.new(settings.platform_secret.encode(), b"fulema.marketing.quote.v1",
                    hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(settings: Settings, quote: Quote) -> str:
    body = orjson.dumps({
        "v": 1, "m": quote.merchant_id, "a": quote.amount.fen, "c": quote.channel,
        "p": quote.payer_id, "s": quote.store_id, "x": int(quote.expires_at.timestamp()),
        "l": [[q.line.kind.value, q.line.ref, q.line.funder.value, q.line.amount.fen, q.seed,
               q.points] for q in quote.lines]})
    mac = hmac.new(_key(settings), body, hashlib.sha256).digest()
    return f"{_b64(body)}.{_b64(mac)}"


def read(settings: Settings, token: str, *, now: datetime) -> Quote:
    """The quote a token carries; QUOTE_INVALID if it was not signed by us (or altered),
    QUOTE_EXPIRED if it is past its time."""
    try:
        body_part, mac_part = token.split(".")
        body, mac = _unb64(body_part), _unb64(mac_part)
    except ValueError as exc:
        raise FulemaError(ErrorCode.QUOTE_INVALID, "the quote is not readable") from exc
    if not hmac.compare_digest(mac, hmac.new(_key(settings), body, hashlib.sha256).digest()):
        raise FulemaError(ErrorCode.QUOTE_INVALID, "the quote was not issued by the platform "
                                                   "or was altered")
    try:
        d = orjson.loads(body)
        quote = Quote(
            merchant_id=d["m"], amount=Money(d["a"]), channel=d["c"], payer_id=d["p"],
            store_id=d["s"], expires_at=datetime.fromtimestamp(d["x"], UTC),
            lines=tuple(QuotedLine(Line(Kind(k), Funder(f), Money(a), ref), seed, pts)
                        for k, ref, f, a, seed, pts in d["l"]))
    except (KeyError, ValueError, TypeError) as exc:  # signed by us, so only an old version
        raise FulemaError(ErrorCode.QUOTE_INVALID, "the quote's format is unknown") from exc
    if quote.expires_at <= now:
        raise FulemaError(ErrorCode.QUOTE_EXPIRED)
    return quote


def check_matches(quote: Quote, *, merchant_id: str, amount: Money, channel: str,
                  payer_id: str | None, store_id: str | None) -> None:
    """QUOTE_MISMATCH unless the quote was made for exactly this order."""
    for name, mine, theirs in (("merchant", merchant_id, quote.merchant_id),
                               ("amount", amount.fen, quote.amount.fen),
                               ("channel", channel, quote.channel),
                               ("payer_id", payer_id, quote.payer_id),
                               ("store_id", store_id, quote.store_id)):
        if mine != theirs:
            raise FulemaError(ErrorCode.QUOTE_MISMATCH,
                              f"the quote was made for another {name} than this order's")
