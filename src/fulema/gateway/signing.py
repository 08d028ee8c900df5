"""The merchant request signature, documented in docs/api.md.

Canonical string (the same shape WeChat Pay v3 uses, so bank integrators know it):

    METHOD \\n PATH_WITH_QUERY \\n TIMESTAMP \\n NONCE \\n BODY \\n

Headers: X-Fulema-App-Id, X-Fulema-Timestamp (unix seconds), X-Fulema-Nonce (8-64 chars),
X-Fulema-Sign-Type (HMAC-SHA256, the default, or RSA-SHA256) and X-Fulema-Signature
(lower-case hex HMAC, or base64 RSA). Notifications to the merchant are signed over
`TIMESTAMP.BODY` (as Stripe does) with the app's secret.
"""

from __future__ import annotations

from dataclasses import dataclass

from fulema.core import crypto
from fulema.core.ids import new_token

HMAC = "HMAC-SHA256"
RSA = "RSA-SHA256"
H_APP_ID = "x-fulema-app-id"
H_TIMESTAMP = "x-fulema-timestamp"
H_NONCE = "x-fulema-nonce"
H_SIGN_TYPE = "x-fulema-sign-type"
H_SIGNATURE = "x-fulema-signature"


def canonical_string(method: str, path: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    head = f"{method.upper()}\n{path}\n{timestamp}\n{nonce}\n".encode()
    return head + body + b"\n"


@dataclass(frozen=True)
class SignedHeaders:
    headers: dict[str, str]


def sign_request(*, app_id: str, secret: str | None, method: str, path: str, body: bytes,
                 timestamp: int, nonce: str | None = None,
                 rsa_private_key_pem: str | None = None) -> dict[str, str]:
    """Headers a merchant sends. Used by the demo, the benchmark and the tests as a client."""
    nonce = nonce or new_token(12)
    message = canonical_string(method, path, str(timestamp), nonce, body)
    if rsa_private_key_pem:
        sign_type = RSA
        signature = crypto.rsa_sha256_sign(crypto.load_private_key(rsa_private_key_pem), message)
    else:
        if secret is None:
            raise ValueError("an HMAC signature needs the secret")
        sign_type = HMAC
        signature = crypto.hmac_sha256_hex(secret, message)
    return {"X-Fulema-App-Id": app_id, "X-Fulema-Timestamp": str(timestamp),
            "X-Fulema-Nonce": nonce, "X-Fulema-Sign-Type": sign_type,
            "X-Fulema-Signature": signature, "Content-Type": "application/json"}


def notification_signature(secret: str, timestamp: int, body: bytes) -> str:
    return crypto.hmac_sha256_hex(secret, str(timestamp).encode() + b"." + body)


def verify_notification(secret: str, header: str, body: bytes, *, now: int,
                        tolerance: int = 300) -> bool:
    """What a merchant runs on our notification: header `t=<unix>,v1=<hex>`."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        ts = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(now - ts) > tolerance:
        return False
    return crypto.hmac_sha256_verify(secret, str(ts).encode() + b"." + body, parts.get("v1", ""))
