"""A sandbox SMS and push provider: what the message center talks to in development and tests.

Written from the providers' conventions, not from our adapter (it imports nothing of
`fulema.messaging`): an SMS API that checks an HMAC-SHA256 signed `Authorization` header
(`HMAC-SHA256 Credential=<key id>, Timestamp=<unix s>, Nonce=<hex>, Signature=<hex>` over
`POST\\n/v1/sms/send\\n<timestamp>\\n<nonce>\\n<sha256 hex of the body>`, five minutes of
tolerance, nonces not reused) and a JPush-style push API behind HTTP Basic app_key:secret.

It keeps what it accepted (`sms`, `push`) for a test to read, refuses a malformed mainland
mobile number like a real provider (`isv.MOBILE_NUMBER_ILLEGAL`), and fails on demand:
`fail_next = n` answers HTTP 503 to the next n requests, `fail_all = True` to every one.
A message id (`out_id` / `sendno`) seen before is answered again without a second send, as
providers that take an idempotency key do.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from dataclasses import dataclass, field
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

SMS_PATH = "/v1/sms/send"
PUSH_PATH = "/v3/push"
TOLERANCE_SECONDS = 300
_AUTH = re.compile(r"^HMAC-SHA256 Credential=([^,\s]+), Timestamp=(\d+), Nonce=([0-9a-f]{8,64}), "
                   r"Signature=([0-9a-f]{64})$")
_MOBILE = re.compile(r"^1[3-9]\d{9}$")


@dataclass
class NotifyGateway:
    sms_key_id: str
    sms_key_secret: str
    push_app_key: str
    push_master_secret: str
    now: Any = time.time  # seconds since the epoch; a test may pass the platform's clock
    sms: list[dict[str, Any]] = field(default_factory=list)
    push: list[dict[str, Any]] = field(default_factory=list)
    fail_next: int = 0
    fail_all: bool = False
    requests: int = 0
    _nonces: set[str] = field(default_factory=set)
    _sent: dict[str, str] = field(default_factory=dict)  # out_id/sendno -> our id

    def _failing(self) -> bool:
        self.requests += 1
        if self.fail_all:
            return True
        if self.fail_next > 0:
            self.fail_next -= 1
            return True
        return False

    def _sms_auth(self, header: str, body: bytes) -> str | None:
        """None when the request is signed by the key we issued; else the refusal code."""
        match = _AUTH.match(header)
        if match is None:
            return "InvalidAuthorization"
        key_id, ts, nonce, signature = match.groups()
        if key_id != self.sms_key_id:
            return "InvalidAccessKeyId"
        if abs(int(self.now()) - int(ts)) > TOLERANCE_SECONDS:
            return "RequestExpired"
        canonical = f"POST\n{SMS_PATH}\n{ts}\n{nonce}\n{hashlib.sha256(body).hexdigest()}"
        expected = hmac.new(self.sms_key_secret.encode(), canonical.encode(),
                            hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            return "SignatureDoesNotMatch"
        if nonce in self._nonces:
            return "NonceReused"
        self._nonces.add(nonce)
        return None

    def _push_auth(self, header: str) -> bool:
        expected = base64.b64encode(f"{self.push_app_key}:{self.push_master_secret}".encode())
        return hmac.compare_digest(header.encode(), b"Basic " + expected)


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"code": code, "message": message}, status_code=status)


def build_notify_gateway(gateway: NotifyGateway) -> FastAPI:
    app = FastAPI(title="Sandbox SMS and push provider", docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.sandbox = gateway

    @app.post(SMS_PATH)
    async def send_sms(request: Request) -> JSONResponse:
        body = await request.body()
        refused = gateway._sms_auth(request.headers.get("authorization", ""), body)
        if refused is not None:
            return _error(401, refused, "authentication failed")
        if gateway._failing():
            return _error(503, "ServiceUnavailable", "system busy, try later")
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            return _error(400, "InvalidParameter", "body is not JSON")
        if not isinstance(data, dict) or not all(
                isinstance(data.get(k), str) and data.get(k)
                for k in ("phone_numbers", "sign_name", "content", "out_id")):
            return _error(400, "MissingParameter", "phone_numbers, sign_name, content, out_id")
        if not _MOBILE.match(data["phone_numbers"]):
            return _error(400, "isv.MOBILE_NUMBER_ILLEGAL", "invalid mobile number")
        out_id = data["out_id"]
        if out_id not in gateway._sent:
            gateway._sent[out_id] = f"sms{len(gateway._sent) + 1:010d}"
            gateway.sms.append({"phone": data["phone_numbers"], "sign_name": data["sign_name"],
                                "content": data["content"], "out_id": out_id})
        return JSONResponse({"code": "OK", "message": "OK", "biz_id": gateway._sent[out_id]})

    @app.post(PUSH_PATH)
    async def send_push(request: Request) -> JSONResponse:
        if not gateway._push_auth(request.headers.get("authorization", "")):
            return _error(401, "1004", "authentication failed")
        if gateway._failing():
            return _error(503, "1030", "internal service timeout")
        try:
            data = orjson.loads(await request.body())
            targets = data["audience"]["registration_id"]
            alert = data["notification"]["alert"]
            sendno = str(data["options"]["sendno"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return _error(400, "1003", "parameter value is invalid")
        if not (isinstance(targets, list) and targets and isinstance(alert, str) and alert):
            return _error(400, "1003", "audience and alert are required")
        if sendno not in gateway._sent:
            gateway._sent[sendno] = f"{len(gateway._sent) + 1:018d}"
            gateway.push.append({"targets": targets, "alert": alert, "sendno": sendno})
        return JSONResponse({"sendno": sendno, "msg_id": gateway._sent[sendno]})

    return app
