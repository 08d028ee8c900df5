"""UnionPay 全渠道 (ACP 5.1.0) wire format and signatures, shared by the adapter and the sandbox.

Requests and back notifications are `application/x-www-form-urlencoded` forms. Synchronous
responses are a raw ``key=value&key=value`` string WITHOUT URL encoding (values such as the
PEM ``signPubKeyCert`` keep their ``=``/``+``/newlines); UnionPay's SDKs split it on ``&``
outside ``{...}`` and on the first ``=``, and so does `decode_response`.

Signing (the string is every field except ``signature``, sorted by key, ``k=v`` joined by
``&``):

* signMethod ``01``: hex(SHA-256(string)) is signed with SHA256withRSA (PKCS#1 v1.5); the
  signature is base64. ``certId`` names the signing certificate (its serial number).
* signMethod ``02`` (Fulema's national-cryptography variant, see docs/channels/unionpay.md):
  hex(SM3(string)) is signed with SM2 (GB/T 32918.2, default user id); the signature is
  base64 of the 64-byte r||s.
* signMethod ``11`` (UnionPay's secure-key SHA-256): the signature is
  hex(SHA-256(string + "&" + hex(SHA-256(secureKey)))), lower-case; no certId is sent.
* signMethod ``12`` (secure-key SM3): the same shape with SM3 in both places.

The secure key (安全密钥) is shared by the merchant and UnionPay, so the same key signs and
verifies both directions.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import parse_qsl, urlencode

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from fulema.core import crypto, gm

VERSION = "5.1.0"
ENCODING = "UTF-8"
SIGN_RSA = "01"
SIGN_SM2 = "02"
SIGN_SHA256_KEY = "11"
SIGN_SM3_KEY = "12"
CERT_METHODS = (SIGN_RSA, SIGN_SM2)  # asymmetric: the message carries certId
SECURE_KEY_METHODS = (SIGN_SHA256_KEY, SIGN_SM3_KEY)  # shared secure key, no certId
SIGN_METHODS = CERT_METHODS + SECURE_KEY_METHODS
BEIJING = timezone(timedelta(hours=8))


# --- signing ---------------------------------------------------------------------------------

def sign_string(fields: Mapping[str, str]) -> str:
    return "&".join(f"{k}={fields[k]}" for k in sorted(fields) if k != "signature")


def _hash_hex(data: bytes, method: str) -> str:
    """SM3 for the national-cryptography methods (02, 12), SHA-256 for the others."""
    if method in (SIGN_SM2, SIGN_SM3_KEY):
        return gm.sm3_hex(data)
    return hashlib.sha256(data).hexdigest()


def digest_hex(fields: Mapping[str, str], method: str) -> str:
    return _hash_hex(sign_string(fields).encode("utf-8"), method)


def secure_key_signature(fields: Mapping[str, str], method: str, secure_key: str) -> str:
    """signMethod 11/12: hash(string + "&" + hash(secureKey)), both lower-case hex."""
    if method not in SECURE_KEY_METHODS:
        raise ValueError(f"signMethod {method!r} does not use the secure key")
    if not secure_key:
        raise ValueError(f"signMethod {method} needs a secure key")
    key_hex = _hash_hex(secure_key.encode("utf-8"), method)
    return _hash_hex(f"{sign_string(fields)}&{key_hex}".encode(), method)


def sign_fields(fields: Mapping[str, str], *, method: str, rsa_key: rsa.RSAPrivateKey,
                sm2_key: tuple[str, str], secure_key: str = "") -> str:
    """The ``signature`` value for fields (which already carry signMethod, and certId for the
    certificate methods 01/02). ``secure_key`` is needed for 11 and 12 only."""
    if method in SECURE_KEY_METHODS:
        return secure_key_signature(fields, method, secure_key)
    digest = digest_hex(fields, method)
    if method == SIGN_RSA:
        return crypto.rsa_sha256_sign(rsa_key, digest)
    if method == SIGN_SM2:
        raw = bytes.fromhex(gm.sm2_sign(sm2_key[0], sm2_key[1], digest.encode()))
        return base64.b64encode(raw).decode()
    raise ValueError(f"unsupported signMethod {method!r}")


def verify_fields(fields: Mapping[str, str], *, rsa_public: rsa.RSAPublicKey,
                  sm2_public: str, secure_key: str = "") -> bool:
    """True only if the signature matches under the signMethod the fields declare (11/12
    only when a secure key is given)."""
    method = fields.get("signMethod", "")
    signature = fields.get("signature", "")
    if not signature or method not in SIGN_METHODS:
        return False
    if method in SECURE_KEY_METHODS:
        if not secure_key:
            return False
        expected = secure_key_signature(fields, method, secure_key)
        return hmac.compare_digest(expected.encode(), signature.encode())
    digest = digest_hex(fields, method)
    if method == SIGN_RSA:
        return crypto.rsa_sha256_verify(rsa_public, digest, signature)
    try:
        raw = base64.b64decode(signature, validate=True)
    except (binascii.Error, ValueError):
        return False
    return len(raw) == 64 and gm.sm2_verify(sm2_public, digest.encode(), raw.hex())


def rsa_cert_id(public: rsa.RSAPublicKey) -> str:
    """A stable decimal certId for a development RSA key (real ones are certificate serials)."""
    der = public.public_bytes(serialization.Encoding.DER,
                              serialization.PublicFormat.SubjectPublicKeyInfo)
    return str(int.from_bytes(hashlib.sha256(der).digest()[:5], "big"))


def sm2_cert_id(public_hex: str) -> str:
    return str(int.from_bytes(gm.sm3_digest(bytes.fromhex(public_hex))[:5], "big"))


# --- encoding --------------------------------------------------------------------------------

def encode_form(fields: Mapping[str, str]) -> str:
    return urlencode(list(fields.items()))


def decode_form(body: bytes) -> dict[str, str]:
    """A form body as a dict; ValueError on bad encoding or a repeated key."""
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValueError("not a UTF-8 form body") from exc
    result: dict[str, str] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"repeated field {key}")
        result[key] = value
    return result


def encode_response(fields: Mapping[str, str]) -> str:
    return "&".join(f"{k}={v}" for k, v in fields.items())


def decode_response(text: str) -> dict[str, str]:
    """Parse a raw response the way UnionPay's SDK does; ValueError on anything else."""
    result: dict[str, str] = {}
    depth = 0
    start = 0
    parts: list[str] = []
    for i, ch in enumerate(text):
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        elif ch == "&" and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    for part in parts:
        key, sep, value = part.partition("=")
        if not sep or not key or not key.isascii() or not key.isalnum() or key in result:
            raise ValueError("malformed UnionPay response")
        result[key] = value
    return result


