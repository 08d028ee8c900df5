"""Alipay OpenAPI wire protocol: settings, keys, RSA2 signing and response extraction.

The adapter's side only: the sandbox (`sandbox/alipay/protocol.py`) implements the same rules
again from Alipay's documentation, so a mistake here is caught there rather than mirrored, and
both are checked against Alipay's published vectors (tests/sandbox/test_alipay_vectors.py).
The rules, as Alipay documents them:

* request: every parameter except ``sign`` (and empty values), sorted by key, ``k=v`` joined by
  ``&``, values raw (not URL-encoded); SHA256withRSA with the app's private key, base64.
* response: ``{"<method_with_underscores>_response": {...}, "sign": "..."}``; the signature
  covers the *exact text* of the ``*_response`` node as it appears in the body, so the node is
  cut out of the body, never re-serialised (key order, spacing and ``\\/`` escapes matter).
* async notification: the form fields minus ``sign`` and ``sign_type``, URL-decoded, sorted.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from fulema.core import crypto
from fulema.core.channel_settings import AlipaySection, refuse_outside_development
from fulema.core.config import Settings

BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
SIGN_TYPE = "RSA2"
VERSION = "1.0"
CHARSET = "utf-8"
FORMAT = "JSON"
GATEWAY_PATH = "/gateway.do"
ERROR_NODE = "error_response"

# Common response codes (网关返回码) and their fixed `msg` texts.
SUCCESS = "10000"
PAYING = "10003"  # alipay.trade.pay: the payer must still confirm (password) in the app
UNKNOWN_ERROR = "20000"
MISSING_ARGUMENTS = "40001"
INVALID_ARGUMENTS = "40002"
BUSINESS_FAILED = "40004"
MESSAGES = {
    SUCCESS: "Success",
    PAYING: "order success pay inprocess",
    UNKNOWN_ERROR: "Service Currently Unavailable",
    MISSING_ARGUMENTS: "Missing Required Arguments",
    INVALID_ARGUMENTS: "Invalid Arguments",
    "40006": "Insufficient Permissions",
    BUSINESS_FAILED: "Business Failed",
}


def _pem(text: str, kind: str) -> str:
    """Alipay hands keys out as bare base64 lines; wrap them so `cryptography` can read them."""
    if "-----BEGIN" in text:
        return text
    body = "".join(text.split())
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return f"-----BEGIN {kind}-----\n" + "\n".join(lines) + f"\n-----END {kind}-----\n"


def _keys_dir(settings: Settings) -> Path:
    return settings.data_dir / "keys"


def app_private_key(settings: Settings, ali: AlipaySection) -> rsa.RSAPrivateKey:
    if ali.private_key_path is not None:
        return crypto.load_private_key(_pem(ali.private_key_path.read_text(), "PRIVATE KEY"))
    refuse_outside_development(settings, ["FULEMA_ALIPAY_PRIVATE_KEY_PATH is not set"])
    return crypto.load_or_create_rsa_key(_keys_dir(settings) / "alipay_app.pem")


def platform_dev_key(settings: Settings) -> rsa.RSAPrivateKey:
    """The sandbox's signing key (development only)."""
    return crypto.load_or_create_rsa_key(_keys_dir(settings) / "alipay_platform.pem")


def alipay_public_key(settings: Settings, ali: AlipaySection) -> rsa.RSAPublicKey:
    if ali.alipay_public_key_path is None:  # the sandbox's key: development only
        refuse_outside_development(settings, ["FULEMA_ALIPAY_ALIPAY_PUBLIC_KEY_PATH is not set"])
        return platform_dev_key(settings).public_key()
    text = ali.alipay_public_key_path.read_text()
    if "PRIVATE KEY" in text:  # a development install pointing at the sandbox's own key file
        return crypto.load_private_key(text).public_key()
    return crypto.load_public_key(_pem(text, "PUBLIC KEY"))


# --- time ------------------------------------------------------------------------------------

