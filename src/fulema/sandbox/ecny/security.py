"""The `ecny/1` message security as the institution (the sandbox) implements it.

Written from docs/channels/ecny.md ("Transport and signing", "SM4 envelopes"), NOT imported
from `fulema.channels.ecny`: the adapter has its own implementation and the duplication is
intended, so a mistake on one side shows up as a refusal instead of being shared by both.
Generic primitives (SM2, SM3, SM4 in `fulema.core.gm`) are shared.

* Headers `X-Ecny-Merchant-Id` (requests), `X-Ecny-Timestamp` (Unix seconds), `X-Ecny-Nonce`,
  `X-Ecny-Signature` (SM2 with SM3 and user id 1234567812345678, hex r||s), `X-Ecny-Serial`
  (first 16 hex digits of SM3 of the signer's public key).
* Request string: ``METHOD\\nAPI-PATH\\ntimestamp\\nnonce\\nbody\\n`` (API-PATH = the path after
  the base URL, with the query string); answers and callbacks: ``timestamp\\nnonce\\nbody\\n``.
* Refusals (401): SIGNATURE_MISSING, TIMESTAMP_EXPIRED (more than 300 s off), KEY_SERIAL_UNKNOWN,
  SIGNATURE_INVALID, NONCE_REPLAYED (a nonce seen in the last 10 minutes).
* Envelopes ``{alg, key_id, iv, aad, data}``: SM4_GCM (12-byte IV, ciphertext||tag, additional
  data ``merchant_id|out_trade_no``) or SM4_CBC (16-byte IV, PKCS#7, `aad` must match).
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta, timezone
from typing import Any

import orjson

from fulema.core.clock import clock
from fulema.core.gm import (
    sm2_public_key_from_private,
    sm2_sign,
    sm2_verify,
    sm3_hex,
    sm4_cbc_decrypt,
    sm4_cbc_encrypt,
    sm4_gcm_decrypt,
    sm4_gcm_encrypt,
)

CST = timezone(timedelta(hours=8), "CST")  # times are ISO 8601 in China Standard Time
H_MERCHANT = "X-Ecny-Merchant-Id"
H_TIMESTAMP = "X-Ecny-Timestamp"
H_NONCE = "X-Ecny-Nonce"
H_SIGNATURE = "X-Ecny-Signature"
H_SERIAL = "X-Ecny-Serial"
WINDOW = 300  # seconds either side of the institution's clock
NONCE_MEMORY = 600  # seconds a nonce is remembered
ALGORITHMS = ("SM4_GCM", "SM4_CBC")


def request_bytes(method: str, path: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    return f"{method.upper()}\n{path}\n{timestamp}\n{nonce}\n".encode() + body + b"\n"


def message_bytes(timestamp: str, nonce: str, body: bytes) -> bytes:
    return f"{timestamp}\n{nonce}\n".encode() + body + b"\n"


def serial_of(public_key_hex: str) -> str:
    return sm3_hex(bytes.fromhex(public_key_hex))[:16]


@dataclass(frozen=True)
class InstitutionSigner:
    """The institution's SM2 key: signs every answer and callback."""

    private_key: str
    public_key: str

    @classmethod
    def from_private(cls, private_key: str) -> InstitutionSigner:
        return cls(private_key, sm2_public_key_from_private(private_key))

    def sign_message(self, body: bytes) -> dict[str, str]:
        ts, nonce = str(clock.timestamp()), secrets.token_hex(16)
        return {H_TIMESTAMP: ts, H_NONCE: nonce,
                H_SIGNATURE: sm2_sign(self.private_key, self.public_key,
                                      message_bytes(ts, nonce, body)),
                H_SERIAL: serial_of(self.public_key)}


class RequestGuard:
    """Checks a merchant's signed request against the documented rules. The nonce is
    remembered only once the signature is good, so a forged request cannot burn a real one."""

    def __init__(self, merchant_public_key: str) -> None:
        self.public_key = merchant_public_key
        self._seen: dict[str, int] = {}

    def check(self, headers: Mapping[str, str], method: str, paths: Iterable[str],
              body: bytes) -> str | None:
        """None when the request is good under any of `paths` (the API path as signed), else
        the documented error code."""
        h = {k.lower(): v for k, v in headers.items()}
        ts, nonce = h.get(H_TIMESTAMP.lower(), ""), h.get(H_NONCE.lower(), "")
        signature = h.get(H_SIGNATURE.lower(), "")
        if not ts or not nonce or not signature:
            return "SIGNATURE_MISSING"
        now = clock.timestamp()
        if not (ts.isascii() and ts.isdigit()) or abs(now - int(ts)) > WINDOW:
            return "TIMESTAMP_EXPIRED"
        serial = h.get(H_SERIAL.lower())
        if serial is not None and serial != serial_of(self.public_key):
            return "KEY_SERIAL_UNKNOWN"
        if not any(sm2_verify(self.public_key, request_bytes(method, p, ts, nonce, body),
                              signature) for p in dict.fromkeys(paths)):
            return "SIGNATURE_INVALID"
        if self._seen.get(nonce, 0) >= now:
            return "NONCE_REPLAYED"
        if len(self._seen) > 10_000:
            self._seen = {n: until for n, until in self._seen.items() if until >= now}
        self._seen[nonce] = now + NONCE_MEMORY
        return None


def aad(merchant_id: str, out_trade_no: str) -> str:
    return f"{merchant_id}|{out_trade_no}"


def seal(key: bytes, key_id: str, alg: str, payload: dict[str, Any], bound_to: str
         ) -> dict[str, str]:
    plain = orjson.dumps(payload)
    if alg == "SM4_GCM":
        iv = secrets.token_bytes(12)
        data = sm4_gcm_encrypt(key, iv, plain, bound_to.encode())
    elif alg == "SM4_CBC":
        iv = secrets.token_bytes(16)
        data = sm4_cbc_encrypt(key, iv, plain)
    else:
        raise ValueError(f"unknown alg {alg}")
    return {"alg": alg, "key_id": key_id, "iv": base64.b64encode(iv).decode(),
            "aad": bound_to, "data": base64.b64encode(data).decode()}


def unseal(key: bytes, key_id: str, envelope: object, bound_to: str) -> dict[str, Any]:
    """The envelope's JSON object; ValueError for anything wrong, never a partial result."""
    if not isinstance(envelope, dict) or envelope.get("alg") not in ALGORITHMS:
        raise ValueError("not an SM4 envelope")
    if envelope.get("key_id") != key_id:
        raise ValueError("unknown data key id")
    try:
        iv = base64.b64decode(str(envelope["iv"]), validate=True)
        data = base64.b64decode(str(envelope["data"]), validate=True)
    except (KeyError, ValueError) as exc:
        raise ValueError("envelope is not base64") from exc
    if envelope["alg"] == "SM4_GCM":
        plain = sm4_gcm_decrypt(key, iv, data, bound_to.encode())
    else:
        if envelope.get("aad") != bound_to:
            raise ValueError("envelope belongs to another order")
        plain = sm4_cbc_decrypt(key, iv, data)
    try:
        value = orjson.loads(plain)
    except orjson.JSONDecodeError as exc:
        raise ValueError("envelope plaintext is not JSON") from exc
    if not isinstance(value, dict):
        raise ValueError("envelope plaintext is not an object")
    return value


def mask_wallet(wallet_id: str) -> str:
    """First 4 and last 4 digits (the institution and the wallet), 8 stars between."""
    return f"{wallet_id[:4]}********{wallet_id[-4:]}" if len(wallet_id) >= 8 else "****"
