"""SMS and app push behind one interface: `Deliverer.send(message) -> Outcome`.

The interface is real, the provider is configuration (settings `sms_*`, `push_*`). The two
adapters speak provider-style HTTP APIs, modelled on what Chinese SMS and push providers do:

- SMS (`POST <sms_provider_url>/v1/sms/send`): JSON `{phone_numbers, sign_name, content,
  out_id}`, signed with the access key we were issued: header
  `Authorization: HMAC-SHA256 Credential=<key id>, Timestamp=<unix s>, Nonce=<hex>,
  Signature=<hex>`, the signature an HMAC-SHA256 under the key secret of
  `POST\\n/v1/sms/send\\n<timestamp>\\n<nonce>\\n<sha256 hex of the body>`. Answer
  `{"code": "OK", "biz_id": ...}`; any other code is a refusal.
- Push (`POST <push_provider_url>/v3/push`, JPush-style): HTTP Basic `app_key:master_secret`,
  JSON `{platform, audience: {registration_id: [...]}, notification: {alert}, options:
  {sendno}}`. Answer `{"msg_id": ...}`.

Every request goes through the outbound policy (core.outbound: the host resolved once and
checked, the connection pinned to the checked address, no redirects). What we record of a
failure is our own short wording, never the provider's text; the phone appears in logs only
masked.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from typing import Protocol

import httpx
import orjson
import structlog

from fulema.core.clock import clock
from fulema.core.config import Settings
from fulema.core.crypto import hmac_sha256_hex
from fulema.core.outbound import OutboundPolicy, post_bounded

log = structlog.get_logger(__name__)

SMS_PATH = "/v1/sms/send"
PUSH_PATH = "/v3/push"
READ_BYTES = 4096


@dataclass(frozen=True)
class OutgoingMessage:
    delivery_id: str  # our idempotency key at the provider (out_id / sendno)
    channel: str  # sms | push
    recipient: str  # the full phone or push registration id: only ever sent, never logged
    recipient_masked: str
    text: str


@dataclass(frozen=True)
class Outcome:
    ok: bool
    provider_ref: str | None = None
    error: str | None = None  # short, our own wording
    permanent: bool = False  # True: retrying cannot help (the provider refused the number)


class Deliverer(Protocol):
    async def send(self, message: OutgoingMessage) -> Outcome: ...


def sms_signature(secret: str, *, timestamp: int, nonce: str, body: bytes) -> str:
    canonical = f"POST\n{SMS_PATH}\n{timestamp}\n{nonce}\n{hashlib.sha256(body).hexdigest()}"
    return hmac_sha256_hex(secret, canonical)


async def _post(policy: OutboundPolicy, http: httpx.AsyncClient, url: str, body: bytes,
                headers: dict[str, str]) -> tuple[int | None, bytes, str | None]:
    """(status, the head of the answer, our reason when nothing came back), through the
    outbound door shared with the merchant notifications (`core.outbound.post_bounded`)."""
    result = await post_bounded(policy, http, url, body, headers, read_bytes=READ_BYTES)
    return result.status, result.head, result.reason


def _json(head: bytes) -> dict[str, object]:
    try:
        data = orjson.loads(head)
    except orjson.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


@dataclass
class SmsDeliverer:
    base_url: str
    key_id: str
    key_secret: str
    sign_name: str
    http: httpx.AsyncClient
    policy: OutboundPolicy

    async def send(self, message: OutgoingMessage) -> Outcome:
        body = orjson.dumps({"phone_numbers": message.recipient, "sign_name": self.sign_name,
                             "content": message.text, "out_id": message.delivery_id})
        ts, nonce = clock.timestamp(), secrets.token_hex(16)
        auth = (f"HMAC-SHA256 Credential={self.key_id}, Timestamp={ts}, Nonce={nonce}, "
                f"Signature={sms_signature(self.key_secret, timestamp=ts, nonce=nonce, body=body)}")
        status, head, reason = await _post(self.policy, self.http, self.base_url + SMS_PATH,
                                           body, {"Content-Type": "application/json",
                                                  "Authorization": auth})
        outcome = _sms_outcome(status, head, reason)
        log.info("sms.attempt", delivery_id=message.delivery_id, phone=message.recipient_masked,
                 ok=outcome.ok, error=outcome.error)
        return outcome


def _sms_outcome(status: int | None, head: bytes, reason: str | None) -> Outcome:
    if status is None:
        return Outcome(ok=False, error=reason)
    data = _json(head)
    if 200 <= status < 300 and data.get("code") == "OK":
        return Outcome(ok=True, provider_ref=str(data.get("biz_id", ""))[:64] or None)
    code = str(data.get("code", ""))[:64]
    if 400 <= status < 500 and code:  # the provider refused this message: retrying won't help
        return Outcome(ok=False, error=f"refused by the provider ({code})", permanent=True)
    return Outcome(ok=False, error=f"provider answered HTTP {status}")


@dataclass
class PushDeliverer:
    base_url: str
    app_key: str
    master_secret: str
    http: httpx.AsyncClient
    policy: OutboundPolicy

    async def send(self, message: OutgoingMessage) -> Outcome:
        body = orjson.dumps({"platform": "all",
                             "audience": {"registration_id": [message.recipient]},
                             "notification": {"alert": message.text},
                             "options": {"sendno": message.delivery_id}})
        basic = base64.b64encode(f"{self.app_key}:{self.master_secret}".encode()).decode()
        status, head, reason = await _post(self.policy, self.http, self.base_url + PUSH_PATH,
                                           body, {"Content-Type": "application/json",
                                                  "Authorization": f"Basic {basic}"})
        if status is None:
            outcome = Outcome(ok=False, error=reason)
        elif 200 <= status < 300 and _json(head).get("msg_id"):
            outcome = Outcome(ok=True, provider_ref=str(_json(head)["msg_id"])[:64])
        elif status in (400, 404):
            outcome = Outcome(ok=False, error=f"refused by the provider (HTTP {status})",
                              permanent=True)
        else:
            outcome = Outcome(ok=False, error=f"provider answered HTTP {status}")
        log.info("push.attempt", delivery_id=message.delivery_id,
                 target=message.recipient_masked, ok=outcome.ok, error=outcome.error)
        return outcome


def build_deliverers(settings: Settings, http: httpx.AsyncClient) -> dict[str, Deliverer]:
    """The configured providers by delivery channel (`sms`, `push`). An empty base URL means
    the sandbox gateway mounted with the app in development, and no provider elsewhere (the
    channel's messages are then DEAD at once, "no provider")."""
    policy = settings.outbound_policy()
    sandbox = settings.sandbox_url("notify")
    deliverers: dict[str, Deliverer] = {
        "sms": SmsDeliverer(base_url=(settings.sms_provider_url or sandbox).rstrip("/"),
                            key_id=settings.sms_access_key_id,
                            key_secret=settings.sms_access_key_secret,
                            sign_name=settings.sms_sign_name, http=http, policy=policy),
        "push": PushDeliverer(base_url=(settings.push_provider_url or sandbox).rstrip("/"),
                              app_key=settings.push_app_key,
                              master_secret=settings.push_master_secret, http=http,
                              policy=policy),
    }
    if not settings.is_development:
        for channel, url in (("sms", settings.sms_provider_url),
                             ("push", settings.push_provider_url)):
            if not url:
                del deliverers[channel]
    return deliverers