def beijing_time(when: datetime) -> str:
    return when.astimezone(BEIJING).strftime(TIME_FORMAT)


def parse_beijing(text: str) -> datetime:
    return datetime.strptime(text, TIME_FORMAT).replace(tzinfo=BEIJING)


# --- signing ---------------------------------------------------------------------------------

def sign_content(params: dict[str, str], exclude: tuple[str, ...] = ("sign",)) -> str:
    """Sorted `k=v&...` over the non-empty parameters, excluding `exclude`."""
    return "&".join(f"{k}={params[k]}" for k in sorted(params)
                    if k not in exclude and params[k] not in ("", None))


def sign_params(params: dict[str, str], key: rsa.RSAPrivateKey) -> str:
    return crypto.rsa_sha256_sign(key, sign_content(params))


def verify_params(params: dict[str, str], key: rsa.RSAPublicKey) -> bool:
    sign = params.get("sign", "")
    return bool(sign) and crypto.rsa_sha256_verify(key, sign_content(params), sign)


def notify_content(fields: dict[str, str]) -> str:
    """What an async notification's `sign` covers: everything but sign and sign_type."""
    return sign_content(fields, exclude=("sign", "sign_type"))


def verify_notify(fields: dict[str, str], key: rsa.RSAPublicKey) -> bool:
    sign = fields.get("sign", "")
    return bool(sign) and crypto.rsa_sha256_verify(key, notify_content(fields), sign)


def response_key(method: str) -> str:
    return method.replace(".", "_") + "_response"


def encode_response(method_or_node: str, node: dict[str, Any],
                    key: rsa.RSAPrivateKey | None) -> str:
    """A gateway answer as Alipay writes it: compact JSON with `/` escaped as `\\/`, the
    signature over the node's exact text. `key=None` leaves it unsigned (gateway errors)."""
    name = method_or_node if method_or_node.endswith("_response") else response_key(
        method_or_node)
    text = json.dumps(node, ensure_ascii=False, separators=(",", ":")).replace("/", "\\/")
    body = f'{{"{name}":{text}'
    if key is not None:
        body += f',"sign":"{crypto.rsa_sha256_sign(key, text)}"'
    return body + "}"


def _skip_ws(text: str, i: int) -> int:
    while i < len(text) and text[i] in " \t\r\n":
        i += 1
    return i


def top_level(text: str) -> dict[str, tuple[Any, str]]:
    """Each top-level member of a JSON object with its exact source text.

    `json` gives no source positions for members, so this walks the top level by hand and
    lets `JSONDecoder.raw_decode` parse (and measure) each key and value: the signed node is
    then the very substring Alipay signed. Raises ValueError on anything but one JSON object.
    """
    decoder = json.JSONDecoder()
    i = _skip_ws(text, 0)
    if text[i:i + 1] != "{":
        raise ValueError("not a JSON object")
    i = _skip_ws(text, i + 1)
    members: dict[str, tuple[Any, str]] = {}
    if text[i:i + 1] == "}":
        return members
    while True:
        name, i = decoder.raw_decode(text, i)
        if not isinstance(name, str):
            raise ValueError("object key is not a string")
        i = _skip_ws(text, i)
        if text[i:i + 1] != ":":
            raise ValueError("missing ':'")
        start = _skip_ws(text, i + 1)
        value, i = decoder.raw_decode(text, start)
        members[name] = (value, text[start:i])
        i = _skip_ws(text, i)
        if text[i:i + 1] == ",":
            i = _skip_ws(text, i + 1)
            continue
        if text[i:i + 1] == "}" and not text[i + 1:].strip():
            return members
        raise ValueError("malformed object")


def signed_node_verifies(node_text: str, sign: str, key: rsa.RSAPublicKey) -> bool:
    """As Alipay's SDKs do: the raw node text, then once more with `\\/` unescaped."""
    if crypto.rsa_sha256_verify(key, node_text, sign):
        return True
    return "\\/" in node_text and crypto.rsa_sha256_verify(key, node_text.replace("\\/", "/"),
                                                          sign)

