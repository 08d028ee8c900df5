"""e-CNY message security: SM2 signatures, SM4 field envelopes, keys and replay protection.

National cryptography is mandatory for e-CNY, so every request, response and callback is
signed with SM2 (SM3 digest, user id "1234567812345678") and personal data (wallet ids, payer
names, the merchant's receiving wallet) travels only inside SM4 envelopes under a data key the
operating institution issues per merchant. Shared by the adapter and the sandbox so both build
the signing strings identically; docs/channels/ecny.md is the specification.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from fulema.core.clock import clock
from fulema.core.gm import (
    load_or_create_sm2_key,
    sm2_public_key_from_private,
    sm2_sign,
    sm2_verify,
    sm3_hex,
    sm4_cbc_decrypt,
    sm4_cbc_encrypt,
    sm4_gcm_decrypt,
    sm4_gcm_encrypt,
)
from fulema.core.keyfiles import read_or_create
from fulema.core.text import is_ascii_digits

HEADER_MERCHANT = "X-Ecny-Merchant-Id"
HEADER_TIMESTAMP = "X-Ecny-Timestamp"
HEADER_NONCE = "X-Ecny-Nonce"
HEADER_SIGNATURE = "X-Ecny-Signature"
HEADER_SERIAL = "X-Ecny-Serial"
WINDOW_SECONDS = 300
CIPHERS = ("SM4_GCM", "SM4_CBC")


# ------------------------------------------------------------------ signing strings

def request_string(method: str, path: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    """Requests bind method and API path too: `METHOD\\npath\\ntimestamp\\nnonce\\nbody\\n`."""
    head = f"{method.upper()}\n{path}\n{timestamp}\n{nonce}\n".encode()
    return head + body + b"\n"


def message_string(timestamp: str, nonce: str, body: bytes) -> bytes:
    """Responses and callbacks: `timestamp\\nnonce\\nbody\\n`."""
    return f"{timestamp}\n{nonce}\n".encode() + body + b"\n"


def key_serial(public_key_hex: str) -> str:
    """Which key signed: the first 16 hex digits of SM3(public key), so keys can rotate."""
    return sm3_hex(bytes.fromhex(public_key_hex))[:16]


@dataclass(frozen=True)
class Signer:
    private_key: str
    public_key: str

    def headers(self, signed: bytes, timestamp: str, nonce: str) -> dict[str, str]:
        return {HEADER_TIMESTAMP: timestamp, HEADER_NONCE: nonce,
                HEADER_SIGNATURE: sm2_sign(self.private_key, self.public_key, signed),
                HEADER_SERIAL: key_serial(self.public_key)}

    def sign_request(self, method: str, path: str, body: bytes) -> dict[str, str]:
        ts, nonce = fresh()
        return self.headers(request_string(method, path, ts, nonce, body), ts, nonce)

    def sign_message(self, body: bytes) -> dict[str, str]:
        ts, nonce = fresh()
        return self.headers(message_string(ts, nonce, body), ts, nonce)


def fresh() -> tuple[str, str]:
    return str(clock.timestamp()), secrets.token_hex(16)


class ReplayGuard:
    """Checks a signed message: headers present, timestamp within 5 minutes, SM2 signature,
    and (when `remember`) that the nonce is new. In memory per process; the window bounds
    what a second process could accept twice."""

    def __init__(self) -> None:
        self._seen: dict[str, int] = {}

    def check(self, public_key: str, headers: dict[str, str], body: bytes, *,
              method: str | None = None, path: str | None = None,
              remember: bool = True) -> str | None:
        h = {k.lower(): v for k, v in headers.items()}
        ts, nonce = h.get(HEADER_TIMESTAMP.lower(), ""), h.get(HEADER_NONCE.lower(), "")
        sig = h.get(HEADER_SIGNATURE.lower(), "")
        if not ts or not nonce or not sig:
            return "SIGNATURE_MISSING"
        if not is_ascii_digits(ts) or abs(clock.timestamp() - int(ts)) > WINDOW_SECONDS:
            return "TIMESTAMP_EXPIRED"
        serial = h.get(HEADER_SERIAL.lower())
        if serial is not None and serial != key_serial(public_key):
            return "KEY_SERIAL_UNKNOWN"
        signed = (request_string(method, path, ts, nonce, body) if method and path is not None
                  else message_string(ts, nonce, body))
        if not sm2_verify(public_key, signed, sig):
            return "SIGNATURE_INVALID"
        if remember:
            now = clock.timestamp()
            if self._seen.get(nonce, 0) >= now:
                return "NONCE_REPLAYED"
            if len(self._seen) > 10_000:
                self._seen = {n: exp for n, exp in self._seen.items() if exp >= now}
            self._seen[nonce] = now + 2 * WINDOW_SECONDS
        return None


# ------------------------------------------------------------------ SM4 envelopes

def seal(key: bytes, key_id: str, cipher: str, payload: dict[str, Any], aad: str) -> dict[str, str]:
    """Encrypt a JSON object. GCM authenticates `aad` (merchant|order), binding the data to
    one order; CBC has no tag, so there the SM2 signature over the whole body is the integrity."""
    plain = orjson.dumps(payload)
    if cipher == "SM4_GCM":
        iv = secrets.token_bytes(12)
        data = sm4_gcm_encrypt(key, iv, plain, aad.encode())
    elif cipher == "SM4_CBC":
        iv = secrets.token_bytes(16)
        data = sm4_cbc_encrypt(key, iv, plain)
    else:
        raise ValueError(f"unknown cipher {cipher}")
    return {"alg": cipher, "key_id": key_id, "iv": base64.b64encode(iv).decode(),
            "aad": aad, "data": base64.b64encode(data).decode()}


def unseal(key: bytes, key_id: str, envelope: Any, aad: str) -> dict[str, Any]:
    """Decrypt an envelope made for `aad`; ValueError for anything wrong (never a partial)."""
    if not isinstance(envelope, dict) or envelope.get("alg") not in CIPHERS:
        raise ValueError("not an SM4 envelope")
    if envelope.get("key_id") != key_id:
        raise ValueError(f"envelope key {envelope.get('key_id')!r} is not ours ({key_id})")
    try:
        iv = base64.b64decode(str(envelope["iv"]), validate=True)
        data = base64.b64decode(str(envelope["data"]), validate=True)
    except (KeyError, ValueError) as exc:
        raise ValueError("envelope is not base64") from exc
    if envelope["alg"] == "SM4_GCM":
        plain = sm4_gcm_decrypt(key, iv, data, aad.encode())
    else:
        if envelope.get("aad") != aad:
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
    return f"{wallet_id[:4]}********{wallet_id[-4:]}" if len(wallet_id) >= 8 else "****"


# ------------------------------------------------------------------ keys

@dataclass(frozen=True)
class EcnyKeys:
    """What one side holds. The adapter: merchant private + platform public. The sandbox (the
    operating institution): platform private + merchant public. Both: the SM4 data key."""

    merchant: Signer | None
    merchant_public: str
    platform: Signer | None
    platform_public: str
    data_key: bytes


def load_or_create_data_key(path: Path) -> bytes:
    """Development SM4 data key (32 hex digits, mode 0600), shared by adapter and sandbox."""
    return parse_data_key(read_or_create(path, lambda: secrets.token_hex(16)))


def parse_data_key(text: str) -> bytes:
    key = bytes.fromhex(text)
    if len(key) != 16:
        raise ValueError("the e-CNY SM4 data key is 16 bytes (32 hex digits)")
    return key


def signer_from(private_key: str) -> Signer:
    return Signer(private_key, sm2_public_key_from_private(private_key))


def dev_key_pair(path: Path) -> Signer:
    private, public = load_or_create_sm2_key(path)
    return Signer(private, public)
