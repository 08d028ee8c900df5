"""The `bankpay/1` message security and time format as the bank (the sandbox) implements them.

Written from docs/channels/bankpay.md ("Transport and signing"), NOT imported from
`fulema.channels.bankpay`: the adapter has its own implementation and the duplication is
intended, so a mistake on one side shows up as a refusal instead of being shared by both.

Every request, answer and callback carries `X-Bank-Timestamp` (Unix seconds), `X-Bank-Nonce`
and `X-Bank-Signature`: lower-case hex HMAC-SHA256, under the shared secret, of
``timestamp + "\\n" + nonce + "\\n" + body + "\\n"`` (body = the exact bytes, empty for GET).
A timestamp more than 300 s off, or a nonce seen in the last 10 minutes, is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone

from fulema.core.clock import clock

CST = timezone(timedelta(hours=8), "CST")  # the bank books in China Standard Time
H_TIMESTAMP = "X-Bank-Timestamp"
H_NONCE = "X-Bank-Nonce"
H_SIGNATURE = "X-Bank-Signature"
H_MERCHANT = "X-Bank-Merchant-No"
WINDOW = 300  # seconds either side of the bank's clock
NONCE_MEMORY = 600  # seconds a nonce is remembered


def signature(secret: str, timestamp: str, nonce: str, body: bytes) -> str:
    message = timestamp.encode() + b"\n" + nonce.encode() + b"\n" + body + b"\n"
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign_headers(secret: str, body: bytes) -> dict[str, str]:
    """Fresh headers for one message (a retried callback is signed again, new nonce)."""
    ts, nonce = str(clock.timestamp()), secrets.token_hex(16)
    return {H_TIMESTAMP: ts, H_NONCE: nonce, H_SIGNATURE: signature(secret, ts, nonce, body)}


class RequestGuard:
    """Checks a merchant's signed request; remembers a nonce only once the signature holds."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self._seen: dict[str, int] = {}

    def check(self, headers: Mapping[str, str], body: bytes) -> str | None:
        """None when good, else the documented error code."""
        h = {k.lower(): v for k, v in headers.items()}
        ts, nonce = h.get(H_TIMESTAMP.lower(), ""), h.get(H_NONCE.lower(), "")
        sig = h.get(H_SIGNATURE.lower(), "")
        if not ts or not nonce or not sig:
            return "SIGNATURE_MISSING"
        now = clock.timestamp()
        if not (ts.isascii() and ts.isdigit()) or abs(now - int(ts)) > WINDOW:
            return "TIMESTAMP_EXPIRED"
        if not hmac.compare_digest(signature(self.secret, ts, nonce, body), sig):
            return "SIGNATURE_INVALID"
        if self._seen.get(nonce, 0) >= now:
            return "NONCE_REPLAYED"
        if len(self._seen) > 10_000:
            self._seen = {n: until for n, until in self._seen.items() if until >= now}
        self._seen[nonce] = now + NONCE_MEMORY
        return None


def iso(at: datetime) -> str:
    """ISO 8601 with the CST offset, to the second: 2024-05-01T12:00:00+08:00."""
    return at.astimezone(CST).isoformat(timespec="seconds")