# --- ids and times ---------------------------------------------------------------------------

def to_order_id(fulema_id: str) -> str:
    """UnionPay orderId (AN8..40, no '-' or '_') for a Fulema id such as ``ord_0190...``.

    Fulema ids are lowercase ``[0-9a-z_]``; '_' becomes 'Z', which such ids never contain, so
    the mapping is reversible without storing anything.
    """
    if not 8 <= len(fulema_id) <= 40 or any(
            not (c.isdigit() or "a" <= c <= "z" or c == "_") for c in fulema_id):
        raise ValueError(f"id {fulema_id!r} cannot be a UnionPay orderId")
    return fulema_id.replace("_", "Z")


def from_order_id(order_id: str) -> str:
    return order_id.replace("Z", "_")


def beijing(dt: datetime) -> str:
    return dt.astimezone(BEIJING).strftime("%Y%m%d%H%M%S")


def txn_time_for(fulema_id: str) -> str:
    """txnTime (Beijing, yyyyMMddHHmmss) of the transaction named by a `core.ids` id.

    UnionPay finds a transaction by orderId + txnTime; deriving txnTime from the id's own
    millisecond timestamp lets query/refund find it again without storing it.
    """
    _, _, rest = fulema_id.rpartition("_")
    try:
        ms = int(rest[:12], 16)
        return beijing(datetime.fromtimestamp(ms / 1000, UTC))
    except (ValueError, OverflowError, OSError) as exc:
        raise ValueError(f"id {fulema_id!r} carries no timestamp") from exc


def parse_beijing(value: str) -> datetime:
    return datetime.strptime(value, "%Y%m%d%H%M%S").replace(tzinfo=BEIJING)
