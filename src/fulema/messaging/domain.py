"""Pure rules of the message center: how an amount is spoken, how a speaker message is signed
and checked, how a device drops a message it has already played, and what an acknowledgement
must look like. No I/O: the platform and the speaker simulator share these functions, so the
two sides cannot disagree about the wire format.

Amounts are integer fen (`core.money.Money` outside); the spoken form is the one Chinese cloud
speakers use: 收款十二元五角, 一千零一元零一分, 五分.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections import OrderedDict
from typing import Any

DIGITS = "零一二三四五六七八九"
_SECTION_UNITS = ((1000, "千"), (100, "百"), (10, "十"), (1, ""))
_GROUP_UNITS = ("", "万", "亿", "万亿")
MAX_SPOKEN_FEN = 10**16 - 1  # below 一万亿 (10^12) yuan × 100: far above any order


def integer_words(n: int) -> str:
    """A non-negative integer read aloud in Chinese: 10 十, 110 一百一十, 1001 一千零一,
    10010 一万零一十, 100000 十万. One 零 stands for any run of zeros inside the number;
    trailing zeros are silent."""
    if n < 0:
        raise ValueError("integer_words: negative")
    if n == 0:
        return "零"
    groups: list[int] = []
    while n:
        groups.append(n % 10000)
        n //= 10000
    if len(groups) > len(_GROUP_UNITS):
        raise ValueError("integer_words: too large")
    out = ""
    gap = False  # a zero group (or zeros) since the last digit spoken
    for index in reversed(range(len(groups))):
        group = groups[index]
        if group == 0:
            gap = gap or bool(out)
            continue
        if out and (gap or group < 1000):
            out += "零"
        out += _section_words(group) + _GROUP_UNITS[index]
        gap = False
    return out[1:] if out.startswith("一十") else out


def _section_words(n: int) -> str:
    """1..9999 with its 千百十 units; inner zeros collapse into one 零."""
    out, zero = "", False
    for step, unit in _SECTION_UNITS:
        digit = n // step % 10
        if digit == 0:
            zero = zero or bool(out)
            continue
        if zero:
            out += "零"
            zero = False
        out += DIGITS[digit] + unit
    return out


def amount_words(fen: int) -> str:
    """Fen as a speaker says it: 1250 十二元五角, 5 五分, 10000 一百元, 1010 十元一角,
    100101 一千零一元零一分, 0 零元. A 零 joins yuan to fen when the jiao is zero."""
    if fen < 0 or fen > MAX_SPOKEN_FEN:
        raise ValueError("amount_words: fen out of range")
    yuan, jiao, cents = fen // 100, fen // 10 % 10, fen % 10
    out = f"{integer_words(yuan)}元" if yuan else ""
    if jiao:
        out += DIGITS[jiao] + "角"
    if cents:
        if yuan and not jiao:
            out += "零"
        out += DIGITS[cents] + "分"
    return out or "零元"


def yuan_text(fen: int) -> str:
    """12.50: what the feed page and the message's `amount_yuan` show."""
    return f"{fen // 100}.{fen % 100:02d}"


# --- signing ------------------------------------------------------------------------------


def canonical(body: dict[str, Any]) -> bytes:
    """The bytes a signature covers: the message without `sig`, keys sorted, no spaces, UTF-8."""
    unsigned = {k: v for k, v in body.items() if k != "sig"}
    return json.dumps(unsigned, sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False).encode("utf-8")


def device_key(secret: str, speaker_id: str) -> bytes:
    """A speaker's own signing key, derived from the platform's speaker secret: one key per
    device without a table of keys, and a leaked device key says nothing of another's."""
    return hmac.new(secret.encode(), f"speaker-sign:{speaker_id}".encode(), hashlib.sha256).digest()


def device_password(secret: str, speaker_id: str) -> str:
    """A speaker's MQTT password (its username is its speaker id), derived the same way; the
    broker's password file holds only its hash (`mosquitto_passwd`)."""
    return hmac.new(secret.encode(), f"speaker-mqtt:{speaker_id}".encode(),
                    hashlib.sha256).hexdigest()[:32]


def sign(key: bytes, body: dict[str, Any]) -> str:
    return hmac.new(key, canonical(body), hashlib.sha256).hexdigest()


def verify(key: bytes, body: dict[str, Any]) -> bool:
    sig = body.get("sig")
    return isinstance(sig, str) and hmac.compare_digest(sig, sign(key, body))


def speaker_message(*, key: bytes, message_id: str, speaker_id: str, amount_fen: int,
                    channel: str, text: str, ts_ms: int, order_id: str) -> dict[str, Any]:
    """The signed JSON a speaker receives (docs/messaging.md documents every field)."""
    body: dict[str, Any] = {"v": 1, "message_id": message_id, "speaker_id": speaker_id,
                            "kind": "payment", "amount": amount_fen,
                            "amount_yuan": yuan_text(amount_fen), "channel": channel,
                            "text": text, "ts": ts_ms, "order_id": order_id}
    body["sig"] = sign(key, body)
    return body


# --- the device side ------------------------------------------------------------------------


class SeenIds:
    """The message ids a device has played, the newest `capacity` of them: a resend (lost
    acknowledgement, catch-up after reconnecting) is acknowledged again but not played twice."""

    def __init__(self, capacity: int = 1024) -> None:
        self.capacity = capacity
        self._ids: OrderedDict[str, None] = OrderedDict()

    def first_time(self, message_id: str) -> bool:
        if message_id in self._ids:
            self._ids.move_to_end(message_id)
            return False
        self._ids[message_id] = None
        if len(self._ids) > self.capacity:
            self._ids.popitem(last=False)
        return True


class MalformedAck(ValueError):
    """An acknowledgement that is not {"message_id": "..."} (logged and dropped)."""


def parse_ack(raw: bytes) -> str:
    """The message id an acknowledgement names; MalformedAck for anything else."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedAck("not JSON") from exc
    if not isinstance(body, dict):
        raise MalformedAck("not a JSON object")
    message_id = body.get("message_id")
    if not isinstance(message_id, str) or not 1 <= len(message_id) <= 40:
        raise MalformedAck("message_id missing or not a short string")
    return message_id
